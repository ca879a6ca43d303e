"""The tolerance policy of ``tpref.verify.compare``: one rule, here and nowhere else.

A candidate in precision ``dtype`` is allowed, entry by entry, what a *correct*
implementation in that precision gets wrong, measured rather than guessed:

    tol = SAFETY * noise_t  +  RTOL[dtype] |ref|  +  ATOL_SCALE[dtype] max|ref_t|  +  floor

- ``ref`` is tpref's float64 result; ``noise_t`` is the error of tpref's own run in ``dtype``
  against it (the reference in the candidate's precision is "a correct implementation").
  SAFETY = ``config.F32_REF_FACTOR``: the rule of the benchmark's validation
  (``tpref.bench.validate``) and of the backend tests, applied here per time step.
- Quantities indexed by time (hidden, targets, displacements) are scaled *per step*: a
  global scale would hide an error at a step whose values are far below the largest step
  (displacements that grow backwards through time). ``noise_t`` is the worst relative error of
  the own run within WINDOW steps of t, times max|ref_t|: a correct implementation rounds in
  a different order, so its error at one step is not tpref's at exactly that step.
- ``floor`` is SAFETY x the larger of the dtype's smallest normal number and
  ``config.FLUSH_TINY[dtype]`` (sqrt of it) times the scale where the recursion started
  (max|lam_T| for displacements and targets): steps whose values underflow, or fall below
  what tpref's own kernels flush to zero, are not judged by digits they cannot hold (at
  reg = 10 the float32 displacements decay to ~1e-40, below float32's normal range).
- A float64 candidate has no float32-sized noise, but ill-conditioned steps (small reg,
  saturated units) amplify float64 rounding too: ``noise_t`` is then the float32 run's error
  scaled by eps(float64) / eps(float32).
- The loss and each parameter's direction are single arrays: one scale per array.
"""

import numpy as np

from ..config import ATOL_SCALE, F32_REF_FACTOR, FLUSH_TINY, RTOL

#: Multiple of a correct implementation's measured error that a candidate may have.
SAFETY = F32_REF_FACTOR
#: Steps on either side of t whose measured relative error also bounds step t's noise.
WINDOW = 2
#: Precisions a candidate may have.
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _eps(dtype):
    return float(np.finfo(dtype).eps)


def floor(dtype, start_scale=0.0):
    """The absolute floor: below it a value counts as underflowed (see module docstring)."""
    dtype = np.dtype(dtype)
    return SAFETY * max(float(np.finfo(dtype).tiny), FLUSH_TINY[dtype] * float(start_scale))


def tolerance(ref, own, dtype, *, stepped, start_scale=0.0, own_dtype=np.float32):
    """Entrywise tolerance for a candidate of precision ``dtype`` against ``ref``.

    Parameters
    ----------
    ref : ndarray
        tpref's float64 result; axis 0 is time when ``stepped``.
    own : ndarray or None
        tpref's own run of the same call in ``own_dtype``; None: no measured noise.
    dtype : float32 or float64
        The candidate's precision.
    stepped : bool
        Scale per step along axis 0 (hidden, targets, displacements) or per array.
    start_scale : float
        Scale of the recursion's first value (max|lam_T|), for the floor.
    own_dtype : float32 or float64
        The precision ``own`` was computed in (float32; for a float64 candidate its error is
        scaled by eps(float64) / eps(float32)).

    Returns
    -------
    ndarray shaped like ``ref`` (float64)
    """
    dtype = np.dtype(dtype)
    ref = np.asarray(ref, dtype=np.float64)
    mag = np.abs(ref)
    if own is None:
        err = np.zeros_like(ref)
    else:
        own = np.asarray(own)
        err = np.abs(own.astype(np.float64) - ref)
        err = np.where(np.isfinite(err), err, np.inf)
        err = err * (_eps(dtype) / _eps(own_dtype))              # 1, or float64 from float32
    if stepped:
        axes = tuple(range(1, ref.ndim))
        scale = mag.max(axis=axes) if ref.size else np.zeros(ref.shape[0])   # (S,)
        worst = err.max(axis=axes) if ref.size else np.zeros(ref.shape[0])
        rel = np.divide(worst, scale, out=np.zeros_like(worst), where=scale > 0)
        env = np.array([rel[max(0, t - WINDOW):t + WINDOW + 1].max() for t in range(len(rel))])
        noise = np.maximum(env * scale, np.where(scale > 0, 0.0, worst))
        noise = noise.reshape((-1,) + (1,) * (ref.ndim - 1))
        scale = scale.reshape(noise.shape)
    else:
        scale = float(mag.max()) if ref.size else 0.0
        noise = float(err.max()) if ref.size else 0.0
    return (SAFETY * noise + RTOL[dtype] * mag + ATOL_SCALE[dtype] * scale
            + floor(dtype, start_scale))
