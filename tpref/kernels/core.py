"""What every kernel twin must compute the same way: scales, flush thresholds, clip bounds
and the regularized pseudo-inverse map; and the BLAS thread limit every oracle call runs under
(``blas_threads``).

The numba RNN (``numba_rnn``), the numba GRU (``numba_gru``) and the CUDA RNN (``cuda_rnn``)
kernels take these numbers as arguments; each twin computes them here, on the host, and
nowhere else, so a fix made for one twin holds for all (the TP flush threshold of the scaled
pass once underflowed to 0 in the CUDA twin after it was fixed in the numba one).
Nothing here is jitted; nothing here imports another twin.
"""

import contextlib

import numpy as np
import scipy.linalg

from ..config import BLAS_THREADS, FLUSH_TINY
from ..models.inverse import factor_regularized_gram
from . import workspace

__all__ = ["flush_tiny", "power_of_two_scale", "tp_units", "clip_bounds", "gate_flush_threshold",
           "regularized_pinv_map", "blas_threads"]


def flush_tiny(dtype):
    """config.FLUSH_TINY as a scalar of ``dtype`` (a Python float would make Numba compare
    float32 entries in float64, converting every element)."""
    dtype = np.dtype(dtype)
    return dtype.type(FLUSH_TINY[dtype])


def power_of_two_scale(a):
    """The power of two s <= max|a| nearest to it (1 if a is all zero or not finite), as a's dtype.

    Dividing or multiplying by s is exact (barring overflow/underflow), so a recursion run on
    a / s and multiplied back by s gives the reference's bits while its entries stay O(1).
    """
    m = float(np.max(np.abs(a))) if a.size else 0.0
    if not (np.isfinite(m) and m > 0.0):
        return a.dtype.type(1.0)
    _, e = np.frexp(m)                                   # m = f 2^e, f in [0.5, 1)
    return np.ldexp(a.dtype.type(1.0), int(e) - 1)       # 2^(e-1) <= m < 2^e


def tp_units(lam_T):
    """(s, flush): the units and the flush threshold of linearized TP's recursion (Eq. 2).

    The recursion is linear in lam, so it runs on mu = lam / s (exact, s a power of two) and
    its output is s * mu. Entries of mu_{t-1} below ``flush`` are set to 0 at each step, so
    no subnormal number enters the arithmetic (config.FLUSH_TINY).

    - s0 = power_of_two_scale(lam_T) >= sqrt(FLUSH_TINY): run in units of lam (s = 1, no
      rescaling pass) with the threshold FLUSH_TINY * s0, a normal number;
    - smaller s0: run in units of s = s0 with the threshold FLUSH_TINY (FLUSH_TINY * s0
      would come within 2^30 of the subnormals, or underflow to 0 and flush nothing).

    Both ways give the same bits (scaling by a power of two is exact); only the cost differs.

    Parameters
    ----------
    lam_T : ndarray of shape (B, p)
        lam_T = -gamma_h dl/dh_T (Eq. 1), in the computation's dtype.

    Returns
    -------
    s, flush : scalars of lam_T's dtype; ``flush`` is a positive normal number
    """
    dtype = lam_T.dtype
    tiny = flush_tiny(dtype)
    s = power_of_two_scale(lam_T)
    if s >= np.sqrt(tiny):
        return dtype.type(1.0), dtype.type(tiny * s)
    return s, tiny


def clip_bounds(activation, eps, dtype):
    """pi's interval as the reference's np.clip sees it (bounds rounded to ``dtype``):
    [-1 + eps, 1 - eps] for tanh, [eps, 1 - eps] for the sigmoid (and the GRU's gates)."""
    dtype = np.dtype(dtype)
    lo, hi = (-1.0 + eps, 1.0 - eps) if activation == "tanh" else (eps, 1.0 - eps)
    return dtype.type(lo), dtype.type(hi)


def gate_flush_threshold(dtype):
    """finfo.tiny / finfo.eps: the GRU kernels flush values below it to zero.

    Unlike the simple RNN's recursions (``tp_units``), the GRU's backward kernels run in the
    units of their inputs: flushing only below finfo.tiny is not enough there, because inside
    the per-step BLAS products a value just above tiny times a weight of size ~eps..1 lands in
    the subnormal range again. Below tiny / eps (9.9e-32 in float32, 2.0e-292 in float64) the
    absolute change is still far below the tolerance policy's floor (config.ATOL_SCALE).
    """
    info = np.finfo(dtype)
    return info.dtype.type(info.tiny / info.eps)


def regularized_pinv_map(W, reg):
    """P = W (W^T W + r I)^{-1} (p, p); z -> z P applies (W^T W + r I)^{-1} W^T to row vectors.

    The "encoding of the inverse" of Sec. 3, once per oracle call (W = W_hh for the simple
    RNN, each recurrent block W_h* for the GRU's per-gate inverse): one Cholesky factor
    M = L L^T (``factor_regularized_gram``, with its RegularizedInverseError), the triangular
    inverse L^{-1} (LAPACK trtri), and P^T = L^{-T} (L^{-1} W^T) as two triangular products
    (BLAS trmm). Same as ``cho_solve(factor, W.T).T`` up to rounding, in ~0.7x its time at
    p = 100: OpenBLAS's trsm with p right-hand sides runs at a fraction of trmm's rate.
    Returned C-contiguous and 64-byte aligned (``workspace.aligned``).
    """
    c, _ = factor_regularized_gram(W, reg)                        # L in c's lower part
    trtri, = scipy.linalg.lapack.get_lapack_funcs(("trtri",), (c,))
    trmm, = scipy.linalg.blas.get_blas_funcs(("trmm",), (c,))
    L_inv, info = trtri(c, lower=1, overwrite_c=1)                # L^{-1}, lower part only
    if info != 0:                                                 # not after a checked factor
        raise np.linalg.LinAlgError(f"trtri returned info={info}")
    Y = trmm(1.0, L_inv, W.T, lower=1)                            # (p, p) L^{-1} W^T
    P_T = trmm(1.0, L_inv, Y, lower=1, trans_a=1, overwrite_b=1)  # (p, p) L^{-T} Y = P^T
    return workspace.aligned(P_T.T)                               # P_T is F-ordered


_CONTROLLER = None
_BLAS_LIBS = ()
_UNLIMITED = contextlib.nullcontext()


def blas_threads(limit=BLAS_THREADS):
    """Context manager limiting NumPy's and SciPy's BLAS pools to ``limit`` threads (None: no-op).

    A ``threadpoolctl.ThreadpoolController`` is built once per process (scanning the loaded
    libraries costs ~0.7 ms). When every BLAS pool already runs ``limit`` threads (a process
    pinned to one thread, as ``tpref bench`` and the sweep workers are), nothing is set: the
    pools' thread counts are read (~2 us) instead of entering threadpoolctl's limit (~30 us,
    of an oracle call's ~0.1 ms fixed cost at T = 1).
    """
    global _CONTROLLER, _BLAS_LIBS
    if limit is None:
        return _UNLIMITED
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController
        _CONTROLLER = ThreadpoolController()
        _BLAS_LIBS = tuple(lc for lc in _CONTROLLER.lib_controllers if lc.user_api == "blas")
    if all(lc.get_num_threads() == limit for lc in _BLAS_LIBS):
        return _UNLIMITED
    return _CONTROLLER.limit(limits=limit, user_api="blas")
