#!/usr/bin/env python
"""Measure the error of ``numba_math.vtanh`` in true ulps.

    python tools/check_tanh.py           # float64: 2e7 inputs; float32: every float in [0, 10]
    python tools/check_tanh.py --quick       # float32 on every 16th float only

The reference is tanh in 80-bit long double (x86; 64-bit significand, so its own error is
~2^-11 float64 ulp) for float64 and float64 ``np.tanh`` for float32; an ulp is that of the
exact result's binade, 2^(floor(log2 |tanh x|) - p + 1) (p = 53 / 24), so "2 ulp" below 1.0
means 2 x 2^-53. tanh is odd and both versions put the sign back exactly (copysign), so
x >= 0 covers every input. Prints the max error per range of |x| and where it occurs, and the
max relative difference to ``np.tanh`` (what tests/test_numba_backend.py also bounds).
Takes ~5 minutes on 2 cores, most of it float32 (1.09e9 inputs, in chunks); --quick ~30 s.
(The Cephes-style version vtanh replaced was compared here too until that comparison's code,
a one-off benchmark, was removed: docs/benchmarks.md, History.)
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tpref.kernels import numba_math  # noqa: E402

EDGES = [0, 1e-8, 0.01, 0.1, 0.3466, 0.5, 0.625, 1.0, 2.0, 4.0, 8.0, 16.0, 20.0, np.inf]


def ulp_error(comp, x, dtype, ref=None):
    """|comp - tanh(x)| in ulps of tanh(x) (x finite, >= 0)."""
    if ref is None:
        ref = np.tanh(x.astype(np.longdouble if dtype == np.float64 else np.float64))
    p = np.finfo(dtype).nmant + 1
    _, e = np.frexp(np.abs(ref))
    e = np.maximum(e, np.finfo(dtype).minexp + 1)          # subnormal results: fixed ulp
    ulp = np.ldexp(np.ones_like(ref), e - p)
    return np.abs(comp.astype(ref.dtype) - ref) / ulp


class Tally:
    def __init__(self, names):
        self.max = {n: np.zeros(len(EDGES) - 1) for n in names}
        self.arg = {n: np.zeros(len(EDGES) - 1) for n in names}
        self.rel = dict.fromkeys(names, 0.0)
        self.over1 = dict.fromkeys(names, 0)
        self.count = 0

    def add(self, name, x, err, rel):
        b = np.digitize(x, EDGES) - 1
        for i in np.unique(b):
            m = b == i
            j = np.argmax(np.where(m, err, -1.0))
            if err[j] > self.max[name][i]:
                self.max[name][i], self.arg[name][i] = err[j], x[j]
        self.rel[name] = max(self.rel[name], float(rel.max()))
        self.over1[name] += int((err > 1).sum())

    def show(self, dtype, n):
        eps = np.finfo(dtype).eps
        names = list(self.max)
        print(f"{dtype.__name__}: {n} inputs; max error in ulps per range of |x| (argmax)")
        for i in range(len(EDGES) - 1):
            cells = "  ".join(f"{self.max[k][i]:6.3f} ({self.arg[k][i]:.6g})".ljust(26)
                              for k in names)
            print(f"  [{EDGES[i]:g}, {EDGES[i + 1]:g})".ljust(18) + cells)
        for k in names:
            print(f"  {k}: max {self.max[k].max():.3f} ulp; {self.over1[k] / n:.2e} of inputs "
                  f"> 1 ulp; max relative difference to np.tanh {self.rel[k]:.3e} = "
                  f"{self.rel[k] / eps:.3f} eps")


def run(fns, dtype, chunks, n):
    tally = Tally(fns)
    for x in chunks:
        t64 = np.tanh(x.astype(np.float64))
        for name, f in fns.items():
            comp = f(x, np.empty_like(x))
            err = ulp_error(comp, x, dtype, None if dtype == np.float64 else t64)
            rel = np.abs(comp - t64) / np.maximum(np.abs(t64), np.finfo(dtype).tiny)
            tally.add(name, x.astype(np.float64), err, rel)
    tally.show(dtype, n)


def float64_chunks(rng, n_random):
    yield np.linspace(0.0, 25.0, 2_000_001)
    yield np.geomspace(np.finfo(np.float64).smallest_subnormal, 30.0, 200_001)
    # every k boundary of the reduction (a = (k - 1/64) ln(2)/2) and tanh = 1/2, +-1e-7
    b = np.concatenate([(np.arange(1, 58) - 1 / 64) * np.log(2) / 2, [np.log(3) / 2]])
    yield (b[:, None] + np.linspace(-1e-7, 1e-7, 20_001)[None, :]).ravel()
    for lo, hi in ((0, 0.7), (0.7, 3), (3, 20)):
        for _ in range(n_random // 3 // 2_000_000):
            yield rng.uniform(lo, hi, 2_000_000)


def float32_chunks(step, chunk=1 << 24):
    top = np.float32(10.0).view(np.int32)
    for lo in range(0, int(top) + 1, chunk * step):
        bits = np.arange(lo, min(lo + chunk * step, int(top) + 1), step, dtype=np.int32)
        yield bits.view(np.float32)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n-random", type=int, default=18_000_000)
    args = parser.parse_args(argv)
    fns = {"vtanh": numba_math.vtanh_array}
    if np.finfo(np.longdouble).nmant < 63:
        print("long double is not wider than float64 here: float64 check skipped")
    else:
        rng = np.random.default_rng(0)
        n = 2_000_001 + 200_001 + 58 * 20_001 + 3 * (args.n_random // 6_000_000) * 2_000_000
        run(fns, np.float64, float64_chunks(rng, args.n_random), n)
    step = 16 if args.quick else 1
    n = int(np.float32(10.0).view(np.int32)) // step + 1
    run(fns, np.float32, float32_chunks(step), n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
