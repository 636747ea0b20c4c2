"""A check whose outcome the tests set through a file under --root.

ROOT/etc/preflight-demo/<check id> holds one word: pass, warn, fail, error, skip, raise or hang.
Without the file the check skips, so installing this plugin changes no real run.
"""

import time

from preflight.check import Check, FindingDoc, Option, Status
from preflight.model import Finding


class DemoCheck(Check):
    id = "demo"
    title = "Demo plugin check"
    description = "Reports whatever ROOT/etc/preflight-demo/<id> says."
    findings = {"demo.state": FindingDoc(Status.PASS, "the state the file asked for")}
    options = {"hang_seconds": Option(float, 60.0, "how long `hang` sleeps")}
    paths = ("etc/preflight-demo/*",)

    def run(self, ctx):
        state = ctx.host.read_line(f"etc/preflight-demo/{ctx.check_id}")
        if state is None:
            return [
                Finding(
                    f"{ctx.check_id}.not-configured",
                    Status.SKIP,
                    "no state file: nothing to demonstrate",
                )
            ]
        if state == "raise":
            raise RuntimeError("demo check asked to crash")
        if state == "hang":
            time.sleep(ctx.options["hang_seconds"])
        ctx.details["state"] = state
        status = Status(state) if state in {s.value for s in Status} else Status.PASS
        return [
            Finding(
                f"{ctx.check_id}.state",
                status,
                f"state file says {state}",
                [f"echo pass > /etc/preflight-demo/{ctx.check_id}"],
            )
        ]
