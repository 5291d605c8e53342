"""Run a list of jail sessions and print their results as wire hex (used by test_jail_attacks in
both modes: in-process as root, and as a subprocess under an unprivileged uid)."""
import json
import resource
import sys

from routerllm.evaluation import wire
from routerllm.evaluation.jail import Jail


def run(plan: dict) -> dict:
    out = []
    with Jail(workers=1, timeout_s=plan.get("timeout_s", 10), unsafe_no_sandbox=plan.get("unsafe", False)) as jail:
        mode = jail.mode
        for sess in plan["sessions"]:
            with jail.session(sess["source"]) as s:
                rows = [[s.load.ok, s.load.value, s.load.error]]
                for name, args in sess.get("calls", []):
                    r = s.call(name, tuple(args))
                    rows.append([r.ok, r.value, r.error])
            out.append(rows)
    return {"mode": mode, "results": out, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


if __name__ == "__main__":
    sys.stdout.write(wire.encode(run(json.loads(sys.stdin.read()))).hex())
