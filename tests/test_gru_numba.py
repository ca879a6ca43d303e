"""The Numba GRU kernels equal the NumPy reference (config.RTOL per dtype), every option."""

import numpy as np
import pytest

import tpref
from tpref.config import GRU_PARAM_NAMES
from tpref.kernels import numba_gru, numba_math
from tpref.kernels.numba_gru import gru_forward_kernel_vec, gru_forward_numba
from tpref.models.inverse import RegularizedInverseError
from tpref.models.gru import gru_forward

from _gru_util import assert_close, problem

CASES = [("bp", "per_gate", "local"), ("tp", "per_gate", "local"),
         ("tp", "per_gate", "through_time"), ("tp", "exact", "local"),
         ("tp", "exact", "through_time"), ("tp", "authors", "local"),
         ("tp", "authors", "through_time")]


def compare(ref, comp, dtype, what):
    assert_close(comp.hidden, ref.hidden, f"{what}: hidden", dtype)
    assert_close(comp.output, ref.output, f"{what}: output", dtype)
    rel = float(10 * np.finfo(dtype).eps ** 0.5) if dtype == np.float32 else 1e-12
    assert comp.loss == pytest.approx(ref.loss, rel=rel)
    if ref.displacements is None:
        assert comp.displacements is None and comp.targets is None
    else:
        assert_close(comp.displacements, ref.displacements, f"{what}: displacements", dtype)
        assert_close(comp.targets, ref.targets, f"{what}: targets", dtype)
    assert tuple(comp.direction) == GRU_PARAM_NAMES
    for name in GRU_PARAM_NAMES:
        assert comp.direction[name].dtype == dtype
        assert_close(comp.direction[name], ref.direction[name], f"{what}: direction {name}", dtype)


@pytest.mark.parametrize("method, inverse, update", CASES)
@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_numba_equals_reference_float64(method, inverse, update, loss):
    params, x, y = problem(T=12, B=4, d=2, p=5, k=3, seed=31, loss=loss)
    kw = dict(loss=loss, cell="gru", gamma_h=0.05, reg=0.5, gru_inverse=inverse, update=update)
    ref = tpref.oracle(method, params, x, y, backend="numpy", **kw)
    comp = tpref.oracle(method, params, x, y, backend="numba", **kw)
    compare(ref, comp, np.float64, f"{method}/{inverse}/{update}")


@pytest.mark.parametrize("method, inverse, update", CASES[:3] + CASES[-2:])
def test_numba_equals_reference_float32(method, inverse, update):
    params, x, y = problem(T=12, B=4, d=2, p=5, k=3, seed=32, dtype=np.float32)
    kw = dict(loss="cross_entropy", cell="gru", gamma_h=0.05, reg=0.5, gru_inverse=inverse,
              update=update)
    ref = tpref.oracle(method, params, x, y, backend="numpy", **kw)
    comp = tpref.oracle(method, params, x, y, backend="numba", **kw)
    compare(ref, comp, np.float32, f"float32 {method}/{inverse}/{update}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("simd", [True, False])
def test_all_forward_paths_equal_reference_long_sequence(simd, dtype):
    """The vectorized kernel (vtanh) and the plain jitted loop (libm's tanh), both dtypes."""
    params, x, _ = problem(T=200, B=3, d=1, p=8, seed=33, dtype=dtype)
    h_ref, c_ref = gru_forward(params, x)
    h, c = gru_forward_numba(params, x, simd=simd)
    assert h.dtype == dtype
    assert_close(h, h_ref, "hidden", dtype)
    for name in ("r", "z", "n", "g"):
        assert_close(c[name], c_ref[name], f"gate {name}", dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_vectorized_forward_computes_vtanh(dtype):
    """With W_x = I, W_h = 0 and biases 0 the kernel's gates are tanh of its inputs alone:
    n = tanh(x_n) and r, z = (1 + tanh(x / 2)) / 2. They equal numba_math.vtanh bit for bit
    (whose accuracy tests/test_numba_backend.py checks) and, in float32, are within 2 ulp of
    tanh in float64 over a dense sweep of [-12, 12] (vtanh: 1.29 ulp; the rational tanh it
    replaced was ~3 ulp)."""
    T, B, p = 100, 40, 10
    xproj = np.random.default_rng(36).uniform(-12, 12, size=(T, B, 3 * p)).astype(dtype)
    xproj[:, :, 2 * p:] = np.linspace(-12, 12, T * B * p).reshape(T, B, p)
    hidden = np.zeros((T + 1, B, p), dtype=dtype)
    R, Z, N, G = (np.empty((T, B, p), dtype=dtype) for _ in range(4))
    zeros = np.zeros(3 * p, dtype)                               # W_x = I, b_x = 0: x_t W_x^T = x_t
    gru_forward_kernel_vec(xproj, np.eye(3 * p, dtype=dtype), zeros, np.zeros((p, 3 * p), dtype),
                           zeros, hidden, R, Z, N, G, dtype(1))
    bits = lambda a: a.view(f"u{a.itemsize}")
    vtanh = lambda u: numba_math.vtanh_array(np.ascontiguousarray(u), np.empty_like(u))
    half = dtype(0.5)
    assert np.array_equal(bits(N), bits(vtanh(xproj[:, :, 2 * p:])))
    assert np.array_equal(bits(R), bits(half * (dtype(1) + vtanh(half * xproj[:, :, :p]))))
    assert np.array_equal(bits(Z), bits(half * (dtype(1) + vtanh(half * xproj[:, :, p:2 * p]))))
    if dtype == np.float32:
        ref = np.tanh(xproj[:, :, 2 * p:].astype(np.float64))
        _, e = np.frexp(np.abs(ref))
        ulp = np.ldexp(1.0, e - 24)                               # float32 ulp of the result
        assert np.max(np.abs(N - ref) / ulp) <= 2.0


def test_kernels_calling_vtanh_contract_multiply_adds():
    """vtanh is accurate as measured only with fused multiply-adds: every GRU kernel that calls
    it is compiled with fastmath=CONTRACT (as tests/test_numba_backend.py checks numba_rnn's)."""
    import inspect
    from numba.core.registry import CPUDispatcher
    callers = []
    for name, obj in vars(numba_gru).items():
        if isinstance(obj, CPUDispatcher) and "vtanh(" in inspect.getsource(obj.py_func):
            callers.append(name)
            flags = set(obj.targetoptions.get("fastmath") or ())
            assert numba_math.CONTRACT <= flags, f"{name} is compiled without fastmath=CONTRACT"
    assert "gru_forward_kernel_vec" in callers


def test_reg_zero_per_gate_raises_exact_inverts_diag_z():
    """W_h* = 0 and reg = 0: the per-gate factors (W_h*^T W_h*) are singular and raise, while
    the exact inverse of J_t = diag(z_t) is well defined: lam_{t-1} = lam_t / z_t."""
    params, x, y = problem(seed=34)
    for gate in "rzn":
        params["W_h" + gate][:] = 0.0
    kw = dict(loss="cross_entropy", cell="gru", gamma_h=0.1, reg=0.0)
    z = gru_forward(params, x)[1]["z"]                            # (T, B, p)
    for backend in ("numpy", "numba"):
        with pytest.raises(RegularizedInverseError):
            tpref.oracle("tp", params, x, y, gru_inverse="per_gate", backend=backend, **kw)
        res = tpref.oracle("tp", params, x, y, gru_inverse="exact", backend=backend, **kw)
        lam = res.displacements
        assert_close(lam[:-1], lam[1:] / z, f"{backend}: lam_(t-1) = lam_t / z_t")


@pytest.mark.slow
@pytest.mark.parametrize("method", ["bp", "tp"])
def test_numba_equals_reference_fashion_mnist_size(method):
    """The FashionMNIST configuration (T = 784, B = 16, d = 1, p = 100): long recursions."""
    rng = np.random.default_rng(35)
    params = tpref.init_gru(1, 100, 10, seed=35)
    x = rng.normal(size=(784, 16, 1))
    y = rng.integers(0, 10, size=16)
    kw = dict(loss="cross_entropy", cell="gru", gamma_h=1e-2, reg=1.0)
    ref = tpref.oracle(method, params, x, y, backend="numpy", **kw)
    comp = tpref.oracle(method, params, x, y, backend="numba", **kw)
    compare(ref, comp, np.float64, f"T=784 {method}")


ALL_CASES = [("bp", "per_gate", "through_time")] + CASES[1:]


@pytest.mark.parametrize("method, inverse, update", ALL_CASES)
def test_numba_equals_reference_over_several_blocks(method, inverse, update):
    """T = 300, B = 4: the backward pass turns its deltas into directions by blocks of
    config.PRODUCT_BLOCK_ROWS // B = 128 steps (numba_gru._chunk): two full blocks and a
    partial one, every block's rows and its boundaries with the carried derivatives and
    displacements."""
    assert numba_gru._chunk(300, 4) == 128
    params, x, y = problem(T=300, B=4, d=2, p=5, k=3, seed=37, noise=0.1)
    kw = dict(loss="cross_entropy", cell="gru", gamma_h=0.05, reg=0.5, gru_inverse=inverse,
              update=update)
    ref = tpref.oracle(method, params, x, y, backend="numpy", **kw)
    comp = tpref.oracle(method, params, x, y, backend="numba", **kw)
    compare(ref, comp, np.float64, f"T=300 {method}/{inverse}/{update}")


@pytest.fixture
def pooled(monkeypatch):
    """Every output goes through the workspace (the test shapes are under its size floor)."""
    from tpref.kernels import workspace
    monkeypatch.setattr(workspace, "WORKSPACE_MIN_BYTES", 0)
    workspace.clear()
    yield workspace
    workspace.clear()


@pytest.mark.parametrize("method, inverse, update", ALL_CASES)
def test_workspace_never_overwrites_a_gru_result_the_caller_holds(pooled, method, inverse,
                                                                    update):
    """The hidden states and displacements live in reused buffers (and the gates in one
    scratch buffer): a result held by the caller, or a view of one, keeps its values through
    later calls, and a recycled buffer gives the bits of a fresh one."""
    kw = dict(loss="cross_entropy", cell="gru", gamma_h=0.1, reg=0.5, gru_inverse=inverse,
              update=update)
    cases = [problem(T=9, B=3, d=2, p=4, k=3, seed=s) for s in (40, 41, 42)]
    first = tpref.oracle(method, *cases[0], **kw)
    kept = {name: a.copy() for name, a in vars_of(first).items()}
    second = tpref.oracle(method, *cases[1], **kw)
    view = second.hidden[4]
    view_copy = view.copy()
    del second
    for case in cases * 2:
        tpref.oracle(method, *case, **kw)                         # dropped at once
    for name, a in vars_of(first).items():
        np.testing.assert_array_equal(a, kept[name], err_msg=name)
    np.testing.assert_array_equal(view, view_copy)
    recycled = tpref.oracle(method, *cases[2], **kw)
    pooled.clear()
    fresh = tpref.oracle(method, *cases[2], **kw)
    for name, a in vars_of(fresh).items():
        np.testing.assert_array_equal(vars_of(recycled)[name], a, err_msg=name)


def vars_of(res):
    """The arrays of a result by name (hidden, displacements, directions)."""
    out = {"hidden": res.hidden, **{"direction " + n: a for n, a in res.direction.items()}}
    if res.displacements is not None:
        out["displacements"] = res.displacements
    return out


@pytest.mark.parametrize("method", ["bp", "tp"])
def test_gru_workspace_recycles_dropped_results(pooled, method):
    """``res = oracle(...)`` in a loop (the previous result held during the call) alternates
    between two buffers, TP's hidden states and displacements in one block."""
    params, x, y = problem(T=9, B=3, d=2, p=4, k=3, seed=43)
    kw = dict(loss="cross_entropy", cell="gru", gamma_h=0.1, reg=0.5)
    pointers = []
    res = None
    for _ in range(6):
        res = tpref.oracle(method, params, x, y, **kw)
        base = res.hidden.base if res.hidden.base is not None else res.hidden
        pointers.append(base.__array_interface__["data"][0])
    assert len(set(pointers)) == 2 and pointers[0::2] == [pointers[0]] * 3
