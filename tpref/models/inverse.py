"""The regularized inverse of a transition, factored once per oracle call (Sec. 2.1).

    f_t^{-1}(v) = (W_hh^T W_hh + r I)^{-1} W_hh^T (a^{-1}(pi(v)) - W_xh x_t - b_h)

The matrix M = W_hh^T W_hh + r I is the same for every time step t, so it is factored once
(SciPy's Cholesky, M = L L^T) and every application is two triangular solves: the p^3 term
of T_TP ~ p^3 + T_BP in Sec. 3. The reference forms no explicit inverse; the kernel twins
encode the map once as a matrix from the same factor (``tpref.kernels.core.regularized_pinv_map``).
"""

import numpy as np
import scipy.linalg


class RegularizedInverseError(np.linalg.LinAlgError, ValueError):
    """W_hh^T W_hh + reg I is not (numerically) positive definite: reg too small for W_hh."""


def factor_regularized_gram(W_hh, reg):
    """Cholesky factor of M = W_hh^T W_hh + reg I, or a clear error if M is singular.

    Parameters
    ----------
    W_hh : ndarray of shape (p, p)
    reg : float, >= 0

    Returns
    -------
    factor : tuple
        ``(c, lower)`` as returned by :func:`scipy.linalg.cho_factor` (lower-triangular).

    Raises
    ------
    RegularizedInverseError
        If the factorization fails, or if M's condition number exceeds 1 / (p * machine eps),
        which happens for ``reg = 0`` with a singular W_hh.
    """
    p = W_hh.shape[0]
    M = W_hh.T @ W_hh + reg * np.eye(p, dtype=W_hh.dtype)        # (p, p) symmetric
    try:
        c, lower = scipy.linalg.cho_factor(M, lower=True, check_finite=False)
    except np.linalg.LinAlgError as err:
        raise RegularizedInverseError(
            f"Cholesky factorization of W_hh^T W_hh + reg*I failed with reg={reg!r}: the matrix "
            f"is not positive definite in floating point. Either W_hh is singular and reg is 0 "
            f"(use reg > 0), or W_hh is so large (max |W_hh| = {np.max(np.abs(W_hh)):.3g}) that "
            f"reg is lost in rounding, which usually means the training run diverged") from err
    diag = np.abs(np.diag(c))
    # cond(M) = cond(L)^2 >= (max diag / min diag)^2
    if not diag.min() > diag.max() * np.sqrt(p * np.finfo(W_hh.dtype).eps):
        raise RegularizedInverseError(
            f"W_hh^T W_hh + reg*I is numerically singular with reg={reg!r} (Cholesky pivots "
            f"range over [{diag.min():.3g}, {diag.max():.3g}]): W_hh is (near) singular, use "
            f"reg > 0; or W_hh is huge (max |W_hh| = {np.max(np.abs(W_hh)):.3g}) and the run "
            f"diverged")
    return c, lower


def apply_regularized_pinv(factor, W_hh, z):
    """Rows of (W_hh^T W_hh + r I)^{-1} W_hh^T z_b for a batch of row vectors z: (B, p) -> (B, p).

    ``factor`` comes from :func:`factor_regularized_gram` for the same W_hh.
    """
    rhs = (z @ W_hh).T                                             # (p, B) = W_hh^T z^T
    return scipy.linalg.cho_solve(factor, rhs, check_finite=False).T
