"""Numba CPU twin of method "dtp_learned" (tpref.methods.dtp_learned, TPTT's learned inverse).

Same flow (``tpref.methods.dtp_learned.run``, to which ``tpref.oracle`` hands :data:`NUMBA`:
the noise draws and the schedule are shared, not twinned), three kernels in place of the
reference's loops, tested by equality with the reference
(tests/test_dtp_learned.py: float64 to ~1e-15 relative, float32 by config's policy):

- forward pass: ``numba_rnn.rnn_forward``, the kernel every RNN method uses;
- inverse loss (``_reconstruction_kernel``): not a recursion, so it runs over blocks of
  ``numba_rnn.block_rows(p)`` rows (time steps x batch) at once: h~ = h + noise eps,
  f~ = F(x, h~), G(x, f~), the residual and its deltas in one pass per block, then
  dV_hh += delta^T f~ by one BLAS call (``numba_blas.add_tn_product``) while the block is in
  cache. The sums over t are regrouped (rounding only);
- targets (``_learned_displacements_kernel``): lam_{t-1} = a(u_t + lam_t V_hh^T) - a(u_t) by
  the reference's cancellation-free identity (``dtp_learned.activation_difference``), with
  ``numba_math.vtanh`` (< 2 ulp) for tanh; per step two (B, p) x (p, p) products. Entries
  below config.FLUSH_TINY are set to 0 as in numba_rnn's DTP (no subnormals);
- forward direction: ``numba_rnn``'s local transition kernel on explicit partials -lam_t,
  times 2 / (B p) afterwards (the reference scales lam first: rounding only).

Numba's disk cache keys a kernel on this file: a change to ``numba_math.vtanh`` or
``numba_blas`` must come with a change here (or a cleared __pycache__), as for numba_rnn.
"""

from types import SimpleNamespace

import numpy as np
from numba import njit

from . import numba_rnn
from .core import flush_tiny, power_of_two_scale
from .numba_blas import add_tn_product
from .numba_math import CONTRACT, vtanh, wide_vectors

_JIT = dict(cache=True, error_model="numpy", nogil=True)


@njit(fastmath=CONTRACT, inline="always")
def _input_term(X, W_xh_T, XW):
    """XW = X W_xh^T for rows X (rows, d), summed over j = 0..d-1 in order (the reference's
    product for the small d of every task), as an explicit loop (no BLAS call for d = 1)."""
    rows, d = X.shape
    p = W_xh_T.shape[1]
    for r in range(rows):
        for i in range(p):
            XW[r, i] = X[r, 0] * W_xh_T[0, i]
        for j in range(1, d):
            xrj = X[r, j]
            for i in range(p):
                XW[r, i] += xrj * W_xh_T[j, i]


@njit(fastmath=CONTRACT, **_JIT)
def _reconstruction_kernel(x, hidden, pert, noisy, W_xh_T, W_hh_T, b_h, V_T, c_h, sigmoid,
                           scale, chunk, dV, dc):
    """sum of the inverse loss over t, and its (V_hh, c_h) gradient accumulated in dV, dc.

    Parameters
    ----------
    x : ndarray (T, B, d); hidden : ndarray (T+1, B, p)
    pert : ndarray (T, B, p)
        noise * eps for h_0..h_{T-1} (read only when ``noisy``).
    W_xh_T (d, p), W_hh_T (p, p), V_T (p, p): C-contiguous transposes; b_h, c_h (p,)
    scale : float
        2 / (B p), the derivative of one step's mean.
    chunk : int
        Time steps per block.
    dV (p, p), dc (p,) : zero on entry, accumulated.

    Returns
    -------
    sum over every t, b, i of (G(x_t, f~_t) - h~_{t-1})^2, in float64 (divide by B p).
    """
    wide_vectors()
    T, B, d = x.shape
    p = W_hh_T.shape[0]
    dt = hidden.dtype
    one = dt.type(1.0)
    half = dt.type(0.5)
    sc = dt.type(scale)
    ht = np.empty((chunk, B, p), dt)        # h~_{t-1}
    xw = np.empty((chunk, B, p), dt)        # x_t W_xh^T
    ff = np.empty((chunk, B, p), dt)        # f~_t, then reused
    uu = np.empty((chunk, B, p), dt)        # products, then deltas
    total = 0.0
    t_lo = 1
    while t_lo <= T:
        steps = min(chunk, T - t_lo + 1)
        rows = steps * B
        H = hidden[t_lo - 1:t_lo - 1 + steps].reshape(rows, p)
        X = x[t_lo - 1:t_lo - 1 + steps].reshape(rows, d)
        Ht = ht[:steps].reshape(rows, p)
        XW = xw[:steps].reshape(rows, p)
        Fb = ff[:steps].reshape(rows, p)
        U = uu[:steps].reshape(rows, p)
        if noisy:
            Pb = pert[t_lo - 1:t_lo - 1 + steps].reshape(rows, p)
            for r in range(rows):
                for i in range(p):
                    Ht[r, i] = H[r, i] + Pb[r, i]
        else:
            for r in range(rows):
                for i in range(p):
                    Ht[r, i] = H[r, i]
        _input_term(X, W_xh_T, XW)                          # (rows, p) x W_xh^T
        np.dot(Ht, W_hh_T, U)                                # (rows, p) h~ W_hh^T
        # branches hoisted out of the element loops, so that each loop vectorizes
        if sigmoid:
            for r in range(rows):
                for i in range(p):                           # f~ = F(x, h~)
                    Fb[r, i] = half * (one + vtanh(half * ((XW[r, i] + U[r, i]) + b_h[i])))
        else:
            for r in range(rows):
                for i in range(p):
                    Fb[r, i] = vtanh((XW[r, i] + U[r, i]) + b_h[i])
        np.dot(Fb, V_T, U)                                   # (rows, p) f~ V_hh^T
        for r in range(rows):                                # G(x, f~), in place of its input
            for i in range(p):
                U[r, i] = (XW[r, i] + U[r, i]) + c_h[i]
        if sigmoid:
            for r in range(rows):
                for i in range(p):
                    U[r, i] = half * (one + vtanh(half * U[r, i]))
        else:
            for r in range(rows):
                for i in range(p):
                    U[r, i] = vtanh(U[r, i])
        for r in range(rows):
            for i in range(p):
                res = U[r, i] - Ht[r, i]                     # G(x, f~) - h~
                total += float(res) * float(res)
        if sigmoid:
            for r in range(rows):
                for i in range(p):
                    g = U[r, i]
                    U[r, i] = (sc * (g - Ht[r, i])) * (g * (one - g))   # delta = dL_G / du
        else:
            for r in range(rows):
                for i in range(p):
                    g = U[r, i]
                    U[r, i] = (sc * (g - Ht[r, i])) * (one - g * g)
        add_tn_product(U, Fb, dV)                            # dV += delta^T f~
        for r in range(rows):
            for i in range(p):
                dc[i] += U[r, i]
        t_lo += steps
    return total


@njit(fastmath=CONTRACT, **_JIT)
def _reverse_preactivations(x, hidden, W_xh_T, V_T, c_h, U):
    """U[t-1] = (x_t W_xh^T + h_t V_hh^T) + c_h for t = 1..T: G's pre-activations at the hidden
    states, one (T B, p) x (p, p) product for all steps (not a recursion)."""
    wide_vectors()
    T, B, d = x.shape
    p = V_T.shape[0]
    rows = T * B
    Uf = U.reshape(rows, p)
    np.dot(hidden[1:].reshape(rows, p), V_T, Uf)          # (T B, p) h_t V_hh^T
    XW = np.empty((rows, p), U.dtype)
    _input_term(x.reshape(rows, d), W_xh_T, XW)            # (T B, p) x_t W_xh^T
    for r in range(rows):
        for i in range(p):
            Uf[r, i] = (XW[r, i] + Uf[r, i]) + c_h[i]


@njit(fastmath=CONTRACT, **_JIT)
def _learned_displacements_kernel(U, lam, V_T, sigmoid, flush):
    """lam[t-1] = a(u_t + lam_t V_hh^T) - a(u_t), t = T..1, with u_t = U[t-1]; lam[T] set.

    The difference by the identity of ``dtp_learned.activation_difference`` (tanh:
    tanh(d) (1 - tanh(u + d) tanh(u)); sigmoid: 0.5 tanh(d/2) (1 - tanh((u+d)/2) tanh(u/2))),
    one (B, p) x (p, p) product per step and one vectorizable loop over the (B p,) block.
    """
    wide_vectors()
    T, B, p = U.shape
    n = B * p
    dt = lam.dtype
    one = dt.type(1.0)
    half = dt.type(0.5)
    dl = np.empty((B, p), dt)
    df = dl.reshape(n)
    for t in range(T, 0, -1):
        np.dot(lam[t], V_T, dl)                              # (B, p) lam_t V_hh^T
        u = U[t - 1].reshape(n)
        out = lam[t - 1].reshape(n)
        if sigmoid:
            for i in range(n):
                hu, hd = half * u[i], half * df[i]
                v = half * vtanh(hd) * (one - vtanh(hu + hd) * vtanh(hu))
                out[i] = v * (abs(v) >= flush)
        else:
            for i in range(n):
                ut, de = u[i], df[i]
                v = vtanh(de) * (one - vtanh(ut + de) * vtanh(ut))
                out[i] = v * (abs(v) >= flush)


def reconstruction(params, x, hidden, perturbation, activation):
    """Twin of ``dtp_learned.reconstruction_backward``: (value, {"V_hh", "c_h"})."""
    T, B, _ = x.shape
    p = hidden.shape[2]
    dtype = hidden.dtype
    dV = np.zeros((p, p), dtype)
    dc = np.zeros(p, dtype)
    noisy = perturbation is not None
    pert = perturbation if noisy else np.empty((0, B, p), dtype)
    chunk = max(1, min(T, numba_rnn.block_rows(p) // B))
    with numba_rnn.blas_threads():
        total = _reconstruction_kernel(
            x, hidden, np.ascontiguousarray(pert), noisy, np.ascontiguousarray(params["W_xh"].T),
            np.ascontiguousarray(params["W_hh"].T), np.ascontiguousarray(params["b_h"]),
            np.ascontiguousarray(params["V_hh"].T), np.ascontiguousarray(params["c_h"]),
            activation == "sigmoid", 2.0 / (B * p), chunk, dV, dc)
    return total / (B * p), {"V_hh": dV, "c_h": dc}


def displacements(params, x, hidden, lam_T, activation):
    """Twin of ``dtp_learned.learned_displacements``: lam (T+1, B, p)."""
    T, B, p = x.shape[0], x.shape[1], hidden.shape[2]
    lam = np.empty_like(hidden)
    lam[-1] = lam_T
    V_T = np.ascontiguousarray(params["V_hh"].T)
    U = np.empty((T, B, p), hidden.dtype)                  # G's pre-activations at h_1..h_T
    with numba_rnn.blas_threads():
        _reverse_preactivations(x, hidden, np.ascontiguousarray(params["W_xh"].T), V_T,
                                np.ascontiguousarray(params["c_h"]), U)
        _learned_displacements_kernel(U, lam, V_T, activation == "sigmoid",
                                      flush_tiny(hidden.dtype))
    return lam


def forward_direction(params, x, hidden, lam, activation):
    """Twin of ``dtp_learned.forward_direction``: (2 / (B p)) x the local Eq. (3) kernel."""
    B, p = hidden.shape[1], hidden.shape[2]
    s = power_of_two_scale(lam[1:])
    zeros = np.zeros(hidden.shape[1:], dtype=hidden.dtype)
    with numba_rnn.blas_threads():
        direction = numba_rnn._directions(np.ascontiguousarray(params["W_hh"]), hidden, x, lam,
                                          -1.0 / s, zeros, False, activation, s)
    factor = hidden.dtype.type(2.0 / (B * p))
    return {name: factor * value for name, value in direction.items()}


def _forward(params, x, activation):
    return numba_rnn.rnn_forward(params, x, activation)


#: The kernels ``tpref.methods.dtp_learned.run`` calls for backend "numba" (``tpref.oracle``
#: joins the two: kernels sit below the reference and never import it).
NUMBA = SimpleNamespace(forward=_forward, reconstruction=reconstruction,
                        displacements=displacements, forward_direction=forward_direction)
