"""Single-step reference operations: check one operation of your implementation on its own.

Every function takes one time step's arrays, with the batch as rows ((B, p); a single (p,)
vector is accepted too and the result then has the same shape), and returns what tpref's
reference computes for that step, in the inputs' dtype. They are thin wrappers around the
functions the NumPy reference itself loops over (``tpref.models.rnn``, ``tpref.models.gru``,
``tpref.methods.reference``, ``tpref.methods.reference_gru``): a step here is bit for bit a
step of ``tpref.oracle(..., backend="numpy")``.

Indices follow ``OracleResult``: ``hidden[t]`` is h_t, ``displacements[t]`` is lam_t =
v_t - h_t, and the input of step t is ``x[t - 1]`` (the paper's x_t).

======================  ==========================================================  ======
operation               what it computes                                            paper
======================  ==========================================================  ======
forward_step            h_t = f_t(h_{t-1}) (RNN, or PyTorch's GRU with cell="gru")  Sec. 2
first_target            lam_T = v_T - h_T = -gamma_h dl/dh_T                        Eq. 1
regularized_inverse     f_t^{-1}(v) = (W^T W + r I)^{-1} W^T (a^{-1}(pi(v)) - ...)  Eq. 4
linearized_inverse_step lam_{t-1} from lam_t (RNN: at h_t; GRU: per-gate or exact)  Eq. 2
difference_step         lam_{t-1} = f_t^{-1}(h_t + lam_t) - f_t^{-1}(h_t)           Sec 2.2
direction_step          step t's term of Eq. (3): d_theta f_t(h_{t-1}) (h_t - v_t)  Eq. 3
======================  ==========================================================  ======

Summing ``direction_step`` over t = 1..T gives the ``update="local"`` direction of the
transition parameters (``update="through_time"`` also differentiates h_{t-1}; no single-step
form).
"""

import numpy as np

from ..config import CLIP_EPS
from ..losses import loss_and_grad
from ..models.inverse import factor_regularized_gram
from ..methods import reference as _rnn
from ..methods import reference_gru as _gru
from ..models.gru import gru_step
from ..models.rnn import rnn_step

__all__ = ["forward_step", "first_target", "regularized_inverse", "linearized_inverse_step",
           "difference_step", "direction_step"]


def _rows(*arrays):
    """Promote (p,) vectors to (1, p) rows; return the arrays and whether to squeeze back."""
    single = np.ndim(arrays[0]) == 1
    out = tuple(np.atleast_2d(np.asarray(a)) for a in arrays)
    return out, single


def _back(a, single):
    return a[0] if single else a


def forward_step(params, x_t, h_prev, *, activation="tanh", cell="rnn"):
    """h_t = f_t(h_{t-1}), one transition (Sec. 2; the GRU: ``tpref.models.gru``).

    Parameters
    ----------
    params : dict
        RNN or GRU parameters (``cell``).
    x_t : (B, d) or (d,)
        The input of step t, ``x[t - 1]``.
    h_prev : (B, p) or (p,)
        h_{t-1}.

    Returns
    -------
    h_t : same shape as ``h_prev``
    """
    (h_prev, x_t), single = _rows(h_prev, x_t)
    if cell == "gru":
        h_t, _ = gru_step(params, x_t, h_prev)
    else:
        h_t = rnn_step(params, x_t, h_prev, activation)
    return _back(h_t, single)


def first_target(params, h_T, y, *, loss, gamma_h):
    """lam_T = v_T - h_T = -gamma_h dl/dh_T, Eq. (1), for the batch-mean ``loss``.

    Each row carries the 1/B of the batch mean (PyTorch's ``reduction="mean"``): a per-sample
    loss instead of the mean gives B times this.

    Parameters
    ----------
    h_T : (B, p)
    y : (B,) integer labels (``loss="cross_entropy"``) or (B, k) floats (``"mse"``)

    Returns
    -------
    lam_T : (B, p)
    """
    h_T = np.atleast_2d(np.asarray(h_T))
    _, g_T = loss_and_grad(loss, h_T @ params["W_hy"].T + params["b_y"], np.asarray(y))
    return -gamma_h * (g_T @ params["W_hy"])                      # (B, p)


def regularized_inverse(params, x_t, v, *, reg, activation="tanh", clip_eps=CLIP_EPS):
    """f_t^{-1}(v) = (W_hh^T W_hh + r I)^{-1} W_hh^T (a^{-1}(pi(v)) - W_xh x_t - b_h) (Sec. 2.1,
    the regularized solution of Eq. 4), simple RNN.

    Parameters
    ----------
    x_t : (B, d) or (d,)
        ``x[t - 1]``.
    v : (B, p) or (p,)
        A target for h_t; clipped by pi to the activation's image shrunk by ``clip_eps``.
    """
    (v, x_t), single = _rows(v, x_t)
    factor = factor_regularized_gram(params["W_hh"], reg)
    return _back(_rnn.regularized_inverse(params, factor, x_t, v, activation, clip_eps), single)


def linearized_inverse_step(params, h, lam_t, *, reg, activation="tanh", clip_eps=CLIP_EPS,
                            cell="rnn", x_t=None, gru_inverse="per_gate"):
    """lam_{t-1} from lam_t by the linearized regularized inverse, Eq. (2).

    Simple RNN: ``h`` is h_t and
    lam_{t-1} = (W_hh^T W_hh + r I)^{-1} W_hh^T [(a^{-1})'(pi(h_t)) * lam_t]
    (the derivative of a^{-1} taken at the clipped h_t).

    GRU (``cell="gru"``): ``h`` is h_{t-1} and ``x_t`` (= ``x[t - 1]``) is required, since the
    gates of step t depend on both; ``gru_inverse`` is "per_gate" (the authors' scheme),
    "authors" (as their code computes it) or "exact" ((J_t^T J_t + r I)^{-1} J_t^T lam_t),
    as in ``tpref.oracle``.

    Returns
    -------
    lam_prev : same shape as ``lam_t``
    """
    if cell == "gru":
        if x_t is None:
            raise ValueError("x_t (the input x[t - 1] of step t) is required for cell='gru'")
        (h, lam_t, x_t), single = _rows(h, lam_t, x_t)
        _, g = gru_step(params, x_t, h)
        gates = (h, g["r"], g["z"], g["n"], g["g"])
        if gru_inverse == "exact":
            out = _gru.exact_inverse_step(params, *gates, lam_t, reg)
        else:
            per_gate = _gru._PER_GATE_STEPS[gru_inverse]
            out = per_gate(params, _gru.gru_factors(params, reg), *gates, lam_t, reg, clip_eps)
        return _back(out, single)
    (h, lam_t), single = _rows(h, lam_t)
    factor = factor_regularized_gram(params["W_hh"], reg)
    return _back(_rnn.linearized_inverse_step(params, factor, h, lam_t, activation, clip_eps),
                 single)


def difference_step(params, x_t, h_t, lam_t, *, reg, activation="tanh", clip_eps=CLIP_EPS):
    """lam_{t-1} = f_t^{-1}(h_t + lam_t) - f_t^{-1}(h_t): difference TP (Sec. 2.2), simple RNN.

    x_t (B, d) is ``x[t - 1]``; h_t, lam_t (B, p) -> lam_{t-1} (B, p).
    """
    (h_t, lam_t, x_t), single = _rows(h_t, lam_t, x_t)
    factor = factor_regularized_gram(params["W_hh"], reg)
    return _back(_rnn.difference_step(params, factor, x_t, h_t, lam_t, activation, clip_eps),
                 single)


def direction_step(params, x_t, h_prev, lam_t, *, activation="tanh", cell="rnn"):
    """Step t's contribution to the TP direction of the transition parameters, Eq. (3):

        d_theta f_t(h_{t-1})^T (h_t - v_t) = -d_theta f_t(h_{t-1})^T lam_t,  h_{t-1} held fixed,

    summed over the batch (Eq. 3 sums over samples). The sum over t = 1..T of these is
    ``OracleResult.direction`` of the transition parameters for ``update="local"``.

    Parameters
    ----------
    x_t : (B, d)
        ``x[t - 1]``.
    h_prev : (B, p)
        h_{t-1} (the step recomputes h_t = f_t(h_{t-1}) for a'(u_t)).
    lam_t : (B, p)
        lam_t = v_t - h_t.

    Returns
    -------
    dict
        RNN: ``W_hh``, ``W_xh``, ``b_h``; GRU: the 12 transition parameters.
    """
    (h_prev, lam_t, x_t), _ = _rows(h_prev, lam_t, x_t)
    x1 = x_t[None]                                                # (1, B, d): a one-step run
    if cell == "gru":
        h_t, g = gru_step(params, x_t, h_prev)
        hidden = np.stack([h_prev, h_t])                          # (2, B, p)
        cache = {name: value[None] for name, value in g.items()}
        return _gru.gru_transition_backward(params, x1, hidden, cache,
                                            np.stack([np.zeros_like(lam_t), -lam_t]), False)
    hidden = np.stack([h_prev, rnn_step(params, x_t, h_prev, activation)])
    return _rnn.transition_backward(params, x1, hidden, np.stack([np.zeros_like(lam_t), -lam_t]),
                                    activation, through_time=False)
