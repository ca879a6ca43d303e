"""Vectorizable elementwise math for the Numba kernels: tanh in float64 and float32.

Numba lowers ``np.tanh`` / ``math.tanh`` to a scalar libm call (~14 ns per element here),
which LLVM cannot vectorize and which dominated the forward pass. ``vtanh`` below is written
from +, *, / and integer shifts only, so a loop over it compiles to SIMD code, and is
accurate to a few units in the last place (tested against ``np.tanh`` in
tests/test_numba_backend.py: max relative error < 1e-15 in float64, < 4e-7 in float32).

Method (Cephes' ``tanh``, Moshier 1984, re-derived; no code copied):

- ``|x| < 0.625``: tanh(x) = x + x^3 P(x^2) / Q(x^2), a rational minimax fit (float64) or
  x + x^3 P(x^2), a polynomial fit (float32).
- ``|x| >= 0.625``: tanh(|x|) = (exp(2|x|) - 1) / (exp(2|x|) + 1); exp(2|x|) >= 3.49 there,
  so the subtraction loses nothing. exp(y) = 2^k exp(r) with k = round(y / ln 2),
  r = y - k ln 2 split in a high and a low part (Cody-Waite), exp(r) by its Taylor series
  (|r| <= ln(2)/2: degree 13 in float64, degree 7 in float32, truncation below half an ulp)
  and 2^k = float(1 << k).
- ``|x|`` is capped (19.5 in float64, 9.5 in float32) where tanh rounds to 1, which also
  bounds k (56 and 27), so 1 << k never overflows its integer type.

Kernels calling it are compiled with ``fastmath=CONTRACT`` (fused multiply-add only), which
halves its cost. Both branches are computed and one selected arithmetically (no control flow
at all, which also keeps Numba's inliner happy); in float64 the two branches share one
division (the costliest instruction here). NaN propagates through both branches; k is clamped
so that a NaN never reaches the integer shift.
"""

import numpy as np
from numba import njit, types
from numba.extending import overload

#: Numba fastmath flags of every kernel that calls ``vtanh``: only "contract" (fused
#: multiply-add), which LLVM needs to make the polynomials cheap; it never reassociates or
#: assumes finite values, and it only makes each multiply-add more accurate.
CONTRACT = {"contract"}

# ----------------------------------------------------------------------------------------------
# constants (Cephes tanh.c / tanhf.c coefficients; Cody-Waite split of ln 2)

_SMALL = 0.625                     # below: rational (f64) / polynomial (f32) fit
_CAP64, _CAP32 = 19.5, 9.5         # tanh(x) rounds to 1 beyond these
_LN2_HI, _LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10
_LOG2E = 1.44269504088896338700e+00
# tanh(x) = x + x^3 P(z) / Q(z), z = x^2, |x| < 0.625 (float64, rel. error ~2.5e-16)
_P0, _P1, _P2 = (-9.64399179425052238628e-01, -9.92877231001918586564e+01,
                 -1.61468768441708447952e+03)
_Q0, _Q1, _Q2 = 1.12811678491632931402e+02, 2.23548839060100448583e+03, 4.84406305325125486048e+03
# tanhf: x + x^3 P(z), |x| < 0.625
_F0, _F1, _F2, _F3, _F4 = (-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2,
                           1.33314422036e-1, -3.33332819422e-1)


def _tanh64(x):
    """tanh of one float64, vectorizable (see the module docstring)."""
    ax = min(abs(x), _CAP64)
    # small |x|: rational fit, tanh = (|x| Q(z) + |x| z P(z)) / Q(z)
    z = ax * ax
    q = ((z + _Q0) * z + _Q1) * z + _Q2
    num_small = ax * q + ax * z * ((_P0 * z + _P1) * z + _P2)
    # large |x|: tanh = (exp(2|x|) - 1) / (exp(2|x|) + 1)
    y = 2.0 * ax
    # k = round(y / ln 2) in [0, 56]; a NaN k is mapped to 0 (so the shift below is defined)
    # while NaN still reaches the result through y
    kf = min(56.0, max(0.0, np.floor(y * _LOG2E + 0.5)))
    r = (y - kf * _LN2_HI) - kf * _LN2_LO                 # |r| <= ln(2) / 2
    e = 1.0 + r * (1.0 + r * (1.0 / 2 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120 + r * (
        1.0 / 720 + r * (1.0 / 5040 + r * (1.0 / 40320 + r * (1.0 / 362880 + r * (
            1.0 / 3628800 + r * (1.0 / 39916800 + r * (1.0 / 479001600 + r * (
                1.0 / 6227020800)))))))))))))             # exp(r), Taylor degree 13
    s = e * np.float64(np.int64(1) << np.int64(kf))       # exp(y) = 2^k exp(r) >= 3.49
    # one division for both branches (divisions dominate the cost of this function)
    # branch-free select (sel is exactly 0 or 1; both branches are finite)
    sel = np.float64(ax < _SMALL)
    t = (sel * num_small + (1.0 - sel) * (s - 1.0)) / (sel * q + (1.0 - sel) * (s + 1.0))
    return np.copysign(t, x)


def _tanh32(x):
    """tanh of one float32 in float32 arithmetic, vectorizable (see the module docstring)."""
    one = np.float32(1.0)
    ax = min(abs(x), np.float32(_CAP32))
    z = ax * ax
    small = ax + ax * z * ((((np.float32(_F0) * z + np.float32(_F1)) * z + np.float32(_F2)) * z
                            + np.float32(_F3)) * z + np.float32(_F4))
    y = np.float32(2.0) * ax
    kf = np.floor(y * np.float32(_LOG2E) + np.float32(0.5))      # k in [0, 27], NaN -> 0
    kf = min(np.float32(27.0), max(np.float32(0.0), kf))
    r = (y - kf * np.float32(0.693359375)) - kf * np.float32(-2.12194440e-4)
    e = one + r * (one + r * (np.float32(1.0 / 2) + r * (np.float32(1.0 / 6) + r * (
        np.float32(1.0 / 24) + r * (np.float32(1.0 / 120) + r * (np.float32(1.0 / 720) + r * (
            np.float32(1.0 / 5040))))))))                # exp(r), Taylor degree 7
    s = e * np.float32(np.int32(1) << np.int32(kf))      # exp(y) = 2^k exp(r) >= 3.49
    large = (s - one) / (s + one)
    sel = np.float32(ax < np.float32(_SMALL))
    return np.copysign(sel * small + (one - sel) * large, x)


def vtanh(x):
    """tanh(x) for one float inside a Numba kernel, in the float's own precision.

    Outside Numba it is ``np.tanh``; inside, the overload below picks the float32 or float64
    kernel by type, so a float32 kernel never promotes to float64.
    """
    return np.tanh(x)


@overload(vtanh, inline="always")
def _vtanh_overload(x):
    if isinstance(x, types.Float) and x.bitwidth == 32:
        return _tanh32
    if isinstance(x, types.Float):
        return _tanh64
    return None


@njit(cache=True, error_model="numpy", fastmath=CONTRACT)
def vtanh_array(u, out):
    """out[...] = tanh(u[...]) for contiguous arrays of one float dtype (used by the tests)."""
    uf = u.ravel()
    of = out.ravel()
    for i in range(uf.size):
        of[i] = vtanh(uf[i])
    return out
