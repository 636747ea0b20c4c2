"""One function per assertion kind: look at the host, compare with the spec, say what differs.

Each returns an Outcome: the expected and observed values (for the report's details), a problem
sentence per difference (for the finding's message) and a default fix per difference (used
when the spec gives no remediation). Values from the host are data: commands suggested here only
interpolate values from the spec, through `shell_arg`, and only names `plausible_name` accepts.
"""

from __future__ import annotations

import hashlib
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from preflight.declared.facts import is_named
from preflight.declared.spec import MATCH_INPUT_LIMIT, Assertion, Regex
from preflight.text import plausible_name, printable, shell_arg, shell_join

if TYPE_CHECKING:
    from preflight.declared.facts import DeclaredFacts
    from preflight.host import Host

SHA256_LIMIT = 256 << 20  # a file larger than this is not hashed (and says so)
HTTP_BODY_LIMIT = MATCH_INPUT_LIMIT
DEFAULT_NET_TIMEOUT = 5.0
SHOWN_OUTPUT = 200  # characters of a command's output or a body quoted in a message


@dataclass
class Outcome:
    subject: str
    expected: dict[str, Any] = field(default_factory=dict)
    observed: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)
    error: str | None = None  # could not decide: the reason
    skip: str | None = None  # does not apply here: the reason

    @property
    def holds(self) -> bool:
        return not self.problems and self.error is None and self.skip is None

    def compare(
        self,
        key: str,
        expected: Any,
        observed: Any,
        ok: bool,
        problem: str,
        fix: str | list[str] = "",
    ) -> None:
        """Record one property; when it differs, its problem and its fix (steps: each a
        command to run as it is, or a sentence)."""
        self.expected[key] = expected
        self.observed[key] = observed
        if not ok:
            self.problems.append(problem)
            for step in [fix] if isinstance(fix, str) else fix:
                if step and step not in self.fixes:
                    self.fixes.append(step)


def _cmd(*words: str) -> str:
    return shell_join(words)


def _excerpt(text: str) -> str:
    text = text.strip()
    short = text[:SHOWN_OUTPUT] + ("..." if len(text) > SHOWN_OUTPUT else "")
    return printable(short)


def _missing(host: Host, outcome: Outcome, what: str) -> Outcome:
    """A file the assertion needs is absent: a skip under --root (the snapshot lacks it), an
    error on the live host (it should be there)."""
    if host.is_live:
        outcome.error = f"cannot read {what}"
    else:
        outcome.skip = f"{what} is not in the snapshot under --root"
    return outcome


# ------------------------------------------------------------------------------ file
_TYPES = (
    (stat.S_ISREG, "file"),
    (stat.S_ISDIR, "directory"),
    (stat.S_ISLNK, "symlink"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISCHR, "char"),
    (stat.S_ISBLK, "block"),
)


def _type_name(mode: int) -> str:
    return next((name for test, name in _TYPES if test(mode)), "unknown")


def check_file(a: Assertion, facts: DeclaredFacts, host: Host) -> Outcome:
    p = a.params
    path: str = p["path"]
    rel = path.lstrip("/")
    out = Outcome(path)
    st = host.lstat(rel) if p.get("type") == "symlink" else host.stat(rel)
    want_exists = p.get("exists", True)
    out.compare(
        "exists",
        want_exists,
        st is not None,
        (st is not None) == want_exists,
        "missing" if want_exists else "exists but should not",
        f"Create {path}" if want_exists else f"Remove it: {_cmd('rm', '--', path)}",
    )
    if st is None or not want_exists:
        return out
    if "type" in p:
        kind = _type_name(st.st_mode)
        out.compare("type", p["type"], kind, kind == p["type"], f"is a {kind}, not a {p['type']}")
    if "mode" in p:
        mode = stat.S_IMODE(st.st_mode)
        out.compare(
            "mode",
            f"{p['mode']:04o}",
            f"{mode:04o}",
            mode == p["mode"],
            f"mode {mode:04o}, expected {p['mode']:04o}",
            _cmd("chmod", f"{p['mode']:04o}", path),
        )
    for key, ident, name_of, tool in (
        ("owner", st.st_uid, facts.user_name, "chown"),
        ("group", st.st_gid, facts.group_name, "chgrp"),
    ):
        if key in p:
            want = p[key]
            name = name_of(ident)
            seen = name if name is not None else ident
            ok = ident == want if isinstance(want, int) else name == want
            out.compare(
                key, want, seen, ok, f"{key} {seen}, expected {want}", _cmd(tool, str(want), path)
            )
    if "min_size" in p:
        out.compare(
            "min_size",
            p["min_size"],
            st.st_size,
            st.st_size >= p["min_size"],
            f"{st.st_size} bytes, expected at least {p['min_size']}",
        )
    if "max_size" in p:
        out.compare(
            "max_size",
            p["max_size"],
            st.st_size,
            st.st_size <= p["max_size"],
            f"{st.st_size} bytes, expected at most {p['max_size']}",
        )
    if any(k in p for k in ("contains", "not_contains", "sha256")):
        _file_content(out, host, rel, path, p)
    return out


def _file_content(out: Outcome, host: Host, rel: str, path: str, p: dict[str, Any]) -> None:
    limit = SHA256_LIMIT + 1 if "sha256" in p else MATCH_INPUT_LIMIT
    data = host.read_bytes(rel, limit)
    if data is None:
        out.error = f"cannot read {path}: {host.why_unreadable(rel)}"
        return
    text = data[:MATCH_INPUT_LIMIT].decode("utf-8", "replace")
    for key, want in (("contains", True), ("not_contains", False)):
        if key in p:
            regex: Regex = p[key]
            found = regex.search(text)
            out.compare(
                key,
                regex.pattern,
                "matches" if found else "no match",
                found == want,
                f"{'no line matches' if want else 'a line matches'} {regex.pattern!r}",
                f"Edit {path} so that {'a line matches' if want else 'no line matches'} "
                f"{regex.pattern!r}",
            )
    if "sha256" in p:
        if len(data) > SHA256_LIMIT:
            out.error = f"{path} is larger than {SHA256_LIMIT >> 20} MiB: not hashed"
            return
        digest = hashlib.sha256(data).hexdigest()
        out.compare(
            "sha256",
            p["sha256"],
            digest,
            digest == p["sha256"],
            f"sha256 {digest}, expected {p['sha256']}",
            f"Replace {path} with the expected file (sha256 {p['sha256']})",
        )


# ------------------------------------------------------------------------------ package
_OPS: dict[str, Callable[[int], bool]] = {
    ">=": lambda c: c >= 0,
    "<=": lambda c: c <= 0,
    ">>": lambda c: c > 0,
    ">": lambda c: c > 0,
    "<<": lambda c: c < 0,
    "<": lambda c: c < 0,
    "=": lambda c: c == 0,
    "==": lambda c: c == 0,
    "!=": lambda c: c != 0,
}


def check_package(a: Assertion, facts: DeclaredFacts, host: Host) -> Outcome:
    p = a.params
    names: list[str] = p["package"]
    db = host.packages
    out = Outcome(" or ".join(names))
    manager = db.manager
    if manager is None:
        return _missing(host, out, "a package database (var/lib/dpkg/status or rpm)")
    if manager == "rpm" and not host.is_live:
        from preflight.facts.packages import RPM_DB_DIRS
        from preflight.facts.rpmdb import installed_packages

        # The snapshot's database is read in place; one that cannot be read says nothing.
        if installed_packages(host, RPM_DB_DIRS, names) is None:
            out.skip = "no readable RPM database (var/lib/rpm, usr/lib/sysimage/rpm) in it"
            return out
    found = {pkg.name: pkg for pkg in db.find(names=names)}
    package = next((found[n] for n in names if n in found), None)
    want = p.get("installed", True)
    install = _cmd("dnf" if manager == "rpm" else "apt-get", "install", names[0])
    out.compare(
        "installed",
        want,
        package is not None,
        (package is not None) == want,
        "not installed" if want else f"{package.name if package else ''} is installed",
        install if want else _cmd("apt-get" if manager == "dpkg" else "dnf", "remove", *found),
    )
    if package is None or not want or "version" not in p:
        return out
    constraint = p["version"]
    candidates = (
        _cmd("apt-cache", "policy", package.name)
        if manager == "dpkg"
        else _cmd("dnf", "list", "--showduplicates", package.name)
    )
    ok = all(_OPS[op](db.order(package.version, version)) for op, version in constraint.parts)
    out.compare(
        "version",
        constraint.text,
        package.version,
        ok,
        f"{package.name} {package.version} does not satisfy {constraint.text}",
        f"Install a version of {package.name} that satisfies {constraint.text} "
        f"({candidates} lists the candidates)",
    )
    return out


# ------------------------------------------------------------------------------ port
def _covers(bound: str, wanted: str, bindv6only: bool) -> bool:
    if bound == wanted:
        return True
    if bound == "0.0.0.0":  # noqa: S104 - an address read from the socket table
        return ":" not in wanted
    if bound == "::":
        return ":" in wanted or not bindv6only
    return False


def check_port(a: Assertion, facts: DeclaredFacts, host: Host) -> Outcome:
    p = a.params
    proto = p.get("proto", "tcp")
    port = p["port"]
    address = p.get("address")
    where = f"{proto} {address if address else '*'}:{port}"
    out = Outcome(where)
    v6only = host.read_line("proc/sys/net/ipv6/bindv6only") == "1"
    matching = [
        s
        for s in host.sockets.on_port(proto, port)
        if address is None or _covers(s.addr, address, v6only)
    ]
    shown = [f"{s.transport} {s.addr}:{s.port}" for s in matching]
    want = p.get("listening", True)
    service = p.get("process", "the service")
    if "process" in p and matching and want:
        owners = facts.owners(matching, p["process"])
        shown = [
            f"{text} ({owner or 'owner unknown'})"
            for text, owner in zip(shown, owners, strict=True)
        ]
    out.compare(
        "listening",
        want,
        shown,
        bool(matching) == want,
        ("nothing listens" if want else f"listening: {', '.join(shown)}"),
        f"Start {service} or correct its listen address so that it listens on {where}"
        if want
        else f"Stop what listens on {where}, or move it to another port",
    )
    if "process" in p and matching and want:
        if p["process"] in owners:
            out.compare("process", p["process"], p["process"], True, "")
        elif all(o is None for o in owners) and not host.is_root_user:
            out.observed["process"] = None
            out.expected["process"] = p["process"]
            out.error = f"cannot see which process holds {where} (run preflight as root)"
        else:
            others = sorted({o or "owner unknown" for o in owners})
            out.compare(
                "process",
                p["process"],
                others,
                False,
                f"held by {', '.join(others)}, not {p['process']}",
                f"Stop what holds {where} and start {p['process']} there",
            )
    return out


# ------------------------------------------------------------------------------ process
def check_process(a: Assertion, facts: DeclaredFacts, host: Host) -> Outcome:
    p = a.params
    name = p.get("process")
    regex: Regex | None = p.get("argv")
    subject = " and ".join(
        part
        for part in (f"name {name}" if name else "", f"argv ~ {regex.pattern!r}" if regex else "")
        if part
    )
    out = Outcome(f"processes with {subject}")
    found = [
        proc
        for proc in host.processes
        if (name is None or is_named(proc.name, name))
        and (regex is None or regex.search(" ".join(proc.argv)))
    ]
    count = len(found)
    if "count" in p:
        low = high = p["count"]
    else:
        running = p.get("running", True)
        low = p.get("min", 1 if running else 0)
        high = p.get("max", None if running else 0)
    expected = (
        f"{low}" if low == high else f">= {low}" + (f", <= {high}" if high is not None else "")
    )
    ok = count >= low and (high is None or count <= high)
    pids = ", ".join(str(proc.pid) for proc in found[:10])
    fix = (
        f"Start the process ({subject})"
        if count < low
        else f"Stop the extra processes ({subject}): pids {pids}"
    )
    out.compare("count", expected, count, ok, f"{count} running, expected {expected}", fix)
    out.observed["pids"] = [proc.pid for proc in found[:20]]
    return out


# ------------------------------------------------------------------------------ service
def check_service(a: Assertion, facts: DeclaredFacts, host: Host) -> Outcome:
    p = a.params
    name: str = p["service"]
    out = Outcome(f"service {name}")
    want_active = p.get("active", True)
    if host.service_manager == "systemd":
        unit = name if "." in name else f"{name}.service"
        result = host.run(["systemctl", "is-active", "--", unit])
        state = result.stdout.strip() if result is not None else ""
        out.compare(
            "active",
            want_active,
            state or "unknown",
            (state == "active") == want_active,
            f"{unit} is {state or 'unknown'}",
            _cmd("systemctl", "start" if want_active else "stop", unit),
        )
        if "enabled" in p:
            result = host.run(["systemctl", "is-enabled", "--", unit])
            enabled = result.stdout.strip() if result is not None else ""
            out.compare(
                "enabled",
                p["enabled"],
                enabled or "unknown",
                (enabled in ("enabled", "enabled-runtime", "static", "alias")) == p["enabled"]
                if p["enabled"]
                else enabled not in ("enabled", "enabled-runtime"),
                f"{unit} is {enabled or 'unknown'} at boot",
                _cmd("systemctl", "enable" if p["enabled"] else "disable", unit),
            )
        return out
    script = f"etc/init.d/{name}"
    if not host.is_file(script):
        out.compare(
            "active",
            want_active,
            "no init script",
            not want_active,
            f"no systemd and no /{script}",
            f"Install the package that provides /{script}",
        )
        return out
    result = host.run([f"/{script}", "status"])
    said = _excerpt(result.stdout or result.stderr) if result is not None else ""
    # Exit 0 is "running" (LSB), unless the script itself printed a failure: Debian's kamailio
    # script exits 0 with log_failure_msg's "... failed!" when RUN_KAMAILIO is not yes.
    running = result is not None and result.returncode == 0 and "failed!" not in said
    out.compare(
        "active",
        want_active,
        f"exit {result.returncode if result else None}" + (f": {said}" if said else ""),
        running == want_active,
        f"/{script} status says {'running' if running else 'not running'}"
        + (f" ({said})" if said else ""),
        _cmd("service", name, "start" if want_active else "stop"),
    )
    if "enabled" in p:
        links = host.glob(f"etc/rc[2345].d/S*{name}")
        at_boot = any(link.rsplit("/", 1)[-1][3:] == name for link in links)
        out.compare(
            "enabled",
            p["enabled"],
            at_boot,
            at_boot == p["enabled"],
            f"{'not ' if not at_boot else ''}started at boot (/etc/rc2-5.d)",
            _cmd("update-rc.d", name, "enable" if p["enabled"] else "disable"),
        )
    return out


# ------------------------------------------------------------------------------ sysctl
def sysctl_path(key: str) -> str:
    """proc/sys path of a key: dots separate parts, unless the key is written with slashes."""
    return "proc/sys/" + (key if "/" in key else key.replace(".", "/"))


def check_sysctl(a: Assertion, facts: DeclaredFacts, host: Host) -> Outcome:
    p = a.params
    key: str = p["key"]
    rel = sysctl_path(key)
    out = Outcome(f"sysctl {key}")
    raw = host.read_text(rel, 64 * 1024)
    if raw is None:
        if not host.is_live:
            return _missing(host, out, f"/{rel}")
        out.compare("exists", True, False, False, f"the kernel has no /{rel}")
        return out
    value = " ".join(raw.split())
    sysctl_conf = "/etc/sysctl.d/60-preflight.conf"
    if "value" in p:
        out.compare(
            "value",
            p["value"],
            value,
            value == p["value"],
            f"is {value!r}, expected {p['value']!r}",
            _cmd("sysctl", "-w", f"{key}={p['value']}"),
        )
    for bound, ok_if in (("min", lambda v, b: v >= b), ("max", lambda v, b: v <= b)):
        if bound not in p:
            continue
        try:
            number = int(value)
        except ValueError:
            out.error = f"{key} is {value!r}, not a number to compare with {bound}"
            return out
        out.compare(
            bound,
            p[bound],
            number,
            ok_if(number, p[bound]),
            f"is {number}, expected {'at least' if bound == 'min' else 'at most'} {p[bound]}",
            _cmd("sysctl", "-w", f"{key}={p[bound]}"),
        )
    if out.fixes:
        target = p.get("value", p.get("min", p.get("max")))
        out.fixes.append(
            f"Keep it across reboots: the line `{key} = {target}` in a file of /etc/sysctl.d/ "
            f"(e.g. {sysctl_conf})"
        )
    return out


# ------------------------------------------------------------------------------ kernel_module
def check_kernel_module(a: Assertion, facts: DeclaredFacts, host: Host) -> Outcome:
    p = a.params
    module = p["module"].replace("-", "_")
    out = Outcome(f"kernel module {module}")
    loaded_set = host.loaded_modules
    builtin_set = facts.builtin_modules
    # /sys/module/NAME: every loaded module, and built-in ones that have parameters; a loaded
    # module has an initstate file there, a built-in one does not.
    in_sys = host.is_dir(f"sys/module/{module}")
    loaded = (loaded_set is not None and module in loaded_set) or (
        in_sys and host.exists(f"sys/module/{module}/initstate")
    )
    builtin = (builtin_set is not None and module in builtin_set) or (in_sys and not loaded)
    want = p.get("loaded", True)
    if not (loaded or builtin) and builtin_set is None:
        release = host.kernel_release or "<release>"
        what = f"/lib/modules/{release}/modules.builtin"
        if not host.is_live:
            return _missing(host, out, f"{what} (or /proc/modules, /sys/module)")
        if want:
            # A built-in module without parameters shows nowhere else: not a verdict.
            out.error = f"not loaded, and without {what} it cannot be told whether it is built in"
            return out
    state = "built in" if builtin else ("loaded" if loaded else "not loaded")
    fix = (
        [
            _cmd("modprobe", module),
            f"echo {shell_arg(module)} > /etc/modules-load.d/{module}.conf",
        ]
        if want
        else (_cmd("modprobe", "-r", module) if not builtin else "")
    )
    out.compare(
        "loaded",
        want,
        state,
        (loaded or builtin) == want,
        state if want else f"{state} (expected not loaded)",
        fix,
    )
    return out


# ------------------------------------------------------------------------------ mount
def check_mount(a: Assertion, facts: DeclaredFacts, host: Host) -> Outcome:
    p = a.params
    path: str = p["path"]
    out = Outcome(f"mount {path}")
    mounts = facts.mounts
    if mounts is None:
        return _missing(host, out, "/proc/self/mounts")
    mount = next((m for m in reversed(mounts) if m.path == path), None)  # the top one
    want = p.get("mounted", True)
    out.compare(
        "mounted",
        want,
        mount is not None,
        (mount is not None) == want,
        "not mounted" if want else f"mounted ({mount.device if mount else ''})",
        [_cmd("mount", path), f"Without an /etc/fstab entry for {path}: add one"]
        if want
        else _cmd("umount", path),
    )
    if mount is None or not want:
        return out
    if "fstype" in p:
        out.compare(
            "fstype",
            p["fstype"],
            mount.fstype,
            mount.fstype == p["fstype"],
            f"file system {mount.fstype}, expected {p['fstype']}",
            f"Mount a {p['fstype']} file system at {path} (and fix its /etc/fstab entry)",
        )
    if "options" in p:
        absent = [o for o in p["options"] if o not in mount.options]
        out.compare(
            "options",
            p["options"],
            list(mount.options),
            not absent,
            f"lacks option{'s' if len(absent) > 1 else ''} {','.join(absent)}",
            [
                _cmd("mount", "-o", "remount," + ",".join(absent), path),
                f"Keep it across reboots: add {','.join(absent)} to the options of {path} in "
                "/etc/fstab",
            ],
        )
    return out


# ------------------------------------------------------------------------------ user, group
def _compare_exists(out: Outcome, want: bool, present: bool, create: str, delete: str) -> None:
    """The `exists` comparison of a user or group, with the command that makes it hold."""
    out.compare(
        "exists",
        want,
        present,
        present == want,
        "does not exist" if want else "exists",
        create if want else delete,
    )


def check_user(a: Assertion, facts: DeclaredFacts, host: Host) -> Outcome:
    p = a.params
    name: str = p["user"]
    out = Outcome(f"user {name}")
    accounts = facts.accounts
    if accounts is None:
        return _missing(host, out, "/etc/passwd")
    account = accounts.get(name)
    want = p.get("exists", True)
    create = ["useradd"]
    for key, flag in (("uid", "-u"), ("gid", "-g"), ("home", "-d"), ("shell", "-s")):
        if key in p:
            create += [flag, str(p[key])]
    _compare_exists(out, want, account is not None, _cmd(*create, name), _cmd("userdel", name))
    if account is None or not want:
        return out
    for key, seen, flag in (
        ("uid", account.id, "-u"),
        ("gid", account.gid, "-g"),
        ("home", account.home, "-d"),
        ("shell", account.shell, "-s"),
    ):
        if key in p:
            out.compare(
                key,
                p[key],
                seen,
                seen == p[key],
                f"{key} {seen}, expected {p[key]}",
                _cmd("usermod", flag, str(p[key]), name),
            )
    if "groups" in p:
        groups = facts.groups or {}
        member_of = sorted(
            {g.name for g in groups.values() if name in g.members or g.gid == account.gid}
        )
        absent = [g for g in p["groups"] if g not in member_of]
        out.compare(
            "groups",
            p["groups"],
            member_of,
            not absent,
            f"not in group{'s' if len(absent) > 1 else ''} {', '.join(absent)}",
            _cmd("usermod", "-a", "-G", ",".join(absent), name) if absent else "",
        )
    return out


def check_group(a: Assertion, facts: DeclaredFacts, host: Host) -> Outcome:
    p = a.params
    name: str = p["group"]
    out = Outcome(f"group {name}")
    groups = facts.groups
    if groups is None:
        return _missing(host, out, "/etc/group")
    group = groups.get(name)
    want = p.get("exists", True)
    create = ["groupadd", *(["-g", str(p["gid"])] if "gid" in p else [])]
    _compare_exists(out, want, group is not None, _cmd(*create, name), _cmd("groupdel", name))
    if group is None or not want:
        return out
    if "gid" in p:
        out.compare(
            "gid",
            p["gid"],
            group.gid,
            group.gid == p["gid"],
            f"gid {group.gid}, expected {p['gid']}",
            _cmd("groupmod", "-g", str(p["gid"]), name),
        )
    if "members" in p:
        primary = {acc.name for acc in (facts.accounts or {}).values() if acc.gid == group.gid}
        members = sorted(set(group.members) | primary)
        absent = [m for m in p["members"] if m not in members]
        out.compare(
            "members",
            p["members"],
            members,
            not absent,
            f"{', '.join(absent)} not a member",
            [_cmd("gpasswd", "-a", m, name) for m in absent if plausible_name(m)],
        )
    return out


# ------------------------------------------------------------------------------ dns, http
def _in_thread(work: Callable[[], Any], timeout: float) -> tuple[bool, Any]:
    """(finished, result or exception) of `work` run in a daemon thread for at most `timeout`
    seconds: getaddrinfo has no timeout of its own."""
    import threading

    box: list[Any] = []

    def target() -> None:
        try:
            box.append(work())
        except Exception as exc:  # reported as the observation
            box.append(exc)

    thread = threading.Thread(target=target, daemon=True, name="declared-wait")
    thread.start()
    thread.join(timeout)
    return (bool(box), box[0] if box else None)


def _timeout(a: Assertion, host: Host) -> float:
    return min(a.params.get("timeout", DEFAULT_NET_TIMEOUT), host.timeout)


def check_dns(a: Assertion, facts: DeclaredFacts, host: Host) -> Outcome:
    import socket

    name: str = a.params["host"]
    out = Outcome(f"name {name}")
    timeout = _timeout(a, host)
    done, result = _in_thread(lambda: socket.getaddrinfo(name, None), timeout)
    if not done or isinstance(result, Exception):
        why = f"no answer within {timeout:g} s" if not done else f"does not resolve ({result})"
        out.compare(
            "resolves",
            True,
            False,
            False,
            why,
            f"Add {name} to DNS (or /etc/hosts), or fix the resolver in /etc/resolv.conf",
        )
        return out
    addresses = sorted({str(info[4][0]) for info in result})
    out.compare("resolves", True, True, True, "")
    if "addresses" in a.params:
        absent = [addr for addr in a.params["addresses"] if addr not in addresses]
        out.compare(
            "addresses",
            a.params["addresses"],
            addresses,
            not absent,
            f"resolves to {', '.join(addresses)}, not {', '.join(absent)}",
            f"Point {name} at {', '.join(a.params['addresses'])} in DNS (or /etc/hosts)",
        )
    return out


def check_http(a: Assertion, facts: DeclaredFacts, host: Host) -> Outcome:
    import ssl
    import urllib.error
    import urllib.request

    p = a.params
    url: str = p["url"]
    out = Outcome(url)
    handlers: list[Any] = [urllib.request.ProxyHandler({})]  # judge the service, not a proxy
    if not p.get("verify_tls", True):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    timeout = _timeout(a, host)
    want_status = p.get("status_code", 200)
    try:
        with opener.open(url, timeout=timeout) as response:  # noqa: S310 - scheme validated
            status, body = response.status, response.read(HTTP_BODY_LIMIT)
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read(HTTP_BODY_LIMIT) if exc.fp else b""
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        out.compare(
            "status_code",
            want_status,
            None,
            False,
            f"no response: {_excerpt(str(reason))}",
            f"Start the service behind {url}, or fix the address it listens on",
        )
        return out
    out.compare(
        "status_code",
        want_status,
        status,
        status == want_status,
        f"status {status}, expected {want_status}",
        f"Fix the service behind {url} so that it answers {want_status}",
    )
    if "body" in p:
        regex: Regex = p["body"]
        text = body.decode("utf-8", "replace")
        found = regex.search(text)
        out.compare(
            "body",
            regex.pattern,
            _excerpt(text),
            found,
            f"body does not match {regex.pattern!r}",
            f"Fix the service behind {url} so that its answer matches {regex.pattern!r}",
        )
    return out


# ------------------------------------------------------------------------------ command
def check_command(a: Assertion, facts: DeclaredFacts, host: Host) -> Outcome:
    p = a.params
    argv: list[str] = p["argv"]
    out = Outcome(_cmd(*argv))
    result = host.run(argv, timeout=_timeout_command(a, host))
    want_exit = p.get("exit_code", 0)
    if result is None:  # not the live host: the caller skips first, this is a guard
        out.skip = "commands run on the live host only"
        return out
    if result.error is not None or result.timed_out:
        why = (
            f"could not start: {result.error}"
            if result.error
            else f"did not finish within {_timeout_command(a, host):g} s"
        )
        out.compare("exit_code", want_exit, None, False, why)
        return out
    out.compare(
        "exit_code",
        want_exit,
        result.returncode,
        result.returncode == want_exit,
        f"exit status {result.returncode}, expected {want_exit}"
        + (f" (stderr: {_excerpt(result.stderr)})" if result.stderr.strip() else ""),
    )
    exit_ok = result.returncode == want_exit
    for key, stream in (("stdout", result.stdout), ("stderr", result.stderr)):
        if key in p:
            regex: Regex = p[key]
            found = regex.search(stream)
            # After a wrong exit status the output rarely says more than stderr did: the
            # mismatch stays in the details, the message names the exit status only.
            out.compare(
                key,
                regex.pattern,
                _excerpt(stream),
                found or not exit_ok,
                f"{key} {_excerpt(stream)!r} does not match the pattern {regex.pattern}",
            )
            if not found and not exit_ok:
                out.observed[key] = _excerpt(stream)
    return out


def _timeout_command(a: Assertion, host: Host) -> float:
    return min(a.params.get("timeout", host.timeout), host.timeout)


KIND_FUNCTIONS: dict[str, Callable[[Assertion, DeclaredFacts, Host], Outcome]] = {
    "file": check_file,
    "package": check_package,
    "port": check_port,
    "socket": check_port,
    "process": check_process,
    "service": check_service,
    "sysctl": check_sysctl,
    "kernel_module": check_kernel_module,
    "mount": check_mount,
    "user": check_user,
    "group": check_group,
    "dns": check_dns,
    "http": check_http,
    "command": check_command,
}
