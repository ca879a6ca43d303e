#!/usr/bin/env python
"""GRU oracles (BP, TP; backend="numba") at several commits, timed in one process (A/B).

    python scripts/ab_gru.py 4128211 HEAD --repeats 21

FashionMNIST configuration (B = 16, d = 1, p = 100, k = 10, T = 784; TP with gamma_h = 1e-2,
reg = 1, the fashion-mnist preset). Each commit's ``tpref`` is exported under its own name by
``scripts/ab_commits.export`` and all run side by side, alternating repetition by repetition
(``tpref.bench.time_alternating``, one thread, thread CPU time). ``--forward`` also times the
forward pass alone (``gru_forward_numba``). Before timing, each commit's BP and TP directions
(and TP's displacements) are compared with the last commit's (config's tolerance policy).
Reports medians per commit and the paired ratio against the first commit
(``tpref.bench.paired_ratio``: median of per-repetition ratios, < 1 is faster).
"""

import argparse
import importlib
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "scripts"))

from ab_commits import exported  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commits", nargs="+")
    parser.add_argument("--T", type=int, default=784)
    parser.add_argument("--B", type=int, default=16)
    parser.add_argument("--p", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--forward", action="store_true", help="also time the forward alone")
    args = parser.parse_args(argv)
    from tpref import bench
    from tpref.testing import assert_close
    bench.set_threads(1)
    with exported(args.commits) as mods:
        for dt in map(np.dtype, args.dtypes.split(",")):
            rng = np.random.default_rng(1)
            params = mods[args.commits[-1]].init_gru(1, args.p, 10, seed=0, dtype=dt)
            x = rng.uniform(0.0, 1.0, size=(args.T, args.B, 1))
            x[x < 0.8] = 0.0                                  # pixel-like, as bench.make_problem
            x = x.astype(dt)
            y = rng.integers(0, 10, size=args.B)
            kw = dict(loss="cross_entropy", cell="gru", backend="numba")
            tkw = dict(kw, gamma_h=1e-2, reg=1.0)
            methods = ("bp", "tp") + (("fwd",) if args.forward else ())
            runners = {}
            for c, mod in mods.items():
                runners[f"{c} bp"] = (lambda m: lambda: m.oracle("bp", params, x, y, **kw))(mod)
                runners[f"{c} tp"] = (lambda m: lambda: m.oracle("tp", params, x, y, **tkw))(mod)
                if args.forward:
                    fwd = importlib.import_module(mod.__name__ + ".kernels.numba_gru")
                    runners[f"{c} fwd"] = (lambda f: lambda: f.gru_forward_numba(params, x))(fwd)
            last = {m: runners[f"{args.commits[-1]} {m}"]() for m in ("bp", "tp")}
            for c in args.commits[:-1]:
                for m in ("bp", "tp"):
                    res = runners[f"{c} {m}"]()
                    if m == "tp":
                        assert_close(last[m].displacements, res.displacements,
                                     name=f"{c} displacements", dtype=dt)
                    for k in res.direction:
                        assert_close(last[m].direction[k], res.direction[k],
                                     name=f"{c} {m} {k}", dtype=dt)
            samples = bench.time_alternating(runners, args.repeats)
            ms = {k: v["cpu_ms"] for k, v in samples.items()}
            base = args.commits[0]
            print(f"{dt.name} T={args.T} B={args.B} p={args.p} n={args.repeats} (thread CPU "
                  f"medians, ms; paired: median of per-repetition ratios against {base})")
            for c in args.commits:
                cols = []
                for m in methods:
                    med = bench.summarize(ms[f"{c} {m}"])["median"]
                    pr = bench.paired_ratio(ms[f"{c} {m}"], ms[f"{base} {m}"])
                    cols.append(f"{m} {med:8.2f} (paired {pr['median']:.3f} "
                                f"[{pr['q25']:.3f}, {pr['q75']:.3f}])")
                print(f"  {c:>10s}  " + "  ".join(cols), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
