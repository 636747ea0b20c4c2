"""Secrets never leave the host through preflight: not in any output format, not in a
`preflight collect` tarball.

A host snapshot holds the kinds of secrets the checks' files really carry (database URLs in
kamailio.cfg, the TLS private key tls.cfg points to, OpenVPN inline keys and static keys, an
auth-user-pass file, `password=` lines), each marked with a unique token. Every format of every
check is searched for every token and for key material.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest
from hostdata import DEBIAN12_OS_RELEASE
from support.cli import check_of, report_of, run_preflight
from support.components import require_command
from support.snapshot import Snapshot

from preflight.reporters import FORMATS

# Each value is unique, so a hit names exactly which secret leaked.
DB_PASSWORD = "PFSECRET-db-Zq81"
DEFINE_PASSWORD = "PFSECRET-define-Xw22"
AUTH_SECRET = "PFSECRET-nonce-Lk73"
CFG_PASSWORD = "PFSECRET-cfgline-Tr44"
VPN_PASSWORD = "PFSECRET-vpnpass-Mn55"
ENV_SECRET = "PFSECRET-env-Hg66"
# Issue 18 item 12: secrets that line patterns missed; each must be masked by structure.
REDIS_PASSWORD = "PFSECRET-redis-Ab12"
SUBSTDEF_PASSWORD = "PFSECRET-substdef-Cd34"
DEFINE_DBPASS = "PFSECRET-dbpass-Ef56"
AVP_PASSWORD = "PFSECRET-avp-Gh78"
MYSQL_PWD = "PFSECRET-mysqlpwd-Ij90"
GITHUB_PAT = "ghp_PFSECRETpat0123456789abcdefABCDEF"
WEBHOOK = "PFSECRET-webhook-Kl12"
URL_PASSWORD = "PF/SECRET url@pass-Mn34"  # a `/`, a space and an `@` in a URL password
TLS_CRYPT_V2 = "PFSECRETtlscryptv2Op56"
PKCS12 = "PFSECRETpkcs12Qr78"
PROXY_PASSWORD = "PFSECRET-proxy-St90"
NUL_SECRET = "PFSECRET-nul-Uv12"
UTF16_SECRET = "PFSECRET-utf16-Wx34"
# Secrets under keys that do not say so: recognised by their value's shape.
BEARER_TOKEN = "PFSECRETbearerYz56"
HOOK_TOKEN = "PFSECREThookAb78"
STRUCTURED = (
    REDIS_PASSWORD,
    SUBSTDEF_PASSWORD,
    DEFINE_DBPASS,
    AVP_PASSWORD,
    MYSQL_PWD,
    GITHUB_PAT,
    WEBHOOK,
    URL_PASSWORD,
    "url@pass-Mn34",
    TLS_CRYPT_V2,
    PKCS12,
    PROXY_PASSWORD,
    NUL_SECRET,
    UTF16_SECRET,
    BEARER_TOKEN,
    HOOK_TOKEN,
)
SECRETS = (
    DB_PASSWORD,
    DEFINE_PASSWORD,
    AUTH_SECRET,
    CFG_PASSWORD,
    VPN_PASSWORD,
    ENV_SECRET,
    *STRUCTURED,
)


def private_key_pem(tmp: Path) -> str:
    """A real RSA private key in PEM, made by openssl as an admin would."""
    openssl = require_command("openssl")
    key = tmp / "gen.key"
    subprocess.run(
        [openssl, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out", key],
        check=True,
        capture_output=True,
    )
    return key.read_text()


def key_body_lines(pem: str) -> list[str]:
    """The base64 lines of a PEM block: any one of them in an output is a leak."""
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


OPENVPN_STATIC_KEY = """-----BEGIN OpenVPN Static key V1-----
6d3a5d8b0c7f4e1a9b2c3d4e5f60718293a4b5c6d7e8f90112233445566778899
aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899a
-----END OpenVPN Static key V1-----
"""


@pytest.fixture(scope="module")
def secret_host(tmp_path_factory: pytest.TempPathFactory) -> tuple[Snapshot, list[str]]:
    """A Debian host with Kamailio (TLS), OpenVPN and Puppet configs full of secrets."""
    tmp = tmp_path_factory.mktemp("secrets")
    snap = Snapshot(tmp / "host")
    snap.root.mkdir()
    pem = private_key_pem(tmp)
    snap.write("etc/os-release", DEBIAN12_OS_RELEASE)
    snap.write("proc/sys/kernel/osrelease", "6.1.0-26-amd64\n")
    snap.write(
        "var/lib/dpkg/status",
        "Package: kamailio\nStatus: install ok installed\nArchitecture: amd64\n"
        "Version: 5.6.3-2\n\n"
        "Package: openvpn\nStatus: install ok installed\nArchitecture: amd64\n"
        "Version: 2.6.3-1+deb12u2\n\n",
    )
    snap.write(
        "etc/kamailio/kamailio.cfg",
        f"""#!KAMAILIO
#!define DBURL "mysql://kamailio:{DEFINE_PASSWORD}@db.example.net/kamailio"
listen=udp:192.0.2.10:5060
listen=tls:192.0.2.10:5061
enable_tls=yes
loadmodule "tls.so"
loadmodule "auth.so"
loadmodule "usrloc.so"
modparam("tls", "config", "/etc/kamailio/tls.cfg")
modparam("usrloc", "db_url", "mysql://kamailio:{DB_PASSWORD}@localhost/kamailio")
modparam("auth", "secret", "{AUTH_SECRET}")
include_file "secrets.cfg"
""",
    )
    snap.write("etc/kamailio/secrets.cfg", f'dbpassword = "{CFG_PASSWORD}"\nport=5060 x\n')
    snap.write("etc/kamailio/redis.cfg", REDIS_CFG)
    snap.write("etc/kamailio/binary.cfg", f"#!KAMAILIO\0\npassword = {NUL_SECRET}\n")
    snap.write("etc/kamailio/utf16.cfg", f"password = {UTF16_SECRET}\n".encode("utf-16"))
    snap.write("etc/openvpn/client/inline.conf", OPENVPN_INLINE)
    snap.write(
        "etc/kamailio/tls.cfg",
        "[server:default]\nmethod = TLSv1.2+\nprivate_key = /etc/kamailio/kamailio.key\n"
        "certificate = /etc/kamailio/kamailio.pem\n",
    )
    snap.write("etc/kamailio/kamailio.key", pem, mode=0o600)
    snap.write(
        "etc/openvpn/server/office.conf",
        f"dev tun\nport 1194\nauth-user-pass /etc/openvpn/server/pass.txt\n"
        f"<key>\n{pem}</key>\n<tls-crypt>\n{OPENVPN_STATIC_KEY}</tls-crypt>\n",
    )
    snap.write(
        "etc/openvpn/client/home.conf",
        f"dev tun\nremote vpn.example.net 1194\n<tls-auth>\n{OPENVPN_STATIC_KEY}</tls-auth>\n"
        f"<auth-user-pass>\nalice\n{VPN_PASSWORD}\n</auth-user-pass>\n",
    )
    snap.write("etc/openvpn/server/pass.txt", f"alice\n{VPN_PASSWORD}\n", mode=0o600)
    snap.write(
        "etc/environment",
        f'PATH="/usr/bin:/bin"\nAWS_SECRET_ACCESS_KEY={ENV_SECRET}\nMYSQL_PWD={MYSQL_PWD}\n'
        f"GITHUB_PAT={GITHUB_PAT}\n"
        f"SLACK_WEBHOOK_URL=https://hooks.slack.com/services/T000/B000/{WEBHOOK}\n"
        f"UPSTREAM_HEADER=Bearer {BEARER_TOKEN}\n"
        f"ALERTS=https://hooks.slack.com/services/T111/B111/{HOOK_TOKEN}\n",
    )
    snap.mkdir("dev/net")
    static_lines = key_body_lines(OPENVPN_STATIC_KEY)
    return snap, [*SECRETS, *key_body_lines(pem), *static_lines, "PRIVATE KEY"]


# Kamailio: a Redis server string, #!substdef and #!define values, $avp passwords, a DB URL
# whose password holds `/`, a space and `@`.
REDIS_CFG = f"""#!substdef "!DB_PASSWORD!{SUBSTDEF_PASSWORD}!g"
#!define DBPASS "{DEFINE_DBPASS}"
#!define DBURL "mysql://kamailio:{URL_PASSWORD}@db.example.net/kamailio"
#!substdef "!MY_IP!192.0.2.10!g"
modparam("ndb_redis", "server", "name=srv8;addr=127.0.0.1;port=6379;db=1;pass={REDIS_PASSWORD}")
$avp(s:password) = "{AVP_PASSWORD}";
listen=udp:MY_IP:5060
"""
OPENVPN_INLINE = f"""client
dev tun
remote vpn.example.net 1194
<tls-crypt-v2>
-----BEGIN OpenVPN tls-crypt-v2 client key-----
{TLS_CRYPT_V2}
-----END OpenVPN tls-crypt-v2 client key-----
</tls-crypt-v2>
<pkcs12>
{PKCS12}
</pkcs12>
<http-proxy-user-pass>
proxyuser
{PROXY_PASSWORD}
</http-proxy-user-pass>
<ca>
-----BEGIN CERTIFICATE-----
MIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQGEwJJ
-----END CERTIFICATE-----
</ca>
"""


def leaks(text: str, needles: list[str]) -> list[str]:
    return [n for n in needles if n in text]


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_secret_reaches_any_output_format(
    secret_host: tuple[Snapshot, list[str]], fmt: str
) -> None:
    snap, needles = secret_host
    run = run_preflight("check", "--root", str(snap), "--format", fmt, "--no-plugins")
    assert run.returncode in (0, 1, 2, 3), run.stderr
    assert "kamailio" in run.stdout  # the checks really ran on these files
    assert leaks(run.stdout + run.stderr, needles) == []


def test_no_secret_in_facts(snapshot: Snapshot) -> None:
    """`facts` reads process 1's environment (for the container type), where secrets live."""
    snapshot.write("etc/os-release", DEBIAN12_OS_RELEASE)
    snapshot.write(
        "proc/1/environ",
        f"container=lxc\0HOME=/\0AWS_SECRET_ACCESS_KEY={ENV_SECRET}\0DB_PASSWORD={DB_PASSWORD}\0",
    )
    snapshot.write("etc/environment", f"AWS_SECRET_ACCESS_KEY={ENV_SECRET}\n")
    facts = run_preflight("facts", "--root", str(snapshot))
    assert facts.returncode == 0, facts.stderr
    data = facts.json()
    # The control: the file was read.
    assert data["container"] == "lxc" and data["os"]["id"] == "debian"
    assert leaks(facts.stdout + facts.stderr, list(SECRETS)) == []


def test_the_tls_key_file_is_checked_but_never_read_into_the_report(
    secret_host: tuple[Snapshot, list[str]],
) -> None:
    snap, needles = secret_host
    run = run_preflight("check", "kamailio", "tun", "--root", str(snap), "-f", "json")
    kamailio = check_of(report_of(run), "kamailio")
    text = str(kamailio)
    # It names the certificate that is missing (kamailio.pem), not the key's content.
    assert "kamailio.pem" in text
    assert leaks(run.stdout, needles) == []


def test_collect_tarball_holds_no_secret(
    secret_host: tuple[Snapshot, list[str]], tmp_path: Path
) -> None:
    snap, needles = secret_host
    tarball = tmp_path / "host.tar.gz"
    run = run_preflight("collect", str(tarball), "--root", str(snap), "--no-plugins")
    assert run.returncode == 0, run.stderr
    assert leaks(run.stdout + run.stderr, needles) == []
    assert (tarball.stat().st_mode & 0o077) == 0, "a host snapshot is readable by root only"
    contents: dict[str, bytes] = {}
    with tarfile.open(tarball) as archive:
        for member in archive.getmembers():
            handle = archive.extractfile(member) if member.isfile() else None
            contents[member.name] = handle.read() if handle else b""
    names = set(contents)
    # The snapshot still has what the checks need: the configs, and where the key was.
    assert any(n.endswith("etc/kamailio/kamailio.cfg") for n in names), sorted(names)
    assert any(n.endswith("etc/openvpn/server/office.conf") for n in names)
    found = {
        name: leaks(data.decode("utf-8", "replace"), needles)
        for name, data in contents.items()
        if leaks(data.decode("utf-8", "replace"), needles)
    }
    assert found == {}, found


def test_collect_script_redacts_the_same_secrets(
    secret_host: tuple[Snapshot, list[str]], tmp_path: Path
) -> None:
    """The POSIX sh collector for old hosts must not leak what the Python one hides."""
    snap, needles = secret_host
    script = run_preflight("collect", "--print-script", "--no-plugins")
    assert script.returncode == 0
    path = tmp_path / "collect.sh"
    path.write_text(script.stdout)
    tarball = tmp_path / "sh.tar.gz"
    proc = subprocess.run(
        ["sh", str(path), str(tarball), str(snap)], capture_output=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    with tarfile.open(tarball) as archive:
        blob = b"".join(
            (archive.extractfile(m) or io.BytesIO()).read()
            for m in archive.getmembers()
            if m.isfile()
        )
    assert leaks(blob.decode("utf-8", "replace"), needles) == []
    assert leaks((proc.stdout + proc.stderr).decode("utf-8", "replace"), needles) == []


def test_live_kamailio_errors_on_password_lines_are_not_echoed(tmp_path: Path) -> None:
    """Live: `kamailio -c` rejects a config whose bad lines hold credentials; the report
    points at file and line but carries neither the URL password nor the bad value."""
    require_command("kamailio")
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(
        f"""#!KAMAILIO
listen=udp:127.0.0.1:15999
loadmodule "usrloc.so"
modparam("usrloc", "db_url", "mysql://kamailio:{DB_PASSWORD}@localhost/kamailio")
modparam("usrloc", "nosuchparam", "{AUTH_SECRET}")
password = "{CFG_PASSWORD}" oops
"""
    )
    config = tmp_path / "preflight.toml"
    config.write_text(f'[checks.kamailio]\nrequired = true\nconfig = "{cfg}"\n')
    for fmt in FORMATS:
        run = run_preflight("check", "kamailio", "-c", str(config), "-f", fmt, timeout=60)
        assert run.returncode in (1, 2, 3), run.stderr
        assert leaks(run.stdout + run.stderr, list(SECRETS)) == [], fmt
    detail = run_preflight("check", "kamailio", "-c", str(config), "-f", "json")
    (kamailio,) = report_of(detail)["checks"]
    # The finding points at the file and line of the first error.
    assert any(f"{cfg}:" in f["message"] for f in kamailio["findings"]), kamailio["findings"]


def test_collect_redacts_by_structure_and_keeps_what_checks_read(
    secret_host: tuple[Snapshot, list[str]], tmp_path: Path
) -> None:
    """Issue 18 item 12: every value of a secret-bearing key, every inline key block and every
    URL userinfo is masked; what the checks parse stays; files that are not text (a NUL byte,
    UTF-16) are withheld whole, never copied unredacted."""
    snap, needles = secret_host
    tarball = tmp_path / "host.tar.gz"
    run = run_preflight("collect", str(tarball), "--root", str(snap), "--no-plugins")
    assert run.returncode == 0, run.stderr
    with tarfile.open(tarball) as archive:
        files = {
            m.name.removeprefix("./"): (archive.extractfile(m) or io.BytesIO()).read()
            for m in archive.getmembers()
            if m.isfile()
        }
    redis = files["etc/kamailio/redis.cfg"].decode()
    assert '#!substdef "!DB_PASSWORD!REDACTED!g"\n' in redis
    assert '#!define DBPASS "REDACTED"\n' in redis
    assert '#!define DBURL "mysql://kamailio:REDACTED@db.example.net/kamailio"\n' in redis
    assert '#!substdef "!MY_IP!192.0.2.10!g"\n' in redis  # not a secret: kept for the parser
    assert (
        'modparam("ndb_redis", "server", "name=srv8;addr=127.0.0.1;port=6379;db=1;pass=REDACTED")'
        in redis
    )
    assert '$avp(s:password) = "REDACTED";\n' in redis
    assert "listen=udp:MY_IP:5060\n" in redis
    environment = files["etc/environment"].decode()
    assert 'PATH="/usr/bin:/bin"\n' in environment
    for key in ("AWS_SECRET_ACCESS_KEY", "MYSQL_PWD", "GITHUB_PAT", "SLACK_WEBHOOK_URL"):
        assert f"{key}=REDACTED\n" in environment
    # by the value's shape: a bearer token, a webhook URL's path (its host stays readable)
    assert "UPSTREAM_HEADER=Bearer REDACTED\n" in environment
    assert "ALERTS=https://hooks.slack.com/REDACTED\n" in environment
    vpn = files["etc/openvpn/client/inline.conf"].decode()
    assert vpn.startswith("client\ndev tun\nremote vpn.example.net 1194\n")
    for tag in ("tls-crypt-v2", "pkcs12", "http-proxy-user-pass"):
        assert f"<{tag}>\nREDACTED\n</{tag}>\n" in vpn
    assert "BEGIN CERTIFICATE" in vpn  # <ca> is public
    # Not text: stored empty and listed, whatever it holds.
    assert files["etc/kamailio/binary.cfg"] == b"" and files["etc/kamailio/utf16.cfg"] == b""
    manifest = json.loads(files[".preflight-collect.json"])
    assert {"etc/kamailio/binary.cfg", "etc/kamailio/utf16.cfg"} <= set(manifest["withheld"])
    assert leaks(b"".join(files.values()).decode("utf-8", "replace"), needles) == []
