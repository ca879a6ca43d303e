"""Difference target propagation with a LEARNED inverse: Manchev & Spratling's TPTT (NumPy reference).

The paper (Appendix D) compares its linearized TP with the classic form of target
propagation through time: difference TP whose inverse is a reverse layer with its own weights,
trained to invert the forward step (Manchev & Spratling, "Target Propagation in Recurrent
Neural Networks", JMLR 2020; docs/peers.md). This module is the readable reference of that
method ("dtp_learned" in ``tpref.oracle``); ``tpref.kernels.numba_dtp_learned`` is its twin.
docs/equations.md, section "DTP with a learned inverse", derives every line.

Names (the paper's, and TPTT's in brackets), rows of a batch as everywhere in tpref::

    forward step     F(x_t, h) = f_t(h) = a(W_xh x_t + W_hh h + b_h)
    reverse layer    G(x_t, h) = a(W_xh x_t + V_hh h + c_h)     [G; V, c]; reuses W_xh
    first target     v_T = h_T - gamma_h dl/dh_T                  [alpha_i]
    targets          v_{t-1} = h_{t-1} - G(x_t, h_t) + G(x_t, v_t)
    forward loss     L_F = sum_t mse(F(x_t, h_{t-1}), v_t)        h_{t-1}, v_t held fixed
    inverse loss     L_G = sum_t mse(G(x_t, F(x_t, h~_{t-1})), h~_{t-1}),  h~ = h + noise eps
    output layer     the plain gradient of the loss l             (W_hy, b_y)

Reductions (TPTT's, so that its published step sizes transfer): l is the batch MEAN loss
(each sample's dl/dh_T carries 1/B, as in tpref's other methods); ``mse(a, b)`` is the mean
of (a - b)^2 over all B * p entries of one step (Theano's ``T.mean``), and the per-step
losses are SUMMED over t = 1..T. So the directions are

    (W_hh, W_xh, b_h):  (2 / (B p)) sum_t d_theta F(x_t, h_{t-1}) (h_t - v_t)
    (V_hh, c_h):        (2 / (B p)) sum_t d_(V,c) G(x_t, f~_t) (G(x_t, f~_t) - h~_{t-1}),
                        f~_t = F(x_t, h~_{t-1})
    (W_hy, b_y):        dl/d(W_hy, b_y)

i.e. 2 / (B p) times tpref's "dtp" direction for the same targets (whose Eq. 3 surrogate is
sum_t sum_b ||.||^2 / 2).

Noise: eps_t (t = 0..T-1), standard normal of shape (T, B, p), drawn with
``numpy.random.default_rng(seed).standard_normal`` in float64 (the same seed gives the same
bits on every backend), multiplied by ``noise`` and rounded to the params' dtype. h~_0 = h_0 +
noise eps_0 is perturbed too, as in TPTT.

Schedule: TPTT takes, in each mini-batch, the inverse step first (V, c <- V, c - lr_G dL_G),
then computes the targets with the UPDATED reverse layer and takes the forward step. One
oracle call represents this with ``reverse_lr``: the (V_hh, c_h) direction is always the
gradient at the reverse weights given; the targets, and so the forward direction, use
V_hh - reverse_lr dV_hh, c_h - reverse_lr dc_h (plain SGD, what TPTT runs on MNIST), or the
given weights when ``reverse_lr`` is None. A training loop that then steps (V_hh, c_h) with
plain SGD at ``reverse_lr`` lands exactly on the weights the targets used.

Conventions: time-major, x (T, B, d); hidden (T+1, B, p) with hidden[t] = h_t; x[t - 1] is
the paper's x_t.
"""

from types import SimpleNamespace

import numpy as np

from ..models.activations import activate, derivative_from_output
from ..models.rnn import rnn_forward
from ..losses import output_backward
from .reference import transition_backward


# ----------------------------------------------------------------------------------------------
# the reverse layer


def reverse_preactivation(params, x_t, h):
    """W_xh x_t + V_hh h + c_h for a batch of rows h (B, p) -> (B, p): G's pre-activation."""
    return x_t @ params["W_xh"].T + h @ params["V_hh"].T + params["c_h"]


def reverse_layer(params, x_t, h, activation):
    """G(x_t, h) = a(W_xh x_t + V_hh h + c_h), (B, p): the learned inverse of f_t (TPTT)."""
    return activate(activation, reverse_preactivation(params, x_t, h))


def activation_difference(activation, u, delta):
    """a(u + delta) - a(u), elementwise, without cancellation.

    tanh(u + d) - tanh(u) = tanh(d) (1 - tanh(u + d) tanh(u))   (exact identity), and the
    sigmoid, written 0.5 (1 + tanh(u / 2)) as everywhere in tpref, gives
    sigmoid(u + d) - sigmoid(u) = 0.5 tanh(d / 2) (1 - tanh((u + d) / 2) tanh(u / 2)).
    A plain difference of the two O(1) values errs by ~eps, i.e. loses the leading digits of
    a small displacement (gamma_h = 1e-7 on MNIST: displacements ~1e-9, ~7 digits left);
    the identity errs by a few eps |delta| (1 + |u|) (tests/test_dtp_learned.py, against
    mpmath).
    """
    if activation == "tanh":
        return np.tanh(delta) * (1.0 - np.tanh(u + delta) * np.tanh(u))
    half_u, half_d = 0.5 * u, 0.5 * delta
    return 0.5 * np.tanh(half_d) * (1.0 - np.tanh(half_u + half_d) * np.tanh(half_u))


# ----------------------------------------------------------------------------------------------
# the three parts of one call


def learned_displacements(params, x, hidden, lam_T, activation):
    """Displacements lam_t = v_t - h_t, t = T..0, through the learned reverse layer.

    v_{t-1} = h_{t-1} - G(x_t, h_t) + G(x_t, v_t), written for lam (as tpref's DTP):

        lam_{t-1} = G(x_t, h_t + lam_t) - G(x_t, h_t) = a(u_t + delta_t) - a(u_t),
        u_t = W_xh x_t + V_hh h_t + c_h,   delta_t = V_hh lam_t

    (``activation_difference``). No projection: G is defined on all of R^p.

    Returns
    -------
    lam : ndarray of shape (T+1, B, p); the targets are hidden + lam.
    """
    T = x.shape[0]
    lam = np.empty_like(hidden)                                  # (T+1, B, p)
    lam[T] = lam_T
    for t in range(T, 0, -1):
        u_t = reverse_preactivation(params, x[t - 1], hidden[t])   # (B, p) G's pre-activation at h_t
        delta_t = lam[t] @ params["V_hh"].T                        # (B, p) V_hh lam_t
        lam[t - 1] = activation_difference(activation, u_t, delta_t)
    return lam


def forward_direction(params, x, hidden, lam, activation):
    """(W_hh, W_xh, b_h): gradient of L_F = sum_t mse(F(x_t, h_{t-1}), v_t), h_{t-1}, v_t fixed.

    d mse(F, v_t) / dF = (2 / (B p)) (F - v_t) = -(2 / (B p)) lam_t at F = h_t, so this is
    ``transition_backward`` (local, no term through time) with explicit partials
    -(2 / (B p)) lam_t.
    """
    B, p = hidden.shape[1], hidden.shape[2]
    return transition_backward(params, x, hidden, -(2.0 / (B * p)) * lam, activation,
                               through_time=False)


def reconstruction_backward(params, x, hidden, perturbation, activation):
    """The inverse loss L_G and its gradient with respect to (V_hh, c_h).

    L_G = sum_{t=1..T} mean_{b,i} (G(x_t, f~_t) - h~_{t-1})^2,
    h~_{t-1} = h_{t-1} + perturbation[t-1],   f~_t = F(x_t, h~_{t-1}),

    with h~ and f~ held fixed (only the reverse layer learns from L_G; TPTT). Its gradient is
    sum_t delta_t^T [f~_t | 1] with delta_t = (2 / (B p)) (G - h~_{t-1}) * a'(G's pre-activation).

    Parameters
    ----------
    perturbation : ndarray of shape (T, B, p) or None
        noise * eps_t for h_0..h_{T-1}; None for no noise.

    Returns
    -------
    value : float
    grads : dict with ``V_hh`` (p, p) and ``c_h`` (p,)
    """
    T, B, _ = x.shape
    p = hidden.shape[2]
    scale = 2.0 / (B * p)
    value = 0.0
    dV_hh = np.zeros_like(params["V_hh"])                         # (p, p)
    dc_h = np.zeros_like(params["c_h"])                           # (p,)
    for t in range(1, T + 1):
        h_prev = hidden[t - 1] if perturbation is None else hidden[t - 1] + perturbation[t - 1]
        f_t = activate(activation, x[t - 1] @ params["W_xh"].T + h_prev @ params["W_hh"].T
                       + params["b_h"])                           # (B, p) F(x_t, h~_{t-1})
        g_t = reverse_layer(params, x[t - 1], f_t, activation)    # (B, p) G(x_t, f~_t)
        r_t = g_t - h_prev                                        # (B, p) reconstruction error
        value += float(np.mean(np.square(r_t, dtype=np.float64)))
        delta = scale * r_t * derivative_from_output(activation, g_t)   # (B, p) dL_G/du
        dV_hh += delta.T @ f_t
        dc_h += delta.sum(axis=0)
    return value, {"V_hh": dV_hh, "c_h": dc_h}


# ----------------------------------------------------------------------------------------------
# one oracle call, shared by the backends


def reconstruction_noise(seed, shape, noise, dtype):
    """noise * eps, eps ~ N(0, 1) of ``shape`` from ``default_rng(seed)`` (float64 draws), in
    ``dtype``; None when noise == 0 (no draw)."""
    if noise == 0:
        return None
    eps = np.random.default_rng(seed).standard_normal(shape)     # (T, B, p) float64
    return (noise * eps).astype(dtype)


def reverse_after_step(params, grads, reverse_lr):
    """params with (V_hh, c_h) replaced by one plain SGD step at ``reverse_lr`` (None: params).

    theta - reverse_lr * g: the bits ``tpref.SGD(lr=reverse_lr).step`` produces."""
    if reverse_lr is None:
        return params
    return dict(params, V_hh=params["V_hh"] - reverse_lr * grads["V_hh"],
                c_h=params["c_h"] - reverse_lr * grads["c_h"])


def run(kernels, params, x, y, *, loss, gamma_h, noise, seed, activation, reverse_lr):
    """One "dtp_learned" oracle call with the given kernels (the flow both backends share).

    ``kernels`` has ``forward``, ``reconstruction``, ``displacements`` and
    ``forward_direction`` with the signatures of this module's (and tpref.models.rnn's)
    functions. Returns the backend dict of ``tpref.oracle`` plus ``reconstruction_loss``.
    """
    T, B, _ = x.shape
    p = params["W_hh"].shape[0]
    hidden = kernels.forward(params, x, activation)                  # (T+1, B, p)
    value, out, direction, g_T = output_backward(params, hidden[-1], y, loss)
    perturbation = reconstruction_noise(seed, (T, B, p), noise, hidden.dtype)
    rec_value, rec_grads = kernels.reconstruction(params, x, hidden, perturbation, activation)
    # TPTT's schedule: the inverse step first, then the targets with the updated G
    targets_params = reverse_after_step(params, rec_grads, reverse_lr)
    lam = kernels.displacements(targets_params, x, hidden, -gamma_h * g_T, activation)  # Eq. (1)
    direction.update(kernels.forward_direction(params, x, hidden, lam, activation))
    direction.update(rec_grads)
    return {"loss": value, "output": out, "hidden": hidden, "displacements": lam,
            "direction": direction, "reconstruction_loss": rec_value}


#: The reference's kernels for :func:`run` (backend "numpy"); the Numba twin's are
#: ``tpref.kernels.numba_dtp_learned.NUMBA``.
REFERENCE = SimpleNamespace(forward=rnn_forward, reconstruction=reconstruction_backward,
                            displacements=learned_displacements,
                            forward_direction=forward_direction)
