#!/usr/bin/env python
"""Measure the error of ``numba_math.vatanh`` in true ulps.

    python scripts/check_atanh.py          # float64: ~7.5e6 inputs; float32: every float in [0, 1)
    python scripts/check_atanh.py --quick      # float32 on every 64th float only

Reference: atanh in 80-bit long double (x86) for float64, float64 ``np.arctanh`` for float32;
an ulp is that of the exact result's binade (as scripts/check_tanh.py). atanh is odd and
vatanh puts the sign back with copysign, so 0 <= v < 1 covers every finite input. float64
inputs: a uniform grid of [0, 1] (step 5e-7), 3e6 uniform and 1e6 near-1 random points,
1 - 10^-16..1, 10^-320..1 (subnormals included), and +-1e-6 (relative to 1 - a) around every
switch of k (q / 0.9 = 2^k). Prints the max error per range of |v| and where it occurs.
"""

import argparse
import sys

import numpy as np

from tpref.kernels import numba_math

EDGES = [0, 1e-8, 0.1, 0.28, 0.3, 0.5, 0.9, 0.999, 1]


def ulp_error(comp, x, dtype):
    """|comp - atanh(x)| in ulps of atanh(x) (0 <= x < 1)."""
    ref = np.arctanh(x.astype(np.longdouble if dtype == np.float64 else np.float64))
    p = np.finfo(dtype).nmant + 1
    _, e = np.frexp(np.abs(ref))
    e = np.maximum(e, np.finfo(dtype).minexp + 1)          # subnormal results: fixed ulp
    return np.abs(comp.astype(ref.dtype) - ref) / np.ldexp(np.ones_like(ref), e - p)


def float64_inputs():
    rng = np.random.default_rng(0)
    parts = [np.linspace(0, 1, 2_000_001), rng.random(3_000_000),
             1 - np.logspace(-16, 0, 200_000), np.logspace(-320, 0, 200_000),
             1 - rng.random(1_000_000) ** 8]
    for k in range(60):
        t = 0.9 * 2.0 ** k
        a0 = (t - 1) / (t + 1)
        parts.append(a0 + np.linspace(-1e-6, 1e-6, 20_001) * (1 - a0))
    x = np.concatenate(parts)
    return [x[(x >= 0) & (x < 1)]]


def float32_inputs(step):
    top = np.float32(1).view(np.int32)
    for start in range(0, top, 1 << 26):
        bits = np.arange(start, min(start + (1 << 26), top), step, dtype=np.int32)
        yield bits.view(np.float32)


def run(dtype, chunks):
    emax = np.zeros(len(EDGES) - 1)
    arg = np.zeros(len(EDGES) - 1)
    n = over1 = 0
    for x in chunks:
        err = ulp_error(numba_math.vatanh_array(x, np.empty_like(x)), x, dtype)
        n += x.size
        over1 += int((err > 1).sum())
        b = np.digitize(x, EDGES) - 1
        for i in np.unique(b):
            j = np.argmax(np.where(b == i, err, -1.0))
            if err[j] > emax[i]:
                emax[i], arg[i] = err[j], x[j]
    print(f"{dtype.__name__}: {n} inputs; max error in ulps per range of |v| (argmax)")
    for i in range(len(EDGES) - 1):
        print(f"  [{EDGES[i]:g}, {EDGES[i + 1]:g})".ljust(18) + f"{emax[i]:6.3f} ({arg[i]:.9g})")
    print(f"  max {emax.max():.3f} ulp; {over1 / n:.2e} of inputs > 1 ulp")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    run(np.float64, float64_inputs())
    run(np.float32, float32_inputs(64 if args.quick else 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
