"""Numba CPU twins of the NumPy reference RNN oracles (tpref.methods.reference).

Same names, same loops, same order of operations where it matters for rounding; tested by
equality with the reference (tests/test_numba_backend.py): float64 to ~1e-15 relative (within
config.RTOL); float32 runs in float32 and meets config's float32 policy against the float64
reference (RTOL / ATOL_SCALE, plus F32_REF_FACTOR x the float32 reference's own error).
Each time loop is one ``@njit`` kernel; the per-step products are BLAS calls on (B, p) blocks
made from inside the kernel, and the elementwise work runs on the block while it is in cache.

What differs from the reference, by design (speed), and why equality still holds:

1. The regularized inverse is encoded once per call (Sec. 3 of the paper, "a matrix
   inversion needs to be computed only once for all time steps"): from the Cholesky factor of
   M = W_hh^T W_hh + r I we form P = W_hh M^{-1} (p, p), so each step is one product
   lam_{t-1} = z_t P for a batch of row vectors, as cheap as BP's delta_t W_hh. This is
   T_TP ~ p^3 + T_BP. The reference does two triangular solves per step; both are the same
   linear map, and agree to ~cond(M) * eps.
2. Difference TP subtracts before applying the inverse:
   f^{-1}(h + lam) - f^{-1}(h) = g(a^{-1}(pi(h + lam)) - a^{-1}(pi(h))), with g(z) = z P; the
   W_xh x_t + b_h terms cancel exactly. The reference subtracts two O(1) vectors after the
   solves, so its displacements carry ~eps * |f^{-1}(h)| of cancellation noise, which is what
   the tests allow for when gamma_h is tiny.
3. Subnormals never occur in the backward recursions (config.FLUSH_TINY): each linear
   recursion (BP's g_t, TP's lam_t, the through-time derivatives) runs in units of a power of
   two s <= the largest entry of its start (exact scaling), and entries falling below
   sqrt(smallest normal) in those units are set to 0 at each step. TP runs directly in units
   of lam when s >= sqrt(FLUSH_TINY), with the threshold scaled instead: the same bits. The
   returned displacements are s * mu, exactly the reference's numbers where those are normal
   (a gamma_h below ~1e-150 could make them subnormal, as in the reference; no task of the
   paper comes near).
   Without this, TP's displacements (scaled by gamma_h = 1e-4 on MNIST and decaying in t) and
   BP's vanishing float32 gradients run 2-9x slower unless the process flushes to zero.
4. tanh is ``numba_math.vtanh`` (vectorizable, < 2 ulp: measured 1.71 float64, 1.29 float32)
   instead of libm's scalar tanh, and DTP's inverses are ``numba_math.vatanh`` and
   ``vlogit`` (vectorizable, < 2 ulp: measured 1.37 / 1.40 float64, 1.39 / 1.42 float32)
   instead of libm's atanh, log and log1p. The kernels are cached on disk with a stamp that
   covers numba_math.py and numba_blas.py too (``jit_cache``): a change to vtanh, vatanh,
   vlogit or ``add_tn_product`` recompiles them.
5. Parameter directions are made block by block inside the backward kernels,
   Delta (rows, p)^T @ [h_{t-1} | x_t | 1] over ``block_rows(p)`` rows (time steps x batch)
   while the block's deltas are in cache, instead of T products of B rows; no (T, B, p)
   delta array is written. Blocks are sized so that the product stays under
   config.SMALL_GEMM_MNK (OpenBLAS's unpacked small-matrix kernels: 100 rows at p = 100), else
   config.PRODUCT_BLOCK_ROWS, and each product is added into the accumulators by BLAS itself
   (``numba_blas.add_tn_product``, beta = 1). The sums over t are regrouped (rounding only).
6. All BLAS calls of one oracle call run with config.BLAS_THREADS threads (threadpoolctl).
7. Every kernel calls ``numba_math.wide_vectors()``: its loops are vectorized with 512-bit
   registers on AVX-512 CPUs (LLVM's default there is 256), the same bits.
8. ``rnn_oracle`` writes hidden states (and DTP's displacements, one block for both) into
   ``workspace`` buffers: a result's memory is reused by a later call once the caller has
   dropped that result (never while the caller holds it or a view of it), so large outputs
   are not page-faulted in at every iteration. Those buffers, and the (p, p) matrices every
   step multiplies by (W_hh, W_hh^T, P), start on 64-byte boundaries (``workspace.aligned``):
   OpenBLAS's float64 small-matrix kernels lose ~10% on a misaligned (p, p) operand.
9. TP's displacements are carried through the fused backward pass in a (2, B, p) buffer and
   not written; ``rnn_oracle`` returns them as a ``tpref.deferred.Deferred`` of
   ``linearized_displacements`` over the call's own P, hidden states and lam_T (frozen), which
   ``OracleResult.displacements`` evaluates when first read: the same bits (``LinearizedTP``).
   Writing them was most of what a TP call cost beyond BP.
10. DTP's displacements (returned: its recursion is nonlinear) and its Eq. (3) directions are
   made in one pass over t (``_dtp_backward``), step t's deltas right after lam_{t-1} while
   h_t and lam_t are in cache: the bits of the two passes one after the other, without
   reading the (T+1, B, p) arrays back (DTP/BP 1.21 -> 1.12 at pixel MNIST). Its element
   loops live in two helpers compiled with their own flags, ``_difference_step`` (CONTRACT,
   for vatanh) and ``_step_deltas`` (none, as ``_transition_directions``), called from a
   kernel without flags: with the deltas' loops inside a CONTRACT kernel, even through a
   helper, the directions differed from the two passes' in the last bits.

Conventions as in the reference: time-major x (T, B, d); hidden (T+1, B, p), hidden[0] = 0.
"""

import math

import numpy as np
from numba import njit

from ..config import PRODUCT_BLOCK_ROWS, PRODUCT_SMALL_MIN_ROWS, SMALL_GEMM_MNK
from ..deferred import Deferred
from ..losses import output_backward
from . import workspace
from .core import (blas_threads, clip_bounds, flush_tiny, power_of_two_scale,
                   regularized_pinv_map, tp_units)
from .jit_cache import CACHE
from .numba_blas import add_tn_product
from .numba_math import CONTRACT, vatanh, vlogit, vtanh, wide_vectors

__all__ = ["rnn_forward", "rnn_last_hidden", "output_backward", "fast_output_backward",
           "transition_backward", "regularized_pinv_map", "propagate_displacements",
           "linearized_displacements", "rnn_oracle", "blas_threads"]

# every kernel: cached on disk (a second process pays no JIT), NumPy's error model (no
# ZeroDivisionError checks, so divisions vectorize)
_JIT = dict(cache=CACHE, error_model="numpy", nogil=True)


# ----------------------------------------------------------------------------------------------
# forward


@njit(fastmath=CONTRACT, **_JIT)
def _forward_kernel(x, W_xh_T, W_hh_T, b_h, hidden, sigmoid):
    """h_t = a(x_t W_xh^T + h_{t-1} W_hh^T + b_h) for t = 1..T, into hidden[1..T].

    Parameters
    ----------
    x : ndarray of shape (T, B, d)
    W_xh_T : ndarray of shape (d, p), C-contiguous W_xh^T
    W_hh_T : ndarray of shape (p, p), C-contiguous W_hh^T
    b_h : ndarray of shape (p,)
    hidden : ndarray of shape (T+1, B, p)
        hidden[0] = h_0 on entry; hidden[1..T] written.
    sigmoid : bool
        a = sigmoid (0.5 (1 + tanh(u / 2)), as the reference) instead of tanh.

    Notes
    -----
    Sec. 2 of the paper. Sum order as the reference: (x W_xh^T + h W_hh^T) + b_h. The input
    term is an explicit loop (d is small in every task: 1-6), not a BLAS call: NumPy's
    (T*B, 1) @ (1, p) product cost more than the whole recurrence.
    """
    wide_vectors()                                        # point 7 of the module docstring
    T, B, d = x.shape
    p = W_hh_T.shape[0]
    n = B * p
    half = hidden.dtype.type(0.5)
    one = hidden.dtype.type(1.0)
    rec = np.empty((B, p), hidden.dtype)                 # (B, p) h_{t-1} W_hh^T, then u_t
    xw = np.empty(p, hidden.dtype)                       # (p,) x_t W_xh^T for one sample
    rf = rec.reshape(n)
    for t in range(1, T + 1):
        np.dot(hidden[t - 1], W_hh_T, rec)
        x_t = x[t - 1]
        for b in range(B):
            for i in range(p):
                xw[i] = x_t[b, 0] * W_xh_T[0, i]
            for j in range(1, d):
                xbj = x_t[b, j]
                for i in range(p):
                    xw[i] += xbj * W_xh_T[j, i]
            for i in range(p):
                rec[b, i] = (xw[i] + rec[b, i]) + b_h[i]     # u_t
        h = hidden[t].reshape(n)
        # a(u_t) over the whole (B*p,) block: one long vectorized loop
        if sigmoid:
            for i in range(n):
                h[i] = half * (one + vtanh(half * rf[i]))
        else:
            for i in range(n):
                h[i] = vtanh(rf[i])


@njit(**_JIT)
def _forward(x, W_xh, W_hh, b_h, hidden, sigmoid):
    """hidden[0] = 0, then ``_forward_kernel`` with the transposes it multiplies by: one call
    from Python instead of five NumPy operations (an oracle call's fixed cost)."""
    hidden[0] = 0.0                                       # h_0
    W_hh_T = np.empty((W_hh.shape[1], W_hh.shape[0]), W_hh.dtype)   # (p, p), 32-byte aligned
    W_hh_T[:] = W_hh.T
    _forward_kernel(x, np.ascontiguousarray(W_xh.T), W_hh_T, b_h, hidden, sigmoid)


def rnn_forward(params, x, activation="tanh", out=None):
    """All hidden states h_0..h_T (twin of ``tpref.models.rnn.rnn_forward``).

    Parameters
    ----------
    params : dict
        ``W_hh`` (p, p), ``W_xh`` (p, d), ``b_h`` (p,), one float dtype.
    x : ndarray of shape (T, B, d), params' dtype
    activation : {"tanh", "sigmoid"}
    out : ndarray of shape (T+1, B, p), C-contiguous, params' dtype, optional
        Written and returned instead of a new array.

    Returns
    -------
    hidden : ndarray of shape (T+1, B, p)
    """
    W_hh, W_xh, b_h = params["W_hh"], params["W_xh"], params["b_h"]
    T, B, d = x.shape
    p = W_hh.shape[0]
    hidden = np.empty((T + 1, B, p), dtype=W_hh.dtype) if out is None else out   # (T+1, B, p)
    _forward(_contiguous(x), _contiguous(W_xh), _contiguous(W_hh), _contiguous(b_h), hidden,
             activation == "sigmoid")
    return hidden


def _contiguous(a):
    """``a`` if C-contiguous (what the oracle passes: no call), else a C-contiguous copy."""
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def rnn_last_hidden(params, x, activation="tanh", window=64, samples=None):
    """h_T alone, (B, p): ``rnn_forward(params, x, activation)[-1]``, in (window+1, samples, p)
    of memory instead of (T+1, B, p).

    The forward kernel runs on ``window`` steps at a time, each window starting from the last
    state of the one before (what an evaluation needs: pixel MNIST's 785 states of 500
    samples would take 157 MB in float32), and on ``samples`` samples at a time (default
    ``block_rows(p)``, 100 at p = 100): OpenBLAS's small-matrix kernels (SkylakeX) take a
    (100, 100) x (100, 100) step product at 1.5x the rate of its packed path on (500, 100)
    rows (float64, pixel MNIST's evaluation: 161 -> 109 ms), and samples are independent.
    The bits are ``rnn_forward``'s where B <= samples; across blocks, the same up to the
    BLAS path's rounding (under OpenBLAS's Haswell kernels, the same bits).
    """
    W_hh, W_xh, b_h = params["W_hh"], params["W_xh"], params["b_h"]
    T, B, _ = x.shape
    p = W_hh.shape[0]
    samples = min(B, block_rows(p) if samples is None else samples)
    buf = np.empty((min(T, window) + 1, samples, p), dtype=W_hh.dtype)   # (window+1, ., p)
    W_xh_T, W_hh_T = np.ascontiguousarray(W_xh.T), workspace.aligned(W_hh.T)
    b_h = np.ascontiguousarray(b_h)
    h_T = np.empty((B, p), dtype=W_hh.dtype)                          # (B, p)
    with blas_threads():
        for b0 in range(0, B, samples):
            nb = min(samples, B - b0)
            hb = buf[:, :nb] if nb == samples else np.empty((buf.shape[0], nb, p), buf.dtype)
            hb[0] = 0.0                                               # h_0
            for t0 in range(0, T, window):
                xs = np.ascontiguousarray(x[t0:t0 + window, b0:b0 + nb])   # (n, nb, d)
                n = xs.shape[0]
                _forward_kernel(xs, W_xh_T, W_hh_T, b_h, hb[:n + 1], activation == "sigmoid")
                hb[0] = hb[n]                                         # h_{t0+n}
            h_T[b0:b0 + nb] = hb[0]
    return h_T


# ----------------------------------------------------------------------------------------------
# output layer


@njit(**_JIT)
def _output_products(W_hy, h_T, d_out, dW_hy, db_y, g_T):
    """(W_hy, b_y) gradients and dl/dh_T from dl/d out, into the arrays given:
    d_out^T h_T, sum_b d_out, d_out W_hy."""
    np.dot(d_out.T, h_T, dW_hy)
    db_y[:] = d_out.sum(axis=0)
    np.dot(d_out, W_hy, g_T)


@njit(**_JIT)
def _cross_entropy_backward(W_hy, b_y, h_T, y, out, dW_hy, db_y, g_T):
    """``losses.output_backward`` for loss "cross_entropy", the reference's operations in its
    order, in one kernel: returns the loss, writes out, dW_hy, db_y and g_T."""
    B, p = h_T.shape
    k = W_hy.shape[0]
    one, nb = h_T.dtype.type(1.0), h_T.dtype.type(B)
    np.dot(h_T, W_hy.T, out)                              # (B, k) logits
    d_out = np.empty((B, k), h_T.dtype)                   # (B, k) dl/d out
    value = 0.0                                           # float64 accumulator
    for b in range(B):
        for j in range(k):
            out[b, j] += b_y[j]
        m = out[b, 0]
        for j in range(1, k):
            m = max(m, out[b, j])
        total = h_T.dtype.type(0.0)
        for j in range(k):
            d_out[b, j] = out[b, j] - m                   # shifted logits z
            total += np.exp(d_out[b, j])
        lse = np.log(total)
        value -= float(d_out[b, y[b]] - lse)              # -log softmax(out)[y]
        for j in range(k):
            d_out[b, j] = np.exp(d_out[b, j] - lse)       # softmax
        d_out[b, y[b]] -= one
        for j in range(k):
            d_out[b, j] /= nb
    _output_products(W_hy, h_T, d_out, dW_hy, db_y, g_T)
    return value / B


@njit(**_JIT)
def _mse_backward(W_hy, b_y, h_T, y, out, dW_hy, db_y, g_T):
    """``losses.output_backward`` for loss "mse" in one kernel: returns the loss, writes out,
    dW_hy, db_y and g_T."""
    B, p = h_T.shape
    k = W_hy.shape[0]
    np.dot(h_T, W_hy.T, out)                              # (B, k) outputs
    d_out = np.empty((B, k), h_T.dtype)
    value = 0.0                                           # float64 accumulator
    scale = h_T.dtype.type(2.0 / (B * k))
    for b in range(B):
        for j in range(k):
            out[b, j] += b_y[j]
            diff = out[b, j] - y[b, j]
            value += float(diff) * float(diff)
            d_out[b, j] = scale * diff
    _output_products(W_hy, h_T, d_out, dW_hy, db_y, g_T)
    return value / (B * k)


def fast_output_backward(params, h_T, y, loss):
    """``tpref.losses.output_backward``: (loss, logits, {W_hy, b_y} gradients, dl/dh_T), with
    the reference's operations in one Numba call instead of ~25 NumPy calls, each of which
    costs several times its warm time right after a kernel has filled the caches (~0.2 ms of
    an oracle call at p = 100, B = 16). Equal to it up to rounding (the loss is accumulated
    in float64 in sample order, the reference sums pairwise; tests/test_numba_backend.py).

    The arrays are allocated here, by NumPy, not inside the kernel: an array Numba allocates
    is owned by Numba's MemInfo, whose ``writeable`` flag ``tpref.deferred.freeze`` cannot
    lock (NumPy lets a view of foreign memory be made writeable again)."""
    W_hy = params["W_hy"]
    (B, p), k, dtype = h_T.shape, W_hy.shape[0], h_T.dtype
    out, dW_hy, db_y = np.empty((B, k), dtype), np.empty((k, p), dtype), np.empty(k, dtype)
    g_T = np.empty((B, p), dtype)
    kernel = _cross_entropy_backward if loss == "cross_entropy" else _mse_backward
    value = kernel(W_hy, params["b_y"], h_T, y, out, dW_hy, db_y, g_T)
    return value, out, {"W_hy": dW_hy, "b_y": db_y}, g_T


# ----------------------------------------------------------------------------------------------
# transition backward: one loop serves BP and both TP parameter updates


@njit(**_JIT)
def _block_products(delta, steps, hidden, x, t_lo, dW_hh, dW_xh, db_h):
    """Add one block's parameter directions: Delta^T [H_prev | X | 1] over steps t_lo..t_hi.

    Parameters
    ----------
    delta : ndarray of shape (chunk, B, p)
        delta[t - t_lo] = dL/du_t (scaled) for the ``steps`` steps t = t_lo..t_lo + steps - 1.
    hidden : ndarray of shape (T+1, B, p)
    x : ndarray of shape (T, B, d)
    dW_hh, dW_xh, db_h : ndarray of shape (p, p), (p, d), (p,), accumulated in place

    Notes
    -----
    The sums over t and b of Eq. (3) (TP) or of BPTT, regrouped by block: each block is one
    GEMM of inner dimension steps * B, made while the block's deltas are in cache, added
    into the accumulators by BLAS itself (``numba_blas.add_tn_product``, beta = 1).
    """
    wide_vectors()                                        # point 7 of the module docstring
    B, p = delta.shape[1], delta.shape[2]
    d_in = x.shape[2]
    rows = steps * B
    D = delta[:steps].reshape(rows, p)                             # (rows, p) dL/du
    add_tn_product(D, hidden[t_lo - 1:t_lo - 1 + steps].reshape(rows, p), dW_hh)   # h_{t-1}
    add_tn_product(D, x[t_lo - 1:t_lo - 1 + steps].reshape(rows, d_in), dW_xh)     # x_t
    for r in range(rows):
        for i in range(p):
            db_h[i] += D[r, i]


@njit(**_JIT)
def _step_deltas(g, e, h, d, coef, reset, explicit, sigmoid):
    """One step t of the Eq. (3) / BPTT recursion's element loops, on (B*p,) vectors:
    g_t = coef * e + (0 if ``reset`` else g) (e only if ``explicit``), delta_t = g_t a'(u_t)
    into ``d``; g is updated in place.

    Compiled without fastmath (no multiply-add contraction), so ``_transition_directions``
    and ``_dtp_backward`` (which needs CONTRACT for vatanh) give the same bits.
    """
    wide_vectors()                                        # point 7 of the module docstring
    n = g.size
    one = h.dtype.type(1.0)
    # branches hoisted out of the element loops, so each loop vectorizes
    if reset:
        g[:] = 0.0                                        # local: only the explicit term
    if explicit:
        for i in range(n):
            g[i] = coef * e[i] + g[i]
    if sigmoid:
        for i in range(n):
            d[i] = g[i] * (h[i] * (one - h[i]))           # delta_t = g_t a'(u_t)
    else:
        for i in range(n):
            d[i] = g[i] * (one - h[i] * h[i])


@njit(**_JIT)
def _transition_directions(W_hh, hidden, x, grad_h, coef, g_T, through_time, sigmoid, flush,
                           chunk, dW_hh, dW_xh, db_h):
    """(W_hh, W_xh, b_h) directions sum_t delta_t^T [h_{t-1} | x_t | 1], delta_t = dL/du_t.

    The loop of ``reference.transition_backward``, t = T..1, in scaled units: the explicit
    partial of step t is ``coef * grad_h[t]`` (plus ``g_T`` at t = T); with ``through_time``
    the total derivative g_t = explicit_t + delta_{t+1} W_hh is carried back, else
    g_t = explicit_t. The deltas of ``chunk`` steps are kept in a (chunk, B, p) buffer and
    turned into directions (``_block_products``) while in cache: no (T, B, p) array.

    Parameters
    ----------
    W_hh : ndarray of shape (p, p)
    hidden : ndarray of shape (T+1, B, p)
    x : ndarray of shape (T, B, d)
    grad_h : ndarray of shape (T+1, B, p), or (0, B, p) for "no explicit terms" (BP)
    coef : float
        Exact power-of-two factor applied to grad_h (the recursion's scale, with its sign).
    g_T : ndarray of shape (B, p)
        Extra explicit term at t = T (BP's dl/dh_T / s; zeros for TP).
    through_time, sigmoid : bool
    flush : float
        Entries of the carried g_t below this magnitude are set to 0 (config.FLUSH_TINY).
    chunk : int >= 1
        Time steps per block of products (config.PRODUCT_BLOCK_ROWS // B).
    dW_hh, dW_xh, db_h : ndarray of shape (p, p), (p, d), (p,), zero on entry
        Outputs, in the scaled units.
    """
    wide_vectors()                                        # point 7 of the module docstring
    T = hidden.shape[0] - 1
    B, p = g_T.shape
    n = B * p
    explicit = grad_h.shape[0] > 0
    g = g_T.copy().reshape(n)                             # (B*p,) total dL/dh_t (scaled)
    delta = np.empty((chunk, B, p), hidden.dtype)         # (chunk, B, p) deltas of one block
    t_hi = T
    while t_hi >= 1:                                      # block of steps t_lo..t_hi
        t_lo = max(1, t_hi - chunk + 1)
        for t in range(t_hi, t_lo - 1, -1):
            e = grad_h[t].reshape(n) if explicit else g   # (B*p,) explicit partial (scaled)
            _step_deltas(g, e, hidden[t].reshape(n), delta[t - t_lo].reshape(n), coef,
                         not through_time and t < T, explicit, sigmoid)
            if through_time and t > 1:
                np.dot(delta[t - t_lo], W_hh, g.reshape(B, p))   # (B, p) dL/dh_{t-1} via f_t
                for i in range(n):                        # flush (branch-free select)
                    g[i] = g[i] * (abs(g[i]) >= flush)
        _block_products(delta, t_hi - t_lo + 1, hidden, x, t_lo, dW_hh, dW_xh, db_h)
        t_hi = t_lo - 1


def _chunk(T, B, p):
    """Time steps per block of parameter products, in [1, T]: ``block_rows(p) // B``."""
    return max(1, min(T, block_rows(p) // B))


def block_rows(p):
    """Rows (steps x batch) per block of parameter products: config.PRODUCT_BLOCK_ROWS, or
    fewer, down to config.PRODUCT_SMALL_MIN_ROWS, so that the (p, rows) x (rows, p) product
    stays under config.SMALL_GEMM_MNK (OpenBLAS's unpacked small-matrix kernels)."""
    small = SMALL_GEMM_MNK // (p * p)
    return min(PRODUCT_BLOCK_ROWS, small) if small >= PRODUCT_SMALL_MIN_ROWS else PRODUCT_BLOCK_ROWS


def _zero_directions(p, d, dtype):
    """Zeroed (W_hh, W_xh, b_h) accumulators, (p, p), (p, d), (p,)."""
    return np.zeros((p, p), dtype), np.zeros((p, d), dtype), np.zeros(p, dtype)


def _directions(W_hh, hidden, x, grad_h, coef, g_T, through_time, activation, s):
    """Run ``_transition_directions`` with dtype-exact scalars; s * the directions, as a dict."""
    T, B, p = hidden.shape[0] - 1, hidden.shape[1], hidden.shape[2]
    dW_hh, dW_xh, db_h = _zero_directions(p, x.shape[2], hidden.dtype)
    _transition_directions(W_hh, hidden, x, grad_h, hidden.dtype.type(coef), g_T, through_time,
                           activation == "sigmoid", flush_tiny(hidden.dtype), _chunk(T, B, p),
                           dW_hh, dW_xh, db_h)
    return {"W_hh": s * dW_hh, "W_xh": s * dW_xh, "b_h": s * db_h}    # exact: s power of two


@njit(**_JIT)
def _bp_backward(W_hh, hidden, x, g_T, sigmoid, flush, chunk, dW_hh, dW_xh, db_h):
    """BPTT's (W_hh, W_xh, b_h) gradients from dl/dh_T, into dW_hh, dW_xh, db_h (any contents
    on entry): ``_transition_directions`` on g_T / s (s = ``core.power_of_two_scale(g_T)``,
    computed the same way here), no explicit terms, times s (exact). One call from Python
    instead of ~15 NumPy operations; the outputs are NumPy's arrays (see
    ``fast_output_backward``)."""
    B, p = g_T.shape
    dtype = hidden.dtype
    m = 0.0                                               # max |g_T|, as power_of_two_scale
    for b in range(B):
        for i in range(p):
            m = max(m, abs(float(g_T[b, i])))
    s = dtype.type(1.0)
    if np.isfinite(m) and m > 0.0:
        _, e = math.frexp(m)                              # m = f 2^e, f in [0.5, 1)
        s = dtype.type(math.ldexp(1.0, e - 1))            # 2^(e-1) <= m < 2^e
    W = np.empty((p, p), dtype)                           # (p, p) C order, 32-byte aligned
    W[:] = W_hh
    dW_hh[:] = 0.0
    dW_xh[:] = 0.0
    db_h[:] = 0.0
    _transition_directions(W, hidden, x, np.empty((0, B, p), dtype), dtype.type(1.0), g_T / s,
                           True, sigmoid, flush, chunk, dW_hh, dW_xh, db_h)
    _scale_directions(s, dW_hh, dW_xh, db_h)


@njit(**_JIT)
def _scale_directions(s, dW_hh, dW_xh, db_h):
    """dW_hh, dW_xh, db_h *= s in place (exact: s a power of two)."""
    for a in (dW_hh.reshape(dW_hh.size), dW_xh.reshape(dW_xh.size), db_h):
        for i in range(a.size):
            a[i] = s * a[i]


def transition_backward(params, x, hidden, grad_h, activation, through_time):
    """Gradient of L(h_1, ..., h_T) w.r.t. (W_hh, W_xh, b_h) (twin of the reference's).

    ``grad_h`` (T+1, B, p) holds the explicit partials dL/dh_t (grad_h[0] unused). The
    recursion runs on grad_h / s with s a power of two (exact), flushing below
    config.FLUSH_TINY; see the module docstring.

    Returns
    -------
    dict with ``W_hh`` (p, p), ``W_xh`` (p, d), ``b_h`` (p,)
    """
    s = power_of_two_scale(grad_h[1:])
    g_T = np.zeros(hidden.shape[1:], dtype=hidden.dtype)
    with blas_threads():
        return _directions(workspace.aligned(params["W_hh"]), hidden, x, grad_h, 1.0 / s, g_T,
                           through_time, activation, s)


# ----------------------------------------------------------------------------------------------
# target propagation


@njit(**_JIT)
def _propagate_linearized(P, hidden, mu, sigmoid, lo, hi, flush):
    """mu[t-1] = [(a^{-1})'(pi(h_t)) * mu[t]] P for t = T..1 (mu[T] set by the caller).

    Notes
    -----
    Eq. (2) of the paper in displacement form (Sec. 3), linear in mu, so it runs on
    mu = lam / s. ``(a^{-1})'(v)`` is written as the reference writes it:
    1 / (1 - v^2) (tanh), 1 / (v (1 - v)) (sigmoid), with pi(v) = clip(v, lo, hi).
    """
    wide_vectors()                                        # point 7 of the module docstring
    T = hidden.shape[0] - 1
    B, p = hidden.shape[1], hidden.shape[2]
    one = hidden.dtype.type(1.0)
    z = np.empty((B, p), hidden.dtype)                    # (B, p) (a^{-1})'(pi(h_t)) * mu_t
    for t in range(T, 0, -1):
        h = hidden[t]
        m = mu[t]
        if sigmoid:
            for b in range(B):
                for i in range(p):
                    v = min(max(h[b, i], lo), hi)
                    z[b, i] = (one / (v * (one - v))) * m[b, i]
        else:
            for b in range(B):
                for i in range(p):
                    v = min(max(h[b, i], lo), hi)
                    z[b, i] = (one / (one - v * v)) * m[b, i]
        out = mu[t - 1]
        np.dot(z, P, out)                                 # (B, p) rows of M^{-1} W_hh^T z
        for b in range(B):
            for i in range(p):                            # flush (branch-free select)
                out[b, i] = out[b, i] * (abs(out[b, i]) >= flush)


@njit(**_JIT)
def _tp_backward(P, W_hh, hidden, x, mu, keep, s, sigmoid, lo, hi, flush, through_time, chunk,
                 dW_hh, dW_xh, db_h):
    """Linearized TP, its Eq. (3) deltas and the parameter directions in one pass over t = T..1.

    At each step t, while h_t and mu_t are in cache, in one loop over the (B*p,) block:

    - z_t for Eq. (2) in displacement form: mu_{t-1} = z_t P, z_t = (a^{-1})'(pi(h_t)) * mu_t
      (as ``_propagate_linearized``);
    - Eq. (3) deltas, as ``_transition_directions`` with explicit partials -mu_t:
      delta_t = g_t * a'(u_t), g_t = -mu_t (+ delta_{t+1} W_hh if ``through_time``);

    then, only when ``keep`` and s != 1, the output lam_t = s * mu_t over mu_t. Every
    ``chunk`` steps the deltas of those steps, still in cache, go into the parameter
    directions (``_block_products`` on a block of ``chunk`` steps): no (T, B, p) delta array
    is written. Without ``keep`` (what ``rnn_oracle`` runs) mu_t and mu_{t-1} live in a
    (2, B, p) buffer that stays in cache, and no (T+1, B, p) array is written at all: the
    displacements are recomputed by ``LinearizedTP.displacements`` when a caller reads them.

    Parameters
    ----------
    P : ndarray of shape (p, p), ``regularized_pinv_map``
    W_hh : ndarray of shape (p, p)
    hidden : ndarray of shape (T+1, B, p)
    x : ndarray of shape (T, B, d)
    mu : ndarray of shape (T+1, B, p) if ``keep``, else (2, B, p)
        ``keep``: mu[T] = lam_T / s on entry; lam (unscaled) on exit. Otherwise mu_t lives in
        mu[t % 2]: mu[T % 2] = lam_T / s on entry; scratch on exit.
    keep : bool
        Write every displacement (True) or only carry the last two (False).
    s : float, power of two
        Units of the recursion; s = 1 (units of lam) skips the rescaling of the outputs.
    chunk : int >= 1
        Time steps per block of parameter products (config.PRODUCT_BLOCK_ROWS // B).
    dW_hh, dW_xh, db_h : ndarray of shape (p, p), (p, d), (p,), zero on entry
        Outputs, in units of s: sum_t delta_t^T [h_{t-1} | x_t | 1] for
        L = sum_t ||h_t - v_t||^2 / 2.
    """
    wide_vectors()                                        # point 7 of the module docstring
    T = hidden.shape[0] - 1
    B, p = hidden.shape[1], hidden.shape[2]
    n = B * p
    one = hidden.dtype.type(1.0)
    z = np.empty(n, hidden.dtype)                         # (B*p,) (a^{-1})'(pi(h_t)) * mu_t
    g = np.zeros(n, hidden.dtype)                         # (B*p,) carried dL/dh_t (through time)
    delta = np.empty((chunk, B, p), hidden.dtype)         # (chunk, B, p) deltas of one block
    t_hi = T
    while t_hi >= 1:                                      # block of steps t_lo..t_hi
        t_lo = max(1, t_hi - chunk + 1)
        for t in range(t_hi, t_lo - 1, -1):
            h = hidden[t].reshape(n)
            m = mu[t if keep else t & 1].reshape(n)
            d = delta[t - t_lo].reshape(n)
            # z_t (it feeds the product) and delta_t in one loop over h_t, mu_t, with
            # g_t = -mu_t + delta_{t+1} W_hh: g stays 0 for update="local" (h_{t-1} held
            # fixed), where -mu_t + 0 is -mu_t (up to the sign of a zero). The activation's
            # branch is hoisted out of the element loop, so each loop vectorizes.
            if sigmoid:
                for i in range(n):
                    hv, mv = h[i], m[i]
                    v = min(max(hv, lo), hi)
                    z[i] = (one / (v * (one - v))) * mv
                    d[i] = (-mv + g[i]) * (hv * (one - hv))   # delta_t = g_t a'(u_t)
            else:
                for i in range(n):
                    hv, mv = h[i], m[i]
                    v = min(max(hv, lo), hi)
                    z[i] = (one / (one - v * v)) * mv
                    d[i] = (-mv + g[i]) * (one - hv * hv)
            if keep and s != one:                         # output lam_t = s mu_t (exact)
                for i in range(n):
                    m[i] = s * m[i]
            out = mu[t - 1 if keep else (t - 1) & 1]
            np.dot(z.reshape(B, p), P, out)               # (B, p) mu_{t-1}
            of = out.reshape(n)
            for i in range(n):
                of[i] = of[i] * (abs(of[i]) >= flush)
            if through_time and t > 1:
                np.dot(delta[t - t_lo], W_hh, g.reshape(B, p))   # (B, p) dL/dh_{t-1} via f_t
                for i in range(n):
                    g[i] = g[i] * (abs(g[i]) >= flush)
        _block_products(delta, t_hi - t_lo + 1, hidden, x, t_lo, dW_hh, dW_xh, db_h)
        t_hi = t_lo - 1
    if keep and s != one:
        m = mu[0].reshape(n)
        for i in range(n):
            m[i] = s * m[i]                               # exact


@njit(**_JIT)
def _tp_directions(P, W_hh, hidden, x, lam_T, s, sigmoid, lo, hi, flush, through_time, chunk,
                   dW_hh, dW_xh, db_h):
    """``_tp_backward`` without keeping the displacements (mu_t in a (2, B, p) buffer,
    mu_T = lam_T / s), the directions into dW_hh, dW_xh, db_h (any contents on entry), times
    s (exact): ``LinearizedTP.fused(keep=False)`` in one call from Python instead of ~12
    NumPy operations. The outputs are NumPy's arrays (see ``fast_output_backward``)."""
    T = hidden.shape[0] - 1
    mu = np.empty((2,) + lam_T.shape, hidden.dtype)      # (2, B, p) mu_t in mu[t % 2]
    mu[T & 1] = lam_T / s                                 # exact: s a power of two
    dW_hh[:] = 0.0
    dW_xh[:] = 0.0
    db_h[:] = 0.0
    _tp_backward(P, W_hh, hidden, x, mu, False, s, sigmoid, lo, hi, flush, through_time, chunk,
                 dW_hh, dW_xh, db_h)
    _scale_directions(s, dW_hh, dW_xh, db_h)


class LinearizedTP:
    """One linearized-TP backward pass (Eq. 1-3) at fixed P, hidden states and lam_T.

    ``fused`` runs ``_tp_backward``: the displacements and the Eq. (3) directions in one pass
    over t = T..1. ``rnn_oracle`` runs it without keeping the displacements (only mu_t and
    mu_{t-1}, in cache) and defers them (``linearized_displacements``): ``OracleResult``
    computes them the first time a caller reads ``result.displacements`` or
    ``result.targets``: training reads neither, and writing the (T+1, B, p) array was most of what TP cost beyond BP (10 MB at
    the pixel-MNIST shapes in float64; docs/benchmarks.md, fifth round).

    ``displacements`` runs Eq. (2) again with ``_propagate_linearized``: the same elementwise
    expressions, the same (B, p) x (p, p) BLAS products and the same flushes, in the same
    units, as ``_tp_backward``, so it returns the bits the fused pass carried (tested bit
    for bit against ``fused(..., keep=True)``).

    Parameters
    ----------
    P : ndarray of shape (p, p), ``regularized_pinv_map``
    hidden : ndarray of shape (T+1, B, p)
    lam_T : ndarray of shape (B, p)
        lam_T = -gamma_h dl/dh_T, Eq. (1).
    activation : {"tanh", "sigmoid"}
    eps : float
        clip tolerance of pi.
    """

    def __init__(self, P, hidden, lam_T, activation, eps):
        dtype = hidden.dtype
        self.P, self.hidden, self.lam_T = P, hidden, lam_T
        self.sigmoid = activation == "sigmoid"
        self.lo, self.hi = clip_bounds(activation, eps, dtype)
        self.s, self.flush = tp_units(lam_T)           # units of lam, or of s < sqrt(FLUSH_TINY)

    def _start(self, mu):
        """``mu`` with mu_T = lam_T / s in its slot (T % len(mu)), exact."""
        mu[(self.hidden.shape[0] - 1) % mu.shape[0]] = self.lam_T / self.s
        return mu

    def fused(self, W_hh, x, through_time, keep=False):
        """(direction, lam): the (W_hh, W_xh, b_h) directions of Eq. (3), and the (T+1, B, p)
        displacements if ``keep`` (else None). Call it inside ``blas_threads()``, as
        ``rnn_oracle`` does."""
        T, B, p = self.hidden.shape[0] - 1, self.hidden.shape[1], self.hidden.shape[2]
        dtype = self.hidden.dtype
        if not keep:                    # rnn_oracle's call: one Numba call (_tp_directions)
            dW_hh, dW_xh, db_h = np.empty((p, p), dtype), np.empty((p, x.shape[2]), dtype), \
                np.empty(p, dtype)
            _tp_directions(self.P, W_hh, self.hidden, x, self.lam_T, self.s, self.sigmoid,
                           self.lo, self.hi, self.flush, through_time, _chunk(T, B, p), dW_hh,
                           dW_xh, db_h)
            return {"W_hh": dW_hh, "W_xh": dW_xh, "b_h": db_h}, None
        mu = self._start(workspace.empty((T + 1, B, p), dtype))
        dW_hh, dW_xh, db_h = _zero_directions(p, x.shape[2], dtype)
        _tp_backward(self.P, W_hh, self.hidden, x, mu, True, self.s, self.sigmoid, self.lo,
                     self.hi, self.flush, through_time, _chunk(T, B, p), dW_hh, dW_xh, db_h)
        s = self.s
        return {"W_hh": s * dW_hh, "W_xh": s * dW_xh, "b_h": s * db_h}, mu

    def recursion(self):
        """mu_t = lam_t / s, (T+1, B, p): Eq. (2) in displacement form, in the pass's units."""
        # pooled under its own key, (1, T+1, B, p): a loop reading every result's
        # displacements then recycles these buffers and the hidden states' separately
        mu = self._start(workspace.empty((1,) + self.hidden.shape, self.hidden.dtype)[0])
        with blas_threads():
            _propagate_linearized(self.P, self.hidden, mu, self.sigmoid, self.lo, self.hi,
                                  self.flush)
        return mu

    def displacements(self):
        """lam_t = v_t - h_t, (T+1, B, p), Eq. (2) in displacement form."""
        mu = self.recursion()
        if self.s != 1:
            mu *= self.s                                          # exact: s a power of two
        return mu


def linearized_displacements(P, hidden, lam_T, activation, eps):
    """lam_t = v_t - h_t, (T+1, B, p), of linearized TP (Eq. 2) from P, h_0..h_T and lam_T.

    What ``rnn_oracle`` defers for "tp" (``tpref.deferred.Deferred``, its arguments frozen):
    ``LinearizedTP(...).displacements()``, the bits its fused pass carried.
    """
    return LinearizedTP(P, hidden, lam_T, activation, eps).displacements()


@njit(fastmath=CONTRACT, **_JIT)
def _propagate_difference(P, hidden, lam, sigmoid, lo, hi, flush):
    """lam[t-1] = [a^{-1}(pi(h_t + lam_t)) - a^{-1}(pi(h_t))] P for t = T..1.

    Notes
    -----
    Difference TP, Sec. 2.2: f^{-1}(h_t + lam_t) - f^{-1}(h_t) with the regularized inverse;
    the affine terms W_xh x_t + b_h cancel before the product (module docstring, point 2).
    a^{-1} is atanh, or log(v) - log1p(-v) for the sigmoid, as in the reference, computed by
    ``numba_math.vatanh`` / ``vlogit`` (vectorizable; point 4 of the module docstring).
    """
    wide_vectors()                                        # point 7 of the module docstring
    T = hidden.shape[0] - 1
    B, p = hidden.shape[1], hidden.shape[2]
    z = np.empty((B, p), hidden.dtype)
    for t in range(T, 0, -1):
        h = hidden[t]
        m = lam[t]
        for b in range(B):
            for i in range(p):
                v1 = min(max(h[b, i] + m[b, i], lo), hi)
                v0 = min(max(h[b, i], lo), hi)
                if sigmoid:
                    z[b, i] = vlogit(v1) - vlogit(v0)
                else:
                    z[b, i] = vatanh(v1) - vatanh(v0)
        out = lam[t - 1]
        np.dot(z, P, out)
        for b in range(B):
            for i in range(p):
                out[b, i] = out[b, i] * (abs(out[b, i]) >= flush)


@njit(fastmath=CONTRACT, **_JIT)
def _difference_step(h, m, z, sigmoid, lo, hi):
    """z = a^{-1}(pi(h + m)) - a^{-1}(pi(h)) on (B*p,) vectors: one step of
    ``_propagate_difference``'s element loop (vatanh / vlogit need fastmath=CONTRACT)."""
    wide_vectors()                                        # point 7 of the module docstring
    if sigmoid:
        for i in range(h.size):
            v1 = min(max(h[i] + m[i], lo), hi)
            v0 = min(max(h[i], lo), hi)
            z[i] = vlogit(v1) - vlogit(v0)
    else:
        for i in range(h.size):
            v1 = min(max(h[i] + m[i], lo), hi)
            v0 = min(max(h[i], lo), hi)
            z[i] = vatanh(v1) - vatanh(v0)


@njit(**_JIT)
def _dtp_backward(P, W_hh, hidden, x, lam, sigmoid, lo, hi, flush, coef, through_time, chunk,
                  dW_hh, dW_xh, db_h):
    """Difference TP and its Eq. (3) directions in one pass over t = T..1.

    Step t is ``_propagate_difference``'s (lam_{t-1} from h_t and lam_t) followed by
    ``_transition_directions``'s with explicit partials ``coef * lam_t`` (``_step_deltas``),
    while h_t and lam_t are in cache; the deltas of ``chunk`` steps go into the directions
    (``_block_products``). The same operations on the same numbers as the two passes one
    after the other (tested bit for bit), without reading the (T+1, B, p) hidden states and
    displacements back from memory a second time.

    Parameters
    ----------
    P : ndarray of shape (p, p), ``regularized_pinv_map``
    W_hh : ndarray of shape (p, p)
    hidden : ndarray of shape (T+1, B, p)
    x : ndarray of shape (T, B, d)
    lam : ndarray of shape (T+1, B, p)
        lam[T] = lam_T on entry; every displacement on exit (units of lam).
    flush : float
        config.FLUSH_TINY: entries of lam_{t-1} and of the carried g below it are set to 0.
    coef : float
        -1 / s, s = power_of_two_scale(lam_T): the directions run in units of s.
    dW_hh, dW_xh, db_h : ndarray of shape (p, p), (p, d), (p,), zero on entry
        Outputs, in units of s.
    """
    wide_vectors()                                        # point 7 of the module docstring
    T = hidden.shape[0] - 1
    B, p = hidden.shape[1], hidden.shape[2]
    n = B * p
    z = np.empty((B, p), hidden.dtype)                    # (B, p) a^{-1} difference of step t
    zf = z.reshape(n)
    g = np.zeros(n, hidden.dtype)                         # (B*p,) carried dL/dh_t (scaled)
    delta = np.empty((chunk, B, p), hidden.dtype)         # (chunk, B, p) deltas of one block
    t_hi = T
    while t_hi >= 1:                                      # block of steps t_lo..t_hi
        t_lo = max(1, t_hi - chunk + 1)
        for t in range(t_hi, t_lo - 1, -1):
            h = hidden[t].reshape(n)
            m = lam[t].reshape(n)
            _difference_step(h, m, zf, sigmoid, lo, hi)  # (B*p,) a^{-1} difference
            out = lam[t - 1]
            np.dot(z, P, out)                             # (B, p) lam_{t-1}
            of = out.reshape(n)
            for i in range(n):
                of[i] = of[i] * (abs(of[i]) >= flush)
            _step_deltas(g, m, h, delta[t - t_lo].reshape(n), coef,
                         not through_time and t < T, True, sigmoid)
            if through_time and t > 1:
                np.dot(delta[t - t_lo], W_hh, g.reshape(B, p))   # (B, p) dL/dh_{t-1} via f_t
                for i in range(n):
                    g[i] = g[i] * (abs(g[i]) >= flush)
        _block_products(delta, t_hi - t_lo + 1, hidden, x, t_lo, dW_hh, dW_xh, db_h)
        t_hi = t_lo - 1


def dtp_backward(params, W_hh, hidden, x, lam_T, reg, activation, eps, through_time, out=None):
    """(lam, direction) of difference TP: the (T+1, B, p) displacements (into ``out`` when
    given) and the (W_hh, W_xh, b_h) directions of Eq. (3), in one pass (``_dtp_backward``).
    Call it inside ``blas_threads()``; ``W_hh`` is params["W_hh"], 64-byte aligned."""
    T, B, p = hidden.shape[0] - 1, hidden.shape[1], hidden.shape[2]
    dtype = hidden.dtype
    P = regularized_pinv_map(params["W_hh"], reg)                 # (p, p), once per call
    lo, hi = clip_bounds(activation, eps, dtype)
    lam = np.empty((T + 1, B, p), dtype=dtype) if out is None else out   # (T+1, B, p)
    lam[T] = lam_T
    s = power_of_two_scale(lam_T)                  # the directions run in units of s (exact)
    dW_hh, dW_xh, db_h = _zero_directions(p, x.shape[2], dtype)
    _dtp_backward(P, W_hh, hidden, x, lam, activation == "sigmoid", lo, hi, flush_tiny(dtype),
                  dtype.type(-1.0 / s), through_time, _chunk(T, B, p), dW_hh, dW_xh, db_h)
    return lam, {"W_hh": s * dW_hh, "W_xh": s * dW_xh, "b_h": s * db_h}


def _difference_displacements(params, hidden, lam_T, reg, activation, eps, out=None):
    """DTP's lam (T+1, B, p), written into ``out`` when given. DTP's recursion is nonlinear, so
    it runs in units of lam (no scaling)."""
    T, B, p = hidden.shape[0] - 1, hidden.shape[1], hidden.shape[2]
    dtype = hidden.dtype
    P = regularized_pinv_map(params["W_hh"], reg)                 # (p, p), once per call
    lo, hi = clip_bounds(activation, eps, dtype)
    lam = np.empty((T + 1, B, p), dtype=dtype) if out is None else out   # (T+1, B, p)
    lam[T] = lam_T
    _propagate_difference(P, hidden, lam, activation == "sigmoid", lo, hi, flush_tiny(dtype))
    return lam


def propagate_displacements(params, x, hidden, lam_T, reg, activation, eps, difference):
    """Displacements lam_t = v_t - h_t for t = T..0 (twin of the reference's).

    Linearized TP (Eq. 2 in displacement form) or difference TP (Sec. 2.2), with the inverse
    encoded once as P (``regularized_pinv_map``).

    Returns
    -------
    lam : ndarray of shape (T+1, B, p)
    """
    with blas_threads():
        if difference:
            return _difference_displacements(params, hidden, lam_T, reg, activation, eps)
        P = regularized_pinv_map(params["W_hh"], reg)                 # (p, p), once per call
    return linearized_displacements(P, hidden, lam_T, activation, eps)


# ----------------------------------------------------------------------------------------------
# the oracles


def rnn_oracle(method, params, x, y, *, loss, gamma_h, reg, update, activation, eps):
    """One oracle call of the simple RNN with the Numba kernels (twin of the reference's).

    Same arguments and result as ``tpref.methods.reference.rnn_oracle``; inputs assumed
    validated (``tpref.oracle``).
    """
    T, B, p = x.shape[0], x.shape[1], params["W_hh"].shape[0]
    dtype = params["W_hh"].dtype
    # outputs in buffers reused from call to call once the caller has dropped them (no page
    # faults; see workspace); DTP: hidden states and displacements as two views of one
    # (2, T+1, B, p) block; TP's displacements are not written here (LinearizedTP)
    if method == "dtp":
        hidden_out, lam_out = workspace.empty((2, T + 1, B, p), dtype)
    else:
        hidden_out, lam_out = workspace.empty((T + 1, B, p), dtype), None
    with blas_threads():
        hidden = rnn_forward(params, x, activation, out=hidden_out)   # (T+1, B, p)
        value, out, direction, g_T = fast_output_backward(params, hidden[-1], y, loss)
        if method == "bp":
            # BPTT: grad_h is g_T at t = T and zero elsewhere (no explicit terms array)
            dW_hh, dW_xh = np.empty((p, p), dtype), np.empty((p, x.shape[2]), dtype)
            db_h = np.empty(p, dtype)
            _bp_backward(params["W_hh"], hidden, x, g_T, activation == "sigmoid",
                         flush_tiny(dtype), _chunk(T, B, p), dW_hh, dW_xh, db_h)
            direction.update(W_hh=dW_hh, W_xh=dW_xh, b_h=db_h)
            lam = None
        else:
            W_hh = workspace.aligned(params["W_hh"])         # (p, p) C order, 64-byte aligned
            lam_T = -gamma_h * g_T                                 # Eq. (1), as the reference
            through_time = update == "through_time"
            if method == "tp":
                # fused: displacements and deltas in one pass, the displacements carried in a
                # (2, B, p) buffer (see _tp_backward); lam is deferred: computed when read,
                # from this call's P, hidden states and lam_T (frozen by Deferred)
                P = regularized_pinv_map(W_hh, reg)               # (p, p), once per call
                run = LinearizedTP(P, hidden, lam_T, activation, eps)
                run_direction, _ = run.fused(W_hh, x, through_time)
                direction.update(run_direction)
                lam = Deferred(linearized_displacements, P=P, hidden=hidden, lam_T=lam_T,
                               activation=activation, eps=eps)
            else:
                # displacements and Eq. (3)'s directions (explicit partials -lam_t, in units
                # of s = power_of_two_scale(lam_T)) in one pass over t
                lam, run_direction = dtp_backward(params, W_hh, hidden, x, lam_T, reg,
                                                  activation, eps, through_time, out=lam_out)
                direction.update(run_direction)
    return {"loss": value, "output": out, "hidden": hidden, "displacements": lam,
            "direction": direction}
