#!/usr/bin/env python
"""Cost of ``numba_math.vatanh`` / ``vlogit`` against libm (``np.arctanh``, ``np.log`` and
``np.log1p`` in Numba), in one process.

    python scripts/bench_atanh.py                  # ns/element, float64 and float32

A jitted loop ``out[i] = f(u[i])`` over 1.25 M elements (T=784 x B=16 x p=100: one of DTP's
two atanh per element and step at the pixel-MNIST shapes) uniform in (-0.999, 0.999) (logit:
(0.001, 0.999), libm's ``log(v) - log1p(-v)``), compiled as
the kernels are (error_model="numpy", fastmath=CONTRACT, wide_vectors()); the two loops
alternate call by call after a warm-up; thread CPU time per element, median and quartiles of
``--repeats`` calls, and the median of the per-call ratios libm / vatanh (vlogit).
"""

import argparse
import os
import sys
import time

import numpy as np
from numba import njit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tpref.kernels import numba_math  # noqa: E402


@njit(error_model="numpy", fastmath=numba_math.CONTRACT)
def _vatanh_loop(u, out):
    numba_math.wide_vectors()
    for i in range(u.size):
        out[i] = numba_math.vatanh(u[i])


@njit(error_model="numpy", fastmath=numba_math.CONTRACT)
def _libm_loop(u, out):
    numba_math.wide_vectors()
    for i in range(u.size):
        out[i] = np.arctanh(u[i])


@njit(error_model="numpy", fastmath=numba_math.CONTRACT)
def _vlogit_loop(u, out):
    numba_math.wide_vectors()
    for i in range(u.size):
        out[i] = numba_math.vlogit(u[i])


@njit(error_model="numpy", fastmath=numba_math.CONTRACT)
def _libm_logit_loop(u, out):
    numba_math.wide_vectors()
    for i in range(u.size):
        out[i] = np.log(u[i]) - np.log1p(-u[i])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=31)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    for fn, loops, lo in (("atanh", {"vatanh": _vatanh_loop, "libm": _libm_loop}, -0.999),
                          ("logit", {"vlogit": _vlogit_loop, "libm": _libm_logit_loop}, 0.001)):
        for dt in (np.float64, np.float32):
            u = rng.uniform(lo, 0.999, 784 * 1600).astype(dt)
            out = np.empty_like(u)
            ns = {name: [] for name in loops}
            for name, f in loops.items():
                f(u, out)                                        # compile, warm up
            for r in range(args.repeats):
                for name in (list(loops) if r % 2 else list(loops)[::-1]):
                    t0 = time.thread_time_ns()
                    loops[name](u, out)
                    ns[name].append((time.thread_time_ns() - t0) / u.size)
            cells = "  ".join(f"{name} {np.median(v):6.2f} ({np.percentile(v, 25):.2f}-"
                              f"{np.percentile(v, 75):.2f})" for name, v in ns.items())
            mine = list(loops)[0]
            ratio = np.median(np.asarray(ns["libm"]) / np.asarray(ns[mine]))
            print(f"{fn} {np.dtype(dt).name}: ns/element, median (quartiles): {cells}; "
                  f"paired libm/{mine} {ratio:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
