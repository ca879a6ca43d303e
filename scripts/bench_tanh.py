#!/usr/bin/env python
"""A/B timing of ``numba_math.vtanh`` against the Cephes-style version it replaced, in one process.

    python scripts/bench_tanh.py                       # ns/element, float64 and float32
    python scripts/bench_tanh.py --forward 4c92257     # also rnn_forward: that commit vs this tree
    python scripts/bench_tanh.py --asm --libm          # + vector instructions, + libm's tanh

ns/element: a jitted loop ``out[i] = tanh(u[i])`` over a 1.25 M-element array (the tanh
count of one pixel-MNIST forward pass, T=784 x B=16 x p=100; 10 MB in float64, so it runs from
L2/L3, not RAM), compiled the same way as ``numba_math.vtanh_array`` (error_model="numpy",
fastmath=CONTRACT), for the old formulation (copied below verbatim as ``_old_tanh64`` /
``_old_tanh32``) and the current ``numba_math._tanh64`` / ``_tanh32``; the two alternate call by
call, after a warm-up, and the median / quartiles of ``--repeats`` calls are reported (the
machine is shared: compare medians, look at the spread, rerun).

--forward COMMIT: ``tpref.kernels.numba_rnn.rnn_forward(params, x)`` at T=784, B=16, d=1,
p=100 (params from ``init_rnn(1, 100, 10, seed=0)``, x standard normal), COMMIT's tpref
(exported with ``git archive`` under another name, as scripts/ab_commits.py does) against this
working tree's, alternating, on one BLAS thread; thread CPU time, ms per call.
"""

import argparse
import collections
import importlib
import os
import re
import sys
import tempfile
import time

import numpy as np
from numba import njit
from numba.extending import overload

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ab_commits import export  # noqa: E402  (scripts/ab_commits.py: git archive a commit's tpref)
from tpref.kernels import numba_math  # noqa: E402

CONTRACT = numba_math.CONTRACT

# ----------------------------------------------------------------------------------------------
# the old formulation (tpref/kernels/numba_math.py at 4c92257), verbatim but renamed

_SMALL = 0.625                     # below: rational (f64) / polynomial (f32) fit
_CAP64, _CAP32 = 19.5, 9.5         # tanh(x) rounds to 1 beyond these
_LN2_HI, _LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10
_LOG2E = 1.44269504088896338700e+00
_P0, _P1, _P2 = (-9.64399179425052238628e-01, -9.92877231001918586564e+01,
                 -1.61468768441708447952e+03)
_Q0, _Q1, _Q2 = 1.12811678491632931402e+02, 2.23548839060100448583e+03, 4.84406305325125486048e+03
_F0, _F1, _F2, _F3, _F4 = (-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2,
                           1.33314422036e-1, -3.33332819422e-1)


def _old_tanh64(x):
    ax = min(abs(x), _CAP64)
    z = ax * ax
    q = ((z + _Q0) * z + _Q1) * z + _Q2
    num_small = ax * q + ax * z * ((_P0 * z + _P1) * z + _P2)
    y = 2.0 * ax
    kf = min(56.0, max(0.0, np.floor(y * _LOG2E + 0.5)))
    r = (y - kf * _LN2_HI) - kf * _LN2_LO
    e = 1.0 + r * (1.0 + r * (1.0 / 2 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120 + r * (
        1.0 / 720 + r * (1.0 / 5040 + r * (1.0 / 40320 + r * (1.0 / 362880 + r * (
            1.0 / 3628800 + r * (1.0 / 39916800 + r * (1.0 / 479001600 + r * (
                1.0 / 6227020800)))))))))))))
    s = e * np.float64(np.int64(1) << np.int64(kf))
    sel = np.float64(ax < _SMALL)
    t = (sel * num_small + (1.0 - sel) * (s - 1.0)) / (sel * q + (1.0 - sel) * (s + 1.0))
    return np.copysign(t, x)


def _old_tanh32(x):
    one = np.float32(1.0)
    ax = min(abs(x), np.float32(_CAP32))
    z = ax * ax
    small = ax + ax * z * ((((np.float32(_F0) * z + np.float32(_F1)) * z + np.float32(_F2)) * z
                            + np.float32(_F3)) * z + np.float32(_F4))
    y = np.float32(2.0) * ax
    kf = np.floor(y * np.float32(_LOG2E) + np.float32(0.5))
    kf = min(np.float32(27.0), max(np.float32(0.0), kf))
    r = (y - kf * np.float32(0.693359375)) - kf * np.float32(-2.12194440e-4)
    e = one + r * (one + r * (np.float32(1.0 / 2) + r * (np.float32(1.0 / 6) + r * (
        np.float32(1.0 / 24) + r * (np.float32(1.0 / 120) + r * (np.float32(1.0 / 720) + r * (
            np.float32(1.0 / 5040))))))))
    s = e * np.float32(np.int32(1) << np.int32(kf))
    large = (s - one) / (s + one)
    sel = np.float32(ax < np.float32(_SMALL))
    return np.copysign(sel * small + (one - sel) * large, x)


def _libm_tanh(x):
    return np.tanh(x)                  # Numba: a scalar call to libm's tanh / tanhf


# ----------------------------------------------------------------------------------------------

def array_loop(f64, f32):
    """A jitted ``out[i] = tanh(u[i])`` loop over f64 / f32, compiled like vtanh_array (not
    cached, so ``inspect_asm`` works)."""
    def stub(x):
        return np.tanh(x)

    @overload(stub, inline="always")
    def _ov(x):
        return f32 if x.bitwidth == 32 else f64

    @njit(error_model="numpy", fastmath=CONTRACT)
    def loop(u, out):
        uf = u.ravel()
        of = out.ravel()
        for i in range(uf.size):
            of[i] = stub(uf[i])
        return out
    return loop


def alternate(fns, args, repeats):
    """{name: [seconds per call]}, the calls alternating (order rotated each repetition)."""
    for f in fns.values():
        f(*args)
    names = list(fns)
    out = {n: [] for n in names}
    for i in range(repeats):
        for n in names[i % len(names):] + names[:i % len(names)]:
            t0 = time.thread_time()
            fns[n](*args)
            out[n].append(time.thread_time() - t0)
    return out


def stats(v, scale):
    v = np.asarray(v) * scale
    q25, med, q75 = np.percentile(v, [25, 50, 75])
    return med, q25, q75, v.min()


def vector_counts(loop, x):
    """Instruction counts of the basic block of the compiled loop with the most ymm/zmm
    operands (the vector body) for x's dtype."""
    loop(x, np.empty_like(x))
    sig = [s for s in loop.signatures if np.dtype(str(s[0].dtype)) == x.dtype][0]
    asm = loop.inspect_asm(sig)
    blocks, cur = [], []
    for line in asm.splitlines():
        if re.match(r"^\s*\.?L?BB\d+_\d+:", line):
            blocks.append(cur)
            cur = []
        else:
            cur.append(line)
    blocks.append(cur)
    body = max(blocks, key=lambda b: sum("ymm" in line or "zmm" in line for line in b))
    ins = [line.split()[0] for line in body
           if line.strip() and not line.strip().startswith((".", "#"))]
    return len(ins), collections.Counter(ins)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_250_000)
    parser.add_argument("--repeats", type=int, default=41)
    parser.add_argument("--forward", metavar="COMMIT", help="also time rnn_forward vs COMMIT")
    parser.add_argument("--forward-repeats", type=int, default=21)
    parser.add_argument("--asm", action="store_true", help="print the vector body's instructions")
    parser.add_argument("--libm", action="store_true",
                        help="also time the same loop over np.tanh (a scalar libm call)")
    args = parser.parse_args(argv)
    from tpref import bench
    bench.set_threads(1)
    old = array_loop(_old_tanh64, _old_tanh32)
    new = array_loop(numba_math._tanh64, numba_math._tanh32)
    libm = array_loop(_libm_tanh, _libm_tanh)
    rng = np.random.default_rng(0)
    for dt in (np.float64, np.float32):
        x = (2.0 * rng.standard_normal(args.n)).astype(dt)   # pre-activations of a trained net
        out = np.empty_like(x)
        if args.asm:
            for name, loop in (("old", old), ("new", new)):
                n, cnt = vector_counts(loop, x[:64])
                print(f"{dt.__name__} {name}: {n} instructions in the vector body: "
                      + ", ".join(f"{k} {v}" for k, v in cnt.most_common()))
        loops = {"old": old, "new": new}
        if args.libm:
            loops["libm"] = libm
        res = alternate(loops, (x, out), args.repeats)
        meds = {}
        print(f"{dt.__name__}, {args.n} elements, {args.repeats} alternating calls, ns/element "
              "(thread CPU time): median [q25, q75] min")
        for name, v in res.items():
            med, q25, q75, mn = stats(v, 1e9 / args.n)
            meds[name] = med
            print(f"  {name}: {med:6.3f} [{q25:6.3f}, {q75:6.3f}] {mn:6.3f}")
        print(f"  old/new: {meds['old'] / meds['new']:.2f}x", flush=True)
    if args.forward:
        from tpref import init_rnn
        with tempfile.TemporaryDirectory() as tmp:
            sys.path.insert(0, tmp)
            base = importlib.import_module(export(args.forward, tmp) + ".kernels.numba_rnn")
            from tpref.kernels import numba_rnn as cur
            for dt in (np.float64, np.float32):
                params = init_rnn(1, 100, 10, seed=0, dtype=dt)
                x = rng.standard_normal((784, 16, 1)).astype(dt)
                h_old, h_new = base.rnn_forward(params, x), cur.rnn_forward(params, x)
                dev = np.max(np.abs(h_old - h_new))
                res = alternate({args.forward: lambda: base.rnn_forward(params, x),
                                 "tree": lambda: cur.rnn_forward(params, x)}, (),
                                args.forward_repeats)
                print(f"rnn_forward {dt.__name__} T=784 B=16 p=100, {args.forward_repeats} "
                      f"alternating calls, ms (thread CPU): median [q25, q75] min; "
                      f"max |h_old - h_new| = {dev:.2e}")
                meds = {}
                for name, v in res.items():
                    med, q25, q75, mn = stats(v, 1e3)
                    meds[name] = med
                    print(f"  {name:>8s}: {med:7.2f} [{q25:7.2f}, {q75:7.2f}] {mn:7.2f}")
                print(f"  {args.forward}/tree: {meds[args.forward] / meds['tree']:.2f}x",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
