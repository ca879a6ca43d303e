"""Checkers that ship with tpref, for its own tests and for users checking their code.

- :func:`assert_close` / :func:`assert_dict_close`: the one tolerance policy of tpref
  (``config.RTOL``, ``config.ATOL`` per dtype), with messages that name what differs.
- :func:`check_grad`: a central-difference check of a claimed gradient along random
  directions, one parameter at a time, naming the parameter that fails (the habit of
  HIPS/autograd's ``check_grads``).
"""

import numpy as np

from .config import ATOL, RTOL


def tolerance(dtype):
    """(rtol, atol) of the tolerance policy for ``dtype`` (float32 or float64)."""
    dtype = np.dtype(dtype)
    if dtype not in RTOL:
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    return RTOL[dtype], ATOL[dtype]


def assert_close(actual, desired, *, name="array", dtype=None, rtol=None):
    """Assert max|actual - desired| <= rtol * max|desired| + atol (normwise).

    The error is measured against the size of the whole reference array (a normwise test), so
    entries that are tiny compared to the rest do not fail on rounding. ``dtype`` picks the
    policy (default: the dtype of ``actual``); ``rtol`` overrides it.
    """
    actual = np.asarray(actual)
    desired = np.asarray(desired)
    if actual.shape != desired.shape:
        raise AssertionError(f"{name}: shape {actual.shape} != expected {desired.shape}")
    pol_rtol, atol = tolerance(dtype if dtype is not None else actual.dtype)
    rtol = pol_rtol if rtol is None else rtol
    if actual.size == 0:
        return
    if not np.all(np.isfinite(actual)):
        raise AssertionError(f"{name}: non-finite values in the result")
    scale = float(np.max(np.abs(desired)))
    err = float(np.max(np.abs(actual.astype(np.float64) - desired.astype(np.float64))))
    bound = rtol * scale + atol
    if not err <= bound:
        where = np.unravel_index(np.argmax(np.abs(actual - desired)), actual.shape)
        raise AssertionError(
            f"{name}: max abs error {err:.3e} at {where} exceeds {bound:.3e} "
            f"(rtol {rtol:.1e} x max|expected| {scale:.3e}); "
            f"got {actual[where]!r}, expected {desired[where]!r}")


def assert_dict_close(actual, desired, *, name="dict", dtype=None, rtol=None):
    """:func:`assert_close` on every key of two dicts of arrays with the same keys."""
    if set(actual) != set(desired):
        raise AssertionError(f"{name}: keys {sorted(actual)} != expected {sorted(desired)}")
    for key in desired:
        assert_close(actual[key], desired[key], name=f"{name}[{key!r}]", dtype=dtype, rtol=rtol)


def check_grad(fun, params, grad, *, seed=0, n_dirs=2, step=1e-6, rtol=1e-6):
    """Check ``grad`` = d fun / d params by central differences along random directions.

    For every key of ``params`` and each of ``n_dirs`` random unit directions u (the other
    parameters fixed), compares <grad[key], u> with (fun(theta + s u) - fun(theta - s u)) / 2s.

    Parameters
    ----------
    fun : callable
        ``fun(params) -> float``, evaluated on float64 copies.
    params : dict of str -> ndarray
    grad : dict of str -> ndarray
        The gradient to check, same keys and shapes.
    seed : int
        Seed of the random directions.
    step : float
        Finite-difference step s.
    rtol : float
        Allowed |fd - <grad, u>| relative to max(|fd|, ||grad[key]||, tiny).

    Raises
    ------
    AssertionError
        Naming the parameter and direction that failed, with both numbers.
    """
    rng = np.random.default_rng(seed)
    base = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
    for key in params:
        g = np.asarray(grad[key], dtype=np.float64)
        for i in range(n_dirs):
            u = rng.standard_normal(base[key].shape)
            u /= np.linalg.norm(u)
            plus = dict(base, **{key: base[key] + step * u})
            minus = dict(base, **{key: base[key] - step * u})
            fd = (fun(plus) - fun(minus)) / (2 * step)
            claimed = float(np.sum(g * u))
            scale = max(abs(fd), float(np.linalg.norm(g)), 1e-300)
            if not abs(fd - claimed) <= rtol * scale:
                raise AssertionError(
                    f"gradient of {key!r} fails along random direction {i} (seed {seed}): "
                    f"finite difference {fd:.12e}, claimed {claimed:.12e}, "
                    f"relative error {abs(fd - claimed) / scale:.2e} > {rtol:.1e}")
