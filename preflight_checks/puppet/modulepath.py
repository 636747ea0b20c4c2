"""The modulepath Puppet will use, worked out from its files as Puppet itself does, without Ruby.

Puppet 4 and later (Puppet 7 here): settings are looked up in puppet.conf's section for the run
mode (`[user]` for `puppet apply` and `puppet module`, `[agent]` for the agent, `[server]` and
`[master]` for the server), then `[main]`, then the built-in defaults. The environment (default
`production`) is a folder in one of `environmentpath`'s folders; its `environment.conf` may set
`modulepath` (relative entries are relative to the environment, `$basemodulepath` and other
settings are interpolated, globs are expanded); without one the modulepath is the environment's
`modules` folder followed by `basemodulepath`. A `production` environment without a folder falls
back to `basemodulepath`; any other missing environment stops Puppet. `modulepath` in puppet.conf
stops Puppet 4 and later from starting at all.

Puppet 3 and 2.7 use directory environments only when `environmentpath` is set; otherwise
`modulepath` comes from puppet.conf (the environment's own section first, `$environment`
interpolated), default `$confdir/modules:/usr/share/puppet/modules`.

The defaults (confdir, codedir, basemodulepath) are read from the installation's own Ruby files
where they are written as literals (Debian patches them: /etc/puppet rather than
/etc/puppetlabs/puppet), and fall back to the layout's known values. A `$setting` this module
cannot know without starting Ruby is reported as unknown, never guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from preflight.text import plausible_name, shell_arg

if TYPE_CHECKING:
    from preflight.host import Host

CONF_LIMIT = 256 * 1024
RUBY_FILE_LIMIT = 512 * 1024
# Puppet's own line grammar (Puppet::Settings::IniFile), without backtracking: a section header
# and `name = value`; `[[:word:]]` is letters, digits and underscore.
SECTION_RE = re.compile(r"\s*\[(\w+)\]\s*")
SETTING_RE = re.compile(r"\s*(\w+)\s*=(.*)")
INTERPOLATION_RE = re.compile(r"\$(\w+)|\$\{(\w+)\}")
ENVIRONMENT_NAME_RE = re.compile(r"[a-z0-9_]+")
# Settings only environment.conf may hold: Puppet 4+ refuses to start when puppet.conf sets them.
ENVIRONMENT_CONF_ONLY = ("modulepath", "manifest", "config_version")
# What environment.conf may set (Puppet::Settings::EnvironmentConf::VALID_SETTINGS).
ENVIRONMENT_CONF_SETTINGS = (
    *ENVIRONMENT_CONF_ONLY,
    "environment_timeout",
    "environment_data_provider",
    "static_catalogs",
    "rich_data",
)
RUN_MODE_SECTIONS = {
    "user": ("user", "main"),
    "agent": ("agent", "main"),
    "server": ("server", "master", "main"),
}
RUN_MODE_CALLERS = {"user": "puppet apply / puppet module", "agent": "puppet agent"}
MAX_INTERPOLATION_DEPTH = 8
CONF_DIR_RE = re.compile(r"def conf_dir\s+which_dir\(\s*\"(/[^\"]+)\"")
CODE_DIR_RE = re.compile(r"def code_dir\s+which_dir\(\s*\"(/[^\"]+)\"")
BASEMODULEPATH_RE = re.compile(r"""['"](\$(?:codedir|confdir)/modules(?::/[^'":]+)+)['"]""")

# Per layout, when the installation's files do not say: (confdir, codedir, basemodulepath).
LAYOUT_DEFAULTS = {
    "debian": ("/etc/puppet", "/etc/puppet/code", "$codedir/modules:/usr/share/puppet/modules"),
    "upstream": (
        "/etc/puppetlabs/puppet",
        "/etc/puppetlabs/code",
        "$codedir/modules:/opt/puppetlabs/puppet/modules",
    ),
    "puppet3": ("/etc/puppet", None, "$confdir/modules:/usr/share/puppet/modules"),
}


@dataclass
class Setting:
    value: str
    source: str  # "/etc/puppet/puppet.conf [main] basemodulepath", "default", ...


@dataclass
class PathPart:
    """One folder of the modulepath and where it came from."""

    path: str | None  # absolute, as the host names it; None when it cannot be known
    source: str
    exists: bool | None = None
    unknown: str | None = None  # the text that could not be resolved, and why

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "source": self.source,
            "exists": self.exists,
            "unknown": self.unknown,
        }


@dataclass
class ModulePath:
    run_mode: str
    environment: str
    environment_source: str
    confdir: str
    codedir: str | None
    puppet_conf: str | None  # the puppet.conf read, when it exists
    environment_dir: str | None = None
    parts: list[PathPart] = field(default_factory=list)
    # (finding code, message, remediation): what stops Puppet from using this modulepath.
    problems: list[tuple[str, str, list[str]]] = field(default_factory=list)

    @property
    def caller(self) -> str:
        return RUN_MODE_CALLERS.get(self.run_mode, f"puppet {self.run_mode}")

    def folders(self) -> list[str]:
        """The known folders, in order, each once."""
        seen: list[str] = []
        for part in self.parts:
            if part.path is not None and part.path not in seen:
                seen.append(part.path)
        return seen

    def printed(self) -> str:
        """What `puppet config print modulepath` prints for this environment."""
        return ":".join(p.path or p.unknown or "" for p in self.parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_mode": self.run_mode,
            "caller": self.caller,
            "environment": self.environment,
            "environment_source": self.environment_source,
            "environment_dir": self.environment_dir,
            "confdir": self.confdir,
            "codedir": self.codedir,
            "puppet_conf": self.puppet_conf,
            "parts": [p.to_dict() for p in self.parts],
        }


@dataclass
class ConfFile:
    path: str  # as the host names it
    sections: dict[str, dict[str, str]]
    errors: list[str]


def parse_conf(host: Host, path: str) -> ConfFile | None:
    """puppet.conf or environment.conf as Puppet parses it; None when the file is absent.
    Lines before the first section belong to [main]; the value loses one leading and one
    trailing quote and trailing blanks (Puppet::Settings::ValueTranslator); `{owner = ...}`
    metadata is cut."""
    text = host.read_text(path, CONF_LIMIT)
    if text is None:
        return None
    sections: dict[str, dict[str, str]] = {"main": {}}
    current = sections["main"]
    errors: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        header = SECTION_RE.fullmatch(line)
        if header:
            current = sections.setdefault(header.group(1), {})
            continue
        setting = SETTING_RE.fullmatch(line)
        if setting is None:
            errors.append(f"line {number} is neither a section nor a setting")
            continue
        value = setting.group(2).strip()
        if value[:1] in ("'", '"'):
            value = value[1:]
        if value[-1:] in ("'", '"'):
            value = value[:-1]
        brace = value.find("{")
        if brace != -1 and value.endswith("}"):
            value = value[:brace].rstrip()
        current.setdefault(setting.group(1), value.rstrip())
    return ConfFile(host.display(path), sections, errors)


def install_defaults(
    host: Host, library: str | None, layout: str, major: int | None
) -> tuple[str, str | None, str]:
    """confdir, codedir and the default basemodulepath of one installation: from its own Ruby
    files where they are literals, else the layout's known values."""
    if major is not None and major < 4:
        key = "puppet3"
    elif layout == "vendor" or library is None or "/gems/" in library:
        key = "upstream"
    else:
        key = "debian"
    confdir, codedir, base = LAYOUT_DEFAULTS[key]
    if library is not None and key != "puppet3":
        run_mode = host.read_text(f"{library}/puppet/util/run_mode.rb", RUBY_FILE_LIMIT) or ""
        unix = (
            run_mode[run_mode.find("class UnixRunMode") :]
            if "class UnixRunMode" in run_mode
            else ""
        )
        found = CONF_DIR_RE.search(unix)
        confdir = found.group(1) if found else confdir
        found = CODE_DIR_RE.search(unix)
        codedir = found.group(1) if found else codedir
        defaults = host.read_text(f"{library}/puppet/defaults.rb", RUBY_FILE_LIMIT) or ""
        found = BASEMODULEPATH_RE.search(defaults)
        base = found.group(1) if found else base
    return confdir, codedir, base


class Settings:
    """Puppet's settings chain for one run mode: the environment's environment.conf (only its own
    settings), the run mode's sections of puppet.conf, [main], then the defaults."""

    def __init__(
        self,
        conf: ConfFile | None,
        run_mode: str,
        defaults: dict[str, Setting],
        directory_environments: bool,
    ) -> None:
        self.conf = conf
        self.sections = RUN_MODE_SECTIONS.get(run_mode, (run_mode, "main"))
        self.defaults = defaults
        self.environment_conf: ConfFile | None = None
        self.environment: str | None = None
        # Directory environments forbid $environment in settings (it stays literal).
        self.directory_environments = directory_environments

    def lookup(self, name: str) -> Setting | None:
        env_conf = self.environment_conf
        if (
            env_conf is not None
            and name in ENVIRONMENT_CONF_SETTINGS
            and name in env_conf.sections.get("main", {})
        ):
            return Setting(env_conf.sections["main"][name], f"{env_conf.path} {name}")
        if self.conf is not None:
            chain = self.sections
            if not self.directory_environments and self.environment:
                chain = (self.environment, *chain)  # Puppet 3 config-file environments
            for section in chain:
                values = self.conf.sections.get(section, {})
                if name in values:
                    return Setting(values[name], f"{self.conf.path} [{section}] {name}")
        return self.defaults.get(name)

    def interpolate(self, value: str, depth: int = 0) -> tuple[str, str | None]:
        """`value` with $settings replaced; the second item names what could not be known."""
        unknown: list[str] = []

        def replace(match: re.Match[str]) -> str:
            name = match.group(1) or match.group(2)
            if name == "environment":
                if self.directory_environments or self.environment is None:
                    return match.group(0)  # Puppet keeps it literally
                return self.environment
            setting = self.lookup(name)
            if setting is None or depth >= MAX_INTERPOLATION_DEPTH:
                unknown.append(f"${name}")
                return match.group(0)
            text, inner = self.interpolate(setting.value, depth + 1)
            if inner:
                unknown.append(inner)
            return text

        text = INTERPOLATION_RE.sub(replace, value)
        return text, (", ".join(unknown) or None)


def _absolute(text: str) -> str | None:
    return text if text.startswith("/") else None


def expand_path_setting(
    host: Host, settings: Settings, setting: Setting, base_dir: str | None = None
) -> list[PathPart]:
    """The folders a path setting names, each with its source. An entry that is exactly another
    path setting ($basemodulepath) keeps that setting's own sources."""
    parts: list[PathPart] = []
    for entry in setting.value.split(":"):
        entry = entry.strip()
        if not entry:
            continue
        whole = INTERPOLATION_RE.fullmatch(entry)
        name = (whole.group(1) or whole.group(2)) if whole else None
        if name and name not in ("environment", "confdir", "codedir"):
            inner = settings.lookup(name)
            if inner is not None and inner is not setting:
                parts.extend(expand_path_setting(host, settings, inner))
                continue
        if base_dir is not None and not entry.startswith("$") and not entry.startswith("/"):
            entry = f"{base_dir.rstrip('/')}/{entry}"  # environment.conf: relative to the env
        text, unknown = settings.interpolate(entry)
        if unknown:
            parts.append(
                PathPart(None, setting.source, None, f"{entry} ({unknown} unknown without Ruby)")
            )
            continue
        path = _absolute(_normalize(text))
        if path is None:
            parts.append(
                PathPart(
                    None, setting.source, None, f"{text} (relative to Puppet's working folder)"
                )
            )
            continue
        if base_dir is not None and any(ch in entry for ch in "*?[{"):
            # environment.conf globs are expanded (Ruby's Dir.glob sorts its matches)
            parts.extend(
                PathPart(host.display(m), setting.source, host.is_dir(m))
                for m in host.glob(path.lstrip("/"))
            )
            continue
        parts.append(PathPart(path, setting.source, host.is_dir(path.lstrip("/"))))
    return parts


def _normalize(path: str) -> str:
    """Like Ruby's File.expand_path on an absolute path: `.` and `..` and doubled slashes go."""
    if not path.startswith("/"):
        return path
    out: list[str] = []
    for piece in path.split("/"):
        if piece in ("", "."):
            continue
        if piece == "..":
            if out:
                out.pop()
            continue
        out.append(piece)
    return "/" + "/".join(out)


def resolve(
    host: Host,
    *,
    run_mode: str,
    library: str | None,
    layout: str,
    major: int | None,
    environment_override: str | None = None,
) -> ModulePath:
    """The modulepath one kind of Puppet run will use on this host."""
    confdir, codedir, base_default = install_defaults(host, library, layout, major)
    conf_rel = f"{confdir.lstrip('/')}/puppet.conf"
    conf = parse_conf(host, conf_rel)
    modern = major is None or major >= 4
    defaults = {
        "confdir": Setting(confdir, "default confdir"),
        "basemodulepath": Setting(base_default, "default basemodulepath"),
    }
    if codedir is not None:
        defaults["codedir"] = Setting(codedir, "default codedir")
        defaults["environmentpath"] = Setting("$codedir/environments", "default environmentpath")
    if not modern:
        defaults["modulepath"] = Setting(base_default, "default modulepath")
    settings = Settings(conf, run_mode, defaults, directory_environments=modern)

    env_setting = settings.lookup("environment")
    environment = environment_override or (env_setting.value if env_setting else "production")
    env_source = (
        "--environment"
        if environment_override
        else (env_setting.source if env_setting else "default environment")
    )
    result = ModulePath(
        run_mode,
        environment,
        env_source,
        confdir,
        codedir,
        conf.path if conf is not None else None,
    )
    if conf is not None:
        for error in conf.errors[:3]:
            result.problems.append(
                (
                    "puppet.puppet-conf-invalid",
                    f"{conf.path}: {error}; Puppet stops with 'Could not match line'",
                    [f"fix or remove that line of {conf.path}"],
                )
            )
        if modern:
            forbidden = sorted(
                {
                    f"{name} in [{section}]"
                    for section, values in conf.sections.items()
                    for name in values
                    if name in ENVIRONMENT_CONF_ONLY
                }
            )
            if forbidden:
                result.problems.append(
                    (
                        "puppet.puppet-conf-invalid",
                        f"{conf.path} sets {', '.join(forbidden)}: Puppet 4 and later refuse to "
                        "start ('Cannot set modulepath settings in puppet.conf')",
                        [
                            f"move the setting from {conf.path} to the environment's "
                            "environment.conf (modulepath = ...:$basemodulepath)"
                        ],
                    )
                )
    settings.environment = environment

    env_path_setting = settings.lookup("environmentpath")
    env_dir = None
    if env_path_setting is not None and env_path_setting.value.strip():
        env_path_text, unknown = settings.interpolate(env_path_setting.value)
        if unknown is None and ENVIRONMENT_NAME_RE.fullmatch(environment):
            for folder in env_path_text.split(":"):
                folder = _normalize(folder.strip())
                if folder.startswith("/") and host.is_dir(f"{folder.lstrip('/')}/{environment}"):
                    env_dir = f"{folder.rstrip('/')}/{environment}"
                    break
    if env_dir is not None and (modern or env_path_setting is not None):
        result.environment_dir = env_dir
        env_conf = parse_conf(host, f"{env_dir.lstrip('/')}/environment.conf")
        settings.environment_conf = env_conf
        base = settings.lookup("basemodulepath")
        own = env_conf.sections.get("main", {}).get("modulepath") if env_conf else None
        if env_conf is not None and own is not None:
            result.parts = expand_path_setting(
                host, settings, Setting(own, f"{env_conf.path} modulepath"), base_dir=env_dir
            )
        else:
            modules = f"{env_dir}/modules"
            result.parts = [
                PathPart(modules, f"environment {environment}", host.is_dir(modules.lstrip("/")))
            ]
            if base is not None:
                result.parts += expand_path_setting(host, settings, base)
        return result
    if modern:
        if environment != "production":
            where = env_path_setting.value if env_path_setting else "environmentpath"
            text, _ = settings.interpolate(where) if env_path_setting else (where, None)
            folder = f"{text.split(':')[0].rstrip('/')}/{environment}/modules"
            create = (
                f"mkdir -p {shell_arg(folder)} (and put the environment's modules there)"
                if plausible_name(folder) and ENVIRONMENT_NAME_RE.fullmatch(environment)
                else "create the environment's folder in the environmentpath"
            )
            result.problems.append(
                (
                    "puppet.environment-missing",
                    f"environment {environment} ({env_source}) has no folder in the "
                    f"environmentpath {text}: {result.caller} stops with 'Could not find a "
                    f"directory environment named {environment}'",
                    [create, "or set environment to one that exists"],
                )
            )
        base = settings.lookup("basemodulepath")
        # Puppet's fallback production environment keeps only the folders that exist.
        parts = expand_path_setting(host, settings, base) if base else []
        result.parts = [p for p in parts if p.exists is not False]
        return result
    modulepath = settings.lookup("modulepath")
    result.parts = expand_path_setting(host, settings, modulepath) if modulepath else []
    return result
