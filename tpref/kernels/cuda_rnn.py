"""numba.cuda twins of the per-time-step core: the RNN forward pass and linearized TP.

Scope (honest): the forward pass h_t = a(x_t W_xh^T + h_{t-1} W_hh^T + b_h) and the linearized
TP displacements (Eq. 2 in displacement form, Sec. 3). BP, DTP and the parameter directions
are not ported; the CPU backends compute them.

Design: the samples of a batch are independent along the whole time loop (h_t[b] depends on
h_{t-1}[b] only, and lam_{t-1}[b] on lam_t[b] only), so each kernel is ONE launch for all T
steps: block b owns sample b and runs the time loop itself, its threads striding over the p
units, with one ``cuda.syncthreads()`` per step. The vector a step multiplies (h_{t-1}, or
z_t) is kept in shared memory (double-buffered), so a step never reads back what the block
just wrote to global memory. No per-step launch, no grid-wide synchronization, nothing but the
result copied back. Products are per-thread dot products (no cuBLAS in numba.cuda); a thread i
reads the i-th column of W_hh^T (or of P), so a warp's loads are contiguous and cached. Hidden
sizes up to MAX_UNITS = 1024. With B blocks only, a small batch
uses a few of the GPU's multiprocessors: the time loop is sequential, and a step's latency,
not the GPU's throughput, bounds it (numbers: scripts/bench_cuda.py, docs/benchmarks.md).

Exported only where ``numba.cuda.is_available()`` (a GPU, or the simulator with
``NUMBA_ENABLE_CUDASIM=1``); elsewhere the public functions raise a clear error. Tested by
equality with the NumPy reference (tests/test_cuda_rnn.py): under the simulator in every test
run, with THREADS_PER_BLOCK patched small so that threads stride over several units; on a GPU
when one is present.
"""

import math

import numba
import numpy as np
from numba import cuda

from ..config import FLUSH_TINY

#: Threads per block (one block per sample); None: p rounded up to a warp, at most 1024.
THREADS_PER_BLOCK = None

AVAILABLE = cuda.is_available()

__all__ = ["AVAILABLE", "rnn_forward", "propagate_displacements", "THREADS_PER_BLOCK",
           "MAX_UNITS"]


def _threads(p):
    """Threads per block for p units (THREADS_PER_BLOCK if set)."""
    if THREADS_PER_BLOCK is not None:
        return THREADS_PER_BLOCK
    return min(1024, 32 * ((p + 31) // 32))


# ----------------------------------------------------------------------------------------------
# kernels: block b = sample b, all time steps; thread k handles units k, k + blockDim, ...
#
# The vector a step reads (h_{t-1}, or z_t) lives in shared memory, double-buffered: step t
# reads buffer (t - 1) % 2 and writes buffer t % 2, so one barrier per step suffices (every
# read of step t precedes the barrier that ends it; step t + 1 overwrites the buffer step t
# read only after that barrier). Shared arrays need a compile-time dtype and size: one kernel
# pair per float dtype (``_kernels``), at most MAX_UNITS units.

#: Largest hidden size p the CUDA kernels take (their shared buffers are 2 x MAX_UNITS).
MAX_UNITS = 1024


def _kernels(nb_float):
    """(forward, tp) kernels whose shared buffers hold ``nb_float`` (numba.float32 / float64)."""

    @cuda.jit
    def forward_loop(x, W_xh_T, W_hh_T, b_h, sigmoid, half, one, hidden):
        """hidden[t, b] = a(x_t[b] W_xh^T + h_{t-1}[b] W_hh^T + b_h), t = 1..T, b = block; h_0 = 0.

        Parameters
        ----------
        x : (T, B, d); W_xh_T : (d, p); W_hh_T : (p, p); b_h : (p,)
        sigmoid : bool; half, one : 0.5 and 1 in the data's dtype (no float64 promotion)
        hidden : (T+1, B, p), written (hidden[0] = 0).

        Notes
        -----
        Sec. 2 of the paper; sum order as the reference, (x W_xh^T + h W_hh^T) + b_h, each sum
        accumulated j = 0..p-1 (rounding differs from BLAS within config.RTOL).
        """
        hs = cuda.shared.array((2, MAX_UNITS), nb_float)          # h_{t-1}, h_t
        b = cuda.blockIdx.x
        T, _, d = x.shape
        p = hidden.shape[2]
        i = cuda.threadIdx.x
        while i < p:
            hs[0, i] = one - one                                   # h_0 = 0
            hidden[0, b, i] = one - one
            i += cuda.blockDim.x
        cuda.syncthreads()
        for t in range(1, T + 1):
            prev = (t - 1) % 2
            i = cuda.threadIdx.x
            while i < p:
                xw = x[t - 1, b, 0] * W_xh_T[0, i]
                for j in range(1, d):
                    xw += x[t - 1, b, j] * W_xh_T[j, i]
                hw = hs[prev, 0] * W_hh_T[0, i]
                for j in range(1, p):
                    hw += hs[prev, j] * W_hh_T[j, i]
                u = (xw + hw) + b_h[i]
                if sigmoid:
                    h = half * (one + math.tanh(half * u))
                else:
                    h = math.tanh(u)
                hs[1 - prev, i] = h
                hidden[t, b, i] = h
                i += cuda.blockDim.x
            cuda.syncthreads()                                     # h_t complete

    @cuda.jit
    def tp_loop(hidden, lam_T, P, lo, hi, sigmoid, one, flush, lam):
        """lam[t-1, b] = [(a^{-1})'(pi(h_t[b])) * lam[t, b]] P, t = T..1, b = block (Eq. 2).

        Parameters
        ----------
        hidden : (T+1, B, p); lam_T : (B, p)
        P : (p, p), W_hh (W_hh^T W_hh + r I)^{-1} (``regularized_pinv_map``)
        lo, hi : pi's clip interval; sigmoid : bool; one : 1 in the data's dtype
        flush : entries of lam_{t-1} below this magnitude are set to 0 (config.FLUSH_TINY)
        lam : (T+1, B, p), written (lam[T] = lam_T).

        Notes
        -----
        The thread that computes lam_{t-1}[i] also forms z_{t-1}[i] from it, so z never
        leaves the block: z_t = (a^{-1})'(pi(h_t)) * lam_t, lam_{t-1} = z_t P.
        """
        zs = cuda.shared.array((2, MAX_UNITS), nb_float)          # z_t, z_{t-1}
        b = cuda.blockIdx.x
        T = hidden.shape[0] - 1
        p = hidden.shape[2]
        i = cuda.threadIdx.x
        while i < p:
            m = lam_T[b, i]
            lam[T, b, i] = m
            v = min(max(hidden[T, b, i], lo), hi)
            if sigmoid:
                zs[T % 2, i] = (one / (v * (one - v))) * m
            else:
                zs[T % 2, i] = (one / (one - v * v)) * m
            i += cuda.blockDim.x
        cuda.syncthreads()
        for t in range(T, 0, -1):
            cur = t % 2
            i = cuda.threadIdx.x
            while i < p:                                           # lam_{t-1} = z_t P
                acc = zs[cur, 0] * P[0, i]
                for j in range(1, p):
                    acc += zs[cur, j] * P[j, i]
                if abs(acc) < flush:
                    acc = acc * (one - one)        # signed zero, as the CPU kernels' select
                lam[t - 1, b, i] = acc
                v = min(max(hidden[t - 1, b, i], lo), hi)          # z_{t-1} (unused at t = 1)
                if sigmoid:
                    zs[1 - cur, i] = (one / (v * (one - v))) * acc
                else:
                    zs[1 - cur, i] = (one / (one - v * v)) * acc
                i += cuda.blockDim.x
            cuda.syncthreads()                                     # z_{t-1} complete

    return forward_loop, tp_loop


_KERNELS = {np.dtype(np.float32): _kernels(numba.float32),
            np.dtype(np.float64): _kernels(numba.float64)}


# ----------------------------------------------------------------------------------------------
# host functions (twins of the reference's)


def _require():
    if not AVAILABLE:
        raise RuntimeError("tpref.kernels.cuda_rnn needs a CUDA GPU or the simulator "
                           "(set NUMBA_ENABLE_CUDASIM=1 before importing numba)")


def _check_units(W_hh):
    """p = W_hh.shape[0], if the kernels' shared buffers can hold it."""
    p = W_hh.shape[0]
    if p > MAX_UNITS:
        raise ValueError(f"params['W_hh']: the CUDA kernels take a hidden size p <= {MAX_UNITS}, "
                         f"got p = {p}; use backend 'numba'")
    return p


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
    p = _check_units(W_hh)
    dtype = W_hh.dtype
    d_hidden = cuda.device_array((T + 1, B, p), dtype=dtype)    # all written by the kernel
    d_x = cuda.to_device(np.ascontiguousarray(x))
    d_Wxh_T, d_Whh_T, d_bh = (cuda.to_device(np.ascontiguousarray(a))
                              for a in (W_xh.T, W_hh.T, b_h))
    forward_loop = _KERNELS[dtype][0]
    forward_loop[B, _threads(p)](d_x, d_Wxh_T, d_Whh_T, d_bh, activation == "sigmoid",
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
    T, B, p = hidden.shape[0] - 1, hidden.shape[1], _check_units(params["W_hh"])
    P = regularized_pinv_map(params["W_hh"], reg)                   # (p, p), once
    lo, hi = _clip_bounds(activation, eps, dtype)
    flush = dtype.type(FLUSH_TINY[np.dtype(dtype)] * _power_of_two_scale(lam_T))
    d_lam = cuda.device_array((T + 1, B, p), dtype=dtype)          # all written by the kernel
    d_hidden = cuda.to_device(np.ascontiguousarray(hidden))
    tp_loop = _KERNELS[dtype][1]
    tp_loop[B, _threads(p)](d_hidden, cuda.to_device(np.ascontiguousarray(lam_T)),
                            cuda.to_device(P), lo, hi, activation == "sigmoid", dtype.type(1.0),
                            flush, d_lam)
    return d_lam.copy_to_host()
