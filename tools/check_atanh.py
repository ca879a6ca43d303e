#!/usr/bin/env python
"""Measure the error of ``numba_math.vatanh`` (and ``vlogit``) in true ulps.

    python tools/check_atanh.py          # float64: ~7.5e6 inputs; float32: every float in [0, 1)
    python tools/check_atanh.py --quick      # float32 on every 64th float only
    python tools/check_atanh.py --logit      # vlogit(v) = log(v) - log1p(-v) instead

Reference: atanh in 80-bit long double (x86) for float64, float64 ``np.arctanh`` for float32;
an ulp is that of the exact result's binade (as tools/check_tanh.py). atanh is odd and
vatanh puts the sign back with copysign, so 0 <= v < 1 covers every finite input. float64
inputs: a uniform grid of [0, 1] (step 5e-7), 3e6 uniform and 1e6 near-1 random points,
1 - 10^-16..1, 10^-320..1 (subnormals included), and +-1e-6 (relative to 1 - a) around every
switch of k (q / 0.9 = 2^k). Prints the max error per range of |v| and where it occurs.

--logit: the same for ``vlogit`` on (0, 1) (it is not odd: the float64 inputs are mirrored,
v and 1 - v, and ~1e-6 around every switch of k, (1 - v)/v = 0.9 2^k or v/(1 - v) = ...;
float32: every float in (0, 1)), against log(v) - log1p(-v) in long double (float64) / float64
(float32), or 2 atanh(2v - 1) for |v - 1/2| < 1/4 (exact argument, no cancellation).
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tpref.kernels import numba_math  # noqa: E402

EDGES = [0, 1e-8, 0.1, 0.28, 0.3, 0.357, 0.5, 0.643, 0.9, 0.999, 1]


def reference(x, dtype, logit):
    """atanh(x), or logit(x), in long double (float64 x) or float64 (float32 x)."""
    xl = x.astype(np.longdouble if dtype == np.float64 else np.float64)
    if not logit:
        return np.arctanh(xl)
    mid = np.abs(xl - 0.5) < 0.25                     # 2x - 1 exact there
    with np.errstate(divide="ignore"):
        return np.where(mid, 2 * np.arctanh(2 * xl - 1), np.log(xl) - np.log1p(-xl))


def ulp_error(comp, x, dtype, logit=False):
    """|comp - f(x)| in ulps of f(x), f = atanh (0 <= x < 1) or logit (0 < x < 1)."""
    ref = reference(x, dtype, logit)
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


def logit_float64_inputs():
    x = float64_inputs()[0]
    t = 0.9 * 2.0 ** np.arange(1020)
    y0 = 1 / (1 + t)                               # (1 - y0) / y0 = 0.9 2^k
    near = (y0[:, None] * (1 + np.linspace(-1e-6, 1e-6, 2001))).ravel()
    x = np.concatenate([x, 1 - x, near, 1 - near])
    return [x[(x > 0) & (x < 1)]]


def float32_inputs(step):
    top = np.float32(1).view(np.int32)
    for start in range(0, top, 1 << 26):
        bits = np.arange(start, min(start + (1 << 26), top), step, dtype=np.int32)
        yield bits.view(np.float32)


def run(dtype, chunks, logit=False):
    emax = np.zeros(len(EDGES) - 1)
    arg = np.zeros(len(EDGES) - 1)
    n = over1 = 0
    for x in chunks:
        f = numba_math.vlogit_array if logit else numba_math.vatanh_array
        err = ulp_error(f(x, np.empty_like(x)), x, dtype, logit)
        n += x.size
        over1 += int((err > 1).sum())
        b = np.digitize(x, EDGES) - 1
        for i in np.unique(b):
            j = np.argmax(np.where(b == i, err, -1.0))
            if err[j] > emax[i]:
                emax[i], arg[i] = err[j], x[j]
    print(f"{dtype.__name__} {'vlogit' if logit else 'vatanh'}: {n} inputs; max error in ulps "
          f"per range of v (argmax)")
    for i in range(len(EDGES) - 1):
        print(f"  [{EDGES[i]:g}, {EDGES[i + 1]:g})".ljust(18) + f"{emax[i]:6.3f} ({arg[i]:.9g})")
    print(f"  max {emax.max():.3f} ulp; {over1 / n:.2e} of inputs > 1 ulp")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--logit", action="store_true")
    args = ap.parse_args()
    run(np.float64, logit_float64_inputs() if args.logit else float64_inputs(), args.logit)
    chunks = float32_inputs(64 if args.quick else 1)
    if args.logit:
        chunks = (c[c > 0] for c in chunks)
    run(np.float32, chunks, args.logit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
