"""Fuzzing the puppet check's parsers: version files, module metadata, version order."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from hostdata import (
    METADATA_TRULABS_KAMAILIO,
    MODULEFILE_TRULABS_KAMAILIO,
)
from hypothesis import given
from hypothesis import strategies as st
from support.fuzz import (
    FUZZ,
    mutated,
)

from preflight.host import Host
from preflight_checks.puppet import facts as puppet_installs
from preflight_checks.puppet import facts as puppet_modules
from preflight_checks.puppet import facts as puppet_versions

# ------------------------------------------------------------------------------ puppet
VERSION_RB = """module Puppet
  PUPPETVERSION = '7.23.0'

  def self.version
    @puppet_version || PUPPETVERSION
  end
end
"""
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=10,
)


@FUZZ
@given(mutated([VERSION_RB]), mutated(["7.23.0\n", "3.8.7"]), mutated([VERSION_RB]))
def test_puppet_version_files_never_raise_and_give_a_version_or_none(
    version_rb: str, version_file: str, puppet_rb: str
) -> None:
    read = puppet_installs.version_from_library
    with tempfile.TemporaryDirectory() as root:
        library = "usr/lib/ruby/vendor_ruby"
        os.makedirs(f"{root}/{library}/puppet")
        Path(f"{root}/{library}/puppet/version.rb").write_text(version_rb, errors="surrogatepass")
        Path(f"{root}/{library}/puppet.rb").write_text(puppet_rb, errors="surrogatepass")
        found = read(Host(root), library)
        assert found is None or found[0][:1].isdigit()
        Path(f"{root}/{library}/puppet/VERSION").write_text(version_file, errors="surrogatepass")
        found = read(Host(root), library)
    assert found is None or (found[0][:1].isdigit() and "\n" not in found[0])


@FUZZ
@given(
    st.one_of(mutated([METADATA_TRULABS_KAMAILIO]), _JSON.map(json.dumps)),
    mutated([MODULEFILE_TRULABS_KAMAILIO]),
    st.booleans(),
)
def test_puppet_module_metadata_never_raises(metadata: str, modulefile: str, both: bool) -> None:
    read = puppet_modules.module_metadata
    with tempfile.TemporaryDirectory() as root:
        folder = "etc/puppet/code/modules/kamailio"
        os.makedirs(f"{root}/{folder}")
        Path(f"{root}/{folder}/metadata.json").write_text(metadata, errors="surrogatepass")
        if both:
            Path(f"{root}/{folder}/Modulefile").write_text(modulefile, errors="surrogatepass")
        name, version = read(Host(root), folder)
    assert name is None or isinstance(name, str)
    assert version is None or isinstance(version, str)


@pytest.mark.parametrize(
    ("text", "name", "version"),
    [
        (METADATA_TRULABS_KAMAILIO, "trulabs-kamailio", "0.0.7"),
        ('{"name": 7, "version": ["0.1"]}', None, None),
        ("[1, 2]", None, None),
    ],
)
def test_puppet_module_metadata_of_real_and_wrongly_typed_files(
    text: str, name: str | None, version: str | None
) -> None:
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(f"{root}/m")
        Path(f"{root}/m/metadata.json").write_text(text)
        assert puppet_modules.module_metadata(Host(root), "m") == (name, version)


@FUZZ
@given(
    mutated(["7.23.0", "2.7.14", "3.7.2.acquia7", "4.10.12", "2.7.21.github2"]),
    mutated(["2.7.14", "7.0"]),
)
def test_puppet_version_ordering_never_raises(version: str, minimum: str) -> None:
    assert puppet_versions.older(version, minimum) in (True, False)
