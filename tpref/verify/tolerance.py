"""The tolerance policy of ``tpref.verify.compare``: one rule, here and nowhere else.

A candidate in precision ``dtype`` is allowed, entry by entry, what a *correct*
implementation in that precision gets wrong, measured rather than guessed:

    tol = SAFETY * noise_t  +  RTOL[dtype] |ref|  +  ATOL_SCALE[dtype] max|ref_t|  +  floor

- ``ref`` is tpref's float64 result; ``noise_t`` is the error of tpref's own run in ``dtype``
  against it (the reference in the candidate's precision is "a correct implementation").
  SAFETY = ``config.F32_REF_FACTOR``: the rule of the benchmark's validation
  (``tpref.bench.validation.validate``) and of the backend tests, applied here per time step.
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
- Difference TP subtracts two inverses of size |a^{-1}(v)| to get one of size |lam|: its
  displacements and targets also get ``difference_noise`` per step (eps ||P|| sqrt(p) times
  the size of the two terms), which a measured run only samples.
- The loss and each parameter's direction are single arrays: one scale per array. The
  directions of one group (the output layer's; the transition's) share one relative noise,
  the worst of the group's parameters.
- The noise is measured on runs in the candidate's precision: on the exact inputs (float32
  only: in float64 that run is the reference), and on params and x moved by two rounding
  errors (random signs, seeded): a different but equally correct rounding history, so that
  a correct implementation whose rounding differs more from tpref's than tpref's own
  rounding does is not flagged, and ill-conditioned steps (small reg, saturated units,
  difference TP's cancellation) amplify float64 noise as much as they do.
"""

import numpy as np

from ..config import ATOL_SCALE, F32_REF_FACTOR, FLUSH_TINY, RTOL

#: Multiple of a correct implementation's measured error that a candidate may have.
SAFETY = F32_REF_FACTOR
#: Steps on either side of t whose measured relative error also bounds step t's noise.
WINDOW = 2
#: Precisions a candidate may have.
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def within(a, b, tol):
    """a equals b within tol entrywise; equal infinities and NaNs in both count as equal."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return False
    with np.errstate(invalid="ignore"):
        close = np.abs(a - b) <= tol
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    return bool(np.all(close | same))


def floor(dtype, start_scale=0.0):
    """The absolute floor: below it a value counts as underflowed (see module docstring)."""
    dtype = np.dtype(dtype)
    return SAFETY * max(float(np.finfo(dtype).tiny), FLUSH_TINY[dtype] * float(start_scale))


def _error(ref, owns):
    """max over the noise runs of |own - ref|."""
    err = np.zeros_like(ref)
    for own in owns:
        e = np.abs(np.asarray(own).astype(np.float64) - ref)
        err = np.maximum(err, np.where(np.isfinite(e), e, np.inf))
    return err


def tolerance(ref, owns, dtype, *, stepped, start_scale=0.0, noise=None, extra=None):
    """Entrywise tolerance for a candidate of precision ``dtype`` against ``ref``.

    Parameters
    ----------
    ref : ndarray or float
        tpref's float64 result; axis 0 is time when ``stepped``.
    owns : list of ndarray
        tpref's own runs of the same call in ``dtype`` (the noise runs, see the module
        docstring); empty: no measured noise.
    dtype : float32 or float64
        The candidate's precision.
    stepped : bool
        Scale per step along axis 0 (hidden, targets, displacements) or per array.
    start_scale : float
        Scale of the recursion's first value (max|lam_T|), for the floor.
    noise : float, optional
        Relative noise of an unstepped array, if known from a group of arrays (directions:
        :func:`direction_tolerances`); replaces the array's own.
    extra : ndarray of shape (S,), optional
        An absolute noise per step known beforehand (:func:`difference_noise`), added to the
        measured one.

    Returns
    -------
    ndarray shaped like ``ref`` (float64)
    """
    dtype = np.dtype(dtype)
    ref = np.asarray(ref, dtype=np.float64)
    mag = np.abs(ref)
    err = _error(ref, owns)
    if stepped:
        axes = tuple(range(1, ref.ndim))
        scale = mag.max(axis=axes) if ref.size else np.zeros(ref.shape[0])   # (S,)
        worst = err.max(axis=axes) if ref.size else np.zeros(ref.shape[0])
        rel = np.divide(worst, scale, out=np.zeros_like(worst), where=scale > 0)
        env = np.array([rel[max(0, t - WINDOW):t + WINDOW + 1].max() for t in range(len(rel))])
        noise_abs = np.maximum(env * scale, np.where(scale > 0, 0.0, worst))
        if extra is not None:
            noise_abs = noise_abs + extra
        noise_abs = noise_abs.reshape((-1,) + (1,) * (ref.ndim - 1))
        scale = scale.reshape(noise_abs.shape)
    else:
        scale = float(mag.max()) if ref.size else 0.0
        noise_abs = float(err.max()) if ref.size else 0.0
        if noise is not None:
            noise_abs = max(noise_abs, noise * scale)
    return (SAFETY * noise_abs + RTOL[dtype] * mag + ATOL_SCALE[dtype] * scale
            + floor(dtype, start_scale))


#: Parameters of the output layer: their directions are the plain loss gradient, computed
#: apart from the transition's (whose noise they do not share).
OUTPUT_PARAMS = ("W_hy", "b_y")


def direction_tolerances(ref_dir, own_dirs, dtype):
    """Tolerances of every parameter's direction: one relative noise per group (the output
    layer; the transition), the worst of its parameters' (they are sums of the same
    per-step terms, so one parameter's measured error says what the others' can be)."""
    rel = {}
    for n, r in ref_dir.items():
        r = np.asarray(r, np.float64)
        scale = float(np.abs(r).max()) if r.size else 0.0
        err = _error(r, [o[n] for o in own_dirs])
        rel[n] = float(err.max()) / scale if scale > 0 and err.size else 0.0
    group = {True: 0.0, False: 0.0}
    for n, v in rel.items():
        group[n in OUTPUT_PARAMS] = max(group[n in OUTPUT_PARAMS], v)
    return {n: tolerance(r, [o[n] for o in own_dirs], dtype, stepped=False,
                         noise=group[n in OUTPUT_PARAMS])
            for n, r in ref_dir.items()}


def difference_noise(params, x, hidden, lam, *, reg, activation, clip_eps, dtype):
    """Rounding noise of difference TP's steps, per step: (T+1,) absolute values.

    lam_{t-1} = P (z(h_t + lam_t) - z(h_t)), z(v) = a^{-1}(pi(v)) - W_xh x_t - b_h, subtracts
    two solves of terms of size |a^{-1}(.)| + |W_xh x_t + b_h| to get a difference of size
    |lam|: each step adds an error of about eps ||P||_2 sqrt(p) times the sum of those sizes,
    whatever the implementation, which a measured run only samples (the bench's validation
    adds the same kind of term for "dtp").
    ||P||_2 = max over W_hh's singular values s of s / (s^2 + reg).
    """
    from ..models.activations import inverse, project

    s = np.linalg.svd(np.asarray(params["W_hh"], np.float64), compute_uv=False)
    gain = float(np.max(s / (s * s + reg)))
    T = x.shape[0]
    p = hidden.shape[-1]
    out = np.zeros(T + 1)
    for t in range(T, 0, -1):
        u = x[t - 1] @ params["W_xh"].T + params["b_h"]                        # (B, p)
        with np.errstate(all="ignore"):
            a1 = inverse(activation, project(activation, hidden[t] + lam[t], clip_eps))
            a2 = inverse(activation, project(activation, hidden[t], clip_eps))
        size = float(np.max(np.abs(a1) + np.abs(a2) + 2 * np.abs(u)))     # rounded terms
        out[t - 1] = np.finfo(dtype).eps * gain * np.sqrt(p) * size
    return out
