"""The text of `preflight explain declared`: how to declare a check, and every assertion kind with
an example (each example is parsed by the tests, so it stays valid)."""

from __future__ import annotations

HEADER = """\
declared: checks written in TOML, without Python

Put [[check]] tables in the config file, or in any *.toml file of /etc/preflight/checks.d/
(another folder: `checks_dir = "..."` in [preflight]). These files are read on the machine running
preflight, also under --root. Each check has an id (a new one: clashing with a loaded check is an
error), a title, and one or more [[check.assert]] tables:

  [[check]]
  id = "voip-droplet"
  title = "VoIP droplet baseline"

  [[check.assert]]
  name = "rmem-max"            # the finding code is voip-droplet.rmem-max
  kind = "sysctl"
  key = "net.core.rmem_max"
  min = 8388608

Every assertion also takes:
  status = "fail" | "warn"     # its status when it does not hold (default "fail")
  remediation = ["...", ...]   # the steps to fix it (default: one derived from what differs)
  description = "..."          # what it is about, for `preflight explain <id>`

Each assertion that does not hold is one finding <check id>.<name>, with the expected and observed
values in the check's details ("assertions"); a check whose assertions all hold passes with
<check id>.ok. An assertion that cannot be decided (a file it may not read, a socket whose owner
it cannot see) is an error finding. Kinds marked "live" read processes, sockets, the network or
run commands: under --root they are skipped, saying so. Waivers, formats, exit codes, `list`
(origin declared:<file>) and `explain <id>` work as for built-in checks.

Regular expressions (contains, not_contains, argv, body, stdout, stderr) use RE2 syntax, which
matches in time linear in the input: no backreferences or lookaround (refused as a bad regex).
^ and $ match at the start and end of each line. At most 1 MiB of input is matched.

Assertion kinds:
"""

KIND_EXAMPLES: dict[str, tuple[str, str]] = {
    "file": (
        "A file: exists (default true), type (file, directory, symlink, socket, fifo, char, "
        "block), mode (octal string), owner and group (name or id), min_size and max_size "
        "(bytes), contains and not_contains (regex), sha256.",
        """\
kind = "file"
path = "/etc/kamailio/tls/server.pem"
type = "file"
mode = "0640"
owner = "root"
group = "kamailio"
contains = "^-----BEGIN CERTIFICATE-----$\"""",
    ),
    "package": (
        "An installed package (one name, or a list: any of them): installed (default true), "
        "version (a constraint: >=, <=, >, <, >>, <<, =, !=, comma-separated parts), compared "
        "with the host's own rules (dpkg's, or rpm's).",
        """\
kind = "package"
package = ["puppet", "puppet-agent"]
version = ">= 2.7.14\"""",
    ),
    "port": (
        "live. A listening TCP socket or a bound UDP socket: port, proto (tcp, default, or "
        "udp), address (a wildcard bind covers any address of its family), process (the "
        "owner's name), listening (default true). `socket` is the same kind.",
        """\
kind = "port"
proto = "udp"
port = 5060
address = "0.0.0.0"
process = "kamailio\"""",
    ),
    "process": (
        "live. Running processes by process (the name, exactly as in /proc/PID/comm) and/or "
        "argv (a regex "
        "over the command line): running (default true), or count, or min and max.",
        """\
kind = "process"
process = "rtpengine"
min = 1""",
    ),
    "service": (
        "live. A service: active (default true) and enabled. Under systemd `systemctl "
        "is-active` / `is-enabled`; otherwise the init script's `status` (exit 0: running) "
        "and its S links in /etc/rc2.d-/etc/rc5.d.",
        """\
kind = "service"
service = "kamailio"
active = true
enabled = true""",
    ),
    "sysctl": (
        "A kernel parameter read from /proc/sys: value (compared with blanks squeezed), min, "
        "max (integers). Keys use dots, or slashes when a part has a dot.",
        """\
kind = "sysctl"
key = "net.core.rmem_max"
min = 8388608""",
    ),
    "kernel_module": (
        "A kernel module loaded (/proc/modules) or built in (modules.builtin of the running "
        "kernel): loaded (default true).",
        """\
kind = "kernel_module"
module = "nf_conntrack\"""",
    ),
    "mount": (
        "A mount point in /proc/self/mounts: mounted (default true), fstype, options (each "
        "must be present).",
        """\
kind = "mount"
path = "/var/log"
fstype = "ext4"
options = ["noexec"]""",
    ),
    "user": (
        "A user in /etc/passwd: exists (default true), uid, gid, home, shell, groups (each "
        "must include the user, by /etc/group or as its primary group).",
        """\
kind = "user"
user = "kamailio"
shell = "/usr/sbin/nologin"
groups = ["kamailio"]""",
    ),
    "group": (
        "A group in /etc/group: exists (default true), gid, members.",
        """\
kind = "group"
group = "kamailio"
members = ["kamailio"]""",
    ),
    "dns": (
        "live. A name resolves (the system resolver: /etc/hosts, DNS), optionally to each of "
        "addresses; timeout in seconds (default 5, at most --timeout).",
        """\
kind = "dns"
host = "localhost"
addresses = ["127.0.0.1"]""",
    ),
    "http": (
        "live. An HTTP(S) GET (no proxy; redirects followed): status_code (default 200), body "
        "(regex over the first 1 MiB), timeout (default 5), verify_tls (default true).",
        """\
kind = "http"
url = "http://127.0.0.1:8080/health"
status_code = 200
body = "ok\"""",
    ),
    "command": (
        "live. A command run without a shell, with preflight's timeout (or a shorter "
        "timeout) and output bounds: exit_code (default 0), stdout and stderr (regex).",
        """\
kind = "command"
argv = ["timedatectl", "show", "-p", "NTPSynchronized", "--value"]
stdout = "^yes$\"""",
    ),
}


def _kinds_text() -> str:
    lines = [HEADER]
    for kind, (summary, example) in KIND_EXAMPLES.items():
        lines.append(f"  {kind}")
        lines.append(f"      {summary}")
        lines.append("      Example:")
        lines.append(f'        [[check.assert]]\n        name = "my-{kind.replace("_", "-")}"')
        lines += [f"        {line}" for line in example.splitlines()]
        lines.append("")
    lines.append("  socket\n      The same kind as port.\n")
    return "\n".join(lines)


KINDS_TEXT = _kinds_text()
