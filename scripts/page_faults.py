"""Minor page faults and time per call of the Numba RNN oracles (BP and TP), one process.

Why a separate script: a change in how outputs are allocated cannot be A/B-timed in one
process with scripts/ab_commits.py (both versions would share one heap), so each version is
run in its own process and compared by its numbers: time per call (median of alternating
repetitions), TP/BP paired within repetitions, and minor page faults per call
(``resource.getrusage``; 0 when the outputs' memory is reused, ~2.5 per 10 KB otherwise).

    python scripts/page_faults.py --T 3072 --dtype float64
    git stash; python scripts/page_faults.py --T 3072; git stash pop   # the other version
"""

import argparse
import os
import resource
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from tpref.bench import (CONFIGS, make_problem, paired_ratio, set_threads,  # noqa: E402
                         summarize, time_alternating, tpref_runner)


def faults_per_call(fn, calls=5):
    """Minor page faults per call of fn(), averaged over ``calls`` calls."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        fn()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--T", type=int, default=3072)
    ap.add_argument("--p", type=int, default=100)
    ap.add_argument("--dtype", default="float64")
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args(argv)
    set_threads(1)
    cfg = dict(CONFIGS["mnist"], T=args.T, p=args.p)
    params, x, y = make_problem(cfg, np.dtype(args.dtype))
    runners = {m: tpref_runner(m, "numba", params, x, y, cfg) for m in ("bp", "tp")}
    s = time_alternating(runners, args.repeats)
    med = {m: summarize(s[m]["cpu_ms"])["median"] for m in runners}
    paired = paired_ratio(s["tp"]["cpu_ms"], s["bp"]["cpu_ms"])["median"]
    faults = {m: faults_per_call(fn) for m, fn in runners.items()}
    print(f"T={args.T} p={args.p} {args.dtype}: CPU median bp {med['bp']:.2f} ms, tp "
          f"{med['tp']:.2f} ms, TP/BP {med['tp'] / med['bp']:.3f} (paired {paired:.3f}); "
          f"minor page faults per call: bp {faults['bp']:.0f}, tp {faults['tp']:.0f}")


if __name__ == "__main__":
    main()
