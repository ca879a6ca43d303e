#!/usr/bin/env python
"""Fit the polynomials of ``tpref.kernels.numba_math.vatanh`` with a Remez exchange in mpmath.

    python tools/fit_atanh.py          # prints the constants _A* and _B* (~20 s)

vatanh reduces a = |v| to atanh(a) = k ln(2)/2 + atanh(s) with s = (m - 1)/(m + 1),
m = (1 + a)/((1 - a) 2^k) in [0.9, 1.8) (k = 0 and s = a for a < 0.2857), so
s in [-1/19, 2/7], and needs

    atanh(s) = s + s^3 R(s^2),   R(z) = (atanh(s) - s) / s^3 = 1/3 + z/5 + z^2/7 + ...

with R a polynomial of degree 8 (float64, ``_A*``) or 3 (float32, ``_B*``) in z = s^2, minimax
for the *relative* error of atanh(s) (weight s^3 / atanh(s)) on z in [0, (2/7 + 1e-5)^2]
(1e-5: k comes from a rounded quotient). Coefficients are rounded one at a time as in
tools/fit_tanh.py (whose ``fit`` / ``remez`` this uses).
"""

import os
import sys

import mpmath as mp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fit_tanh import fit, odd_fit, print_constants  # noqa: E402

mp.mp.dps = 50
S_MAX = mp.mpf(2) / 7 + mp.mpf("1e-5")


def atanh_fit():
    """(target, weight, lo, hi, value) for R, in z = s^2."""
    return odd_fit(mp.atanh, lambda z: mp.mpf(1) / 3 + z / 5, S_MAX ** 2)


def main():
    for name, deg, ftype in (("_A", 8, np.float64), ("_B", 3, np.float32)):
        coef, err = fit(atanh_fit(), deg, ftype)
        print_constants(name, coef, err, ftype, "atanh(s), |s| <= 2/7:")
    return 0


if __name__ == "__main__":
    sys.exit(main())
