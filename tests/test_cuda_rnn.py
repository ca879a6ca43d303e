"""numba.cuda twins (tpref.kernels.cuda_rnn) equal the NumPy reference, under the simulator.

Without a GPU, the CUDA kernels run in numba's simulator, which must be chosen before numba is
imported: the normal test run therefore re-runs this file in a subprocess with
NUMBA_ENABLE_CUDASIM=1 (test_under_simulator, a few seconds); in that subprocess (or on a GPU)
the equality tests run in-process with THREADS_PER_BLOCK = 4, so tiny inputs span many blocks.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from numba import cuda

import tpref
from tpref.config import ATOL_SCALE, RTOL
from tpref.methods import reference

IN_CUDA = cuda.is_available()


@pytest.mark.skipif(IN_CUDA, reason="CUDA (or the simulator) is available: tested in-process")
def test_under_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "passed" in proc.stdout and "skipped" in proc.stdout


needs_cuda = pytest.mark.skipif(not IN_CUDA, reason="needs a GPU or NUMBA_ENABLE_CUDASIM=1")


@pytest.fixture
def small_blocks(monkeypatch):
    from tpref.kernels import cuda_rnn
    monkeypatch.setattr(cuda_rnn, "THREADS_PER_BLOCK", 4)
    return cuda_rnn


def case(T=6, B=3, d=2, p=5, k=3, seed=0):
    rng = np.random.default_rng(seed)
    params = tpref.init_rnn(d, p, k, seed=rng)
    params["b_h"] = 0.3 * rng.normal(size=p)
    x = rng.normal(size=(T, B, d))
    return params, x


def close(comp, ref, name):
    bound = RTOL[np.dtype(np.float64)] * np.abs(ref) + ATOL_SCALE[np.dtype(np.float64)] * np.abs(ref).max()
    assert np.all(np.abs(comp - ref) <= bound), f"{name}: max err {np.abs(comp - ref).max():.3e}"


@needs_cuda
@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_forward_equals_reference(small_blocks, activation):
    params, x = case()
    close(small_blocks.rnn_forward(params, x, activation),
          reference.rnn_forward(params, x, activation), "hidden")


@needs_cuda
@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_tp_displacements_equal_reference(small_blocks, activation):
    params, x = case(seed=1)
    hidden = reference.rnn_forward(params, x, activation)
    lam_T = np.random.default_rng(2).normal(size=hidden.shape[1:]) * 1e-2
    args = (params, x, hidden, lam_T, 0.5, activation, 1e-3, False)
    close(small_blocks.propagate_displacements(*args), reference.propagate_displacements(*args), "lam")


@needs_cuda
def test_difference_tp_not_ported(small_blocks):
    params, x = case()
    hidden = reference.rnn_forward(params, x)
    with pytest.raises(NotImplementedError):
        small_blocks.propagate_displacements(params, x, hidden, hidden[-1], 1.0, "tanh", 1e-3, True)
