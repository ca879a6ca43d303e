"""numba.cuda twins of the per-time-step core: the RNN forward pass and linearized TP.

Scope (honest): the forward pass h_t = a(x_t W_xh^T + h_{t-1} W_hh^T + b_h) and the linearized
TP displacements (Eq. 2 in displacement form, Sec. 3). BP, DTP and the parameter directions
are not ported; the CPU backends compute them.

Design: the samples of a batch are independent along the whole time loop (h_t[b] depends on
h_{t-1}[b] only, and lam_{t-1}[b] on lam_t[b] only), so each kernel is ONE launch for all T
steps: block b owns sample b and runs the time loop itself, its threads striding over the p
units, with ``cuda.syncthreads()`` between steps (a block's global-memory writes are visible
to its own threads after the barrier). No per-step launch, no grid-wide synchronization.
Products are per-thread dot products (no cuBLAS in numba.cuda); a thread i reads the i-th
column of W_hh^T (or of P), so a warp's loads are contiguous. With B blocks only, a small batch
uses a few of the GPU's multiprocessors: the time loop is sequential, and a step's latency,
not the GPU's throughput, bounds it (numbers: scripts/bench_cuda.py, docs/benchmarks.md).
Keeping the multiplied vector in shared memory (double-buffered, one barrier per step) was
tried and measured slower on an H200 in float64 (forward 8.4 against 4.5 ms, TP 13.9 against
3.7 ms at the pixel-MNIST shapes; docs/bench/cuda_h200_91198a8.log), so it was not kept.

Exported only where ``numba.cuda.is_available()`` (a GPU, or the simulator with
``NUMBA_ENABLE_CUDASIM=1``); elsewhere the public functions raise a clear error. Tested by
equality with the NumPy reference (tests/test_cuda_rnn.py): under the simulator in every test
run, with THREADS_PER_BLOCK patched small so that threads stride over several units; on a GPU
when one is present.
"""

import math

import numpy as np
from numba import cuda

from ..config import FLUSH_TINY

#: Threads per block (one block per sample); None: p rounded up to a warp, at most 1024.
THREADS_PER_BLOCK = None

AVAILABLE = cuda.is_available()

__all__ = ["AVAILABLE", "rnn_forward", "propagate_displacements", "THREADS_PER_BLOCK"]


def _threads(p):
    """Threads per block for p units (THREADS_PER_BLOCK if set)."""
    if THREADS_PER_BLOCK is not None:
        return THREADS_PER_BLOCK
    return min(1024, 32 * ((p + 31) // 32))


# ----------------------------------------------------------------------------------------------
# kernels: block b = sample b, all time steps; thread k handles units k, k + blockDim, ...


@cuda.jit
def _forward_loop(x, W_xh_T, W_hh_T, b_h, sigmoid, half, one, hidden):
    """hidden[t, b] = a(x_t[b] W_xh^T + hidden[t-1, b] W_hh^T + b_h), t = 1..T, for b = block.

    Parameters
    ----------
    x : (T, B, d); W_xh_T : (d, p); W_hh_T : (p, p); b_h : (p,)
    sigmoid : bool; half, one : 0.5 and 1 in the data's dtype (no float64 promotion in float32)
    hidden : (T+1, B, p), written (hidden[0] = h_0 = 0).

    Notes
    -----
    Sec. 2 of the paper; sum order as the reference, (x W_xh^T + h W_hh^T) + b_h, each sum
    accumulated j = 0..p-1 (rounding differs from BLAS within config.RTOL).
    """
    b = cuda.blockIdx.x
    T, _, d = x.shape
    p = hidden.shape[2]
    i = cuda.threadIdx.x
    while i < p:
        hidden[0, b, i] = one - one              # h_0 = 0
        i += cuda.blockDim.x
    cuda.syncthreads()
    for t in range(1, T + 1):
        i = cuda.threadIdx.x
        while i < p:
            xw = x[t - 1, b, 0] * W_xh_T[0, i]
            for j in range(1, d):
                xw += x[t - 1, b, j] * W_xh_T[j, i]
            hw = hidden[t - 1, b, 0] * W_hh_T[0, i]
            for j in range(1, p):
                hw += hidden[t - 1, b, j] * W_hh_T[j, i]
            u = (xw + hw) + b_h[i]
            if sigmoid:
                hidden[t, b, i] = half * (one + math.tanh(half * u))
            else:
                hidden[t, b, i] = math.tanh(u)
            i += cuda.blockDim.x
        cuda.syncthreads()                       # h_t complete before step t + 1 reads it


@cuda.jit
def _tp_loop(hidden, lam_T, P, lo, hi, sigmoid, one, flush, z, lam):
    """lam[t-1, b] = [(a^{-1})'(pi(h_t[b])) * lam[t, b]] P, t = T..1, for b = block (Eq. 2).

    Parameters
    ----------
    hidden : (T+1, B, p); P : (p, p), W_hh (W_hh^T W_hh + r I)^{-1} (``regularized_pinv_map``)
    lo, hi : pi's clip interval; sigmoid : bool; one : 1 in the data's dtype
    flush : entries of lam_{t-1} below this magnitude are set to 0 (config.FLUSH_TINY)
    z : (B, p) scratch; lam : (T+1, B, p), written (lam[T] = lam_T).
    """
    b = cuda.blockIdx.x
    T = hidden.shape[0] - 1
    p = hidden.shape[2]
    i = cuda.threadIdx.x
    while i < p:
        lam[T, b, i] = lam_T[b, i]               # read back by the same thread only
        i += cuda.blockDim.x
    for t in range(T, 0, -1):
        i = cuda.threadIdx.x
        while i < p:                             # z_t = (a^{-1})'(pi(h_t)) * lam_t
            v = min(max(hidden[t, b, i], lo), hi)
            if sigmoid:
                z[b, i] = (one / (v * (one - v))) * lam[t, b, i]
            else:
                z[b, i] = (one / (one - v * v)) * lam[t, b, i]
            i += cuda.blockDim.x
        cuda.syncthreads()                       # z_t complete before the product
        i = cuda.threadIdx.x
        while i < p:                             # lam_{t-1} = z_t P
            acc = z[b, 0] * P[0, i]
            for j in range(1, p):
                acc += z[b, j] * P[j, i]
            if abs(acc) < flush:
                acc = acc * (one - one)          # signed zero, as the CPU kernels' select
            lam[t - 1, b, i] = acc
            i += cuda.blockDim.x
        cuda.syncthreads()                       # z_t read by all before step t - 1 overwrites it


# ----------------------------------------------------------------------------------------------
# host functions (twins of the reference's)


def _require():
    if not AVAILABLE:
        raise RuntimeError("tpref.kernels.cuda_rnn needs a CUDA GPU or the simulator "
                           "(set NUMBA_ENABLE_CUDASIM=1 before importing numba)")


def rnn_forward(params, x, activation="tanh"):
    """All hidden states h_0..h_T, computed on the device (twin of ``tpref.models.rnn.rnn_forward``).

    One launch of B blocks (one per sample) for the whole time loop; one copy in, one copy out.

    Parameters
    ----------
    params : dict with ``W_hh`` (p, p), ``W_xh`` (p, d), ``b_h`` (p,), one float dtype
    x : ndarray of shape (T, B, d), params' dtype
    activation : {"tanh", "sigmoid"}

    Returns
    -------
    hidden : ndarray of shape (T+1, B, p), on the host
    """
    _require()
    W_hh, W_xh, b_h = params["W_hh"], params["W_xh"], params["b_h"]
    T, B, _ = x.shape
    p = W_hh.shape[0]
    dtype = W_hh.dtype
    d_hidden = cuda.device_array((T + 1, B, p), dtype=dtype)    # all written by the kernel
    d_x = cuda.to_device(np.ascontiguousarray(x))
    d_Wxh_T, d_Whh_T, d_bh = (cuda.to_device(np.ascontiguousarray(a))
                              for a in (W_xh.T, W_hh.T, b_h))
    _forward_loop[B, _threads(p)](d_x, d_Wxh_T, d_Whh_T, d_bh, activation == "sigmoid",
                                  dtype.type(0.5), dtype.type(1.0), d_hidden)
    return d_hidden.copy_to_host()


def propagate_displacements(params, x, hidden, lam_T, reg, activation, eps, difference=False):
    """Linearized TP displacements lam_t, t = T..0, computed on the device (twin of the reference's).

    The inverse is encoded once on the host (``numba_rnn.regularized_pinv_map``, one Cholesky
    factor); then one launch of B blocks runs the whole recursion, flushing at
    config.FLUSH_TINY times the scale of lam_T (as the CPU kernels do).

    Returns
    -------
    lam : ndarray of shape (T+1, B, p), on the host
    """
    _require()
    if difference:
        raise NotImplementedError("difference TP is not ported to CUDA; use backend='numba'")
    from .numba_rnn import _clip_bounds, _power_of_two_scale, regularized_pinv_map

    dtype = hidden.dtype
    T, B, p = hidden.shape[0] - 1, hidden.shape[1], hidden.shape[2]
    P = regularized_pinv_map(params["W_hh"], reg)                   # (p, p), once
    lo, hi = _clip_bounds(activation, eps, dtype)
    flush = dtype.type(FLUSH_TINY[np.dtype(dtype)] * _power_of_two_scale(lam_T))
    d_lam = cuda.device_array((T + 1, B, p), dtype=dtype)          # all written by the kernel
    d_hidden = cuda.to_device(np.ascontiguousarray(hidden))
    d_z = cuda.device_array((B, p), dtype=dtype)
    _tp_loop[B, _threads(p)](d_hidden, cuda.to_device(np.ascontiguousarray(lam_T)),
                             cuda.to_device(P), lo, hi, activation == "sigmoid", dtype.type(1.0),
                             flush, d_z, d_lam)
    return d_lam.copy_to_host()
