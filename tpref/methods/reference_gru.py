"""The NumPy reference of the GRU oracles: BP (BPTT) and linearized TP (per-gate, the authors'
per-gate scheme as their code computes it, and exact).

Readable ground truth for the GRU, written like ``reference.py`` (explicit loops over time,
displacements lam_t = v_t - h_t). The Numba twins in ``tpref.kernels.numba_gru`` are tested by
equality with these functions; these are tested against torch.nn.GRU autograd (float64),
central finite differences, and the regimes of docs/gru.md where the two inverses coincide.

Transition (PyTorch's convention, see ``tpref.models.gru``), per sample, column vectors:

    h_t = (1 - z) * n + z * h_{t-1},   n = tanh(W_xn x_t + b_xn + r * g),   g = W_hn h_{t-1} + b_hn

Its Jacobian J_t = dh_t/dh_{t-1} is a sum of one diagonal (carry) and three paths:

    J_t = diag(z)                                          carry
        + diag((1 - z) * n' * r)            W_hn           candidate        (n' = 1 - n^2)
        + diag((h_{t-1} - n) * z (1 - z))   W_hz           update gate
        + diag((1 - z) * n' * g * r (1 - r)) W_hr          reset gate
"""

import numpy as np
import scipy.linalg

from ..models.gru import gru_forward
from ..losses import output_backward
from ..models.inverse import (RegularizedInverseError, apply_regularized_pinv,
                              factor_regularized_gram)


# ----------------------------------------------------------------------------------------------
# transition backward: BP, and both TP parameter updates


def gru_step_backward(params, x_t, h_prev, r, z, n, g, gh):
    """Backward of one GRU step: pre-activation deltas and dL/dh_{t-1} through f_t.

    Parameters
    ----------
    x_t : (B, d); h_prev, r, z, n, g : (B, p)
        Input, previous state and the cached gate values of step t.
    gh : (B, p)
        dL/dh_t.

    Returns
    -------
    da_r, da_z, da_n : (B, p)
        dL/d(pre-activation) of r, z and n (the bias-of-input-path gradients, per sample).
    dg : (B, p)
        dL/dg_t, g_t = W_hn h_{t-1} + b_hn (the gradient of b_hn per sample).
    gh_prev : (B, p)
        dL/dh_{t-1} through f_t: gh * z + da_r W_hr + da_z W_hz + dg W_hn.
    """
    dn = gh * (1.0 - z)                          # (B, p) dL/dn
    dz = gh * (h_prev - n)                       # (B, p) dL/dz
    da_n = dn * (1.0 - n * n)                    # (B, p) tanh'
    dr = da_n * g
    dg = da_n * r
    da_r = dr * r * (1.0 - r)                    # sigmoid'
    da_z = dz * z * (1.0 - z)
    gh_prev = gh * z + da_r @ params["W_hr"] + da_z @ params["W_hz"] + dg @ params["W_hn"]
    return da_r, da_z, da_n, dg, gh_prev


def gru_transition_backward(params, x, hidden, cache, grad_h, through_time):
    """Gradient of L(h_1, ..., h_T) with respect to the GRU transition parameters.

    ``grad_h[t]`` is the explicit partial dL/dh_t (t = 1..T; grad_h[0] unused). With
    ``through_time=True`` the total derivative is back-propagated through the recursion (BPTT;
    grad_h nonzero only at T is BP); with ``through_time=False`` h_{t-1} is held fixed
    (Eq. 3 with grad_h[t] = h_t - v_t = -lam_t).

    Returns
    -------
    dict with the 12 transition keys of ``config.GRU_TRANSITION_NAMES``
    """
    T = x.shape[0]
    grads = {name: np.zeros_like(params[name]) for name in params if name not in ("W_hy", "b_y")}
    gh = np.zeros_like(hidden[0])                                 # (B, p) total dL/dh_t
    for t in range(T, 0, -1):
        gh = grad_h[t] + gh if through_time else grad_h[t]
        s = t - 1                                                 # cache index of step t
        da_r, da_z, da_n, dg, gh_prev = gru_step_backward(
            params, x[s], hidden[s], cache["r"][s], cache["z"][s], cache["n"][s], cache["g"][s], gh)
        for gate, delta in (("r", da_r), ("z", da_z), ("n", da_n)):
            grads["W_x" + gate] += delta.T @ x[s]
            grads["b_x" + gate] += delta.sum(axis=0)
        for gate, delta in (("r", da_r), ("z", da_z), ("n", dg)):
            grads["W_h" + gate] += delta.T @ hidden[s]
            grads["b_h" + gate] += delta.sum(axis=0)
        if through_time:
            gh = gh_prev
    return grads


# ----------------------------------------------------------------------------------------------
# linearized inverses of the transition (docs/gru.md)


def gru_jacobian(params, h_prev, r, z, n, g):
    """J_t = dh_t/dh_{t-1} for each sample: (B, p) cached rows -> (B, p, p).

    J[b] = diag(z) + diag((1-z) n' r) W_hn + diag((h_prev - n) z(1-z)) W_hz
           + diag((1-z) n' g r(1-r)) W_hr, with n' = 1 - n^2 (column-vector convention:
    J[b, i, j] = dh_t[i] / dh_{t-1}[j]).
    """
    dn = (1.0 - z) * (1.0 - n * n)                                # (B, p)
    J = (dn * r)[:, :, None] * params["W_hn"]                     # (B, p, p)
    J += ((h_prev - n) * z * (1.0 - z))[:, :, None] * params["W_hz"]
    J += (dn * g * r * (1.0 - r))[:, :, None] * params["W_hr"]
    idx = np.arange(z.shape[1])
    J[:, idx, idx] += z
    return J


def exact_inverse_step(params, h_prev, r, z, n, g, lam, reg):
    """lam_{t-1} = (J_t^T J_t + r I)^{-1} J_t^T lam_t per sample: the exact linearized
    regularized inverse of the full transition (the slow, obviously-correct reference).

    It is the minimizer of ||J_t delta - lam_t||^2 + reg ||delta||^2 (Eq. 4 linearized at
    h_{t-1}, residual measured on h_t). One Cholesky factorization per step and sample.
    """
    J = gru_jacobian(params, h_prev, r, z, n, g)                  # (B, p, p)
    p = J.shape[1]
    out = np.empty_like(lam)
    for b in range(lam.shape[0]):
        M = J[b].T @ J[b] + reg * np.eye(p, dtype=J.dtype)        # (p, p)
        try:
            c = scipy.linalg.cho_factor(M, lower=True, check_finite=False)
        except np.linalg.LinAlgError as err:
            raise RegularizedInverseError(
                f"J_t^T J_t + reg*I is not positive definite with reg={reg!r}: the GRU "
                f"Jacobian is singular; use reg > 0") from err
        out[b] = scipy.linalg.cho_solve(c, J[b].T @ lam[b], check_finite=False)
    return out


def gru_factors(params, reg):
    """Cholesky factors of (W_h*^T W_h* + reg I) for * = r, z, n: once per oracle call."""
    return {gate: factor_regularized_gram(params["W_h" + gate], reg) for gate in "rzn"}


def per_gate_inverse_step(params, factors, h_prev, r, z, n, g, lam, reg, eps):
    """One step of the per-gate linearized inverse (the authors' scheme, PyTorch's convention).

    Each path of J_t (module docstring) gets its own regularized inverse; the sigmoid
    derivatives are inverted (gates clipped to [eps, 1 - eps]), tanh' and the other
    coefficients are kept as in the Jacobian:

        lam_{t-1} = z / (z^2 + reg) * lam                                    carry
                  + P_n[ (1 - z) * r * n' * lam ]                            candidate
                  + P_z[ (h_{t-1} - n) * lam / (z~ (1 - z~)) ]               update gate
                  + P_r[ (1 - z) * n' * g * lam / (r~ (1 - r~)) ]            reset gate

    with P_* u = (W_h*^T W_h* + reg I)^{-1} W_h*^T u and z~, r~ the clipped gates.
    docs/gru.md derives where it coincides with :func:`exact_inverse_step`.
    """
    zc = np.clip(z, eps, 1.0 - eps)
    rc = np.clip(r, eps, 1.0 - eps)
    dn = (1.0 - z) * (1.0 - n * n)                                # (B, p)
    u_n = dn * r * lam
    u_z = (h_prev - n) * lam / (zc * (1.0 - zc))
    u_r = dn * g * lam / (rc * (1.0 - rc))
    return (z / (z * z + reg) * lam
            + apply_regularized_pinv(factors["n"], params["W_hn"], u_n)
            + apply_regularized_pinv(factors["z"], params["W_hz"], u_z)
            + apply_regularized_pinv(factors["r"], params["W_hr"], u_r))


def authors_per_gate_inverse_step(params, factors, h_prev, r, z, n, g, lam, reg, eps):
    """One step of the per-gate inverse as the paper's authors' code computes it.

    Their GRU adaptation of TP (vroulet/tpri; docs/gru.md, Sec. 3.3) differs from
    :func:`per_gate_inverse_step` in two places:

    1. *Gate convention.* Their formula is derived for h = (1 - z) h_{t-1} + z n, while the
       forward pass is PyTorch's h = (1 - z) n + z h_{t-1}: every coefficient that is 1 - z in
       PyTorch's Jacobian is z in theirs and vice versa, and the update gate's path has
       dh/dz = n - h_{t-1} instead of h_{t-1} - n.
    2. *Carry.* lam goes through the carry with the plain coefficient (1 - z, their
       convention's dh/dh_{t-1} with W_h* = 0), not its regularized inverse z / (z^2 + reg).

    With z the update gate of the forward pass (PyTorch's), everything else as in
    :func:`per_gate_inverse_step`:

        lam_{t-1} = (1 - z) * lam                                            carry (plain)
                  + P_n[ z * r * n' * lam ]                                  candidate
                  + P_z[ (n - h_{t-1}) * lam / (z~ (1 - z~)) ]               update gate
                  + P_r[ z * n' * g * lam / (r~ (1 - r~)) ]                  reset gate

    Equivalently (tests/test_gru.py): their step equals tpref's per-gate step with the
    carry made plain, evaluated with the update gate negated (W_xz, W_hz, b_xz, b_hz -> their
    negatives, so z -> 1 - z), which is the statement checked by running their code.
    """
    zc = np.clip(z, eps, 1.0 - eps)
    rc = np.clip(r, eps, 1.0 - eps)
    dn = z * (1.0 - n * n)                                        # (B, p) their 1 - z is our z
    u_n = dn * r * lam
    u_z = (n - h_prev) * lam / (zc * (1.0 - zc))
    u_r = dn * g * lam / (rc * (1.0 - rc))
    return ((1.0 - z) * lam
            + apply_regularized_pinv(factors["n"], params["W_hn"], u_n)
            + apply_regularized_pinv(factors["z"], params["W_hz"], u_z)
            + apply_regularized_pinv(factors["r"], params["W_hr"], u_r))


#: The one-step maps of the per-gate inverses, by ``gru_inverse`` name.
_PER_GATE_STEPS = {"per_gate": per_gate_inverse_step, "authors": authors_per_gate_inverse_step}


def gru_propagate_displacements(params, hidden, cache, lam_T, reg, eps, inverse):
    """Displacements lam_t = v_t - h_t for t = T..0 by the linearized inverse, Eq. (2).

    Parameters
    ----------
    inverse : {"per_gate", "exact", "authors"}

    Returns
    -------
    lam : ndarray of shape (T+1, B, p)
    """
    T = hidden.shape[0] - 1
    step = _PER_GATE_STEPS.get(inverse)
    factors = gru_factors(params, reg) if step is not None else None
    lam = np.empty_like(hidden)                                   # (T+1, B, p)
    lam[T] = lam_T
    for t in range(T, 0, -1):
        s = t - 1
        gates = (hidden[s], cache["r"][s], cache["z"][s], cache["n"][s], cache["g"][s])
        if step is not None:
            lam[s] = step(params, factors, *gates, lam[t], reg, eps)
        else:
            lam[s] = exact_inverse_step(params, *gates, lam[t], reg)
    return lam


# ----------------------------------------------------------------------------------------------
# the oracle


def gru_oracle(method, params, x, y, *, loss, gamma_h, reg, update, eps, inverse):
    """One oracle call of the GRU with the NumPy reference loops.

    Same contract as ``reference.rnn_oracle`` (inputs validated by ``tpref.oracle``); returns
    a dict with ``loss``, ``output``, ``hidden``, ``displacements``, ``direction`` (the targets
    hidden + displacements are formed by ``OracleResult.targets``).

    Notes
    -----
    - "bp": d loss / d theta by back-propagation through time.
    - "tp": v_T = h_T - gamma_h dl/dh_T (Eq. 1), lam_{t-1} by the linearized inverse
      ``inverse`` (Eq. 2, docs/gru.md), transition parameters by Eq. (3) (``update``), output
      layer by the plain gradient.
    """
    hidden, cache = gru_forward(params, x)                        # (T+1, B, p)
    value, out, direction, g_T = output_backward(params, hidden[-1], y, loss)
    T = x.shape[0]
    if method == "bp":
        grad_h = np.zeros_like(hidden)
        grad_h[T] = g_T
        direction.update(gru_transition_backward(params, x, hidden, cache, grad_h, True))
        lam = None
    else:
        lam_T = -gamma_h * g_T                                    # Eq. (1)
        lam = gru_propagate_displacements(params, hidden, cache, lam_T, reg, eps, inverse)
        direction.update(gru_transition_backward(params, x, hidden, cache, -lam,
                                                 through_time=(update == "through_time")))
    direction = {name: direction[name] for name in params}        # params' key order
    return {"loss": value, "output": out, "hidden": hidden, "displacements": lam,
            "direction": direction}
