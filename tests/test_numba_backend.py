"""The Numba backend (tpref.kernels) equals the NumPy reference (tpref.methods.reference).

stumpy-style: every test computes ``ref`` with the reference and ``comp`` with the twin, then
compares them with the one tolerance policy of tpref.config (RTOL, ATOL_SCALE per dtype).
float32 runs are compared with the float64 reference on the same (float32-representable)
inputs, so the float32 tolerance bounds float32's own error, not a drift between backends.

The kernels are compiled with ``cache=True``: the first run of this module on a machine pays
the JIT (about 15-30 s on 2 cores for both dtypes), later runs load the cache.
No timings are asserted here; ``tpref bench`` times the backends.
"""

import itertools
import platform
import re
import warnings

import numpy as np
import pytest
from numba import njit
from numba.core.errors import NumbaWarning

import tpref

from cases import random_targets
from tpref import testing
from tpref.config import CLIP_EPS, F32_REF_FACTOR, RTOL
from tpref.kernels import core, numba_math, numba_rnn, workspace
from tpref.methods import reference

DTYPES = (np.float64, np.float32)


# ----------------------------------------------------------------------------------------------
# helpers


def assert_close(comp, ref, dtype, name, noise=0.0):
    """tpref.testing.assert_close with the policy of ``dtype``; ``noise`` is an extra absolute
    floor for quantities whose reference value is itself only known to that accuracy
    (difference TP with tiny gamma_h, see test_dtp_tiny_gamma)."""
    assert comp is not None and ref is not None, name
    testing.assert_close(comp, ref, name=name, dtype=dtype, noise=noise)


def make_case(T, B, d, p, k, loss, dtype, seed, b_scale=0.3):
    """A seeded random RNN problem; params and x rounded to ``dtype`` (exact in float64)."""
    rng = np.random.default_rng(seed)
    params = tpref.init_rnn(d, p, k, seed=rng, dtype=np.float64)
    params["W_hh"] = params["W_hh"] * 1.2                # some growth, so through-time terms matter
    params["b_h"] = b_scale * rng.normal(size=p)
    params["b_y"] = 0.1 * rng.normal(size=k)
    params = {name: a.astype(dtype) for name, a in params.items()}
    x = rng.normal(size=(T, B, d)).astype(dtype)
    return params, x, random_targets(rng, B, k, loss, dtype)


def as64(params):
    return {name: a.astype(np.float64) for name, a in params.items()}


def compare_oracles(method, params, x, y, dtype, noise=0.0, **kw):
    """Run the numba backend in ``dtype`` and the reference in float64; compare every output.

    float32: the bound also allows config.F32_REF_FACTOR times the float32 reference's own
    max error against float64, per output (the kernel is no worse than the reference).
    ``noise`` (float64, relative to max|displacements|) is an extra floor for outputs whose
    reference value is only known to that accuracy.
    """
    comp = tpref.oracle(method, params, x, y, backend="numba", **kw)
    ref = tpref.oracle(method, as64(params), x.astype(np.float64),
                       y if y.dtype.kind in "iu" else y.astype(np.float64),
                       backend="numpy", **kw)
    ref32 = (tpref.oracle(method, params, x, y, backend="numpy", **kw)
             if np.dtype(dtype) == np.float32 else None)

    def check(name, get):
        c, r = get(comp), get(ref)
        floor = noise * float(np.max(np.abs(r)))
        if ref32 is not None:
            floor += F32_REF_FACTOR * float(np.max(np.abs(get(ref32) - r)))
        assert c.dtype == np.dtype(dtype), name
        assert_close(c, r, dtype, name, floor)

    assert comp.hidden.dtype == np.dtype(dtype)
    assert abs(comp.loss - ref.loss) <= RTOL[np.dtype(dtype)] * max(1.0, abs(ref.loss))
    check("output", lambda res: res.output)
    check("hidden", lambda res: res.hidden)
    if method == "bp":
        assert comp.targets is None and comp.displacements is None
    else:
        check("displacements", lambda res: res.displacements)
        check("targets", lambda res: res.targets)
    assert set(comp.direction) == set(ref.direction)
    for name in ref.direction:
        check(f"direction[{name}]", lambda res: res.direction[name])
    return comp, ref


# ----------------------------------------------------------------------------------------------
# vectorizable tanh


def _tanh_ulp_error(comp, x, dtype, fn=np.tanh):
    """|comp - fn(x)| in ulps of the exact result's binade (2 ulp = 2 x 2^-53 just below 1.0
    in float64), for finite x and results; reference fn (tanh, or arctanh for vatanh) in long
    double for float64 (None where long double is not wider than float64) and in float64 for
    float32."""
    if dtype == np.float64:
        if np.finfo(np.longdouble).nmant < 63:
            return None
        ref = fn(x.astype(np.longdouble))
    else:
        ref = fn(x.astype(np.float64))
    _, e = np.frexp(np.abs(ref))
    e = np.maximum(e, np.finfo(dtype).minexp + 1)              # subnormal results: fixed ulp
    ulp = np.ldexp(np.ones_like(ref), e - np.finfo(dtype).nmant - 1)
    return np.abs(comp.astype(ref.dtype) - ref) / ulp


def _around(points, dtype, n):
    """Every float of dtype within n ulps of each point."""
    bits = np.asarray(points, dtype).view(np.int64 if dtype == np.float64 else np.int32)
    return (bits[:, None] + np.arange(-n, n + 1, dtype=bits.dtype)[None, :]).ravel().view(dtype)


def _vtanh_sweep(dtype):
    h = np.log(2) / 2
    near_one = (15.0, 20.0) if dtype == np.float64 else (6.0, 10.0)
    # where the method switches: each k of the reduction (|x| = (k - 1/64) h), tanh = 1/2
    # (H = 1, float64's quotient), H = 1.25 (float32's polynomial), the cap, tanh -> 1
    switches = np.concatenate([(np.arange(1, 58) - 1 / 64) * h,
                               [np.log(3) / 2, np.arctanh(1.25 / 2.25), 0.625, 19.5, 9.5,
                                19.06, 9.01]])
    x = np.concatenate([np.linspace(-25.0, 25.0, 200_001),
                        np.geomspace(np.finfo(dtype).smallest_subnormal, 30.0, 20_001),
                        -np.geomspace(np.finfo(dtype).smallest_subnormal, 30.0, 20_001),
                        np.linspace(*near_one, 100_001),
                        np.linspace(0.0, 0.7, 100_001)]).astype(dtype)
    return np.concatenate([x, _around(switches, dtype, 500), -_around(switches, dtype, 500)])


@pytest.mark.parametrize("dtype, rel_eps", [(np.float64, 3), (np.float32, 2)])
def test_vtanh_accuracy(dtype, rel_eps):
    """Max error <= 2 ulp (measured 1.71 / 1.29, tools/check_tanh.py) over a dense sweep of
    [-25, 25], tiny and subnormal values, near 1, and every float within 500 ulps of the
    points where the method switches; and within rel_eps x eps of ``np.tanh`` (whose own
    float64 error, up to ~1.2 ulp, is part of that difference)."""
    x = _vtanh_sweep(dtype)
    comp = numba_math.vtanh_array(x, np.empty_like(x))
    assert comp.dtype == np.dtype(dtype)
    err = _tanh_ulp_error(comp, x, dtype)
    if err is not None:
        i = np.argmax(err)
        assert err[i] <= 2.0, f"max error {err[i]:.3f} ulp at x = {x[i]!r}"
    ref = np.tanh(x.astype(np.float64))
    rel = np.abs(comp - ref) / np.maximum(np.abs(ref), np.finfo(dtype).tiny)
    assert rel.max() <= rel_eps * np.finfo(dtype).eps, f"max relative error {rel.max():.3e}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_vtanh_special_values(dtype):
    """tanh is odd bit for bit (-0 included), = x for tiny and subnormal x, +-1 exactly where
    tanh rounds to it (up to +-inf), NaN -> NaN."""
    def vt(values):
        v = np.asarray(values, dtype)
        return numba_math.vtanh_array(v, np.empty_like(v))
    fi = np.finfo(dtype)
    x = _vtanh_sweep(dtype)
    assert np.array_equal(vt(-x), -vt(x))
    zeros = vt([0.0, -0.0])
    assert np.array_equal(zeros, [0.0, 0.0]) and list(np.signbit(zeros)) == [False, True]
    # tanh(x) = x exactly where x^2 is below the rounding (float64: where expm1(2x)/2 = x,
    # float32: where the odd polynomial's x^3 term is); elsewhere within 1 ulp (accuracy test)
    top = 1e-17 if dtype == np.float64 else 1e-5
    tiny = np.concatenate([[fi.smallest_subnormal, fi.tiny / 3], np.geomspace(fi.tiny, top, 1001)])
    tiny = tiny.astype(dtype)
    assert np.array_equal(vt(tiny), tiny) and np.array_equal(vt(-tiny), -tiny)
    big = np.array([19.2, 19.5, 20.0, 1e10, 1e300, np.inf] if dtype == np.float64 else
                   [9.1, 9.5, 20.0, 1e10, 1e30, np.inf], dtype)
    big = np.append(big, fi.max)
    assert np.all(vt(big) == 1.0) and np.all(vt(-big) == -1.0)
    assert np.all(np.isnan(vt([np.nan, -np.nan])))


def _vtanh_loop():
    """A fresh (uncached) jitted loop over vtanh shaped like the forward kernel's."""
    @njit(error_model="numpy", fastmath=numba_math.CONTRACT)
    def loop(u, out, sigmoid):
        half = u.dtype.type(0.5)
        one = u.dtype.type(1.0)
        if sigmoid:
            for i in range(u.size):
                out[i] = half * (one + numba_math.vtanh(half * u[i]))
        else:
            for i in range(u.size):
                out[i] = numba_math.vtanh(u[i])
    return loop


def test_vtanh_inlines_cleanly():
    """Numba inlines vtanh without IR warnings (a conditional expression in it made Numba's SSA
    pass warn 'variable ... is not in scope' in a kernel like the forward one)."""
    loop = _vtanh_loop()
    with warnings.catch_warnings():
        warnings.simplefilter("error", NumbaWarning)
        for dtype in DTYPES:
            u = np.linspace(-3, 3, 64).astype(dtype)
            out = np.empty_like(u)
            loop(u, out, False)
            assert np.allclose(out, np.tanh(u), rtol=4 * np.finfo(dtype).eps, atol=0)
            loop(u, out, True)


@pytest.mark.compiler_output
@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86 assembly")
def test_vtanh_vectorizes():
    """A loop over vtanh compiles to packed (SIMD) divisions in both dtypes: the formula stays
    branch-free and free of scalar calls (read the assembly: inspect_asm)."""
    loop = _vtanh_loop()
    for dtype, packed in ((np.float64, "divpd"), (np.float32, "divps")):
        u = np.zeros(64, dtype)
        loop(u, np.empty_like(u), False)
        sig = [sg for sg in loop.signatures if np.dtype(str(sg[0].dtype)) == dtype][0]
        assert packed in loop.inspect_asm(sig), f"{dtype.__name__}: the loop is not vectorized"


def _host_has_avx512():
    import llvmlite.binding as llb
    return platform.machine().lower() in ("x86_64", "amd64") and \
        bool(llb.get_host_cpu_features().get("avx512f"))


@njit(error_model="numpy", fastmath=numba_math.CONTRACT)
def _vtanh_wide(u, out):
    numba_math.wide_vectors()
    for i in range(u.size):
        out[i] = numba_math.vtanh(u[i])


@njit(error_model="numpy", fastmath=numba_math.CONTRACT)
def _vtanh_narrow(u, out):
    for i in range(u.size):
        out[i] = numba_math.vtanh(u[i])


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_wide_vectors_gives_the_same_bits(dtype):
    """wide_vectors() changes the vector width only: vtanh over a dense range, every special
    value, gives the same bits with and without it."""
    x = np.concatenate([np.linspace(-25, 25, 200_001), [0.0, -0.0, np.inf, -np.inf, np.nan],
                        np.geomspace(1e-30, 1.0, 1001)]).astype(dtype)
    wide, narrow = np.empty_like(x), np.empty_like(x)
    _vtanh_wide(x, wide)
    _vtanh_narrow(x, narrow)
    assert np.array_equal(wide.view(f"u{x.itemsize}"), narrow.view(f"u{x.itemsize}"))


@pytest.mark.compiler_output
@pytest.mark.skipif(not _host_has_avx512(), reason="needs an AVX-512 CPU")
@pytest.mark.skipif(not numba_math.WIDE_VECTORS, reason="llvmlite lacks the hook wide_vectors uses")
def test_wide_vectors_gives_512_bit_code_on_avx512_hosts():
    """On an AVX-512 CPU a loop in a function calling wide_vectors() compiles to zmm (512-bit)
    instructions: the LLVM attribute reaches the code generator (it is set through llvmlite
    internals, which could change; numba_math.wide_vectors)."""
    for dtype in DTYPES:
        u = np.zeros(64, dtype)
        _vtanh_wide(u, np.empty_like(u))
        sig = [sg for sg in _vtanh_wide.signatures if np.dtype(str(sg[0].dtype)) == dtype][0]
        assert "zmm" in _vtanh_wide.inspect_asm(sig), f"{dtype.__name__}: no 512-bit code"


# ----------------------------------------------------------------------------------------------
# vectorizable atanh (DTP's inverse of tanh)


def _vatanh_sweep(dtype):
    """Dense (-1, 1): a grid, tiny and subnormal values, 1 - 10^-16..1, and every float within
    500 ulps of each switch of k (q / 0.9 = 2^k, numba_math.vatanh) and of 1."""
    fi = np.finfo(dtype)
    t = 0.9 * 2.0 ** np.arange(0, 56 if dtype == np.float64 else 27)
    switches = np.concatenate([(t - 1) / (t + 1), [1.0 - 1e-3, 0.5]])   # DTP's clip: 1 - eps
    x = np.concatenate([np.linspace(-1.0, 1.0, 400_001)[1:-1],
                        np.geomspace(fi.smallest_subnormal, 1.0, 20_001)[:-1],
                        1.0 - np.geomspace(fi.epsneg, 1.0, 20_001)[:-1],
                        np.linspace(0.2, 0.7, 100_001)]).astype(dtype)
    below_one = np.nextafter(dtype(1.0), dtype(0.0))
    x = np.concatenate([x, _around(switches, dtype, 500), _around([below_one], dtype, 2000)])
    x = x[np.abs(x) < 1.0]
    return np.concatenate([x, -x])


@pytest.mark.parametrize("dtype", DTYPES)
def test_vatanh_accuracy(dtype):
    """Max error <= 2 ulp (measured 1.37 float64 / 1.39 float32, tools/check_atanh.py) over
    a dense sweep of (-1, 1), tiny and subnormal values, near +-1, and every float within 500
    ulps of each point where the reduction changes k; and within 2 eps of ``np.arctanh``."""
    x = _vatanh_sweep(dtype)
    comp = numba_math.vatanh_array(x, np.empty_like(x))
    assert comp.dtype == np.dtype(dtype)
    err = _tanh_ulp_error(comp, x, dtype, np.arctanh)
    if err is not None:
        i = np.argmax(err)
        assert err[i] <= 2.0, f"max error {err[i]:.3f} ulp at v = {x[i]!r}"
    ref = np.arctanh(x.astype(np.float64))
    rel = np.abs(comp - ref) / np.maximum(np.abs(ref), np.finfo(dtype).tiny)
    assert rel.max() <= 2 * np.finfo(dtype).eps, f"max relative error {rel.max():.3e}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_vatanh_special_values(dtype):
    """atanh is odd bit for bit (-0 included), = v for tiny and subnormal v, +-inf at +-1,
    finite and right just inside +-1, NaN for |v| > 1 (+-inf included) and NaN."""
    def va(values):
        v = np.asarray(values, dtype)
        return numba_math.vatanh_array(v, np.empty_like(v))
    fi = np.finfo(dtype)
    x = _vatanh_sweep(dtype)
    assert np.array_equal(va(-x), -va(x))
    zeros = va([0.0, -0.0])
    assert np.array_equal(zeros, [0.0, 0.0]) and list(np.signbit(zeros)) == [False, True]
    tiny = np.concatenate([[fi.smallest_subnormal, fi.tiny / 3],
                           np.geomspace(fi.tiny, 1e-9 if dtype == np.float64 else 1e-4, 1001)])
    tiny = tiny.astype(dtype)
    assert np.array_equal(va(tiny), tiny) and np.array_equal(va(-tiny), -tiny)
    assert np.array_equal(va([1.0, -1.0]), [np.inf, -np.inf])
    inside = np.nextafter(dtype(1.0), dtype(0.0))
    near = va([inside, -inside])
    ref = np.arctanh(np.float64(inside))            # 18.71 (float64), 8.66 (float32)
    assert np.all(np.isfinite(near)) and np.allclose(near, [ref, -ref], rtol=2 * fi.eps, atol=0)
    bad = [np.nan, -np.nan, 1.0 + fi.eps, -1.0 - fi.eps, 1.5, -2.0, 1e30, fi.max, np.inf, -np.inf]
    assert np.all(np.isnan(va(bad)))


def _assert_packed_no_libm(loop, what):
    """loop(u, m, out) compiled for both dtypes has packed divisions and fused multiply-adds on
    ymm/zmm registers and no call to libm's atanh or log."""
    for dtype, sfx in ((np.float64, "pd"), (np.float32, "ps")):
        u = np.full(64, 0.5, dtype)
        loop(u, u * 0, np.empty_like(u))
        sig = [sg for sg in loop.signatures if np.dtype(str(sg[0].dtype)) == dtype][0]
        asm = loop.inspect_asm(sig)
        for op in ("div", r"fn?m(?:add|sub)\d+"):
            assert re.search(rf"\bv{op}{sfx}\s[^\n]*%[yz]mm", asm), \
                f"{what} {dtype.__name__}: no packed v{op}{sfx} on ymm/zmm (not vectorized)"
        assert not re.search(r"\$(?:atanh|log1p|log)f?\b", asm), \
            f"{what} {dtype.__name__}: the loop calls libm"


@pytest.mark.compiler_output
@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86 assembly")
def test_vatanh_vectorizes():
    """A loop over vatanh (as DTP's: wide_vectors, a difference of two) compiles to packed
    divisions and fused multiply-adds on ymm/zmm registers, with no call to libm's atanh or log
    (read the assembly: inspect_asm)."""
    @njit(error_model="numpy", fastmath=numba_math.CONTRACT)
    def loop(u, m, out):
        numba_math.wide_vectors()
        for i in range(u.size):
            out[i] = numba_math.vatanh(u[i] + m[i]) - numba_math.vatanh(u[i])

    _assert_packed_no_libm(loop, "vatanh")


def _vlogit_sweep(dtype):
    """Dense (0, 1) and its mirror 1 - v: a grid, tiny and subnormal values, every float within
    500 ulps of each switch of k ((1 - v)/v = 0.9 2^k) and of the rescaling of tiny v
    (2^-600 / 2^-60), and of 1/2, 1/4, 0 and 1."""
    fi = np.finfo(dtype)
    kmax = 1020 if dtype == np.float64 else 126
    y0 = 1.0 / (1.0 + 0.9 * 2.0 ** np.arange(0, kmax))
    y0 = y0[y0 > 2 * fi.tiny]
    tiny = 2.0 ** -600 if dtype == np.float64 else 2.0 ** -60
    points = np.concatenate([y0, 1 - y0[y0 > fi.epsneg], [tiny, 0.5, 0.25, 0.75, 1e-3,
                                                           1 - 1e-3, fi.tiny]])
    x = np.concatenate([np.linspace(0.0, 1.0, 400_001)[1:-1],
                        np.geomspace(fi.smallest_subnormal, 0.5, 20_001),
                        1.0 - np.geomspace(fi.epsneg, 0.5, 20_001),
                        0.5 + np.geomspace(1e-20, 0.25, 10_001),
                        0.5 - np.geomspace(1e-20, 0.25, 10_001)]).astype(dtype)
    below_one = np.nextafter(dtype(1.0), dtype(0.0))
    x = np.concatenate([x, _around(points, dtype, 500), _around([below_one], dtype, 2000),
                        _around([fi.smallest_subnormal * 600], dtype, 500)])
    return x[(x > 0) & (x < 1)]


@pytest.mark.parametrize("dtype", DTYPES)
def test_vlogit_accuracy(dtype):
    """Max error <= 2 ulp (measured 1.40 float64 / 1.42 float32, tools/check_atanh.py
    --logit) over a dense sweep of (0, 1) and its mirror, tiny and subnormal values, near 1 and
    1/2, and every float within 500 ulps of each switch of the method; the reference is
    log(v) - log1p(-v) in long double / float64 (no cancellation there), or 2 atanh(2v - 1)
    (exact argument) for |v - 1/2| < 1/4."""
    x = _vlogit_sweep(dtype)
    comp = numba_math.vlogit_array(x, np.empty_like(x))
    assert comp.dtype == np.dtype(dtype)
    if dtype == np.float64 and np.finfo(np.longdouble).nmant < 63:
        pytest.skip("needs an 80-bit long double reference")
    xl = x.astype(np.longdouble if dtype == np.float64 else np.float64)
    mid = np.abs(xl - 0.5) < 0.25
    ref = np.log(xl) - np.log1p(-xl)
    ref[mid] = 2 * np.arctanh(2 * xl[mid] - 1)
    _, e = np.frexp(np.abs(ref))
    e = np.maximum(e, np.finfo(dtype).minexp + 1)
    ulp = np.ldexp(np.ones_like(ref), e - np.finfo(dtype).nmant - 1)
    err = np.abs(comp.astype(ref.dtype) - ref) / ulp
    i = np.argmax(err)
    assert err[i] <= 2.0, f"max error {err[i]:.3f} ulp at v = {x[i]!r}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_vlogit_special_values(dtype):
    """logit(1 - v) = -logit(v) where 1 - v is exact (v >= 1/2: the same bits), logit(1/2) = +0,
    -inf at 0 (and -0), inf at 1, finite and right just inside 0 and 1, NaN outside [0, 1]
    (+-inf included) and for NaN; logit(v) = log(v) for tiny and subnormal v (to 1 ulp)."""
    def vl(values):
        v = np.asarray(values, dtype)
        return numba_math.vlogit_array(v, np.empty_like(v))
    fi = np.finfo(dtype)
    x = _vlogit_sweep(dtype)
    hi = x[x >= 0.5]
    assert np.array_equal(vl(1 - hi), -vl(hi))
    half = vl([0.5])
    assert half[0] == 0.0 and not np.signbit(half[0])
    assert np.array_equal(vl([0.0, -0.0, 1.0]), [-np.inf, -np.inf, np.inf])
    inside = np.array([fi.smallest_subnormal, np.nextafter(dtype(1.0), dtype(0.0))], dtype)
    ref = np.log(inside.astype(np.float64)) - np.log1p(-inside.astype(np.float64))
    assert np.all(np.isfinite(vl(inside))) and np.allclose(vl(inside), ref, rtol=2 * fi.eps,
                                                           atol=0)
    tiny = np.geomspace(fi.smallest_subnormal, 1e-20 if dtype == np.float64 else 1e-9,
                        2001).astype(dtype)
    ref = np.log(tiny.astype(np.float64))
    assert np.allclose(vl(tiny), ref, rtol=fi.eps, atol=0)
    bad = [np.nan, -np.nan, -fi.smallest_subnormal, -0.5, 1.0 + fi.eps, 2.0, fi.max, np.inf,
           -np.inf]
    assert np.all(np.isnan(vl(bad)))


@pytest.mark.compiler_output
@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86 assembly")
def test_vlogit_vectorizes():
    """A loop over vlogit (as DTP's sigmoid branch: a difference of two) compiles to packed
    divisions and fused multiply-adds on ymm/zmm registers, with no call to libm's log or
    log1p."""
    @njit(error_model="numpy", fastmath=numba_math.CONTRACT)
    def loop(u, m, out):
        numba_math.wide_vectors()
        for i in range(u.size):
            out[i] = numba_math.vlogit(u[i] + m[i]) - numba_math.vlogit(u[i])

    _assert_packed_no_libm(loop, "vlogit")

# ----------------------------------------------------------------------------------------------
# every oracle: method x update x activation x loss x dtype

CASES = [(m, u) for m in ("bp", "tp", "dtp") for u in ("local", "through_time")
         if not (m == "bp" and u == "through_time")]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
@pytest.mark.parametrize("method, update", CASES)
def test_oracle_equals_reference(method, update, activation, loss, dtype):
    seed = 1000 + 7 * CASES.index((method, update)) + 3 * (activation == "sigmoid") + (loss == "mse")
    params, x, y = make_case(T=9, B=4, d=3, p=6, k=3, loss=loss, dtype=dtype, seed=seed)
    kw = dict(loss=loss, update=update, activation=activation)
    if method != "bp":
        kw.update(gamma_h=0.1, reg=0.5)
    compare_oracles(method, params, x, y, dtype, **kw)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("method, update", CASES)
def test_single_step(method, update, dtype):
    """T = 1: no recursion at all, only the boundary terms."""
    params, x, y = make_case(T=1, B=3, d=2, p=5, k=4, loss="cross_entropy", dtype=dtype, seed=5)
    kw = dict(loss="cross_entropy", update=update)
    if method != "bp":
        kw.update(gamma_h=0.05, reg=1.0)
    compare_oracles(method, params, x, y, dtype, **kw)


@pytest.mark.parametrize("rows", [3, 8, 12], ids=["chunk1", "chunk2", "chunk3"])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
@pytest.mark.parametrize("method, update", CASES)
def test_parameter_products_in_blocks(method, update, activation, rows, monkeypatch):
    """The directions are summed block by block inside the backward kernels
    (config.PRODUCT_BLOCK_ROWS rows per block): with blocks of 1, 2 and 3 steps (T = 7 leaves
    a short last block) they still equal the reference."""
    monkeypatch.setattr(numba_rnn, "PRODUCT_BLOCK_ROWS", rows)
    params, x, y = make_case(T=7, B=4, d=3, p=6, k=3, loss="cross_entropy", dtype=np.float64,
                             seed=11)
    kw = dict(loss="cross_entropy", update=update, activation=activation)
    if method != "bp":
        kw.update(gamma_h=0.1, reg=0.5)
    compare_oracles(method, params, x, y, np.float64, **kw)


@pytest.mark.parametrize("method, update", CASES)
def test_parameter_products_in_small_gemm_blocks(method, update, monkeypatch):
    """Blocks sized for OpenBLAS's small-matrix kernels (config.SMALL_GEMM_MNK // p^2 rows,
    here scaled down to 8 rows = 2 steps of B = 4, T = 7 leaving a short last block) give
    the reference's directions."""
    monkeypatch.setattr(numba_rnn, "SMALL_GEMM_MNK", 6 * 6 * 8 + 5)
    monkeypatch.setattr(numba_rnn, "PRODUCT_SMALL_MIN_ROWS", 4)
    assert numba_rnn._chunk(7, 4, 6) == 2
    params, x, y = make_case(T=7, B=4, d=3, p=6, k=3, loss="cross_entropy", dtype=np.float64,
                             seed=12)
    kw = dict(loss="cross_entropy", update=update)
    if method != "bp":
        kw.update(gamma_h=0.1, reg=0.5)
    compare_oracles(method, params, x, y, np.float64, **kw)


def test_block_rows_follow_the_small_gemm_bound():
    """p = 100: blocks of 100 rows (100 * 100 * 100 = SMALL_GEMM_MNK); p = 128: 61; where that
    leaves fewer than PRODUCT_SMALL_MIN_ROWS rows (p = 256), or more than PRODUCT_BLOCK_ROWS
    (p = 32), the PRODUCT_BLOCK_ROWS blocks; steps per block never below 1 or above T."""
    from tpref.config import PRODUCT_BLOCK_ROWS
    assert numba_rnn.block_rows(100) == 100 and numba_rnn.block_rows(128) == 61
    assert numba_rnn.block_rows(256) == PRODUCT_BLOCK_ROWS == numba_rnn.block_rows(32)
    assert numba_rnn._chunk(784, 16, 100) == 6 and numba_rnn._chunk(784, 20, 100) == 5
    assert numba_rnn._chunk(3, 16, 32) == 3 and numba_rnn._chunk(50, 200, 100) == 1


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("rows, p, q", [(96, 100, 100), (5, 3, 1), (7, 4, 6), (0, 3, 3)])
def test_add_tn_product_equals_numpy(rows, p, q, dtype):
    """numba_blas.add_tn_product(a, b, c) is c += a.T @ b (one GEMM with beta = 1)."""
    from tpref.kernels.numba_blas import add_tn_product
    rng = np.random.default_rng(rows + p + q)
    a, b, c = (rng.normal(size=s).astype(dtype) for s in ((rows, p), (rows, q), (p, q)))
    want = c.astype(np.float64) + a.T.astype(np.float64) @ b.astype(np.float64)
    add_tn_product(a, b, c)
    np.testing.assert_allclose(c, want, rtol=0, atol=50 * np.finfo(dtype).eps * max(rows, 1))
    with pytest.raises(ValueError, match="expected a"):
        add_tn_product(a, b, np.zeros((p + 1, q), dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_regularized_pinv_map_equals_cholesky_solve(dtype):
    """P = W (W^T W + r I)^{-1} through the triangular inverse equals SciPy's cho_solve to
    rounding, for a well and an ill-conditioned Gram matrix."""
    import scipy.linalg
    from tpref.models.inverse import factor_regularized_gram
    rng = np.random.default_rng(3)
    for p, reg, scale in [(100, 1.0, 1.0), (7, 0.01, 1.0), (50, 1e-6, 3.0)]:
        W = (scale * rng.normal(size=(p, p)) / np.sqrt(p)).astype(dtype)
        want = scipy.linalg.cho_solve(factor_regularized_gram(W.astype(np.float64), reg),
                                      W.T.astype(np.float64)).T
        got = core.regularized_pinv_map(W, reg)
        assert got.dtype == dtype and got.flags.c_contiguous
        cond = np.linalg.cond(W.T.astype(np.float64) @ W + reg * np.eye(p))
        err = np.abs(got - want).max() / np.abs(want).max()
        assert err < 10 * p * cond * np.finfo(dtype).eps, (p, reg, err)


def test_matrices_and_outputs_are_64_byte_aligned():
    """workspace.aligned returns an aligned array as is and copies a misaligned one; the
    oracles' outputs (pooled or not) start on a 64-byte boundary."""
    buf = np.zeros(8 * 101 + 64, np.uint8)
    start = -buf.ctypes.data % 64 + 16
    off = buf[start:start + 800].view(np.float64).reshape(10, 10)
    off[...] = np.arange(100.0).reshape(10, 10)
    copy = workspace.aligned(off)
    assert copy is not off and copy.ctypes.data % 64 == 0 and copy.flags.c_contiguous
    np.testing.assert_array_equal(copy, off)
    assert workspace.aligned(copy) is copy
    assert workspace.aligned(off.T).flags.c_contiguous
    np.testing.assert_array_equal(workspace.aligned(off.T), off.T)
    params, x, y = make_case(T=9, B=4, d=2, p=6, k=3, loss="cross_entropy", dtype=np.float64,
                             seed=4)
    for floor in (0, 2**40):                             # pooled, then plain allocations
        workspace.clear()
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(workspace, "WORKSPACE_MIN_BYTES", floor)
            for method in ("bp", "tp", "dtp"):
                res = tpref.oracle(method, params, x, y, loss="cross_entropy", gamma_h=0.1,
                                   reg=0.5)
                for a in (res.hidden, res.displacements):
                    assert a is None or a.ctypes.data % 64 == 0, method
    workspace.clear()


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("method, update", [("tp", "local"), ("tp", "through_time"), ("bp", "local")])
def test_denormal_prone(method, update, dtype):
    """Tiny gamma_h and fast decay: the reference runs into subnormals, the kernels flush.

    gamma_h is chosen so that lam_T is a normal number and lam_t (TP) or dL/dh_t (BP, long T,
    contracting W_hh) falls through the subnormal range within the sequence.
    """
    T = 250 if method == "tp" else 400
    params, x, y = make_case(T=T, B=3, d=2, p=5, k=3, loss="cross_entropy", dtype=dtype, seed=11)
    params["W_hh"] = params["W_hh"] * params["W_hh"].dtype.type(0.05 if method == "bp" else 1.0)
    kw = dict(loss="cross_entropy", update=update)
    if method == "tp":
        tiny_gamma = 1e-290 if dtype == np.float64 else 1e-28
        kw.update(gamma_h=tiny_gamma, reg=50.0)
    comp, ref = compare_oracles(method, params, x, y, dtype, **kw)
    if method == "tp":
        # the reference did go through the subnormal range ...
        tiny = np.finfo(dtype).tiny
        ref_lam = tpref.oracle(method, params, x, y, backend="numpy", **kw).displacements
        assert np.any((ref_lam != 0) & (np.abs(ref_lam) < tiny))
        # ... while the kernel's recursion (in units of s) never holds a subnormal number
        run = numba_rnn.LinearizedTP(core.regularized_pinv_map(params["W_hh"], kw["reg"]),
                                     comp.hidden, ref_lam[-1], "tanh", 1e-3)
        mu = run.recursion()
        assert run.s != 1                                 # the scaled path
        assert not np.any((mu != 0) & (np.abs(mu) < tiny))
        assert np.any(mu[0] == 0) and np.all(np.abs(mu[-1]) <= 2.0)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_dtp_tiny_gamma(dtype):
    """DTP with tiny gamma_h: h_t + lam_t rounds to h_t, so both give exactly 0 before T."""
    params, x, y = make_case(T=12, B=3, d=2, p=5, k=3, loss="cross_entropy", dtype=dtype, seed=3)
    gamma = 1e-290 if dtype == np.float64 else 1e-28
    comp, ref = compare_oracles("dtp", params, x, y, dtype, loss="cross_entropy",
                                gamma_h=gamma, reg=1.0)
    assert np.all(comp.displacements[:-1] == 0.0)


def test_dtp_cancellation_noise():
    """DTP, gamma_h = 1e-8: the reference's f^{-1}(v) - f^{-1}(h) cancels ~eps |f^{-1}(h)|.

    The kernel subtracts before the product (numba_rnn, point 2): its lam_{T-1} is
    [atanh(v1) - atanh(v0)] P with v1 = pi(h_T + lam_T), v0 = pi(h_T). Checked against that
    expression computed without cancellation, atanh(v1) - atanh(v0) = atanh((v1 - v0) /
    (1 - v1 v0)) (v1 - v0 is exact): equal up to the rounding of its two atanh values (vatanh,
    < 2 ulp each, relative to |atanh(v0)|: ~1e-16 here against lam_{T-1} ~ 5e-9, the same
    order as the reference's noise at that step); and the whole kernel output agrees with
    the reference to the reference's noise.
    """
    params, x, y = make_case(T=10, B=3, d=2, p=5, k=3, loss="cross_entropy",
                             dtype=np.float64, seed=21)
    gamma_h = 1e-8
    hidden = reference.rnn_forward(params, x)
    f_inv_scale = np.max(np.abs(np.arctanh(np.clip(hidden, -1 + 1e-3, 1 - 1e-3))))
    lam_scale = gamma_h * 0.1                            # ~ max |lam_T| here (g_T ~ 1 / B)
    noise = 1e3 * np.finfo(np.float64).eps * (1.0 + f_inv_scale) / lam_scale   # relative
    comp, ref = compare_oracles("dtp", params, x, y, np.float64, noise=noise,
                                loss="cross_entropy", gamma_h=gamma_h, reg=1.0)
    lam = comp.displacements
    v1 = np.clip(hidden[-1] + lam[-1], -1 + 1e-3, 1 - 1e-3)         # (B, p)
    v0 = np.clip(hidden[-1], -1 + 1e-3, 1 - 1e-3)
    z = np.arctanh((v1 - v0) / (1.0 - v1 * v0))                     # no cancellation
    P = core.regularized_pinv_map(params["W_hh"], 1.0)
    want = z @ P                                                    # (B, p) lam_{T-1}
    atanh_rounding = 4 * np.finfo(np.float64).eps * np.max(np.abs(np.arctanh(v0)))
    floor = atanh_rounding * np.max(np.sum(np.abs(P), axis=0))     # through the product
    testing.assert_close(lam[-2], want, name="lam_{T-1}", rtol=1e-12, atol_scale=0.0,
                         noise=floor)
    assert floor < 1e-5 * np.max(np.abs(want))                      # a bound that says something


# ----------------------------------------------------------------------------------------------
# the twins, piece by piece


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_forward_twin(activation, dtype):
    params, x, _ = make_case(T=30, B=5, d=4, p=7, k=2, loss="mse", dtype=dtype, seed=8)
    comp = numba_rnn.rnn_forward(params, x, activation)
    ref = reference.rnn_forward(as64(params), x.astype(np.float64), activation)
    assert_close(comp, ref, dtype, "hidden")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("window", [1, 7, 30, 64])
def test_last_hidden_in_windows_is_the_forward_s_last_state(window, dtype):
    """rnn_last_hidden (the evaluation's forward) gives rnn_forward's h_T bit for bit, whatever
    the window, and the numba evaluation forward equals the reference's within the policy;
    run on blocks of samples (2 + 2 + 1 of 5), it equals it up to the BLAS path's rounding."""
    from tpref.models.cells import last_hidden
    params, x, _ = make_case(T=30, B=5, d=4, p=7, k=2, loss="mse", dtype=dtype, seed=8)
    full = numba_rnn.rnn_forward(params, x)[-1]
    last = numba_rnn.rnn_last_hidden(params, x, window=window)
    assert last.dtype == full.dtype and np.array_equal(last, full)
    blocks = numba_rnn.rnn_last_hidden(params, x, window=window, samples=2)
    assert blocks.dtype == full.dtype
    testing.assert_close(blocks, full, name="h_T by blocks of samples", dtype=dtype)
    assert np.array_equal(last_hidden("rnn", params, x, backend="numba"), full)
    ref = last_hidden("rnn", as64(params), x.astype(np.float64), backend="numpy")
    assert_close(last, ref, dtype, "h_T")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("through_time", [False, True], ids=["local", "through_time"])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_fused_dtp_pass_gives_the_bits_of_its_two_passes(activation, through_time, dtype,
                                                         monkeypatch):
    """dtp_backward (what the "dtp" oracle runs) = the displacements of _propagate_difference,
    then _transition_directions on them, bit for bit, across several blocks of products."""
    params, x, y = make_case(T=23, B=3, d=2, p=6, k=2, loss="mse", dtype=dtype, seed=12)
    hidden = numba_rnn.rnn_forward(params, x, activation)
    lam_T = dtype(1e-2) * np.random.default_rng(3).standard_normal(hidden.shape[1:]).astype(dtype)
    W_hh = workspace.aligned(params["W_hh"])
    s = core.power_of_two_scale(lam_T)
    monkeypatch.setattr(numba_rnn, "_chunk", lambda T, B, p: 4)   # several blocks of products
    with numba_rnn.blas_threads():
        lam, direction = numba_rnn.dtp_backward(params, W_hh, hidden, x, lam_T, 1.0, activation,
                                                CLIP_EPS, through_time)
        lam2 = numba_rnn._difference_displacements(params, hidden, lam_T, 1.0, activation,
                                                   CLIP_EPS)
        direction2 = numba_rnn._directions(W_hh, hidden, x, lam2, -1.0 / s,
                                           np.zeros(hidden.shape[1:], dtype), through_time,
                                           activation, s)
    assert np.array_equal(lam, lam2)
    assert all(np.array_equal(direction[k], direction2[k]) for k in direction2)
    assert np.max(np.abs(direction["W_hh"])) > 0


@pytest.mark.parametrize("through_time", [False, True])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_transition_backward_twin(activation, through_time):
    params, x, _ = make_case(T=15, B=4, d=3, p=6, k=2, loss="mse", dtype=np.float64, seed=9)
    hidden = reference.rnn_forward(params, x, activation)
    grad_h = np.random.default_rng(4).normal(size=hidden.shape) * 1e-3
    comp = numba_rnn.transition_backward(params, x, hidden, grad_h, activation, through_time)
    ref = reference.transition_backward(params, x, hidden, grad_h, activation, through_time)
    for name in ref:
        assert_close(comp[name], ref[name], np.float64, name)


@pytest.mark.parametrize("difference", [False, True])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_propagate_displacements_twin(activation, difference):
    params, x, _ = make_case(T=15, B=4, d=3, p=6, k=2, loss="mse", dtype=np.float64, seed=10)
    hidden = reference.rnn_forward(params, x, activation)
    lam_T = np.random.default_rng(5).normal(size=hidden.shape[1:]) * 1e-2
    args = (params, x, hidden, lam_T, 0.3, activation, 1e-3, difference)
    assert_close(numba_rnn.propagate_displacements(*args),
                 reference.propagate_displacements(*args), np.float64, "lam")


# ----------------------------------------------------------------------------------------------
# contract of the backend


def test_singular_inverse_raises():
    params, x, y = make_case(T=4, B=2, d=2, p=4, k=2, loss="cross_entropy", dtype=np.float64, seed=1)
    params["W_hh"][:, 0] = 0.0                           # singular W_hh, reg = 0
    with pytest.raises(tpref.RegularizedInverseError):
        tpref.oracle("tp", params, x, y, loss="cross_entropy", gamma_h=0.1, reg=0.0,
                     backend="numba")


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("method", ["bp", "tp", "dtp"])
def test_targets_formed_on_access(method, backend):
    """OracleResult.targets is hidden + displacements, formed on first access, then the same
    array; None for BP; the result stays frozen (tpref/oracle.py)."""
    params, x, y = make_case(T=5, B=2, d=2, p=4, k=3, loss="cross_entropy", dtype=np.float32,
                             seed=3)
    kw = dict(gamma_h=0.1, reg=1.0) if method != "bp" else {}
    res = tpref.oracle(method, params, x, y, loss="cross_entropy", backend=backend, **kw)
    if method == "bp":
        assert res.targets is None
    else:
        v = res.targets
        assert v.shape == res.hidden.shape and v.dtype == res.hidden.dtype
        assert np.array_equal(v, res.hidden + res.displacements)
        assert res.targets is v
    with pytest.raises(AttributeError):
        res.hidden = None


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("method", ["bp", "tp"])
def test_same_bits_with_flush_to_zero(method, dtype):
    """No subnormal enters the kernels' arithmetic: FTZ/DAZ on or off gives the same bits.

    The reference differs under FTZ on this case (it computes with subnormals); the kernels
    must not. torch.set_flush_denormal toggles FTZ/DAZ for the calling thread.
    """
    torch = pytest.importorskip("torch")
    T = 250 if method == "tp" else 400
    params, x, y = make_case(T=T, B=3, d=2, p=5, k=3, loss="cross_entropy", dtype=dtype, seed=11)
    params["W_hh"] = params["W_hh"] * params["W_hh"].dtype.type(0.05 if method == "bp" else 1.0)
    kw = dict(loss="cross_entropy", backend="numba")
    if method == "tp":
        kw.update(gamma_h=1e-290 if dtype == np.float64 else 1e-28, reg=50.0)
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush denormals")
    try:
        on = tpref.oracle(method, params, x, y, **kw)
    finally:
        torch.set_flush_denormal(False)
    off = tpref.oracle(method, params, x, y, **kw)
    for name in off.direction:
        assert np.array_equal(on.direction[name], off.direction[name]), name
    if method == "tp":
        # displacements below the smallest normal are legitimately 0 under FTZ (outputs only)
        tiny = np.finfo(dtype).tiny
        normal = np.abs(off.displacements) >= tiny
        assert np.array_equal(on.displacements[normal], off.displacements[normal])


@pytest.mark.parametrize("method, update", CASES)
def test_batch_of_one_and_non_contiguous_params(method, update):
    """B = 1, and parameters in Fortran order or strided views: same results as the reference."""
    params, x, y = make_case(T=7, B=1, d=3, p=6, k=2, loss="cross_entropy", dtype=np.float64, seed=4)
    params["W_hh"] = np.asfortranarray(params["W_hh"])
    params["b_h"] = np.repeat(params["b_h"], 2)[::2]
    params["W_xh"] = np.asfortranarray(params["W_xh"])
    kw = dict(loss="cross_entropy", update=update)
    if method != "bp":
        kw.update(gamma_h=0.1, reg=1.0)
    compare_oracles(method, params, x, y, np.float64, **kw)


def test_dtp_hidden_and_displacements_are_two_views_of_one_block():
    """DTP writes both outputs into one (2, T+1, B, p) block: two C-contiguous views that
    never overlap."""
    params, x, y = make_case(7, 3, 2, 5, 3, "cross_entropy", np.float64, seed=11)
    res = tpref.oracle("dtp", params, x, y, loss="cross_entropy", gamma_h=0.05, reg=0.5)
    assert res.hidden.base is not None and res.hidden.base is res.displacements.base
    assert not np.shares_memory(res.hidden, res.displacements)
    assert res.hidden.flags.c_contiguous and res.displacements.flags.c_contiguous


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
@pytest.mark.parametrize("B", [1, 5])
def test_fast_output_backward_equals_the_reference(B, loss, dtype):
    """The output layer's loss, logits, (W_hy, b_y) gradients and dl/dh_T of the numba oracles
    (``numba_rnn.fast_output_backward``, one kernel) equal ``tpref.losses.output_backward``
    computed in float64; the loss in float64, the arrays in the params' dtype."""
    params, _, y = make_case(T=1, B=B, d=2, p=7, k=4, loss=loss, dtype=dtype, seed=5)
    h_T = np.tanh(np.random.default_rng(6).normal(size=(B, 7)) * 2).astype(dtype)
    value, out, grads, g_T = numba_rnn.fast_output_backward(params, h_T, y, loss)
    y64 = y if loss == "cross_entropy" else y.astype(np.float64)
    r_value, r_out, r_grads, r_g_T = reference.output_backward(as64(params),
                                                               h_T.astype(np.float64), y64, loss)
    assert isinstance(value, float)
    testing.assert_close(np.array(value), np.array(r_value), name="loss", dtype=dtype)
    for name, comp, ref in (("out", out, r_out), ("g_T", g_T, r_g_T),
                            ("W_hy", grads["W_hy"], r_grads["W_hy"]),
                            ("b_y", grads["b_y"], r_grads["b_y"])):
        assert comp.dtype == dtype and comp.shape == ref.shape, name
        assert_close(comp, ref, dtype, name)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
@pytest.mark.parametrize("update", ["local", "through_time"])
@pytest.mark.parametrize("scaled", [False, True], ids=["units_of_lam", "scaled"])
def test_tp_displacements_read_later_are_the_fused_pass_bits(scaled, update, activation, dtype):
    """numba "tp" carries its displacements through the fused pass without writing them and
    computes them when first read (numba_rnn.LinearizedTP): the values, bit for bit, of the
    same pass run with every displacement kept; the directions too. Read after other calls
    have reused the workspace, they are still this call's."""
    params, x, y = make_case(T=23, B=3, d=2, p=7, k=3, loss="cross_entropy", dtype=dtype,
                             seed=13)
    # scaled: lam_T so small that the pass runs in units of s < sqrt(FLUSH_TINY), not of lam
    gamma_h = (1e-200 if dtype == np.float64 else 1e-30) if scaled else 0.05
    kw = dict(loss="cross_entropy", gamma_h=gamma_h, reg=0.5, update=update,
              activation=activation)
    res = tpref.oracle("tp", params, x, y, **kw)
    assert "displacements" not in res.__dict__ and "targets" not in res.__dict__
    run = numba_rnn.LinearizedTP(
        core.regularized_pinv_map(params["W_hh"], 0.5), res.hidden.copy(),
        -dtype(gamma_h) * numba_rnn.fast_output_backward(params, res.hidden[-1], y,
                                                         "cross_entropy")[3],
        activation, CLIP_EPS)
    with numba_rnn.blas_threads():
        direction, lam = run.fused(workspace.aligned(params["W_hh"]), x,
                                   update == "through_time", keep=True)
    lam = lam.copy()
    assert np.any(lam[0] != 0)                            # the recursion reached t = 0
    for seed in (1, 2, 3):                                # the workspace goes round
        tpref.oracle("tp", *make_case(23, 3, 2, 7, 3, "cross_entropy", dtype, seed), **kw)
    got = res.displacements
    assert got.dtype == dtype and got.shape == res.hidden.shape
    np.testing.assert_array_equal(got, lam)
    assert res.displacements is got and np.array_equal(res.targets, res.hidden + got)
    for name in direction:
        np.testing.assert_array_equal(res.direction[name], direction[name])


@pytest.fixture
def pooled(monkeypatch):
    """Every output goes through the workspace (the test shapes are under its size floor)."""
    monkeypatch.setattr(workspace, "WORKSPACE_MIN_BYTES", 0)
    workspace.clear()
    yield
    workspace.clear()


def _data_pointer(a):
    return (a.base if a.base is not None else a).__array_interface__["data"][0]


@pytest.mark.parametrize("method, update", CASES)
def test_workspace_never_overwrites_a_result_the_caller_holds(pooled, method, update):
    """Results (or a mere view of one) kept by the caller keep their values through later
    calls; and a recycled buffer's stale contents never leak into a new result."""
    kw = dict(loss="cross_entropy", update=update)
    if method != "bp":
        kw.update(gamma_h=0.1, reg=1.0)
    cases = [make_case(9, 4, 2, 6, 3, "cross_entropy", np.float64, seed=s) for s in (1, 2, 3)]
    first = tpref.oracle(method, *cases[0], **kw)
    second = tpref.oracle(method, *cases[1], **kw)
    kept = {"hidden": first.hidden.copy(), "displacements": None}
    if method != "bp":
        kept["displacements"] = first.displacements.copy()
    view = second.hidden[4]                       # only a view of the second result survives
    view_copy = view.copy()
    del second
    for case in cases * 2:
        tpref.oracle(method, *case, **kw)          # dropped at once: free for reuse
    np.testing.assert_array_equal(first.hidden, kept["hidden"])
    if method != "bp":
        np.testing.assert_array_equal(first.displacements, kept["displacements"])
    np.testing.assert_array_equal(view, view_copy)
    # a recycled buffer gives the same bits as a fresh allocation
    recycled = tpref.oracle(method, *cases[2], **kw)
    workspace.clear()
    fresh = tpref.oracle(method, *cases[2], **kw)
    np.testing.assert_array_equal(recycled.hidden, fresh.hidden)
    if method != "bp":
        np.testing.assert_array_equal(recycled.displacements, fresh.displacements)
    for name in fresh.direction:
        np.testing.assert_array_equal(recycled.direction[name], fresh.direction[name])


@pytest.mark.parametrize("method", ["bp", "tp"])
def test_workspace_recycles_dropped_results(pooled, method):
    """A training loop (``res = oracle(...)``, which holds the previous result during the
    call) alternates between two buffers instead of allocating one per iteration; clear()
    forgets them."""
    params, x, y = make_case(9, 4, 2, 6, 3, "cross_entropy", np.float64, seed=5)
    kw = dict(loss="cross_entropy", gamma_h=0.1, reg=1.0)
    pointers = []
    res = None
    for _ in range(6):
        res = tpref.oracle(method, params, x, y, **kw)
        pointers.append(_data_pointer(res.hidden))
    assert len(set(pointers)) == 2 and pointers[0::2] == [pointers[0]] * 3
    assert workspace.kept_bytes() == 2 * res.hidden.nbytes    # TP: no displacements written
    del res
    workspace.clear()
    assert workspace.kept_bytes() == 0


def test_workspace_recycles_tp_displacements_read_in_a_loop(pooled, monkeypatch):
    """Reading every TP result's displacements in a ``res = oracle(...)`` loop allocates no
    new (T+1, B, p) array after the first two iterations: the displacements and the hidden
    states are recycled from separate pools, as without reading them."""
    params, x, y = make_case(9, 4, 2, 6, 3, "cross_entropy", np.float64, seed=5)
    kw = dict(loss="cross_entropy", gamma_h=0.1, reg=1.0)
    big = []
    allocate = workspace.aligned_empty

    def counted(shape, dtype):
        if np.prod(shape) >= 10 * 4 * 6:                 # a (T+1, B, p) output
            big.append(shape)
        return allocate(shape, dtype)

    monkeypatch.setattr(workspace, "aligned_empty", counted)
    res = None
    for i in range(8):
        res = tpref.oracle("tp", params, x, y, **kw)
        assert res.displacements.shape == (10, 4, 6)
        if i == 1:
            warm = len(big)
    assert len(big) == warm <= 4
    assert workspace.kept_bytes() <= 4 * res.hidden.nbytes


def test_workspace_keeps_a_bounded_number_of_shapes(pooled):
    """Only config.WORKSPACE_SHAPES shapes are kept, WORKSPACE_KEEP buffers each."""
    from tpref.config import WORKSPACE_KEEP, WORKSPACE_SHAPES
    sizes = []
    for n in range(1, WORKSPACE_SHAPES + 4):
        held = [workspace.empty((n, 3), np.float64) for _ in range(WORKSPACE_KEEP + 1)]
        sizes.append(held[0].nbytes)
        del held
    assert workspace.kept_bytes() == WORKSPACE_KEEP * sum(sizes[-WORKSPACE_SHAPES:])
    small = workspace.empty((2, 3), np.float32)
    assert small.shape == (2, 3) and small.dtype == np.float32 and small.flags.c_contiguous


def test_workspace_keeps_at_most_max_bytes(pooled, monkeypatch):
    """At most config.WORKSPACE_MAX_BYTES stay kept (least recently used shapes go first), and
    an array over WORKSPACE_MAX_BYTES / WORKSPACE_KEEP is never kept."""
    monkeypatch.setattr(workspace, "WORKSPACE_MAX_BYTES", 4000)
    for n in (10, 20, 30):                              # 2 buffers of n * 40 bytes per shape
        a, b = workspace.empty((n, 5), np.float64), workspace.empty((n, 5), np.float64)
        del a, b
        assert workspace.kept_bytes() <= 4000
    assert workspace.kept_bytes() == 2 * (20 + 30) * 40  # shape (10, 5) was forgotten
    big = workspace.empty((60, 5), np.float64)          # 2400 B > 4000 / 2: not kept
    assert workspace.kept_bytes() == 2 * (20 + 30) * 40 and big.shape == (60, 5)


def test_oracle_calls_from_threads_do_not_share_buffers(pooled):
    """The kernels release the GIL: concurrent oracle calls from several threads, each on its
    own data, give what the same calls give one after the other."""
    from concurrent.futures import ThreadPoolExecutor
    kw = dict(loss="cross_entropy", gamma_h=0.1, reg=1.0)
    cases = [make_case(40, 8, 2, 16, 3, "cross_entropy", np.float64, seed=s) for s in range(8)]
    expected = [tpref.oracle("tp", *c, **kw).displacements.copy() for c in cases]

    def run(i):
        out = []
        for _ in range(5):
            res = tpref.oracle("tp", *cases[i], **kw)
            out.append(res.displacements.copy())
            del res
        return out

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, range(len(cases))))
    for i, runs in enumerate(results):
        for lam in runs:
            np.testing.assert_array_equal(lam, expected[i])


def test_kernels_calling_the_vector_math_contract_multiply_adds():
    """vtanh, vatanh and vlogit are accurate as measured only with fused multiply-adds
    (numba_math.CONTRACT): every Numba kernel that calls one is compiled with that flag."""
    import inspect
    from numba.core.registry import CPUDispatcher
    from tpref.kernels import numba_gru
    callers = []
    for module in (numba_rnn, numba_gru):
        for name, obj in vars(module).items():
            if isinstance(obj, CPUDispatcher):
                src = inspect.getsource(obj.py_func)
                if any(f"{fn}(" in src for fn in ("vtanh", "vatanh", "vlogit")):
                    callers.append(name)
                    flags = set(obj.targetoptions.get("fastmath") or ())
                    assert numba_math.CONTRACT <= flags, f"{name}: no fastmath=CONTRACT"
    assert {"_forward_kernel", "_propagate_difference", "gru_forward_kernel_vec"} <= set(callers)
