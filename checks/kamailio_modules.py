"""Kamailio's modules: is every loadmodule's .so on the module path, and which Debian package
ships a missing one?

Debian splits Kamailio's modules over kamailio-*-modules packages, so a missing .so usually means
a package is not installed; the remediation names it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from preflight_checks.kamailio import MODULE_DIRS
from preflight_checks.kamailio_config import CheckOutput, Location, ParsedConfig, module_basename

from preflight.check import Status

if TYPE_CHECKING:
    from preflight_checks.kamailio_report import Report

    from preflight.host import Host

# Where the module path is unknown and no folder exists: Debian amd64's, for the message.
FALLBACK_MODULE_DIR = "usr/lib/x86_64-linux-gnu/kamailio/modules"
# Modules Debian ships outside the `kamailio` package (src/Makefile.groups of Kamailio 5.6).
DEBIAN_MODULE_PACKAGES: dict[str, tuple[str, ...]] = {
    "kamailio-websocket-modules": ("websocket",),
    "kamailio-tls-modules": ("tls", "auth_identity", "crypto"),
    "kamailio-mysql-modules": ("db_mysql",),
    "kamailio-postgres-modules": ("db_postgres",),
    "kamailio-sqlite-modules": ("db_sqlite",),
    "kamailio-unixodbc-modules": ("db_unixodbc",),
    "kamailio-berkeley-modules": ("db_berkeley",),
    "kamailio-redis-modules": ("db_redis", "ndb_redis", "topos_redis"),
    "kamailio-mongodb-modules": ("db_mongodb", "ndb_mongodb"),
    "kamailio-ldap-modules": ("ldap", "db2_ldap", "h350"),
    "kamailio-radius-modules": ("acc_radius", "auth_radius", "misc_radius", "peering"),
    "kamailio-presence-modules": (
        "presence",
        "presence_conference",
        "presence_dialoginfo",
        "presence_mwi",
        "presence_profile",
        "presence_reginfo",
        "presence_xml",
        "presence_dfks",
        "pua",
        "pua_bla",
        "pua_dialoginfo",
        "pua_json",
        "pua_reginfo",
        "pua_rpc",
        "pua_usrloc",
        "pua_xmpp",
        "rls",
        "xcap_client",
        "xcap_server",
    ),
    "kamailio-xml-modules": ("xhttp_pi", "xmlops", "xmlrpc"),
    "kamailio-json-modules": ("json", "jsonrpcc", "jansson", "janssonrpcc"),
    "kamailio-lua-modules": ("app_lua", "app_lua_sr"),
    "kamailio-python3-modules": ("app_python3", "app_python3s"),
    "kamailio-perl-modules": ("app_perl", "db_perlvdb"),
    "kamailio-ruby-modules": ("app_ruby",),
    "kamailio-mono-modules": ("app_mono",),
    "kamailio-utils-modules": ("utils", "http_client", "lost"),
    "kamailio-memcached-modules": ("memcached",),
    "kamailio-snmpstats-modules": ("snmpstats",),
    "kamailio-xmpp-modules": ("xmpp",),
    "kamailio-cpl-modules": ("cplc",),
    "kamailio-geoip-modules": ("geoip",),
    "kamailio-geoip2-modules": ("geoip2",),
    "kamailio-ims-modules": (
        "cdp",
        "cdp_avp",
        "ims_auth",
        "ims_charging",
        "ims_dialog",
        "ims_diameter_server",
        "ims_icscf",
        "ims_ipsec_pcscf",
        "ims_isc",
        "ims_ocs",
        "ims_qos",
        "ims_registrar_pcscf",
        "ims_registrar_scscf",
        "ims_usrloc_pcscf",
        "ims_usrloc_scscf",
    ),
    "kamailio-sctp-modules": ("sctp",),
    "kamailio-outbound-modules": ("outbound",),
    "kamailio-autheph-modules": ("auth_ephemeral",),
    "kamailio-kazoo-modules": ("kazoo",),
    "kamailio-cnxcc-modules": ("cnxcc",),
    "kamailio-erlang-modules": ("erlang",),
    "kamailio-systemd-modules": ("log_systemd", "systemdops"),
    "kamailio-rabbitmq-modules": ("rabbitmq",),
    "kamailio-phonenum-modules": ("phonenum",),
    "kamailio-mqtt-modules": ("mqtt",),
    "kamailio-secsipid-modules": ("secsipid", "secsipid_proc"),
    "kamailio-lwsc-modules": ("lwsc",),
    "kamailio-nats-modules": ("nats",),
    "kamailio-extra-modules": (
        "evapi",
        "gzcompress",
        "uuid",
        "http_async_client",
        "jwt",
        "dlgs",
        "slack",
    ),
}
MODULE_PACKAGE = {
    module: package for package, modules in DEBIAN_MODULE_PACKAGES.items() for module in modules
}


def check_modules(
    report: Report,
    parsed: ParsedConfig | None,
    check_out: CheckOutput | None,
    argv_options: dict[str, list[str]],
) -> bool:
    """Report each loadmodule whose .so is missing; True if any is."""
    host = report.host
    dirs = [d.strip("/") for d in (parsed.mpaths if parsed and parsed.mpaths else [])]
    if not dirs:
        dirs = [d.strip("/") for v in argv_options.get("L", []) for d in v.split(":") if d]
    if not dirs:
        dirs = [d for p in MODULE_DIRS for d in host.glob(p) if host.is_dir(d)]
        dirs = dirs or [FALLBACK_MODULE_DIR]
    report.details["module_path"] = ["/" + d for d in dirs]
    missing: dict[str, tuple[str, Location | None]] = {}
    for name, where in parsed.modules if parsed else []:
        if not module_present(host, name, dirs):
            missing.setdefault(module_basename(name), (name, where))
    for name in check_out.missing_modules if check_out else []:
        missing.setdefault(module_basename(name), (name, None))
    for base, (name, where) in missing.items():
        package, reinstall = package_of(host, base, dirs)
        place = f" (loadmodule at {where})" if where else ""
        file = name if name.endswith(".so") else f"{name}.so"
        if package is None:
            steps = [f"apt-cache search kamailio  # find the package that ships {base}.so"]
        elif reinstall:  # installed, but its .so was deleted: a plain install does nothing
            steps = [f"apt-get install --reinstall {package}"]
        else:
            steps = [f"apt-get install {package}"]
        steps.append("kamailio -c -f " + report.details["config"])
        report.add(
            "module-missing",
            Status.FAIL,
            f"module {file}{place} is not in the module path "
            f"{':'.join('/' + d for d in dirs)}"
            + (f"; it is shipped by {package}" if package else ""),
            steps,
        )
    return bool(missing)


def package_of(host: Host, module: str, dirs: list[str]) -> tuple[str | None, bool]:
    """The Debian package shipping `module`.so, and whether it is installed with that file
    gone (a reinstall brings it back): an installed package's file list, else the known split
    of Kamailio's modules into packages."""
    folders = [*dirs, *(d for p in MODULE_DIRS for d in host.glob(p) if d not in dirs)]
    paths = [f"{d}/{module}.so" for d in folders]
    known = MODULE_PACKAGE.get(module)
    packages = host.packages.find(names=[known]) if known else host.packages.find(prefix="kamailio")
    for package in packages:
        for path in paths:
            if host.packages.owns(package, "/" + path):
                return package.name, not host.exists(path)
    return known, False


def module_present(host: Host, name: str, dirs: list[str]) -> bool:
    """Kamailio's lookup: a path as given, else DIR/NAME.so or DIR/NAME/NAME.so on the path."""
    if "/" in name:
        file = name if name.endswith(".so") else name + ".so"
        if file.startswith("/"):
            return host.exists(file.lstrip("/"))
        return any(host.exists(f"{d}/{file}") for d in dirs)
    base = module_basename(name)
    return any(host.exists(f"{d}/{base}.so") or host.exists(f"{d}/{base}/{base}.so") for d in dirs)
