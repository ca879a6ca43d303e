#!/usr/bin/env python
"""Fit the polynomials of ``tpref.kernels.numba_math`` (vtanh) with a Remez exchange in mpmath.

    python tools/fit_tanh.py            # prints the constants _R*, _S*, _T* (~1 minute)

1. ``_R*`` (float64) and ``_S*`` (float32): vtanh reduces |x| = a to a = k h + r with
   h = ln(2)/2, k an integer and r in [-h/64, 63h/64] (k = round(a/h - 1/2 + 1/64)), and
   needs F(r) = expm1(2r)/2, written as

       F(r) = r + r^2 R(r),   R(r) = (expm1(2r)/2 - r) / r^2 = 1 + 2r/3 + r^2/3 + ...

   with R a polynomial of degree 9 (float64) or 4 (float32). We minimize the largest
   *relative* error of F over the reduced range, widened by 1e-5 for the rounding of k (float32
   computes a/h to ~2e-6): R approximates its target with the weight w(r) = r^2 / |F(r)|. A
   relative bound on F is what the error analysis of vtanh needs (it bounds the relative error
   of expm1(2a)/2 = 2^k F + (2^k - 1)/2 for every k >= 0).
2. ``_T*`` (float32 only): tanh(x) = x + x^3 T(x^2) where H < 1.25, i.e. |x| < 0.6264 (fitted
   on |x| < 0.64), T of degree 4 in z = x^2, minimax for the relative error of tanh: weight
   x^3 / tanh(x).

The coefficients are rounded to the target float type one at a time, lowest order first (its
rounding error is the largest in absolute terms), re-running the Remez fit of the remaining
ones with the rounded ones fixed, so the rounding of each coefficient is compensated by the
ones above it. Finally the relative error with the rounded coefficients is evaluated exactly
(in mpmath) on a dense grid and printed.
"""

import sys

import mpmath as mp
import numpy as np

mp.mp.dps = 50
H = mp.log(2) / 2


def expm1_fit():
    """(target, weight, lo, hi, value) for R: value(c, r) is F with coefficients c."""
    def F(r):
        return mp.expm1(2 * r) / 2

    def g(r):                        # (F(r) - r) / r^2, by its series near 0
        return 1 + 2 * r / 3 if abs(r) < mp.mpf("1e-20") else (F(r) - r) / r ** 2

    def w(r):                        # the error of R, times w, is the relative error of F
        return mp.mpf(0) if r == 0 else r ** 2 / abs(F(r))

    def rel(c, r):
        return (r + r * r * mp.polyval(c[::-1], r)) / F(r) - 1

    return g, w, -H / 64 - mp.mpf("1e-5"), H * 63 / 64 + mp.mpf("1e-5"), rel


def odd_fit(f, series, hi):
    """(target, weight, lo, hi, value) for R in f(x) = x + x^3 R(x^2), in z = x^2 on [0, hi]:
    minimax for the relative error of f (weight x^3 / f(x)); ``series(z)`` is R near 0."""
    def g(z):                        # (f(x) - x) / x^3
        x = mp.sqrt(z)
        return series(z) if z < mp.mpf("1e-20") else (f(x) - x) / x ** 3

    def w(z):
        x = mp.sqrt(z)
        return mp.mpf(0) if z == 0 else x ** 3 / f(x)

    def rel(c, z):
        x = mp.sqrt(z)
        return (x + x ** 3 * mp.polyval(c[::-1], z)) / f(x) - 1

    return g, w, mp.mpf(0), hi, rel


def tanh_small_fit(xmax=mp.mpf("0.64")):
    """(target, weight, lo, hi, value) for T, in z = x^2."""
    return odd_fit(mp.tanh, lambda z: -mp.mpf(1) / 3 + 2 * z / 15, xmax ** 2)


def remez(g, w, lo, hi, deg, fixed=(), iters=20, grid=2000):
    """Minimax coefficients c_0..c_deg of sum c_j x^j ~ g(x) with weight w on [lo, hi];
    c_j = fixed[j] for the first len(fixed). Returns (coefficients, max weighted error)."""
    nf = len(fixed)
    nfree = deg + 1 - nf
    n = nfree + 1
    # Chebyshev-like initial reference (open: avoids the ends, where a weight may vanish)
    ref = [lo + (hi - lo) * (1 - mp.cos(mp.pi * (i + mp.mpf(0.5)) / n)) / 2 for i in range(n)]
    xs = [lo + (hi - lo) * (1 - mp.cos(mp.pi * i / grid)) / 2 for i in range(grid + 1)]
    gx = [g(x) for x in xs]
    wx = [w(x) for x in xs]
    best = None
    for _ in range(iters):
        # sum_j c_j x_i^j + (-1)^i E / w(x_i) = g(x_i) for the free c_j and E
        A = mp.matrix(n, n)
        b = mp.matrix(n, 1)
        for i, x in enumerate(ref):
            for j in range(nfree):
                A[i, j] = x ** (nf + j)
            A[i, nfree] = (-1) ** i / w(x)
            b[i] = g(x) - sum(fixed[j] * x ** j for j in range(nf))
        sol = mp.lu_solve(A, b)
        c = list(fixed) + [sol[j] for j in range(nfree)]
        err = [wx[i] * (mp.polyval(c[::-1], x) - gx[i]) for i, x in enumerate(xs)]
        # new reference: the extremum of each run of one sign (Remez exchange on the grid)
        runs, cur = [], None
        for i, e in enumerate(err):
            s = e > 0
            if cur is None or s != cur[0]:
                cur = [s, i]
                runs.append(cur)
            elif abs(e) > abs(err[cur[1]]):
                cur[1] = i
        idx = [r[1] for r in runs]
        while len(idx) > n:            # drop the smaller extremum at either end
            if abs(err[idx[0]]) < abs(err[idx[-1]]):
                idx.pop(0)
            else:
                idx.pop()
        emax = max(abs(e) for e in err)
        if best is None or emax < best[1]:
            best = (c, emax)
        if len(idx) < n:
            break
        ref = [xs[i] for i in idx]
    return best


def fit(problem, deg, ftype):
    """Coefficients rounded to ftype one at a time (see the module docstring), and the max
    relative error of the approximated function with them."""
    g, w, lo, hi, rel = problem
    fixed = []
    for _ in range(deg + 1):
        c, _ = remez(g, w, lo, hi, deg, fixed)
        fixed.append(mp.mpf(float(ftype(float(c[len(fixed)])))))
    n = 20000
    err = max(abs(rel(fixed, x)) for x in (lo + (hi - lo) * i / n for i in range(n + 1)) if x != 0)
    return [ftype(float(c)) for c in fixed], err


def print_constants(name, coef, err, ftype, what):
    """Print a fit's error and its constants as numba_math.py spells them (name0, name1, ...)."""
    eps = np.finfo(ftype).eps
    print(f"# {ftype.__name__}, degree {len(coef) - 1}: max relative error of {what} "
          f"{mp.nstr(err, 3)} = {mp.nstr(err / eps, 3)} eps")
    print(", ".join(f"{name}{i}" for i in range(len(coef))) + " = ("
          + ", ".join(repr(float(c)) for c in coef) + ")")


def main():
    for name, problem, deg, ftype, what in (
            ("_R", expm1_fit(), 9, np.float64, "F = expm1(2r)/2"),
            ("_S", expm1_fit(), 4, np.float32, "F = expm1(2r)/2"),
            ("_T", tanh_small_fit(), 4, np.float32, "tanh(x), |x| < 0.64")):
        coef, err = fit(problem, deg, ftype)
        print_constants(name, coef, err, ftype, what)
    return 0


if __name__ == "__main__":
    sys.exit(main())
