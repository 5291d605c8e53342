"""ms per jail session (start-to-close of one program with one call), warm pool, side by side with
the unsafe plain-subprocess mode. Usage: python bench/bench_jail_session.py [N]"""
import sys
import time

from routerllm.evaluation.jail import Jail

N = int(sys.argv[1]) if len(sys.argv) > 1 else 50
SRC = "def f(x):\n    return sorted(x)[::-1]\n"


def bench(unsafe: bool) -> float:
    with Jail(workers=2, unsafe_no_sandbox=unsafe) as jail:
        for _ in range(3):  # warm-up
            with jail.session(SRC) as s:
                s.call("f", ([1],))
        t = time.perf_counter()
        for i in range(N):
            with jail.session(SRC) as s:
                assert s.call("f", ([i, 1, 2],)).ok
        return (time.perf_counter() - t) / N * 1000


rows = {}
for rnd in range(3):  # interleaved rounds
    for unsafe in (False, True):
        rows.setdefault(unsafe, []).append(bench(unsafe))
for unsafe, ms in rows.items():
    print(f"{'unsafe (plain subprocess)' if unsafe else 'bubblewrap'}: {min(ms):.1f} ms/session (best of 3 rounds, {N} sessions each; all {', '.join(f'{m:.1f}' for m in ms)})")
