"""Jacobians of the transitions and of their regularized inverses, and Lemma 3.1's bounds.

For teaching and for checking the claim of Sec. 3 that BP and TP share one graph of
computations: BP multiplies by d_h f_t(h_{t-1}), TP by K_t = d_h f_t^{-1}(h_t)^T. The paper's
convention d_x f = (d f^j / d x_i)_{ij} makes d_h f_t the *transposed* Jacobian J_t^T, where
J_t = dh_t/dh_{t-1} = D_t W_hh is the Jacobian (J means the Jacobian everywhere in tpref):

    J_t^T = W_hh^T D_t,                        D_t = diag(a'(u_t)),  u_t = W_xh x_t + W_hh h_{t-1} + b_h
    K_t = (W_hh^T W_hh + r I)^{-1} W_hh^T E_t,  E_t = diag((a^{-1})'(pi(h_t)))

and E_t = D_t^{-1} whenever pi is inactive (pi(h_t) = h_t). The derivation of the bounds, and
why two of them as printed in the paper do not hold, is in docs/lemma31.md.

Everything here is per sample (one column of the batch) and uses dense p x p matrices: it is
O(T p^3) and meant for small checks, not for training.
"""

import numpy as np
import scipy.linalg

from .models.inverse import factor_regularized_gram
from .models.activations import derivative_from_output, inverse_derivative, project


def jacobians(params, x, hidden, reg, activation="tanh", eps=1e-3, sample=0):
    """J_t^T = d_h f_t(h_{t-1}) and K_t = d_h f_t^{-1}(h_t)^T of one sample for t = 1..T.

    Parameters
    ----------
    params : dict
    x : ndarray (T, B, d)
    hidden : ndarray (T+1, B, p)
        From :func:`tpref.rnn_forward` (or ``OracleResult.hidden``).
    reg : float
    sample : int
        Which column b of the batch.

    Returns
    -------
    JT, K : ndarrays of shape (T, p, p)
        JT[t - 1] = J_t^T = d_h f_t(h_{t-1}) = W_hh^T D_t (J_t = dh_t/dh_{t-1}, the Jacobian)
        and K[t - 1] = d_h f_t^{-1}(h_t)^T.
    D, E : ndarrays of shape (T, p)
        Diagonals a'(u_t) and (a^{-1})'(pi(h_t)).
    """
    W_hh = params["W_hh"]
    factor = factor_regularized_gram(W_hh, reg)
    pinv = scipy.linalg.cho_solve(factor, W_hh.T)            # (p, p) (W^T W + r I)^{-1} W^T
    h = hidden[:, sample, :]                                   # (T+1, p)
    D = derivative_from_output(activation, h[1:])              # (T, p)
    E = inverse_derivative(activation, project(activation, h[1:], eps))   # (T, p)
    JT = W_hh.T[None, :, :] * D[:, None, :]                    # (T, p, p) W^T diag(D_t)
    K = pinv[None, :, :] * E[:, None, :]                       # (T, p, p) pinv diag(E_t)
    return JT, K, D, E


def direction_from_jacobians(x, hidden, g_T, mats, D, sample=0):
    """sum_t d_theta f_t(h_{t-1}) (M_{t+1} ... M_T) g_T for one sample, theta = (W_hh, W_xh, b_h).

    With mats = JT (the J_t^T) this is the sample's BP gradient; with mats = K it is the
    sample's TP direction for gamma_h = 1 (Sec. 3: the same graph of computations, other
    matrices).
    d_theta f_t(h_{t-1}) lam is (D_t lam) [h_{t-1}; x_t; 1]^T.

    Parameters
    ----------
    x : ndarray (T, B, d)
    hidden : ndarray (T+1, B, p)
    g_T : ndarray (B, p)
        d loss / d h_T.
    mats : ndarray (T, p, p)
        JT or K from :func:`jacobians`.
    D : ndarray (T, p)
        a'(u_t) from :func:`jacobians`.
    """
    T = x.shape[0]
    h = hidden[:, sample, :]                                   # (T+1, p)
    lam = g_T[sample].copy()                                   # (p,)
    out = {"W_hh": 0.0, "W_xh": 0.0, "b_h": 0.0}
    for t in range(T, 0, -1):
        if t < T:
            lam = mats[t] @ lam                                # M_{t+1} (mats[t] is time t+1)
        delta = D[t - 1] * lam                                 # (p,)
        out["W_hh"] = out["W_hh"] + np.outer(delta, h[t - 1])
        out["W_xh"] = out["W_xh"] + np.outer(delta, x[t - 1, sample])
        out["b_h"] = out["b_h"] + delta
    return out


def _flat(direction):
    return np.concatenate([np.ravel(direction[k]) for k in ("W_hh", "W_xh", "b_h")])


def lemma31(params, x, hidden, g_T, reg, activation="tanh", eps=1e-3, sample=0, ord=2):
    """Both sides of both inequalities of Lemma 3.1, for one sample, as printed and corrected.

    Norms: ``ord`` for matrices (2: spectral, "fro", np.inf, 1), the Euclidean norm of the
    concatenated (W_hh, W_xh, b_h) for directions. See docs/lemma31.md for the derivation.

    Returns
    -------
    dict with
        ``diff``         ||BP - TP||, TP with gamma_h = 1 (the first inequality's left side)
        ``delta``        sup_t ||J_t^T - K_t||
        ``a``, ``b``     sup_t ||J_t^T||, sup_t ||K_t||
        ``c_printed``    sum_{t=1}^T sum_{s=0}^{t-1} a^s b^{t-1-s}  (the paper's c)
        ``first_printed``   c_printed * delta                 (the paper's right side)
        ``first_corrected`` ||g_T|| delta sum_t ||D_t|| ||z_t|| sum_{s=0}^{T-t-1} a^s b^{T-t-1-s},
                            z_t = [h_{t-1}; x_t; 1]: a right side that holds, for ord 2 or
                            "fro" only; None for other ``ord``. Its derivation bounds
                            ||M v|| <= ||M|| ||v|| with the Euclidean norm of the direction,
                            which the spectral and Frobenius norms satisfy and the induced
                            1- and infinity-norms do not (docs/lemma31.md)
        ``second_lhs``   sup_t ||J_t^T - K_t|| (= delta)
        ``second_printed``  sup_t ||W_hh|| (||D_t - D_t^{-1}|| + ||I - M^{-1}|| ||D_t^{-1}||)
        ``second_corrected`` the same with ||W_hh^T|| for ||W_hh|| (equal for ord 2 and "fro")
        ``clipped``      whether pi was active for this sample (then E_t != D_t^{-1} and the
                         second inequality's premise fails)
    """
    JT, K, D, E = jacobians(params, x, hidden, reg, activation, eps, sample)
    T, p, _ = JT.shape
    norm = lambda A: np.linalg.norm(A, ord)                    # noqa: E731
    bp = direction_from_jacobians(x, hidden, g_T, JT, D, sample)
    tp = direction_from_jacobians(x, hidden, g_T, K, D, sample)
    diff = float(np.linalg.norm(_flat(bp) - _flat(tp)))
    delta = max(norm(JT[t] - K[t]) for t in range(T))
    a = max(norm(JT[t]) for t in range(T))
    b = max(norm(K[t]) for t in range(T))
    geo = lambda n: sum(a ** s * b ** (n - 1 - s) for s in range(n))   # noqa: E731
    c_printed = sum(geo(t) for t in range(1, T + 1))
    h = hidden[:, sample, :]
    z_norm = [np.sqrt(h[t - 1] @ h[t - 1] + x[t - 1, sample] @ x[t - 1, sample] + 1.0)
              for t in range(1, T + 1)]
    first_corrected = None                                     # the bound needs ||.||_2-compatible
    if ord in (2, "fro"):                                      # matrix norms (docstring)
        first_corrected = float(np.linalg.norm(g_T[sample])) * delta * sum(
            np.max(np.abs(D[t - 1])) * z_norm[t - 1] * geo(T - t) for t in range(1, T + 1))
    W_hh = params["W_hh"]
    factor = factor_regularized_gram(W_hh, reg)
    I_minus_Minv = np.eye(p) - scipy.linalg.cho_solve(factor, np.eye(p))   # I - M^{-1}
    second = []
    for t in range(T):
        Dt, Dinv = np.diag(D[t]), np.diag(1.0 / D[t])
        second.append(norm(Dt - Dinv) + norm(I_minus_Minv) * norm(Dinv))
    clipped = bool(np.any(project(activation, h[1:], eps) != h[1:]))
    return {
        "diff": diff, "delta": float(delta), "a": float(a), "b": float(b),
        "c_printed": float(c_printed), "first_printed": float(c_printed * delta),
        "first_corrected": first_corrected, "second_lhs": float(delta),
        "second_printed": float(norm(W_hh) * max(second)),
        "second_corrected": float(norm(W_hh.T) * max(second)), "clipped": clipped,
    }
