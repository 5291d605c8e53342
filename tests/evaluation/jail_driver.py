"""Run a list of jail sessions and print their results as wire hex (used by test_jail_attacks in
both modes: as a subprocess as root, and under an unprivileged uid)."""
import json
import sys

from routerllm.evaluation import wire
from routerllm.evaluation.jail import Jail
from routerllm.procmem import peak_rss_bytes


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
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over fork + exec, so a driver
    # started by a large pytest process would report pytest's peak
    return {"mode": mode, "results": out, "maxrss_kb": peak_rss_bytes() // 1024}


if __name__ == "__main__":
    sys.stdout.write(wire.encode(run(json.loads(sys.stdin.read()))).hex())
