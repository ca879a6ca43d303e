#!/usr/bin/env python
"""TP/BP of the Numba backend at several commits, timed in one process (A/B, alternating).

    python scripts/ab_commits.py 1923369 HEAD                  # MNIST shapes, both dtypes
    python scripts/ab_commits.py 1923369 HEAD --T 3072 --repeats 9 --dtypes float64

Each commit's ``tpref`` package is exported with ``git archive`` into a temporary folder under
its own name (``tpref_<commit>``; the package uses relative imports only), so all versions run
side by side in this process, alternating repetition by repetition like ``tpref bench``, on one
thread, and see the same machine load. Reports median thread CPU times (``tpref.bench``'s
timer) and TP/BP per commit. Before timing, each commit's TP displacements and directions are
compared with the last commit's (config's tolerance policy). On a loaded machine TP/BP moves by
+-0.1 between runs of the same code: repeat the run and look at the spread.
"""

import argparse
import contextlib
import importlib
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def export(commit, dest):
    """``git archive`` the tpref package of ``commit`` into dest/tpref_<sha>; its import name."""
    sha = subprocess.check_output(["git", "-C", ROOT, "rev-parse", "--short", commit],
                                  text=True).strip()
    name = f"tpref_{sha}"
    tar = subprocess.check_output(["git", "-C", ROOT, "archive", sha, "tpref"])
    subprocess.run(["tar", "-x", "-C", dest], input=tar, check=True)
    os.rename(os.path.join(dest, "tpref"), os.path.join(dest, name))
    return name


@contextlib.contextmanager
def exported(commits):
    """{commit: its tpref package, exported and imported under its own name} for a with-block
    (a temporary folder on sys.path while it lasts)."""
    with tempfile.TemporaryDirectory() as tmp:
        sys.path.insert(0, tmp)
        try:
            yield {c: importlib.import_module(export(c, tmp)) for c in commits}
        finally:
            sys.path.remove(tmp)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commits", nargs="+")
    parser.add_argument("--T", type=int, default=784)
    parser.add_argument("--p", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--dtypes", default="float32,float64")
    args = parser.parse_args(argv)
    sys.path.insert(0, ROOT)
    from tpref import bench
    from tpref.testing import assert_close
    bench.set_threads(1)
    with exported(args.commits) as mods:
        for dt in map(np.dtype, args.dtypes.split(",")):
            cfg = dict(bench.CONFIGS["mnist"], T=args.T, p=args.p)
            params, x, y = bench.make_problem(cfg, dt)
            kw = dict(loss=cfg["loss"], backend="numba")
            tkw = dict(kw, gamma_h=cfg["gamma_h"], reg=cfg["reg"])
            runners = {}
            for c, mod in mods.items():
                runners[f"{c} bp"] = (lambda m: lambda: m.oracle("bp", params, x, y, **kw))(mod)
                runners[f"{c} tp"] = (lambda m: lambda: m.oracle("tp", params, x, y, **tkw))(mod)
            last = runners[f"{args.commits[-1]} tp"]()
            for c in args.commits[:-1]:
                res = runners[f"{c} tp"]()
                assert_close(last.displacements, res.displacements, name=f"{c} displacements",
                             dtype=dt)
                for k in res.direction:
                    assert_close(last.direction[k], res.direction[k], name=f"{c} {k}", dtype=dt)
            samples = bench.time_alternating(runners, args.repeats)
            cpu = {k: bench.summarize(v["cpu_ms"])["median"] for k, v in samples.items()}
            ms = {k: v["cpu_ms"] for k, v in samples.items()}
            base = args.commits[0]
            print(f"{dt.name} T={args.T} p={args.p} n={args.repeats} (CPU medians, ms; paired: "
                  f"median of per-repetition ratios, against {base} for bp and tp)")
            for c in args.commits:
                bp, tp = cpu[f"{c} bp"], cpu[f"{c} tp"]
                pr = {m: bench.paired_ratio(ms[f"{c} {m}"], ms[f"{base} {m}"])["median"]
                      for m in ("bp", "tp")}
                tp_bp = bench.paired_ratio(ms[f"{c} tp"], ms[f"{c} bp"])["median"]
                print(f"  {c:>10s}  bp {bp:8.2f} (paired {pr['bp']:.3f})  tp {tp:8.2f} (paired "
                      f"{pr['tp']:.3f})  TP/BP {tp / bp:.3f} (paired {tp_bp:.3f})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
