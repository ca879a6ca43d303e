"""numba.cuda twins of the simple RNN's oracles "bp" and "tp" (``oracle(backend="cuda")``).

Scope (honest): the forward pass h_t = a(x_t W_xh^T + h_{t-1} W_hh^T + b_h), the linearized
TP displacements (Eq. 2 in displacement form, Sec. 3), the backward recursion of BPTT / Eq. (3)
and the (W_hh, W_xh, b_h) directions run on the device; the output layer (one small product
and the loss) runs on the host with ``tpref.losses.output_backward``. DTP (atanh / log of
two vectors per step) and the GRU are not ported: backend "numba" has them.

Design: the samples of a batch are independent along the whole time loop (h_t[b] depends on
h_{t-1}[b] only, lam_{t-1}[b] on lam_t[b] only, g_{t-1}[b] on g_t[b] only), so each
recursion is ONE launch for all T steps: block b owns sample b and runs the time loop itself,
its threads striding over the p units, with ``cuda.syncthreads()`` between steps (a block's
global-memory writes are visible to its own threads after the barrier). No per-step launch, no
grid-wide synchronization. Products are per-thread dot products (no cuBLAS in numba.cuda); a
thread i reads the i-th column of W_hh^T (or of P, or of W_hh), so a warp's loads are
contiguous. The directions are one more launch, a shared-memory tiled product
Delta^T [H | X | 1] over the T B rows. With B blocks only, a small batch
uses a few of the GPU's multiprocessors: the time loop is sequential, and a step's latency,
not the GPU's throughput, bounds it (numbers: scripts/bench_cuda.py, docs/benchmarks.md).
Keeping the multiplied vector in shared memory (double-buffered, one barrier per step) was
tried and measured slower on an H200 in float64 (forward 8.4 against 4.5 ms, TP 13.9 against
3.7 ms at the pixel-MNIST shapes; docs/benchmarks.md, History), so it was not kept.

Usable only where ``numba.cuda.is_available()`` (a GPU, or the simulator with
``NUMBA_ENABLE_CUDASIM=1``); elsewhere the public functions raise a clear error. The float64
results agree with the reference to rounding (sums are accumulated in another order), not bit
for bit; unlike the CPU kernels, BP's recursion flushes nothing (GPUs do not slow down on
subnormals). Tested by
equality with the NumPy reference (tests/test_cuda_rnn.py): under the simulator in every test
run, with THREADS_PER_BLOCK patched small so that threads stride over several units; on a GPU
when one is present.
"""

import functools
import math

import numba
import numpy as np
from numba import cuda

from ..losses import output_backward
from .core import clip_bounds, regularized_pinv_map, tp_units

#: Threads per block of the time loops (one block per sample); None: p rounded up to a warp,
#: at most 1024.
THREADS_PER_BLOCK = None

#: Side of the square thread blocks (and shared tiles) of the directions kernel.
DIRECTIONS_TILE = 16

_NB_FLOAT = {np.dtype(np.float32): numba.float32, np.dtype(np.float64): numba.float64}

AVAILABLE = cuda.is_available()

__all__ = ["AVAILABLE", "rnn_forward", "propagate_displacements", "transition_backward",
           "rnn_oracle", "THREADS_PER_BLOCK", "DIRECTIONS_TILE"]


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

    Linear in lam: the host runs it on mu = lam / s (``core.tp_units``), as the CPU kernels.

    Parameters
    ----------
    hidden : (T+1, B, p); P : (p, p), W_hh (W_hh^T W_hh + r I)^{-1} (``regularized_pinv_map``)
    lo, hi : pi's clip interval; sigmoid : bool; one : 1 in the data's dtype
    flush : entries of lam_{t-1} below this magnitude are set to 0 (``core.tp_units``)
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


@cuda.jit
def _deltas_loop(hidden, W_hh, grad_h, coef, through_time, sigmoid, one, g, delta):
    """delta[t-1, b] = g_t[b] * a'(u_t[b]) for t = T..1, b = block (``transition_backward``).

    g_t = e_t + delta_{t+1} W_hh (``through_time``: BPTT) or e_t (h_{t-1} held fixed, Eq. 3),
    with the explicit partial e_t = coef * grad_h[t] (coef = 1, or -1 for TP's -lam: exact);
    a'(u_t) from the output: 1 - h_t^2 (tanh), h_t (1 - h_t) (sigmoid).

    Parameters
    ----------
    hidden : (T+1, B, p); W_hh : (p, p)
    grad_h : (T+1, B, p) explicit partials dL/dh_t, or (1, B, p): dL/dh_T only (BP)
    coef : +-1 in the data's dtype; through_time, sigmoid : bool; one : 1 in the data's dtype
    g : (B, p) scratch; delta : (T, B, p), written (delta[t-1] = dL/du_t).
    """
    b = cuda.blockIdx.x
    T = hidden.shape[0] - 1
    p = hidden.shape[2]
    i = cuda.threadIdx.x
    while i < p:
        g[b, i] = one - one                      # no carried term at t = T
        i += cuda.blockDim.x
    for t in range(T, 0, -1):
        i = cuda.threadIdx.x
        while i < p:                             # thread i reads back only its own g[b, i]
            if grad_h.shape[0] == 1:
                e = coef * grad_h[0, b, i] if t == T else one - one
            else:
                e = coef * grad_h[t, b, i]
            gi = e + g[b, i] if through_time else e
            h = hidden[t, b, i]
            if sigmoid:
                delta[t - 1, b, i] = gi * (h * (one - h))
            else:
                delta[t - 1, b, i] = gi * (one - h * h)
            i += cuda.blockDim.x
        cuda.syncthreads()                       # delta_t complete before the product
        if through_time and t > 1:
            i = cuda.threadIdx.x
            while i < p:                         # g_{t-1} carried = delta_t W_hh
                acc = delta[t - 1, b, 0] * W_hh[0, i]
                for j in range(1, p):
                    acc += delta[t - 1, b, j] * W_hh[j, i]
                g[b, i] = acc
                i += cuda.blockDim.x
            # no barrier needed: step t - 1 writes delta[t - 2] and reads g[b, i] of its own i


@functools.lru_cache(maxsize=None)
def _directions_kernel(nb_float, tile):
    """The directions kernel for one float type and tile size (shared arrays need both fixed).

    [dW_hh | dW_xh | db_h] = Delta^T [H | X | 1], Delta (R, p) the deltas, H (R, p) the states
    h_{t-1}, X (R, d) the inputs x_t, R = T B rows (t-major, as the (T, B, .) arrays are laid
    out). A classic shared-memory tiled product: block (y, x) computes rows i of tile y and
    columns j of tile x (of the p + d + 1 columns), loading ``tile`` rows of Delta and of
    [H | X | 1] into shared memory per round. Each entry sums its R terms in order r = 0..R-1
    (rounding differs from the reference's per-step products).
    """

    @cuda.jit
    def directions(delta, hidden, x, one, dW_hh, dW_xh, db_h):
        ds = cuda.shared.array((tile, tile), nb_float)        # Delta[r0 + k, i0 + ty]
        hs = cuda.shared.array((tile, tile), nb_float)        # [H | X | 1][r0 + k, j0 + tx]
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        i0, j0 = cuda.blockIdx.y * tile, cuda.blockIdx.x * tile
        R, p = delta.shape
        d = x.shape[1]
        i, j = i0 + ty, j0 + tx                               # this thread's output entry
        acc = one - one
        for r0 in range(0, R, tile):
            # load: thread (ty, tx) brings Delta[r0 + ty, i0 + tx] and [H|X|1][r0 + ty, j0 + tx]
            r = r0 + ty
            c = i0 + tx
            ds[ty, tx] = delta[r, c] if (r < R and c < p) else one - one
            c = j0 + tx
            if r >= R or c > p + d:
                hs[ty, tx] = one - one
            elif c < p:
                hs[ty, tx] = hidden[r, c]
            elif c < p + d:
                hs[ty, tx] = x[r, c - p]
            else:
                hs[ty, tx] = one
            cuda.syncthreads()
            for k in range(tile):
                acc += ds[k, ty] * hs[k, tx]
            cuda.syncthreads()
        if i < p:
            if j < p:
                dW_hh[i, j] = acc
            elif j < p + d:
                dW_xh[i, j - p] = acc
            elif j == p + d:
                db_h[i] = acc

    return directions


# ----------------------------------------------------------------------------------------------
# host functions (twins of the reference's)


def _require():
    if not AVAILABLE:
        raise RuntimeError("tpref.kernels.cuda_rnn needs a CUDA GPU or the simulator "
                           "(set NUMBA_ENABLE_CUDASIM=1 before importing numba)")


def _dev(a):
    """A C-contiguous device copy of a host array."""
    return cuda.to_device(np.ascontiguousarray(a))


def _forward_device(params, d_x, activation):
    """Device array (T+1, B, p) of h_0..h_T: one launch of ``_forward_loop``."""
    W_hh = params["W_hh"]
    T, B, _ = d_x.shape
    p = W_hh.shape[0]
    dtype = W_hh.dtype
    d_hidden = cuda.device_array((T + 1, B, p), dtype=dtype)    # all written by the kernel
    _forward_loop[B, _threads(p)](d_x, _dev(params["W_xh"].T), _dev(W_hh.T), _dev(params["b_h"]),
                                  activation == "sigmoid", dtype.type(0.5), dtype.type(1.0),
                                  d_hidden)
    return d_hidden


def tp_launch_scalars(lam_T, activation, eps):
    """(s, flush, lo, hi): the units and flush threshold (``core.tp_units``) and pi's clip
    interval (``core.clip_bounds``) that ``_tp_loop`` runs with; the CPU twin's
    ``numba_rnn.LinearizedTP`` holds the same four numbers (tested equal)."""
    s, flush = tp_units(lam_T)
    lo, hi = clip_bounds(activation, eps, lam_T.dtype)
    return s, flush, lo, hi


def _displacements_device(params, d_hidden, lam_T, reg, activation, eps):
    """(d_mu, s): device array (T+1, B, p) of mu_t = lam_t / s, t = T..0 (linearized TP), and
    the power of two s (``core.tp_units``): one launch of ``_tp_loop``."""
    T, B, p = d_hidden.shape[0] - 1, d_hidden.shape[1], d_hidden.shape[2]
    dtype = np.dtype(d_hidden.dtype)
    P = regularized_pinv_map(params["W_hh"], reg)                   # (p, p), once
    s, flush, lo, hi = tp_launch_scalars(lam_T, activation, eps)
    d_mu = cuda.device_array((T + 1, B, p), dtype=dtype)           # all written by the kernel
    d_z = cuda.device_array((B, p), dtype=dtype)
    _tp_loop[B, _threads(p)](d_hidden, _dev(lam_T / s), _dev(P), lo, hi,
                             activation == "sigmoid", dtype.type(1.0), flush, d_z, d_mu)
    return d_mu, s


def _directions_device(params, d_x, d_hidden, d_grad_h, coef, activation, through_time):
    """(W_hh, W_xh, b_h) directions on the host from device operands (two launches)."""
    T, B, p = d_x.shape[0], d_x.shape[1], d_hidden.shape[2]
    d = d_x.shape[2]
    dtype = np.dtype(d_hidden.dtype)
    d_delta = cuda.device_array((T, B, p), dtype=dtype)
    d_g = cuda.device_array((B, p), dtype=dtype)
    _deltas_loop[B, _threads(p)](d_hidden, _dev(params["W_hh"]), d_grad_h, dtype.type(coef),
                                 through_time, activation == "sigmoid", dtype.type(1.0), d_g,
                                 d_delta)
    d_Whh = cuda.device_array((p, p), dtype=dtype)
    d_Wxh = cuda.device_array((p, d), dtype=dtype)
    d_bh = cuda.device_array(p, dtype=dtype)
    tile = DIRECTIONS_TILE
    grid = ((p + d + 1 + tile - 1) // tile, (p + tile - 1) // tile)
    kernel = _directions_kernel(_NB_FLOAT[dtype], tile)
    kernel[grid, (tile, tile)](d_delta.reshape(T * B, p), d_hidden[:T].reshape(T * B, p),
                               d_x.reshape(T * B, d), dtype.type(1.0), d_Whh, d_Wxh, d_bh)
    return {"W_hh": d_Whh.copy_to_host(), "W_xh": d_Wxh.copy_to_host(), "b_h": d_bh.copy_to_host()}


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
    return _forward_device(params, _dev(x), activation).copy_to_host()


def propagate_displacements(params, x, hidden, lam_T, reg, activation, eps, difference=False):
    """Linearized TP displacements lam_t, t = T..0, computed on the device (twin of the reference's).

    The inverse is encoded once on the host (``core.regularized_pinv_map``, one Cholesky
    factor); then one launch of B blocks runs the whole recursion in the units and with the
    flush threshold of the CPU kernels (``core.tp_units``), and the host multiplies by s.

    Returns
    -------
    lam : ndarray of shape (T+1, B, p), on the host
    """
    _require()
    if difference:
        raise NotImplementedError("difference TP is not ported to CUDA; use backend='numba'")
    d_mu, s = _displacements_device(params, _dev(hidden), lam_T, reg, activation, eps)
    return s * d_mu.copy_to_host()                                 # exact: s a power of two


def transition_backward(params, x, hidden, grad_h, activation, through_time):
    """Gradient of L(h_1, ..., h_T) w.r.t. (W_hh, W_xh, b_h), on the device (twin of the reference's).

    ``grad_h`` (T+1, B, p) holds the explicit partials dL/dh_t (grad_h[0] unused). One launch
    for the deltas (block b = sample b, the whole recursion), one for the directions.

    Returns
    -------
    dict with ``W_hh`` (p, p), ``W_xh`` (p, d), ``b_h`` (p,)
    """
    _require()
    return _directions_device(params, _dev(x), _dev(hidden), _dev(grad_h), 1.0, activation,
                              through_time)


def rnn_oracle(method, params, x, y, *, loss, gamma_h, reg, update, activation, eps):
    """One oracle call of the simple RNN on the GPU (twin of the reference's; "bp" and "tp").

    The forward pass, the displacements and the (W_hh, W_xh, b_h) directions run on the device
    with x, h_0..h_T and lam kept there; the output layer (one (B, p) x (p, k) product) runs on
    the host with ``tpref.losses.output_backward``. Inputs assumed validated.
    """
    _require()
    if method not in ("bp", "tp"):
        raise ValueError(f"method {method!r} is not ported to backend 'cuda' (bp and tp are); "
                         "use backend='numba'")
    d_x = _dev(x)
    d_hidden = _forward_device(params, d_x, activation)
    hidden = d_hidden.copy_to_host()                                    # (T+1, B, p)
    value, out, direction, g_T = output_backward(params, hidden[-1], y, loss)
    if method == "bp":
        direction.update(_directions_device(params, d_x, d_hidden, _dev(g_T[None]), 1.0,
                                            activation, True))
        lam = None
    else:
        lam_T = -gamma_h * g_T                                          # Eq. (1)
        d_mu, s = _displacements_device(params, d_hidden, lam_T, reg, activation, eps)
        # Eq. (3): explicit partials h_t - v_t = -lam_t = -s mu_t, run in units of s (exact)
        run_direction = _directions_device(params, d_x, d_hidden, d_mu, -1.0, activation,
                                           update == "through_time")
        direction.update({name: s * a for name, a in run_direction.items()})
        lam = s * d_mu.copy_to_host()
    return {"loss": value, "output": out, "hidden": hidden, "displacements": lam,
            "direction": direction}
