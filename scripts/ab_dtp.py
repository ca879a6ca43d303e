#!/usr/bin/env python
"""DTP (and BP) of the Numba backend at several commits, timed in one process (A/B, alternating).

    python scripts/ab_dtp.py b4a1169 atanh                     # pixel MNIST, both dtypes
    python scripts/ab_dtp.py b4a1169 atanh --activation sigmoid --repeats 11

scripts/ab_commits.py times BP and TP only; this is the same harness (its ``export``:
each commit's ``tpref`` under its own name, all side by side in this process) for
``oracle("dtp", ...)`` at ``tpref.bench.CONFIGS["mnist"]`` (T=784, B=16, d=1, p=100, its
gamma_h and reg; ``make_problem``'s seeded data), with each commit's BP alongside for DTP/BP.
Runners alternate repetition by repetition (``time_alternating``, one BLAS thread); reports
median thread CPU times, the paired ratio of each commit's DTP (and BP) to the first commit's,
and DTP/BP per commit (``paired_ratio``: median of per-repetition ratios). Before timing, each
commit's DTP difference to the last commit's float64 DTP is printed (``_errors``: cancellation
makes DTP differ between correct versions by more than config's tolerance).
"""

import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ab_commits import exported  # noqa: E402


def _errors(mods, commits, params, x, y, dkw):
    """Print each commit's DTP difference to the last commit's float64 DTP on the same inputs
    (0 for the last commit in float64). Not an equality check: at gamma_h = 1e-4 DTP's
    f^{-1}(h + lam) - f^{-1}(h) cancels (float32: to a few bits, most steps are rounding
    noise; float64: an ulp of atanh(h) is ~5e-9 of a 2e-8 displacement), so two correct
    versions whose atanh differ by an ulp differ by more than config's tolerance; what matters
    is that no version is further from the float64 result than the others. With
    --activation sigmoid the displacements grow from ~1e-6 at t = T to ~10 within ~20 steps
    (pixel-MNIST shapes), amplifying rounding: any two versions (the NumPy reference included)
    differ by O(1) before t = T/2, in float64 too. Equality with the NumPy reference is
    tests/test_numba_backend.py's job."""
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    ref = mods[commits[-1]].oracle("dtp", p64, x.astype(np.float64), y, **dkw)
    for c in commits:
        res = mods[c].oracle("dtp", params, x, y, **dkw)
        d = res.displacements - ref.displacements
        rel = {k: np.abs(res.direction[k] - ref.direction[k]).max()
               / np.abs(ref.direction[k]).max() for k in ("W_hh", "W_xh", "b_h")}
        print(f"  {c:>10s}  DTP vs float64 {commits[-1]}: displacements max|err|/max|ref| "
              f"{np.abs(d).max() / np.abs(ref.displacements).max():.2e}, rms "
              f"{np.sqrt((d ** 2).mean() / (ref.displacements ** 2).mean()):.2e}; directions "
              + ", ".join(f"{k} {v:.2e}" for k, v in rel.items()), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commits", nargs="+")
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--activation", default="tanh", choices=("tanh", "sigmoid"))
    args = parser.parse_args(argv)
    sys.path.insert(0, ROOT)
    from tpref import bench
    bench.set_threads(1)
    with exported(args.commits) as mods:
        for dt in map(np.dtype, args.dtypes.split(",")):
            cfg = bench.CONFIGS["mnist"]
            params, x, y = bench.make_problem(cfg, dt)
            kw = dict(loss=cfg["loss"], backend="numba", activation=args.activation)
            dkw = dict(kw, gamma_h=cfg["gamma_h"], reg=cfg["reg"])
            runners = {}
            for c, mod in mods.items():
                runners[f"{c} bp"] = (lambda m: lambda: m.oracle("bp", params, x, y, **kw))(mod)
                runners[f"{c} dtp"] = (lambda m: lambda: m.oracle("dtp", params, x, y,
                                                                  **dkw))(mod)
            _errors(mods, args.commits, params, x, y, dkw)
            samples = bench.time_alternating(runners, args.repeats)
            cpu = {k: bench.summarize(v["cpu_ms"])["median"] for k, v in samples.items()}
            ms = {k: v["cpu_ms"] for k, v in samples.items()}
            base = args.commits[0]
            print(f"{dt.name} {args.activation} T={cfg['T']} B={cfg['B']} p={cfg['p']} "
                  f"n={args.repeats} (CPU medians, ms; paired: median of per-repetition ratios, "
                  f"against {base} for bp and dtp)")
            for c in args.commits:
                bp, dtp = cpu[f"{c} bp"], cpu[f"{c} dtp"]
                pr = {m: bench.paired_ratio(ms[f"{c} {m}"], ms[f"{base} {m}"])["median"]
                      for m in ("bp", "dtp")}
                dtp_bp = bench.paired_ratio(ms[f"{c} dtp"], ms[f"{c} bp"])["median"]
                print(f"  {c:>10s}  bp {bp:8.2f} (paired {pr['bp']:.3f})  dtp {dtp:8.2f} "
                      f"(paired {pr['dtp']:.3f})  DTP/BP {dtp / bp:.3f} (paired {dtp_bp:.3f})",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
