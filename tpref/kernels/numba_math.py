"""Vectorizable elementwise math for the Numba kernels: tanh, atanh, logit; float64 and float32.

Numba lowers ``np.tanh`` / ``math.tanh`` to a scalar libm call (~14 ns per element here),
which LLVM cannot vectorize and which dominated the forward pass. ``vtanh`` below is written
from +, *, /, min, one integer shift and (float32) one select, with no branch, so a loop over
it compiles to SIMD code (4 float64 or 8 float32 per ymm register), and is accurate to < 2
units in the last place (see "Accuracy"). ``vatanh`` and ``vlogit`` (DTP's inverses of tanh
and of the sigmoid) are built the same way; their method, accuracy and cost are in their own
docstrings.

Method, through H = expm1(2a)/2 >= 0, a = |x| (tanh(a) = E/(E+2) = H/(H+1), E = expm1(2a)):

1. Reduction. a = k h + r with h = ln(2)/2, k = round(a/h - 1/2 + 1/64) >= 0, so
   r in [-h/64, 63h/64] (r = a exactly when k = 0). k comes from the round-to-nearest of one
   addition: t = (a * 2 log2(e) - 0.484375) + S with S = 1.5 * 2^52 + 1023 (float64) or
   1.5 * 2^23 + 127 (float32) has k + exponent bias in its low mantissa bits, so kf = t - S,
   and t's bits shifted left by the mantissa width are 2^k exactly (``_pow2_of_shifted``; no
   float/int conversion, no floor). r = (a - kf h_hi) - kf h_lo (Cody-Waite: kf h_hi and
   a - kf h_hi are exact).
2. F = expm1(2r)/2 = r + r^2 R(r), R a minimax polynomial for the relative error of F on the
   reduced range: degree 9 in float64 (fit error 0.10 eps), degree 4 in float32 (0.10 eps),
   from a Remez exchange in mpmath with the coefficients rounded one by one
   (tools/fit_tanh.py prints all constants below).
3. H = (2^k e^{2r} - 1)/2 = 2^k F + (2^k - 1)/2: one fused multiply-add, exact 2^k, and the
   two terms of the same sign for r >= 0 (for r < 0, |F| < 0.006 is tiny against
   (2^k - 1)/2 >= 1/2). This is why k rounds a/h - 1/2 + 1/64 and not a/h: with r in
   [-h/2, h/2], k = 1 would subtract and amplify the error of F up to 1.4x.
4. float64, one formula for every x with one division: A = min(H, 1), q = A / (H + 1),
   tanh = A - A q (one FMA). For H < 1 (tanh < 1/2) that is H - H^2/(H+1), where the
   rounding errors of H + 1 and of the division only enter through the smaller term H q; for
   H >= 1 it is 1 - 1/(H+1), where they only enter through 1/(H+1) <= 1/2 (the plain
   H/(H+1) is off by up to 1.5 ulp near 1: it rounds H + 1).
   float32: tanh = 1 - 1/(H+1) for H >= 1.25 (|x| >= 0.626), and below it an odd polynomial
   x + x^3 T(x^2), T minimax of degree 4 (fit error 0.05 eps), picked by an LLVM select
   (``_where_less``: a vector compare and blend, no branch). The quotient form above is
   ~1.7 ulp for small |x| in float32, the polynomial ~0.6, for about 6 more instructions per
   8 lanes.
5. a is capped at 19.5 (float64) / 9.5 (float32), where tanh already rounds to 1, which bounds
   k (<= 56 / 27) and so 2^k; +-inf gives +-1. The sign is put back with copysign (-0 stays
   -0; tanh(-x) = -tanh(x) bit for bit). NaN: a NaN a makes t, kf, r and F NaN, so H is NaN
   whatever the shift made of t's bits, and so is every branch of the result.

Accuracy, in ulps of the exact result (reference tanh in 80-bit long double for float64,
float64 tanh for float32; tools/check_tanh.py): max 1.71 ulp in float64 over 2.1e7 inputs
(a sweep of [0, 25], 1.8e7 random points, every switch of k +-1e-7), > 1 ulp for 0.7% of
them, all in |x| < 1; max 1.29 ulp in float32 over every float32 in [0, 10] (> 1 ulp for
3e-5 of them, all in 0.626 < |x| < 1). The Cephes-style split it replaced (rational fit below
|x| = 0.625, Taylor exp above) reached 2.25 ulp in both (near 1) and 2.1 ulp for small |x| in
float64. Against ``np.tanh`` (itself up to 1.2 ulp off in float64) the max relative
difference is 2.0 eps in float64 (as before) and 1.16 eps in float32 (1.13 before). Bounds
enforced by tests/test_numba_backend.py (2 ulp, dense near every switch and near 1, special
values).

Kernels calling it are compiled with ``fastmath=CONTRACT`` (fused multiply-add only), which
the error analysis assumes. They inline it and are cached on disk; a change to this file
invalidates every cached kernel that inlines it (``jit_cache``: the cache stamp covers
``jit_cache.JIT_SOURCES``, this file among them).

Cost (a removed benchmark: 1.25 M elements, old and new alternating in one process on the
shared 2-core Xeon, AVX-512 but ymm code): float64 1.83-1.90x faster than the Cephes-style
version (medians 3.5-4.3 -> 1.9-2.3 ns per element over three runs; 38 instead of 60
instructions per 4 elements, one division either way), float32 1.4-1.9x (fastest calls
1.25 -> 0.77 ns). In kernels that call ``wide_vectors()`` (all of numba_rnn's) LLVM uses
512-bit registers on AVX-512 CPUs: a loop of 784 x 1600 vtanh took 1.61 -> 1.15 ms (float64)
and 0.83 -> 0.65 ms (float32) in one run here, the same bits.
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from .jit_cache import CACHE

#: Numba fastmath flags of every kernel that calls vtanh / vatanh / vlogit: only "contract"
#: (fused multiply-add), which LLVM needs to make the polynomials cheap; it never reassociates
#: or assumes finite values, and it only makes each multiply-add more accurate.
CONTRACT = {"contract"}

# ----------------------------------------------------------------------------------------------
# constants

_CAP64, _CAP32 = 19.5, 9.5         # tanh(x) rounds to 1 beyond these (19.06, 9.01)
_TWO_LOG2E = 2.0 * 1.4426950408889634          # 1/h, h = ln(2)/2 (exact double of log2(e))
_OFF = -0.5 + 1.0 / 64                         # k = round(a/h + _OFF), r in [-h/64, 63h/64]
_SHIFT64 = 1.5 * 2.0 ** 52 + 1023              # ulp 1; low bits of (v + _SHIFT64) = k + 1023
_SHIFT32 = 1.5 * 2.0 ** 23 + 127               # float32: ulp 1, low bits = k + 127
# h = ln(2)/2 = _H64_HI + _H64_LO: fdlibm's ln2_hi / 2 (32 significant bits, so kf * _H64_HI
# is exact for k < 2^21) and ln2_lo / 2; h - hi - lo ~ 6e-27
_H64_HI, _H64_LO = 6.93147180369123816490e-01 / 2, 1.90821492927058770002e-10 / 2
# float32: hi = h rounded to 16 significant bits (kf * hi exact for k < 2^8), h - hi - lo ~ 3e-14
_H32_HI, _H32_LO = 0.3465728759765625, 7.143034e-07
# F(r) = expm1(2r)/2 = r + r^2 R(r): minimax R (relative error of F), tools/fit_tanh.py
_R0, _R1, _R2, _R3, _R4, _R5, _R6, _R7, _R8, _R9 = (
    0.9999999999999996, 0.6666666666671286, 0.3333333332988774, 0.13333333436609987,
    0.044444428029191727, 0.012698567480288631, 0.003173694462852938, 0.0007088160193723703,
    0.00013360305917973722, 3.479493439637302e-05)
_S0, _S1, _S2, _S3, _S4 = (1.0000016689300537, 0.6665951609611511, 0.3343116343021393,
                           0.12759289145469666, 0.05927087739109993)
# float32, H < 1.25 (|x| < 0.626): tanh(x) = x + x^3 T(x^2), minimax for the relative error on
# |x| < 0.64 (tools/fit_tanh.py)
_SMALL32 = 1.25
_T0, _T1, _T2, _T3, _T4 = (-0.33333268761634827, 0.1333107203245163, -0.05370798707008362,
                           0.020533431321382523, -0.005585075356066227)

# vatanh: m = (1 + a)/((1 - a) 2^k) in [0.9, 1.8): k is the exponent of q / 0.9, q ~ m 2^k
_INV_M_LO = 1.0 / 0.9
# atanh(s) = s + s^3 A(s^2), |s| <= 2/7: minimax for the relative error (tools/fit_atanh.py)
_A0, _A1, _A2, _A3, _A4, _A5, _A6, _A7, _A8 = (
    0.3333333333333363, 0.1999999999985457, 0.14285714310134898, 0.11111109103979167,
    0.09091002174535623, 0.07689711094490223, 0.06710972331240439, 0.0543324580166255,
    0.07690287383265436)
_B0, _B1, _B2, _B3 = (0.33333298563957214, 0.20004065334796906, 0.14139053225517273,
                      0.1315728724002838)

# vlogit: the smaller of v and 1 - v is scaled by 2^500 (2^40 in float32) below 2^-600 (2^-60),
# so that (1 - v) / v stays finite for subnormal v, and k >= 100 (20) after the scaling
_TINY64, _SCALE64, _K_SCALE64 = 2.0 ** -600, 2.0 ** 500, 500.0
_TINY32, _SCALE32, _K_SCALE32 = 2.0 ** -60, 2.0 ** 40, 40.0


@intrinsic
def _pow2_of_shifted(typingctx, t):
    """2^k from t = S + k (S = _SHIFT64 / _SHIFT32): t's bits shifted left by the mantissa
    width leave k + bias in the exponent field and zeros below. One integer shift; LLVM
    vectorizes it (a bitcast costs nothing)."""
    if not isinstance(t, types.Float):
        return None
    width, mant = (64, 52) if t.bitwidth == 64 else (32, 23)

    def codegen(context, builder, signature, args):
        ity = ir.IntType(width)
        bits = builder.shl(builder.bitcast(args[0], ity), ir.Constant(ity, mant))
        return builder.bitcast(bits, args[0].type)

    return t(t), codegen


@intrinsic
def _pow2_floor(typingctx, y):
    """2^floor(log2 y) for a positive normal y: y's bits with the mantissa cleared (one integer
    and; vectorizes)."""
    if not isinstance(y, types.Float):
        return None
    width, mask = (64, 0x7FF << 52) if y.bitwidth == 64 else (32, 0xFF << 23)

    def codegen(context, builder, signature, args):
        ity = ir.IntType(width)
        bits = builder.and_(builder.bitcast(args[0], ity), ir.Constant(ity, mask))
        return builder.bitcast(bits, args[0].type)

    return y(y), codegen


@intrinsic
def _biased_exponent_plus(typingctx, y):
    """S + e as a float, e = y's biased exponent field, S = 2^52 (float64) or 2^23 (float32):
    e (shifted down) or-ed into the zero mantissa of S, so (S + e) - (S + bias) is
    floor(log2 y) exactly, with no float/int conversion (a shift and an or; vectorizes)."""
    if not isinstance(y, types.Float):
        return None
    width, mant, s_bits = (64, 52, 0x433 << 52) if y.bitwidth == 64 else (32, 23, 0x96 << 23)

    def codegen(context, builder, signature, args):
        ity = ir.IntType(width)
        e = builder.lshr(builder.bitcast(args[0], ity), ir.Constant(ity, mant))
        return builder.bitcast(builder.or_(e, ir.Constant(ity, s_bits)), args[0].type)

    return y(y), codegen


@intrinsic
def _where_less(typingctx, u, v, a, b):
    """a if u < v else b (b where either is NaN), as one LLVM ``select`` (a vector compare and
    blend): a conditional expression would put control flow into Numba's IR, which the
    inliner of ``vtanh`` into the kernels handles badly (NumbaIRAssumptionWarning)."""
    if not all(isinstance(t, types.Float) for t in (u, v, a, b)) or not a == b:
        return None

    def codegen(context, builder, signature, args):
        return builder.select(builder.fcmp_ordered("<", args[0], args[1]), args[2], args[3])

    return a(u, v, a, b), codegen


def _wide_attributes_class(values=ir.values):
    """The attribute-set class ``wide_vectors`` installs, or None where it cannot work.

    llvmlite has no public API for string function attributes. This subclasses llvmlite's
    ``FunctionAttributes`` (from ``values``, llvmlite.ir.values) and extends its private
    ``_to_list``, which llvmlite calls to print a function's attribute list, with two string
    attributes: 512-bit vectors preferred and legal in that function only. If llvmlite lacks
    either name, there is no class and ``wide_vectors()`` is a no-op (``WIDE_VECTORS``).
    """
    base = getattr(values, "FunctionAttributes", None)
    if not isinstance(base, type) or not callable(getattr(base, "_to_list", None)):
        return None

    class _WideAttributes(base):
        STRINGS = ('"prefer-vector-width"="512"', '"min-legal-vector-width"="512"')

        def __bool__(self):              # llvmlite writes no attribute list for an empty set
            return True

        def _to_list(self, ret_type):
            return super()._to_list(ret_type) + list(self.STRINGS)

    return _WideAttributes


_WIDE_ATTRIBUTES = _wide_attributes_class()

#: True where ``wide_vectors()`` can ask LLVM for 512-bit vectors (llvmlite's private
#: ``FunctionAttributes._to_list`` exists); False: ``wide_vectors()`` does nothing and the
#: kernels are compiled at LLVM's default vector width, the same bits, a little slower on
#: AVX-512 CPUs.
WIDE_VECTORS = _WIDE_ATTRIBUTES is not None


@intrinsic
def wide_vectors(typingctx):
    """Let LLVM vectorize the calling kernel's loops with 512-bit registers where the CPU has
    them (AVX-512); a no-op elsewhere. Call it first thing in a kernel: ``wide_vectors()``.

    Why: on AVX-512 CPUs LLVM compiles for 256-bit vectors by default (the "prefer-256-bit"
    tuning, against the clock drop of 512-bit code on early AVX-512 parts), so vtanh and the
    other element loops ran 4 float64 / 8 float32 per instruction, while OpenBLAS's products
    in the same kernels already run 512-bit code. This sets LLVM's per-function attribute
    "prefer-vector-width"="512" on the calling function only: nothing else in the process is
    compiled differently (NUMBA_CPU_FEATURES would change every Numba function). The values
    are the same bits: the loops' operations are elementwise, only the vector width changes.
    Measured in docs/benchmarks.md.

    The boundary with llvmlite: the attributes are set through a private llvmlite method
    (``_wide_attributes_class``). Where it is missing (``WIDE_VECTORS`` False), or replacing
    the attribute set fails at compile time, the kernel compiles at the default width: same
    bits, never an error (tests/test_numba_backend.py checks both ways).
    """
    def codegen(context, builder, signature, args):
        wide_class = _WIDE_ATTRIBUTES
        fn = builder.function
        if wide_class is not None and not isinstance(fn.attributes, wide_class):
            try:
                wide = wide_class()
                for name in fn.attributes:
                    wide.add(name)
                wide.alignstack = fn.attributes.alignstack
                wide.personality = fn.attributes.personality
                fn.attributes = wide
            except Exception:            # llvmlite internals changed: keep the default width
                pass
        return context.get_dummy_value()

    return types.none(), codegen


def _tanh64(x):
    """tanh of one float64, vectorizable (see the module docstring)."""
    a = min(abs(x), _CAP64)
    t = (a * _TWO_LOG2E + _OFF) + _SHIFT64       # _SHIFT64 + k, k >= 0
    kf = t - _SHIFT64
    p2 = _pow2_of_shifted(t)                     # 2^k
    r = (a - kf * _H64_HI) - kf * _H64_LO        # a - k h, in [-h/64, 63h/64]
    poly = ((((((((_R9 * r + _R8) * r + _R7) * r + _R6) * r + _R5) * r + _R4) * r + _R3) * r
             + _R2) * r + _R1) * r + _R0
    f = (r * r) * poly + r                       # expm1(2r) / 2
    hh = p2 * f + (p2 * 0.5 - 0.5)               # expm1(2a) / 2 = 2^k f + (2^k - 1) / 2
    aa = min(hh, 1.0)
    q = aa / (hh + 1.0)
    return np.copysign(aa - aa * q, x)           # H/(H+1): H - H q (H < 1), 1 - q (H >= 1)


def _tanh32(x):
    """tanh of one float32 in float32 arithmetic, vectorizable (see the module docstring)."""
    f32 = np.float32
    one = f32(1.0)
    a = min(abs(x), f32(_CAP32))
    t = (a * f32(_TWO_LOG2E) + f32(_OFF)) + f32(_SHIFT32)
    kf = t - f32(_SHIFT32)
    p2 = _pow2_of_shifted(t)
    r = (a - kf * f32(_H32_HI)) - kf * f32(_H32_LO)
    poly = (((f32(_S4) * r + f32(_S3)) * r + f32(_S2)) * r + f32(_S1)) * r + f32(_S0)
    f = (r * r) * poly + r
    hh = p2 * f + (p2 * f32(0.5) - f32(0.5))
    large = one - one / (hh + one)               # H >= 1.25 (|x| >= 0.626): 1 - 1/(H+1)
    z = a * a                                    # below: the odd polynomial, rounded once
    small = (a * z) * ((((f32(_T4) * z + f32(_T3)) * z + f32(_T2)) * z + f32(_T1)) * z
                       + f32(_T0)) + a
    return np.copysign(_where_less(hh, f32(_SMALL32), small, large), x)


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


@njit(cache=CACHE, error_model="numpy", fastmath=CONTRACT)
def vtanh_array(u, out):
    """out[...] = tanh(u[...]) for contiguous arrays of one float dtype (used by the tests)."""
    wide_vectors()
    uf = u.ravel()
    of = out.ravel()
    for i in range(uf.size):
        of[i] = vtanh(uf[i])
    return out


def _atanh64(v):
    """atanh of one float64, vectorizable (see ``vatanh``)."""
    one = 1.0
    a = abs(v)
    u = one + a                                  # 1 + a = u + cu, exactly (Fast2Sum)
    cu = a - (u - one)
    w = one - a                                  # 1 - a = w + cw, exactly
    cw = (one - w) - a
    y = (u / w) * _INV_M_LO                      # ~ m 2^k / 0.9, m in [0.9, 1.8)
    p2 = _pow2_floor(y)                          # 2^k
    kf = _biased_exponent_plus(y) - (2.0 ** 52 + 1023)
    c = p2 * cw
    num = (u - p2 * w) + (cu - c)                # (1 + a) - 2^k (1 - a); u - 2^k w exact
    den = (u + p2 * w) + (cu + c)
    s = _where_less(p2, 1.5, a, num / den)       # k = 0: s = a exactly
    z = s * s
    poly = (((((((_A8 * z + _A7) * z + _A6) * z + _A5) * z + _A4) * z + _A3) * z + _A2) * z
            + _A1) * z + _A0
    r = kf * _H64_HI + (s + ((s * z) * poly + kf * _H64_LO))
    bad = _where_less(one, a, np.nan, (a - a) + np.inf)      # |v| = 1: inf; > 1, NaN: NaN
    return np.copysign(_where_less(a, one, r, bad), v)


def _atanh32(v):
    """atanh of one float32 in float32 arithmetic, vectorizable (see ``vatanh``)."""
    f32 = np.float32
    one = f32(1.0)
    a = abs(v)
    u = one + a
    cu = a - (u - one)
    w = one - a
    cw = (one - w) - a
    y = (u / w) * f32(_INV_M_LO)
    p2 = _pow2_floor(y)
    kf = _biased_exponent_plus(y) - f32(2.0 ** 23 + 127)
    c = p2 * cw
    num = (u - p2 * w) + (cu - c)
    den = (u + p2 * w) + (cu + c)
    s = _where_less(p2, f32(1.5), a, num / den)
    z = s * s
    poly = ((f32(_B3) * z + f32(_B2)) * z + f32(_B1)) * z + f32(_B0)
    r = kf * f32(_H32_HI) + (s + ((s * z) * poly + kf * f32(_H32_LO)))
    bad = _where_less(one, a, f32(np.nan), (a - a) + f32(np.inf))
    return np.copysign(_where_less(a, one, r, bad), v)


def vatanh(v):
    """atanh(v) for one float inside a Numba kernel, in the float's own precision.

    Outside Numba it is ``np.arctanh``; inside, the overload below picks the float32 or
    float64 kernel by type (``_atanh32`` runs in float32 arithmetic). DTP's inverse of tanh
    (numba_rnn._propagate_difference): libm's atanh is a scalar call (~35 ns per element
    here) that LLVM cannot vectorize.

    Method (a = |v| < 1; atanh(a) = log(q)/2, q = (1+a)/(1-a)), branch-free:

    1. Exact operands: u = 1 + a and w = 1 - a rounded, with their errors
       cu = a - (u - 1), cw = (1 - w) - a (Fast2Sum, exact as 1 >= a): 1 + a = u + cu and
       1 - a = w + cw exactly (cw = 0 for a >= 1/2).
    2. Reduction q = 2^k m, m in [0.9, 1.8): k is the exponent of y = (u/w) / 0.9, read from
       its bits (``_pow2_floor``: 2^k with the mantissa cleared; ``_biased_exponent_plus``:
       k as a float with no int/float conversion). Then
       atanh(a) = k ln(2)/2 + atanh(s),  s = (m-1)/(m+1) = (U - 2^k W)/(U + 2^k W)
       with U = u + cu, W = w + cw, so |s| <= 2/7 and s >= -1/19. The numerator is
       (u - 2^k w) + (cu - 2^k cw) with u - 2^k w exact (Sterbenz: u / (2^k w) ~ m is in
       [1/2, 2]), so s carries ~3 roundings (numerator, denominator, quotient) but none of
       the cancellation of (m-1). For k = 0 (a < 0.2857) s = a exactly, picked by a select
       (``_where_less``), so small |v| goes straight to the polynomial: atanh(v) = v for tiny
       and subnormal v.
    3. atanh(s) = s + s^3 A(s^2), A a minimax polynomial for the relative error of atanh on
       |s| <= 2/7: degree 8 in float64 (fit error 0.009 eps), 3 in float32 (0.008 eps),
       from a Remez exchange in mpmath (tools/fit_atanh.py prints the constants).
    4. r = k h_hi + (s + (s^3 A + k h_lo)), h = ln(2)/2 in two parts (Cody-Waite, the
       constants of vtanh: k h_hi is exact). The range of m is skewed to [0.9, 1.8), not
       [1/sqrt(2), sqrt(2)), so that for k >= 1 the two terms never nearly cancel: r >= 0.29
       while |s| <= 0.286 (with the symmetric range, k = 1 and s ~ -0.17 would lose a bit).
    5. Special values by selects: |v| < 1 gives r; |v| = 1 gives inf ((a - a) + inf); |v| > 1
       (inf included) and NaN give NaN (the lanes' other results are discarded, and no
       floating-point exception traps under error_model="numpy"). The sign is put back with
       copysign: atanh(-v) = -atanh(v) bit for bit, -0 stays -0.

    Accuracy, in ulps of the exact result (reference atanh in 80-bit long double for
    float64, float64 atanh for float32; ``python tools/check_atanh.py``): max 1.37 ulp in
    float64 over 7.5e6 inputs (a dense grid and random points of [0, 1), 1 - 10^-16..1,
    10^-320..1, +-1e-6 around every switch of k), > 1 ulp for 0.1% of them, all at
    0.3 < |v| < 0.9 (k = 1, 2, s near 2/7, where the error of s weighs most); max 1.39 ulp in
    float32 over every float32 in [0, 1) (> 1 ulp for 2.7e-5 of them). Bounds enforced by
    tests/test_numba_backend.py (2 ulp, dense near every switch and near 1, special values).

    Cost (a jitted loop over 1.25 M elements in (-0.999, 0.999), wide_vectors(), alternating
    with the same loop over np.arctanh in one process, 31 calls, thread CPU time, on the
    shared 2-core AVX-512 Xeon; a one-off benchmark since removed, four runs): float64 2.2-4.4
    ns per element against libm's 28-36 ns (paired ratio 8-12x), float32 0.9-1.4 against 27-35
    ns (26-29x); two divisions per element (u/w and s), packed on zmm registers.
    """
    return np.arctanh(v)


@overload(vatanh, inline="always")
def _vatanh_overload(v):
    if isinstance(v, types.Float) and v.bitwidth == 32:
        return _atanh32
    if isinstance(v, types.Float):
        return _atanh64
    return None


@njit(cache=CACHE, error_model="numpy", fastmath=CONTRACT)
def vatanh_array(u, out):
    """out[...] = atanh(u[...]) for contiguous arrays of one float dtype (used by the tests)."""
    wide_vectors()
    uf = u.ravel()
    of = out.ravel()
    for i in range(uf.size):
        of[i] = vatanh(uf[i])
    return out


def _logit64(v):
    """log(v) - log1p(-v) of one float64, vectorizable (see ``vlogit``)."""
    one = 1.0
    w = one - v                                  # 1 - v = w + cw, exactly (Fast2Sum)
    cw = (one - w) - v
    x = _where_less(v, w, w, v)                  # X = max(v, 1 - v) = x + cw
    y = _where_less(v, w, v, w)                  # Y = min(v, 1 - v) = y exactly
    sc = _where_less(y, _TINY64, _SCALE64, one)
    ys = y * sc                                  # exact
    q = (x / ys) * _INV_M_LO                     # ~ m 2^k / 0.9, m in [0.9, 1.8)
    p2 = _pow2_floor(q)                          # 2^k
    kf = (_biased_exponent_plus(q) - (2.0 ** 52 + 1023)) + _where_less(y, _TINY64,
                                                                       _K_SCALE64, 0.0)
    num = (x - p2 * ys) + cw                     # X - 2^k Y sc; x - 2^k ys exact
    den = (x + p2 * ys) + cw
    s = _where_less(p2, 1.5, abs((v + v) - one), num / den)   # k = 0: s = |2v - 1| exactly
    z = s * s
    poly = (((((((_A8 * z + _A7) * z + _A6) * z + _A5) * z + _A4) * z + _A3) * z + _A2) * z
            + _A1) * z + _A0
    r = kf * _H64_HI + (s + ((s * z) * poly + kf * _H64_LO))          # log(X/Y) / 2
    bad = _where_less(y, 0.0, np.nan, (y - y) + np.inf)   # v = 0, 1: -+inf; outside, NaN: NaN
    return np.copysign(_where_less(0.0, y, r + r, bad), v - 0.5)


def _logit32(v):
    """log(v) - log1p(-v) of one float32 in float32 arithmetic, vectorizable (see ``vlogit``)."""
    f32 = np.float32
    one = f32(1.0)
    zero = f32(0.0)
    w = one - v
    cw = (one - w) - v
    x = _where_less(v, w, w, v)
    y = _where_less(v, w, v, w)
    sc = _where_less(y, f32(_TINY32), f32(_SCALE32), one)
    ys = y * sc
    q = (x / ys) * f32(_INV_M_LO)
    p2 = _pow2_floor(q)
    kf = (_biased_exponent_plus(q) - f32(2.0 ** 23 + 127)) + _where_less(y, f32(_TINY32),
                                                                         f32(_K_SCALE32), zero)
    num = (x - p2 * ys) + cw
    den = (x + p2 * ys) + cw
    s = _where_less(p2, f32(1.5), abs((v + v) - one), num / den)
    z = s * s
    poly = ((f32(_B3) * z + f32(_B2)) * z + f32(_B1)) * z + f32(_B0)
    r = kf * f32(_H32_HI) + (s + ((s * z) * poly + kf * f32(_H32_LO)))
    bad = _where_less(y, zero, f32(np.nan), (y - y) + f32(np.inf))
    return np.copysign(_where_less(zero, y, r + r, bad), v - f32(0.5))


def vlogit(v):
    """log(v) - log1p(-v) (the inverse of the sigmoid) for one float inside a Numba kernel, in
    the float's own precision.

    Outside Numba it is ``np.log(v) - np.log1p(-v)``; inside, the overload below picks the
    float32 or float64 kernel by type. DTP's inverse of the sigmoid
    (numba_rnn._propagate_difference), which otherwise makes two scalar libm calls per
    operand.

    Method (``vatanh``'s, 0 < v < 1): logit(v) = +-log(X/Y) with X = max(v, 1-v),
    Y = min(v, 1-v), + for v > 1/2:

    1. w = 1 - v rounded, cw = (1 - w) - v (Fast2Sum, 1 >= v): 1 - v = w + cw exactly, and
       cw = 0 for v >= 1/2 (1 - v exact). So X = x + cw and Y = y exactly, with x, y the
       larger and smaller of v and w (two selects). Below 2^-600 (float32: 2^-60) y is
       scaled by 2^500 (2^40), exactly, and k raised by 500 (40), so x/y stays finite for
       subnormal v.
    2. X/Y = 2^k m, m in [0.9, 1.8), k >= 0 from the bits of (x/y)/0.9, and
       log(X/Y) = 2 (k ln(2)/2 + atanh(s)),  s = (X - 2^k Y)/(X + 2^k Y),
       the numerator as (x - 2^k y) + cw with x - 2^k y exact (Sterbenz). For k = 0
       (0.357 < v < 0.643) s = |2v - 1| exactly (X + Y = 1; 2v - 1 is exact for v >= 1/4),
       picked by a select: logit near 1/2 goes straight to the polynomial.
    3. atanh(s) and the sum with k ln(2)/2 exactly as in ``vatanh`` (same polynomial, same
       error analysis, times 2 exactly).
    4. v = 0 gives -inf, v = 1 inf, v outside [0, 1] and NaN give NaN (selects on y); the sign
       is copysign(., v - 1/2) (v - 1/2 is exact or of the right sign), logit(1/2) = +0.

    Accuracy, in ulps of the exact result (reference in 80-bit long double for float64,
    float64 for float32: log(v) - log1p(-v), or 2 atanh(2v - 1) near 1/2;
    ``python tools/check_atanh.py --logit``): max 1.40 ulp in float64 over 1.7e7 inputs (the
    inputs of ``vatanh``'s check and their mirrors 1 - v, +-1e-6 around every switch of k),
    > 1 ulp for 0.06% of them, all in 0.1 < v < 0.3 or 0.64 < v < 0.9; max 1.42 ulp in float32
    over every float32 in (0, 1) (> 1 ulp for 6.4e-5 of them). Bounds enforced by
    tests/test_numba_backend.py (2 ulp, dense near every switch, near 0, 1/2 and 1, special
    values).

    Cost (measured as ``vatanh``, v in (0.001, 0.999), two runs):
    float64 2.3-3.4 ns per element against 21-29 ns for libm's log(v) - log1p(-v) (paired
    ratio 9x), float32 1.1 against 19-20 ns (18x).
    """
    return np.log(v) - np.log1p(-v)


@overload(vlogit, inline="always")
def _vlogit_overload(v):
    if isinstance(v, types.Float) and v.bitwidth == 32:
        return _logit32
    if isinstance(v, types.Float):
        return _logit64
    return None


@njit(cache=CACHE, error_model="numpy", fastmath=CONTRACT)
def vlogit_array(u, out):
    """out[...] = logit(u[...]) for contiguous arrays of one float dtype (used by the tests)."""
    wide_vectors()
    uf = u.ravel()
    of = out.ravel()
    for i in range(uf.size):
        of[i] = vlogit(uf[i])
    return out
