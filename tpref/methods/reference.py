"""The NumPy reference of the RNN oracles: BP (BPTT), linearized TP and difference TP.

This file is the readable ground truth of tpref. Every loop over time is written out; every
faster backend (``tpref.kernels``) is tested by equality with the functions here, and these
functions are tested against independent checks (finite differences, PyTorch autograd in
float64, identities the paper states). docs/equations.md maps each equation to its line here.

Conventions: time-major, batch of row vectors. x (T, B, d); hidden (T+1, B, p) with
hidden[t] = h_t; x[t - 1] is the paper's x_t (time steps are 1-based in the paper).
"""

import numpy as np

from ..losses import output_backward
from ..models.activations import derivative_from_output, inverse, inverse_derivative, project
from ..models.inverse import apply_regularized_pinv, factor_regularized_gram
from ..models.rnn import rnn_forward


# ----------------------------------------------------------------------------------------------
# transition backward: one loop serves BP, and both TP parameter updates


def transition_backward(params, x, hidden, grad_h, activation, through_time):
    """Gradient of a loss L(h_1, ..., h_T) with respect to (W_hh, W_xh, b_h).

    ``grad_h[t]`` is the explicit partial derivative dL/dh_t (t = 1..T; grad_h[0] is unused).

    - ``through_time=True``: h_{t-1} depends on the parameters through the recursion, so the
      total derivative g_t = grad_h[t] + (dh_{t+1}/dh_t)^T g_{t+1} is back-propagated (BPTT).
      With grad_h nonzero only at T this is back-propagation (Sec. 3, "For BP, the updates...").
    - ``through_time=False``: h_{t-1} is held fixed, so only the explicit term of each step
      contributes: the sum over t of d_theta f_t(h_{t-1}) grad_h[t] (Eq. 3 with
      grad_h[t] = h_t - v_t).

    Returns
    -------
    dict with ``W_hh`` (p, p), ``W_xh`` (p, d), ``b_h`` (p,)
    """
    W_hh = params["W_hh"]
    T, B, _ = x.shape
    dW_hh = np.zeros_like(W_hh)                         # (p, p)
    dW_xh = np.zeros_like(params["W_xh"])               # (p, d)
    db_h = np.zeros_like(params["b_h"])                 # (p,)
    g = np.zeros_like(hidden[0])                        # (B, p) total dL/dh_t
    for t in range(T, 0, -1):
        g = grad_h[t] + g if through_time else grad_h[t]
        delta = g * derivative_from_output(activation, hidden[t])   # (B, p) dL/du_t
        dW_hh += delta.T @ hidden[t - 1]
        dW_xh += delta.T @ x[t - 1]
        db_h += delta.sum(axis=0)
        if through_time:
            g = delta @ W_hh                            # (B, p) dL/dh_{t-1} through f_t
    return {"W_hh": dW_hh, "W_xh": dW_xh, "b_h": db_h}


# ----------------------------------------------------------------------------------------------
# target propagation


def regularized_inverse(params, factor, x_t, v, activation, eps):
    """f_t^{-1}(v) = (W_hh^T W_hh + r I)^{-1} W_hh^T (a^{-1}(pi(v)) - W_xh x_t - b_h), (B, p) rows.

    Notes: Sec. 2.1 of the paper (the regularized inverse, solution of Eq. 4 for r -> 0).
    """
    z = inverse(activation, project(activation, v, eps)) - x_t @ params["W_xh"].T - params["b_h"]
    return apply_regularized_pinv(factor, params["W_hh"], z)


def propagate_displacements(params, x, hidden, lam_T, reg, activation, eps, difference):
    """Displacements lam_t = v_t - h_t for t = T..0, from lam_T back through the inverses.

    - linearized TP (``difference=False``), Eq. (2) written for lam (Sec. 3):
          lam_{t-1} = d_h f_t^{-1}(h_t)^T lam_t
                    = (W_hh^T W_hh + r I)^{-1} W_hh^T [ (a^{-1})'(pi(h_t)) * lam_t ]
    - difference TP (``difference=True``), Sec. 2.2 (Lee et al. 2015, Eq. 15):
          lam_{t-1} = f_t^{-1}(h_t + lam_t) - f_t^{-1}(h_t)

    Returns
    -------
    lam : ndarray of shape (T+1, B, p)
        lam[t] = v_t - h_t; the targets are hidden + lam.
    """
    T = x.shape[0]
    factor = factor_regularized_gram(params["W_hh"], reg)        # once per call (Sec. 3)
    lam = np.empty_like(hidden)                                  # (T+1, B, p)
    lam[T] = lam_T
    for t in range(T, 0, -1):
        if difference:
            lam[t - 1] = difference_step(params, factor, x[t - 1], hidden[t], lam[t], activation,
                                         eps)
        else:
            lam[t - 1] = linearized_inverse_step(params, factor, hidden[t], lam[t], activation,
                                                 eps)
    return lam


def linearized_inverse_step(params, factor, h_t, lam_t, activation, eps):
    """One step of Eq. (2) for the displacements: lam_t (B, p) -> lam_{t-1} (B, p).

        lam_{t-1} = (W_hh^T W_hh + r I)^{-1} W_hh^T [ (a^{-1})'(pi(h_t)) * lam_t ]

    ``factor`` is :func:`factor_regularized_gram` of (W_hh, reg).
    """
    z = inverse_derivative(activation, project(activation, h_t, eps)) * lam_t     # (B, p)
    return apply_regularized_pinv(factor, params["W_hh"], z)


def difference_step(params, factor, x_t, h_t, lam_t, activation, eps):
    """One step of difference TP (Sec. 2.2): lam_{t-1} = f_t^{-1}(h_t + lam_t) - f_t^{-1}(h_t).

    x_t (B, d) is x[t - 1]; h_t, lam_t (B, p) -> lam_{t-1} (B, p).
    """
    return (regularized_inverse(params, factor, x_t, h_t + lam_t, activation, eps)
            - regularized_inverse(params, factor, x_t, h_t, activation, eps))


# ----------------------------------------------------------------------------------------------
# the oracles


def rnn_oracle(method, params, x, y, *, loss, gamma_h, reg, update, activation, eps):
    """One oracle call of the simple RNN with the NumPy reference loops.

    Inputs are assumed validated (``tpref.oracle`` does that). Returns a dict with ``loss``,
    ``output`` (B, k), ``hidden`` (T+1, B, p), ``displacements`` ((T+1, B, p) or None for BP)
    and ``direction`` (dict shaped like params). The targets v_t = h_t + lam_t are not
    returned: ``OracleResult.targets`` forms hidden + displacements when it is read.

    Notes
    -----
    - "bp": d loss / d theta by back-propagation through time.
    - "tp": targets by Eq. (1)-(2); (W_hh, W_xh, b_h) by Eq. (3): the gradient of
      sum_t sum_b ||f_t(h_{t-1}) - v_t||^2 / 2 (``update="local"``: h_{t-1} fixed;
      ``"through_time"``: h_{t-1} = h_{t-1}(theta), the authors' code); (W_hy, b_y) by the
      plain gradient of the loss.
    - "dtp": as "tp" with the difference formula of Sec. 2.2 in place of Eq. (2).
    """
    hidden = rnn_forward(params, x, activation)                  # (T+1, B, p)
    value, out, direction, g_T = output_backward(params, hidden[-1], y, loss)
    T = x.shape[0]
    if method == "bp":
        grad_h = np.zeros_like(hidden)
        grad_h[T] = g_T
        direction.update(transition_backward(params, x, hidden, grad_h, activation, True))
        lam = None
    else:
        lam_T = -gamma_h * g_T                                   # Eq. (1): v_T = h_T - gamma_h dl/dh_T
        lam = propagate_displacements(params, x, hidden, lam_T, reg, activation, eps,
                                      difference=(method == "dtp"))
        # the targets v_t = h_t + lam_t are OracleResult.targets, formed when read
        # Eq. (3): d/dtheta sum_t ||h_t(theta) - v_t||^2 / 2, explicit part h_t - v_t = -lam_t
        direction.update(transition_backward(params, x, hidden, -lam, activation,
                                             through_time=(update == "through_time")))
    return {"loss": value, "output": out, "hidden": hidden, "displacements": lam,
            "direction": direction}
