"""Checks of user input: every bad argument gets a ValueError/TypeError that names it.

The oracles themselves assume valid input; the public entry points call these first.
"""

import math
import numbers

import numpy as np

from .config import ACTIVATIONS, LOSSES, METHODS, RNN_PARAM_NAMES, UPDATES


def check_choice(name, value, choices):
    """Raise ValueError unless ``value`` is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def check_not_masked(name, a):
    """Raise TypeError for a ``numpy.ma.MaskedArray``: the oracles compute with every entry,
    masked or not (np.isfinite(masked).any() would skip a masked NaN that the loops then use)."""
    if isinstance(a, np.ma.MaskedArray):
        raise TypeError(f"{name} must be a plain numpy ndarray, got a masked array; the "
                        f"oracle uses every entry, masked or not. Pass {name}.filled(value) "
                        f"or {name}.data if the masked entries hold valid numbers")


def check_finite_array(name, a):
    """Raise ValueError if ``a`` holds NaN or inf, saying where the first one is."""
    check_not_masked(name, a)
    if all_finite(a):
        return
    bad = ~np.isfinite(a)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name} must be finite; it holds {float(a[where])} at index {where}")


def all_finite(a):
    """True if every entry of the float array ``a`` is finite, in one reduction: a NaN or inf
    entry makes an IEEE sum NaN or inf, so a finite sum proves them all finite; a sum that
    overflowed on finite entries is settled entry by entry."""
    return math.isfinite(a.sum()) or bool(np.isfinite(a).all())


def check_float_dtype(name, dtype):
    """The numpy dtype of ``dtype`` if it is float32 or float64 (the oracles' dtypes), else
    TypeError naming ``name``."""
    try:
        dt = np.dtype(dtype)
    except TypeError as err:
        raise TypeError(f"{name} must be float32 or float64, got {dtype!r}") from err
    if dt not in (np.float32, np.float64):
        raise TypeError(f"{name} must be float32 or float64 (the dtypes the oracle computes "
                        f"in), got {dt}")
    return dt


def check_positive_scalar(name, value, *, allow_zero=False):
    """Raise ValueError unless ``value`` is a finite real > 0 (>= 0 with ``allow_zero``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        need = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {need}, got {value!r}")
    return value


def check_param_dict(params, names, cell):
    """Check that ``params`` is a dict of exactly ``names`` -> float32/float64 ndarrays of one
    dtype; return that dtype. Shapes and finiteness are checked by the callers."""
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict with keys {names}, got {type(params).__name__}")
    keys = set(params)
    if keys != set(names):
        missing = sorted(set(names) - keys)
        extra = sorted(keys - set(names))
        raise ValueError(f"{cell} params must have exactly the keys {names}; "
                         f"missing {missing}, unexpected {extra}")
    for name in names:
        a = params[name]
        if not isinstance(a, np.ndarray):
            raise TypeError(f"params[{name!r}] must be a numpy ndarray, got {type(a).__name__}")
        check_not_masked(f"params[{name!r}]", a)
        if a.dtype not in (np.float32, np.float64):
            raise TypeError(f"params[{name!r}] must have dtype float32 or float64, got {a.dtype}")
    dtype = params[names[0]].dtype
    for name in names:
        if params[name].dtype != dtype:
            raise TypeError(f"all params must share one dtype: params[{names[0]!r}] is {dtype}, "
                            f"params[{name!r}] is {params[name].dtype}")
    return dtype


def check_rnn_params(params):
    """Validate an RNN parameter dict; return (dtype, d, p, k).

    Expected: exactly the keys W_hh (p, p), W_xh (p, d), b_h (p,), W_hy (k, p), b_y (k,), all
    finite float32 or float64 ndarrays of one dtype.
    """
    dtype = check_param_dict(params, RNN_PARAM_NAMES, "RNN")
    W_hh, W_xh = params["W_hh"], params["W_xh"]
    if W_hh.ndim != 2 or W_hh.shape[0] != W_hh.shape[1] or W_hh.shape[0] == 0:
        raise ValueError(f"params['W_hh'] must have shape (p, p), got {W_hh.shape}")
    p = W_hh.shape[0]
    if W_xh.ndim != 2 or W_xh.shape[0] != p or W_xh.shape[1] == 0:
        raise ValueError(f"params['W_xh'] must have shape (p, d) = ({p}, d), got {W_xh.shape}")
    d = W_xh.shape[1]
    if params["b_h"].shape != (p,):
        raise ValueError(f"params['b_h'] must have shape (p,) = ({p},), got {params['b_h'].shape}")
    W_hy = params["W_hy"]
    if W_hy.ndim != 2 or W_hy.shape[1] != p or W_hy.shape[0] == 0:
        raise ValueError(f"params['W_hy'] must have shape (k, p) = (k, {p}), got {W_hy.shape}")
    k = W_hy.shape[0]
    if params["b_y"].shape != (k,):
        raise ValueError(f"params['b_y'] must have shape (k,) = ({k},), got {params['b_y'].shape}")
    for name in RNN_PARAM_NAMES:
        check_finite_array(f"params[{name!r}]", params[name])
    return dtype, d, p, k


def check_inputs(x, d, dtype):
    """Validate x of shape (T, B, d), floating and finite; return it in ``dtype``."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x must be a numpy ndarray of shape (T, B, d), got {type(x).__name__}")
    check_not_masked("x", x)
    if x.dtype.kind != "f":
        raise TypeError(f"x must have a floating dtype, got {x.dtype}")
    if x.ndim != 3 or x.shape[2] != d or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"x must have shape (T, B, d) = (T, B, {d}) with T, B >= 1 "
                         f"(time-major), got {x.shape}")
    check_finite_array("x", x)
    return _cast_finite("x", x, dtype)


def _cast_finite(name, a, dtype):
    """``a`` as a contiguous ``dtype`` array; ValueError if a finite entry overflows the cast."""
    if type(a) is np.ndarray and a.dtype == dtype and a.flags.c_contiguous:
        return a                        # what ascontiguousarray returns, without its errstate
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(a, dtype=dtype)
    if out.dtype != a.dtype and not np.isfinite(out).all():
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(out))[0])
        raise ValueError(f"{name} holds {float(a[where])!r} at index {where}, beyond the largest "
                         f"{np.dtype(dtype).name} number {float(np.finfo(dtype).max):.4g} (the "
                         f"params' dtype, in which the oracle computes); scale {name} or use "
                         f"float64 params")
    return out


def check_time_major(x, y):
    """Raise ValueError when x looks batch-first: y's B samples match x's axis 0, not axis 1.

    (When B == T no shape can tell; tpref.verify's adapters take an explicit batch_first.)
    """
    B = np.shape(y)[0] if np.ndim(y) >= 1 else None
    if B is not None and x.shape[1] != B and x.shape[0] == B:
        raise ValueError(f"x has shape {x.shape} and y has B = {B} samples: x's axis 0, not its "
                         f"axis 1, has B entries, so x looks batch-first (B, T, d); tpref's x is "
                         f"time-major (T, B, d), PyTorch's batch_first=False: pass "
                         f"np.swapaxes(x, 0, 1)")


def check_targets(y, loss, B, k, dtype):
    """Validate y: (B,) integer labels in [0, k) for cross_entropy, (B, k) floats for mse."""
    if not isinstance(y, np.ndarray):
        raise TypeError(f"y must be a numpy ndarray, got {type(y).__name__}")
    check_not_masked("y", y)
    if loss == "cross_entropy":
        if y.dtype.kind not in "iu":
            raise TypeError(f"y must hold integer class labels for loss='cross_entropy', got dtype {y.dtype}")
        if y.shape != (B,):
            raise ValueError(f"y must have shape (B,) = ({B},) for loss='cross_entropy', got {y.shape}")
        if y.size and (y.min() < 0 or y.max() >= k):
            raise ValueError(f"y labels must lie in [0, k) = [0, {k}); got range "
                             f"[{y.min()}, {y.max()}]")
        return y.astype(np.intp, copy=False)
    if y.dtype.kind != "f":
        raise TypeError(f"y must be a floating array for loss='mse', got dtype {y.dtype}")
    if y.shape != (B, k):
        raise ValueError(f"y must have shape (B, k) = ({B}, {k}) for loss='mse', got {y.shape}")
    check_finite_array("y", y)
    return _cast_finite("y", y, dtype)


def check_oracle_options(method, loss, activation, update, gamma_h, reg, eps):
    """Validate the oracle's options; return (gamma_h, reg, eps) as floats (None for BP)."""
    check_choice("method", method, METHODS)
    check_choice("loss", loss, LOSSES)
    check_choice("activation", activation, ACTIVATIONS)
    check_choice("update", update, UPDATES)
    eps = check_positive_scalar("clip_eps", eps)
    if not eps < 0.5:
        raise ValueError(f"clip_eps must lie in (0, 0.5), got {eps!r}")
    if method == "bp":
        return None, None, eps
    if gamma_h is None:
        raise ValueError(f"method={method!r} needs gamma_h (the target step size of Eq. 1), got None")
    if method == "dtp_learned":          # no regularized inverse: reg checked by
        return check_positive_scalar("gamma_h", gamma_h), reg, eps   # check_dtp_learned_options
    if reg is None:
        raise ValueError(f"method={method!r} needs reg (the regularization r of the inverse), got None")
    return (check_positive_scalar("gamma_h", gamma_h),
            check_positive_scalar("reg", reg, allow_zero=True), eps)


def check_options_fit_dtype(dtype, gamma_h, reg, eps):
    """Raise ValueError where an option is valid as a number but cannot work in ``dtype``.

    - clip_eps below the spacing of ``dtype`` just under 1 (``finfo.epsneg``): 1 - clip_eps
      rounds to 1, so a saturated unit's target is clipped onto +-1, whose inverse (atanh)
      is infinite: NaN directions.
    - gamma_h or reg beyond the largest finite number of ``dtype`` (float32: 3.4e38): the
      oracle computes in ``dtype``, where they are infinite.
    """
    info = _finfo(dtype)
    if eps < info.epsneg:
        raise ValueError(f"clip_eps={eps!r} is below {dtype.name}'s resolution under 1 "
                         f"({float(info.epsneg):.3g}): 1 - clip_eps rounds to 1, and a saturated "
                         f"unit's inverse is infinite; use clip_eps >= {float(info.epsneg):.3g}")
    for name, value in (("gamma_h", gamma_h), ("reg", reg)):
        if value is not None and value > float(info.max):
            raise ValueError(f"{name}={value!r} exceeds the largest {dtype.name} number "
                             f"{float(info.max):.4g} (the params' dtype, in which the oracle "
                             f"computes); use a smaller {name} or float64 params")


_FINFO = {}


def _finfo(dtype):
    """np.finfo(dtype), kept per dtype (np.finfo's own cache costs microseconds per call)."""
    info = _FINFO.get(dtype)
    if info is None:
        info = _FINFO[dtype] = np.finfo(dtype)
    return info


def check_gru_params(params):
    """Validate a GRU parameter dict; return (dtype, d, p, k).

    Expected: exactly the keys ``config.GRU_PARAM_NAMES``: W_xr, W_xz, W_xn (p, d); W_hr, W_hz,
    W_hn (p, p); b_xr, b_xz, b_xn, b_hr, b_hz, b_hn (p,); W_hy (k, p); b_y (k,); all finite
    float32 or float64 ndarrays of one dtype.
    """
    from .config import GRU_PARAM_NAMES
    dtype = check_param_dict(params, GRU_PARAM_NAMES, "GRU")
    W_hr = params["W_hr"]
    if W_hr.ndim != 2 or W_hr.shape[0] != W_hr.shape[1] or W_hr.shape[0] == 0:
        raise ValueError(f"params['W_hr'] must have shape (p, p), got {W_hr.shape}")
    p = W_hr.shape[0]
    W_xr = params["W_xr"]
    if W_xr.ndim != 2 or W_xr.shape[0] != p or W_xr.shape[1] == 0:
        raise ValueError(f"params['W_xr'] must have shape (p, d) = ({p}, d), got {W_xr.shape}")
    d = W_xr.shape[1]
    W_hy = params["W_hy"]
    if W_hy.ndim != 2 or W_hy.shape[1] != p or W_hy.shape[0] == 0:
        raise ValueError(f"params['W_hy'] must have shape (k, p) = (k, {p}), got {W_hy.shape}")
    k = W_hy.shape[0]
    expected = {"W_hy": (k, p), "b_y": (k,)}
    for gate in "rzn":
        expected.update({"W_x" + gate: (p, d), "W_h" + gate: (p, p),
                         "b_x" + gate: (p,), "b_h" + gate: (p,)})
    for name in GRU_PARAM_NAMES:
        if params[name].shape != expected[name]:
            raise ValueError(f"params[{name!r}] must have shape {expected[name]} "
                             f"(d={d}, p={p}, k={k}), got {params[name].shape}")
    for name in GRU_PARAM_NAMES:
        check_finite_array(f"params[{name!r}]", params[name])
    return dtype, d, p, k


def check_dtp_learned_params(params):
    """Validate the params of method "dtp_learned"; return (dtype, d, p, k).

    Expected: the simple RNN's keys (``check_rnn_params``) plus the reverse layer's
    ``V_hh`` (p, p) and ``c_h`` (p,), finite, in the same float dtype.
    """
    from .config import REVERSE_PARAM_NAMES
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict with keys {RNN_PARAM_NAMES + REVERSE_PARAM_NAMES}, "
                        f"got {type(params).__name__}")
    missing = [name for name in REVERSE_PARAM_NAMES if name not in params]
    if missing:
        raise ValueError(f"method='dtp_learned' needs the reverse layer's weights params['V_hh'] "
                         f"(p, p) and params['c_h'] (p,); missing {missing} "
                         f"(tpref.init_rnn(..., reverse=True) makes them)")
    forward = {k: v for k, v in params.items() if k not in REVERSE_PARAM_NAMES}
    dtype, d, p, k = check_rnn_params(forward)
    for name, shape in (("V_hh", (p, p)), ("c_h", (p,))):
        a = params[name]
        if not isinstance(a, np.ndarray):
            raise TypeError(f"params[{name!r}] must be a numpy ndarray, got {type(a).__name__}")
        if a.dtype != dtype:
            raise TypeError(f"all params must share one dtype: params['W_hh'] is {dtype}, "
                            f"params[{name!r}] is {a.dtype}")
        if a.shape != shape:
            raise ValueError(f"params[{name!r}] must have shape {shape} (p={p}), got {a.shape}")
        check_finite_array(f"params[{name!r}]", a)
    return dtype, d, p, k


def check_dtp_learned_options(update, reg, noise, seed, reverse_lr):
    """Validate the options special to "dtp_learned"; return (noise, seed, reverse_lr).

    ``noise`` >= 0 (the std of the perturbation of the inverse loss); ``seed`` (an int >= 0,
    or a tuple of them, for numpy.random.default_rng) is required when noise > 0;
    ``reverse_lr`` None or > 0; ``update`` must be "local" and ``reg`` None (no analytic
    inverse here).
    """
    if update != "local":
        raise ValueError(f"update must be 'local' for method='dtp_learned' (TPTT's forward loss "
                         f"holds h_(t-1) fixed), got {update!r}")
    if reg is not None:
        raise ValueError(f"reg does not apply to method='dtp_learned' (its inverse is learned, "
                         f"not the regularized one); got reg={reg!r}, pass None")
    noise = check_positive_scalar("noise", noise, allow_zero=True)
    if seed is not None:
        parts = seed if isinstance(seed, tuple) else (seed,)
        if not parts or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool)
                                and s >= 0 for s in parts):
            raise ValueError(f"seed must be an int >= 0 or a non-empty tuple of them, got {seed!r}")
    elif noise > 0:
        raise ValueError(f"noise={noise!r} > 0 needs a seed (the draws of the inverse loss's "
                         f"perturbation must be reproducible); pass seed=<int>")
    if reverse_lr is not None:
        reverse_lr = check_positive_scalar("reverse_lr", reverse_lr)
    return noise, seed, reverse_lr
