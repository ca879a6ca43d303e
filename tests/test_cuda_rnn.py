"""numba.cuda twins (tpref.kernels.cuda_rnn) equal the NumPy reference, under the simulator or a GPU.

Without a GPU, the CUDA kernels run in numba's simulator, which must be chosen before numba is
imported: the normal test run therefore re-runs this file in a subprocess with
NUMBA_ENABLE_CUDASIM=1 (test_under_simulator, a few seconds). In that subprocess, or on a
machine with a GPU, the equality tests run in-process, with THREADS_PER_BLOCK = 4 (threads
stride over several units each) and 8 (some threads idle at the barriers) and tiles of 2 and 3
in the directions kernel on tiny shapes, and
with the default block size on the pixel-MNIST shapes (GPU only: the simulator runs every
thread as a Python thread).
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from numba import cuda

import tpref
from cases import check_safe_to_hold
from tpref.config import F32_REF_FACTOR
from tpref.methods import reference
from tpref.testing import assert_close

IN_CUDA = cuda.is_available()
SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


@pytest.mark.skipif(IN_CUDA, reason="CUDA (or the simulator) is available: tested in-process")
def test_under_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "passed" in proc.stdout and "skipped" in proc.stdout


needs_cuda = pytest.mark.skipif(not IN_CUDA, reason="needs a GPU or NUMBA_ENABLE_CUDASIM=1")
needs_gpu = pytest.mark.skipif(not IN_CUDA or SIMULATED, reason="needs a real GPU")


@pytest.fixture(params=[(4, 2), (8, 3)])
def small_blocks(request, monkeypatch):
    """Threads per block of the time loops (4 < p: threads stride; 8 > p: some idle) and tile
    side of the directions kernel (several tiles in each direction, partial ones at the edges)."""
    return _patch_blocks(monkeypatch, *request.param)


@pytest.fixture
def one_small_block(monkeypatch):
    """As ``small_blocks`` with its first setting only (for the whole-oracle tests)."""
    return _patch_blocks(monkeypatch, 4, 2)


def _patch_blocks(monkeypatch, threads, tile):
    from tpref.kernels import cuda_rnn
    monkeypatch.setattr(cuda_rnn, "THREADS_PER_BLOCK", threads)
    monkeypatch.setattr(cuda_rnn, "DIRECTIONS_TILE", tile)
    return cuda_rnn


def case(T=6, B=3, d=2, p=5, k=3, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    params = tpref.init_rnn(d, p, k, seed=rng)
    params["b_h"] = 0.3 * rng.normal(size=p)
    x = rng.normal(size=(T, B, d))
    return {n: a.astype(dtype) for n, a in params.items()}, x.astype(dtype)


def as64(params):
    return {n: a.astype(np.float64) for n, a in params.items()}


def close(comp, ref64, ref_own, name):
    """tpref's policy for comp's dtype against the float64 reference; in float32, also
    config.F32_REF_FACTOR x the float32 reference's own error (as tests/test_numba_backend.py)."""
    noise = 0.0
    if comp.dtype == np.float32:
        noise = F32_REF_FACTOR * float(np.max(np.abs(ref_own.astype(np.float64) - ref64)))
    assert_close(comp, ref64, name=name, dtype=comp.dtype, noise=noise)


def check_forward(cuda_rnn, params, x, activation):
    hidden = cuda_rnn.rnn_forward(params, x, activation)
    assert hidden.dtype == x.dtype
    ref = reference.rnn_forward(as64(params), x.astype(np.float64), activation)
    close(hidden, ref, reference.rnn_forward(params, x, activation), "hidden")


def check_tp(cuda_rnn, params, x, activation, gamma, reg):
    hidden = reference.rnn_forward(params, x, activation)            # in params' dtype
    lam_T = (np.random.default_rng(2).normal(size=hidden.shape[1:]) * gamma).astype(x.dtype)
    args = (params, x, hidden, lam_T, reg, activation, 1e-3, False)
    lam = cuda_rnn.propagate_displacements(*args)
    assert lam.dtype == x.dtype
    ref = reference.propagate_displacements(as64(params), x.astype(np.float64),
                                            hidden.astype(np.float64), lam_T.astype(np.float64),
                                            *args[4:])
    close(lam, ref, reference.propagate_displacements(*args), "lam")


@needs_cuda
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_forward_equals_reference(small_blocks, activation, dtype):
    params, x = case(dtype=dtype)
    check_forward(small_blocks, params, x, activation)


@needs_cuda
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_tp_displacements_equal_reference(small_blocks, activation, dtype):
    params, x = case(seed=1, dtype=dtype)
    check_tp(small_blocks, params, x, activation, 1e-2, 0.5)


@needs_cuda
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tp_scaled_pass_equals_reference(one_small_block, dtype):
    """gamma_h so small that the recursion runs in units of s < sqrt(FLUSH_TINY), with the
    CPU kernels' flush threshold (core.tp_units; it once underflowed to 0 here): the
    displacements, and the oracle's directions made from them, still equal the reference."""
    gamma = 1e-200 if dtype == np.float64 else 1e-30
    params, x = case(seed=1, dtype=dtype)
    check_tp(one_small_block, params, x, "tanh", gamma, 0.5)
    for update in ("local", "through_time"):
        check_oracle(params, x, np.array([0, 2, 1]), "tp", update, "tanh", "cross_entropy",
                     gamma_h=gamma)


@needs_cuda
def test_difference_tp_not_ported(small_blocks):
    params, x = case()
    hidden = reference.rnn_forward(params, x)
    with pytest.raises(NotImplementedError):
        small_blocks.propagate_displacements(params, x, hidden, hidden[-1], 1.0, "tanh", 1e-3, True)


@needs_cuda
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
@pytest.mark.parametrize("through_time", [True, False])
def test_transition_backward_equals_reference(small_blocks, through_time, activation, dtype):
    params, x = case(seed=4, dtype=dtype)
    hidden = reference.rnn_forward(params, x, activation)
    grad_h = np.random.default_rng(5).normal(size=hidden.shape).astype(dtype)
    got = small_blocks.transition_backward(params, x, hidden, grad_h, activation, through_time)
    ref64 = reference.transition_backward(as64(params), x.astype(np.float64),
                                          hidden.astype(np.float64), grad_h.astype(np.float64),
                                          activation, through_time)
    ref_own = reference.transition_backward(params, x, hidden, grad_h, activation, through_time)
    for name in ref64:
        assert got[name].dtype == dtype
        close(got[name], ref64[name], ref_own[name], name)


ORACLE_CASES = [("bp", "local", "tanh", "cross_entropy"), ("bp", "local", "sigmoid", "mse"),
                ("tp", "local", "tanh", "cross_entropy"), ("tp", "through_time", "tanh", "mse"),
                ("tp", "local", "sigmoid", "cross_entropy"),
                ("tp", "through_time", "sigmoid", "cross_entropy")]


def check_oracle(params, x, y, method, update, activation, loss, gamma_h=0.1, reg=0.5):
    kw = dict(loss=loss, gamma_h=gamma_h, reg=reg, update=update, activation=activation)
    got = tpref.oracle(method, params, x, y, backend="cuda", **kw)
    ref64 = tpref.oracle(method, as64(params), x.astype(np.float64),
                         y if loss == "cross_entropy" else y.astype(np.float64), backend="numpy", **kw)
    ref_own = tpref.oracle(method, params, x, y, backend="numpy", **kw)
    close(got.hidden, ref64.hidden, ref_own.hidden, "hidden")
    if method == "tp":
        close(got.displacements, ref64.displacements, ref_own.displacements, "displacements")
    else:
        assert got.displacements is None
    for name in ref64.direction:
        close(got.direction[name], ref64.direction[name], ref_own.direction[name], name)
    assert abs(got.loss - ref64.loss) <= 1e-10 * abs(ref64.loss) + (1e-4 if x.dtype == np.float32 else 0)


@needs_cuda
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("method,update,activation,loss", ORACLE_CASES)
def test_oracle_cuda_equals_numpy(one_small_block, method, update, activation, loss, dtype):
    params, x = case(seed=6, dtype=dtype)
    rng = np.random.default_rng(7)
    y = rng.integers(0, 3, size=3) if loss == "cross_entropy" else rng.normal(size=(3, 3)).astype(dtype)
    check_oracle(params, x, y, method, update, activation, loss)


@needs_cuda
@pytest.mark.parametrize("method", ["bp", "tp"])
def test_oracle_cuda_result_is_safe_to_hold(one_small_block, method):
    """Edits to the inputs and attempted edits to the result after the call change nothing
    that is read later (tests/test_results_safe.py, for the CPU backends)."""
    params, x = case(seed=8, dtype=np.float64)
    kw = dict(loss="cross_entropy", gamma_h=0.1, reg=1.0) if method == "tp" else dict(
        loss="cross_entropy")
    check_safe_to_hold(tpref.oracle, "cuda", method, params, x, np.array([0, 2, 1]), **kw)


@needs_cuda
@pytest.mark.parametrize("kw,match", [
    (dict(method="dtp"), "'bp' and 'tp' only"),
    (dict(cell="gru"), "'bp' and 'tp' only"),
])
def test_oracle_cuda_refuses_what_is_not_ported(kw, match):
    params, x = case()
    args = dict(method="tp", loss="cross_entropy", gamma_h=0.1, reg=1.0, backend="cuda")
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        tpref.oracle(args.pop("method"), params, x, np.zeros(3, int), **args)


@pytest.mark.skipif(IN_CUDA, reason="a GPU or the simulator is present")
def test_oracle_cuda_without_gpu_is_a_clear_error():
    params, x = case()
    with pytest.raises(ValueError, match="backend 'cuda' is not available"):
        tpref.oracle("bp", params, x, np.zeros(3, int), loss="cross_entropy", backend="cuda")


@needs_gpu
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mnist_shapes_on_gpu(dtype):
    """Pixel-MNIST shapes and data (T=784, B=16, p=100), default block size, gamma_h = 1e-4, r = 1."""
    from tpref.bench import CONFIGS, make_problem
    from tpref.kernels import cuda_rnn
    params, x, _ = make_problem(CONFIGS["mnist"], dtype, seed=3)
    check_forward(cuda_rnn, params, x, "tanh")
    check_tp(cuda_rnn, params, x, "tanh", 1e-4, 1.0)


@needs_gpu
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("method", ["bp", "tp"])
def test_mnist_oracles_on_gpu(method, dtype):
    """oracle(backend="cuda") at the pixel-MNIST shapes, data and hyperparameters."""
    from tpref.bench import CONFIGS, make_problem
    params, x, y = make_problem(CONFIGS["mnist"], dtype, seed=3)
    check_oracle(params, x, y, method, "local", "tanh", "cross_entropy", gamma_h=1e-4, reg=1.0)

