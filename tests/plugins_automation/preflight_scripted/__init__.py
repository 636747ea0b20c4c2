"""A third-party check whose results a test writes into a file under --root.

Used by the automation tests (waivers, --wait, output formats, Puppet gating) to get exactly the
outcome they need without depending on the state of this machine. One finding per line of
`etc/preflight-scripted/findings` (`findings-b` for the second check) under the root:
`<status> <reason> <message ...>`; the status `crash` raises instead. No file: the check skips.
"""

from __future__ import annotations

from collections.abc import Iterable

from preflight.check import Check, CheckContext, Finding, FindingDoc, Option, Status


class ScriptedCheck(Check):
    id = "scripted"
    title = "Scripted test check"
    description = "Reports the findings written in a file under the root (a test fixture)."
    findings = {
        "scripted.absent": FindingDoc(Status.SKIP, "the findings file is absent"),
    }
    open_codes = True  # its codes are whatever the findings file says
    options = {"file": Option(str, "etc/preflight-scripted/findings", "the findings file")}
    paths = ("etc/preflight-scripted/*", "srv/preflight-scripted/**", "proc/[0-9]*/cmdline")

    def run(self, ctx: CheckContext) -> Iterable[Finding]:
        rel = str(ctx.options["file"])
        text = ctx.host.read_text(rel)
        if text is None:
            return [Finding(f"{self.id}.absent", Status.SKIP, f"{ctx.host.display(rel)} is absent")]
        found = []
        for line in text.splitlines():
            words = line.split(None, 2)
            if len(words) < 2:
                continue
            status, reason = words[0], words[1]
            message = words[2] if len(words) > 2 else reason
            if status == "crash":
                raise RuntimeError(message)
            found.append(
                Finding(
                    f"{self.id}.{reason}",
                    Status(status),
                    message,
                    [f"fix {reason}: see {ctx.host.display(rel)}"],
                )
            )
        return found


class ScriptedCheckB(ScriptedCheck):
    """A second, independent check, for reports that need two different outcomes."""

    id = "scripted-b"
    title = "Scripted test check B"
    findings = {"scripted-b.absent": FindingDoc(Status.SKIP, "the findings file is absent")}
    options = {"file": Option(str, "etc/preflight-scripted/findings-b", "the findings file")}
