"""numba.cuda twins of the per-time-step core: the RNN forward step and the linearized TP step.

Scope (honest): the forward pass h_t = a(x_t W_xh^T + h_{t-1} W_hh^T + b_h) and the linearized
TP displacements (Eq. 2 in displacement form, Sec. 3), each time step one or two kernel
launches on device-resident arrays; T launches in sequence, one copy in and one copy out.
BP, DTP and the parameter directions are not ported; the CPU backends compute them.
Products are written as plain per-thread dot products (no cuBLAS in numba.cuda): this file is
a correct, tested starting point for a GPU path, not a tuned one.

Exported only where ``numba.cuda.is_available()`` (a GPU, or the simulator with
``NUMBA_ENABLE_CUDASIM=1``); elsewhere the public functions raise a clear error. Tested by
equality with the NumPy reference under the simulator (tests/test_cuda_rnn.py), with
THREADS_PER_BLOCK patched small so tiny inputs span several blocks.
"""

import math

import numpy as np
from numba import cuda

from ..config import FLUSH_TINY

#: Threads per block of every kernel here (tests patch it small).
THREADS_PER_BLOCK = 128

AVAILABLE = cuda.is_available()

__all__ = ["AVAILABLE", "rnn_forward", "propagate_displacements", "THREADS_PER_BLOCK"]


def _blocks(n):
    return (n + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK


# ----------------------------------------------------------------------------------------------
# kernels: one thread per (b, i) entry of a (B, p) block


@cuda.jit
def _forward_step(x_t, h_prev, W_xh, W_hh, b_h, sigmoid, h_out):
    """h_out[b, i] = a((x_t W_xh^T)[b, i] + (h_prev W_hh^T)[b, i] + b_h[i]).

    x_t (B, d), h_prev (B, p), W_xh (p, d), W_hh (p, p), b_h (p,), h_out (B, p).
    Notes: Sec. 2 of the paper; sum order as the reference, (x W_xh^T + h W_hh^T) + b_h.
    """
    k = cuda.grid(1)
    B, p = h_out.shape
    if k >= B * p:
        return
    b = k // p
    i = k - b * p
    xw = x_t[b, 0] * W_xh[i, 0]
    for j in range(1, x_t.shape[1]):
        xw += x_t[b, j] * W_xh[i, j]
    hw = h_prev[b, 0] * W_hh[i, 0]
    for j in range(1, p):
        hw += h_prev[b, j] * W_hh[i, j]
    u = (xw + hw) + b_h[i]
    if sigmoid:
        h_out[b, i] = 0.5 * (1.0 + math.tanh(0.5 * u))
    else:
        h_out[b, i] = math.tanh(u)


@cuda.jit
def _tp_z(h_t, lam_t, lo, hi, sigmoid, z):
    """z[b, i] = (a^{-1})'(pi(h_t[b, i])) * lam_t[b, i]; pi = clip to [lo, hi] (Eq. 2)."""
    k = cuda.grid(1)
    B, p = z.shape
    if k >= B * p:
        return
    b = k // p
    i = k - b * p
    v = min(max(h_t[b, i], lo), hi)
    if sigmoid:
        z[b, i] = (1.0 / (v * (1.0 - v))) * lam_t[b, i]
    else:
        z[b, i] = (1.0 / (1.0 - v * v)) * lam_t[b, i]


@cuda.jit
def _rows_times(z, P, flush, out):
    """out[b, i] = sum_j z[b, j] P[j, i], flushed to 0 below ``flush`` (config.FLUSH_TINY)."""
    k = cuda.grid(1)
    B, p = out.shape
    if k >= B * p:
        return
    b = k // p
    i = k - b * p
    acc = z[b, 0] * P[0, i]
    for j in range(1, p):
        acc += z[b, j] * P[j, i]
    if abs(acc) < flush:
        acc = 0.0 * acc
    out[b, i] = acc


# ----------------------------------------------------------------------------------------------
# host functions (twins of the reference's)


def _require():
    if not AVAILABLE:
        raise RuntimeError("tpref.kernels.cuda_rnn needs a CUDA GPU or the simulator "
                           "(set NUMBA_ENABLE_CUDASIM=1 before importing numba)")


def rnn_forward(params, x, activation="tanh"):
    """All hidden states h_0..h_T on the device (twin of ``tpref.models.rnn.rnn_forward``).

    Returns
    -------
    hidden : ndarray of shape (T+1, B, p), on the host
    """
    _require()
    W_hh, W_xh, b_h = params["W_hh"], params["W_xh"], params["b_h"]
    T, B, _ = x.shape
    p = W_hh.shape[0]
    d_hidden = cuda.to_device(np.zeros((T + 1, B, p), dtype=W_hh.dtype))
    d_x = cuda.to_device(np.ascontiguousarray(x))
    d_Wxh, d_Whh, d_bh = (cuda.to_device(np.ascontiguousarray(a)) for a in (W_xh, W_hh, b_h))
    blocks = _blocks(B * p)
    for t in range(1, T + 1):
        _forward_step[blocks, THREADS_PER_BLOCK](d_x[t - 1], d_hidden[t - 1], d_Wxh, d_Whh, d_bh,
                                                 activation == "sigmoid", d_hidden[t])
    return d_hidden.copy_to_host()


def propagate_displacements(params, x, hidden, lam_T, reg, activation, eps, difference=False):
    """Linearized TP displacements lam_t, t = T..0, on the device (twin of the reference's).

    The inverse is encoded once on the host (``numba_rnn.regularized_pinv_map``, one Cholesky
    factor); each step is two launches: z_t, then lam_{t-1} = z_t P with the flush of
    config.FLUSH_TINY applied at the scale of lam_T (as the CPU kernels do).

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
    P = regularized_pinv_map(params["W_hh"], reg)                   # (p, p)
    lo, hi = _clip_bounds(activation, eps, dtype)
    flush = dtype.type(FLUSH_TINY[np.dtype(dtype)] * _power_of_two_scale(lam_T))
    lam = np.zeros((T + 1, B, p), dtype=dtype)
    lam[T] = lam_T
    d_lam = cuda.to_device(lam)
    d_hidden = cuda.to_device(np.ascontiguousarray(hidden))
    d_P = cuda.to_device(P)
    d_z = cuda.device_array((B, p), dtype=dtype)
    blocks = _blocks(B * p)
    for t in range(T, 0, -1):
        _tp_z[blocks, THREADS_PER_BLOCK](d_hidden[t], d_lam[t], lo, hi, activation == "sigmoid",
                                         d_z)
        _rows_times[blocks, THREADS_PER_BLOCK](d_z, d_P, flush, d_lam[t - 1])
    return d_lam.copy_to_host()
