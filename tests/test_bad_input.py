"""Bad or extreme input to the library (oracle, optimizer, initialization): a clear error or a
warning that states the limit, never a silent NaN or a half-applied update (issue 14).

Every oracle case runs on both CPU backends. The command line, data files, checkpoints and
signals are in test_bad_input_cli.py / test_bad_input_files.py / test_bad_input_signals.py.
"""

import numpy as np
import pytest

import tpref
from tpref.oracle import NonFiniteResultWarning

from cases import random_case

BACKENDS = ("numpy", "numba")


def tp(params, x, y, backend, **kw):
    kw.setdefault("gamma_h", 0.1)
    kw.setdefault("reg", 1.0)
    return tpref.oracle(kw.pop("method", "tp"), params, x, y, loss="cross_entropy",
                        backend=backend, **kw)


# ----------------------------------------------------------------------------------------------
# masked arrays: np.isfinite(masked).any() skips masked entries, the loops do not


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("where", ["x", "W_hh"])
def test_masked_array_with_a_masked_nan_is_refused(backend, where):
    params, x, y = random_case(0)
    if where == "x":
        x = x.copy()
        x[0, 0, 0] = np.nan
        x = np.ma.masked_invalid(x)
    else:
        W = params["W_hh"].copy()
        W[0, 0] = np.nan
        params["W_hh"] = np.ma.masked_invalid(W)
    with pytest.raises(TypeError, match="masked array"):
        tp(params, x, y, backend)


def test_masked_labels_are_refused():
    params, x, y = random_case(0)
    with pytest.raises(TypeError, match="y must be a plain numpy ndarray, got a masked array"):
        tp(params, x, np.ma.masked_array(y, mask=[True] + [False] * (len(y) - 1)), "numpy")


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_gru_refuses_masked_input_and_impossible_options(backend):
    from _gru_util import problem

    params, x, y = problem()
    x = x.copy()
    x[0, 0, 0] = np.nan
    with pytest.raises(TypeError, match="x must be a plain numpy ndarray, got a masked array"):
        tp(params, np.ma.masked_invalid(x), y, backend, cell="gru")
    params, x, y = problem(dtype=np.float32)
    with pytest.raises(ValueError, match=r"gamma_h=1e\+40 exceeds the largest float32"):
        tp(params, x, y, backend, cell="gru", gamma_h=1e40)
    with pytest.raises(ValueError, match="clip_eps=1e-09 is below float32's resolution"):
        tp(params, x, y, backend, cell="gru", clip_eps=1e-9)


# ----------------------------------------------------------------------------------------------
# extreme but valid numbers: refused with the limit stated, or warned about


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("method", ["tp", "dtp"])
def test_clip_eps_below_the_dtype_resolution_is_refused(backend, method):
    params, x, y = random_case(0, scale=100.0)            # saturated units
    with pytest.raises(ValueError, match=r"clip_eps=1e-20 is below float64's resolution .*1.11e-16"):
        tp(params, 100 * x, y, backend, method=method, clip_eps=1e-20)
    p32, x32, y32 = random_case(0, dtype=np.float32)
    with pytest.raises(ValueError, match=r"clip_eps=1e-09 is below float32's resolution .*5.96e-08"):
        tp(p32, x32, y32, backend, clip_eps=1e-9)
    tp(params, 100 * x, y, backend, method=method, clip_eps=1e-15)   # above the limit: finite


@pytest.mark.parametrize("backend", BACKENDS)
def test_gamma_h_beyond_float32_is_refused(backend):
    params, x, y = random_case(0, dtype=np.float32)
    with pytest.raises(ValueError, match=r"gamma_h=1e\+40 exceeds the largest float32 number 3.403e\+38"):
        tp(params, x, y, backend, gamma_h=1e40)
    with pytest.raises(ValueError, match=r"reg=1e\+39 exceeds the largest float32"):
        tp(params, x, y, backend, reg=1e39)


@pytest.mark.parametrize("backend", BACKENDS)
def test_overflow_inside_the_oracle_warns(backend):
    params, x, y = random_case(0, dtype=np.float32, scale=10.0)
    with np.errstate(all="ignore"), pytest.warns(NonFiniteResultWarning, match="not finite"):
        res = tp(params, x, y, backend, gamma_h=1e36)      # representable, but lam overflows
    assert not np.isfinite(res.direction["W_hh"]).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_input_that_overflows_the_params_dtype_is_refused(backend):
    params, x, y = random_case(0, dtype=np.float32)
    x = x.astype(np.float64)
    x[1, 0, 1] = 1e300
    with pytest.raises(ValueError, match=r"x holds 1e\+300 at index \(1, 0, 1\), beyond the "
                                         r"largest float32 number 3.403e\+38"):
        tp(params, x, y, backend)
    mse_params, mse_x, mse_y = random_case(0, dtype=np.float32, loss="mse")
    mse_y = mse_y.astype(np.float64)
    mse_y[0, 0] = -1e300
    with pytest.raises(ValueError, match="y holds -1e\\+300"):
        tpref.oracle("bp", mse_params, mse_x, mse_y, loss="mse", backend=backend)


@pytest.mark.parametrize("init", [tpref.init_rnn, tpref.init_gru])
@pytest.mark.parametrize("dtype", [np.int32, np.float16, np.complex128, "U3", object])
def test_init_refuses_non_float_dtypes(init, dtype):
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        init(2, 3, 4, seed=0, dtype=dtype)


def test_init_accepts_dtype_spellings():
    assert tpref.init_rnn(2, 3, 4, seed=0, dtype="float32")["W_hh"].dtype == np.float32


# ----------------------------------------------------------------------------------------------
# SGD.step: validate every direction first, then update all or nothing


def _opt(momentum=0.0, nesterov=False):
    params = tpref.init_rnn(2, 3, 4, seed=0)
    return params, tpref.SGD(params, lr=0.1, momentum=momentum, nesterov=nesterov)


def _direction(params):
    return {k: np.ones_like(v) for k, v in params.items()}


@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("name,bad,error,match", [
    ("b_h", np.ones(1), ValueError, r"direction\['b_h'\] must have the shape of params\['b_h'\], \(3,\), got \(1,\)"),
    ("W_hh", np.ones((3, 1)), ValueError, r"direction\['W_hh'\] must have the shape"),
    ("W_hh", np.ones((3, 3), dtype=int), TypeError, r"direction\['W_hh'\] must have a floating dtype"),
    ("b_y", [1.0] * 4, TypeError, r"direction\['b_y'\] must be a plain numpy ndarray, got list"),
    ("b_y", np.ma.masked_array(np.ones(4)), TypeError, r"direction\['b_y'\] must be a plain"),
])
def test_sgd_refuses_a_bad_direction_and_changes_nothing(momentum, name, bad, error, match):
    params, opt = _opt(momentum, nesterov=momentum > 0)
    opt.step(_direction(params))                         # momentum buffers now exist
    before = {k: v.copy() for k, v in params.items()}
    buffers = opt.state_dict()
    direction = _direction(params)
    direction[name] = bad                                # the last keys are updated last
    with pytest.raises(error, match=match):
        opt.step(direction)
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])
    assert set(opt.buffers) == set(buffers)
    for k in buffers:
        np.testing.assert_array_equal(opt.buffers[k], buffers[k])


def test_sgd_refuses_missing_and_unknown_names():
    params, opt = _opt()
    direction = _direction(params)
    del direction["b_y"]
    direction["W_hz"] = np.ones(3)
    with pytest.raises(ValueError, match=r"missing \['b_y'\], unexpected \['W_hz'\]"):
        opt.step(direction)


def test_sgd_overflow_changes_nothing():
    params = tpref.init_rnn(2, 3, 4, seed=0)
    opt = tpref.SGD(params, lr=10.0, momentum=0.9)
    direction = _direction(params)
    direction["b_y"] = np.full(4, np.finfo(np.float64).max)     # lr * g overflows
    before = {k: v.copy() for k, v in params.items()}
    with np.errstate(over="raise"), pytest.raises(FloatingPointError):
        opt.step(direction)
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])
    assert opt.buffers == {}


def test_sgd_matches_the_pytorch_recursion():
    """The all-or-nothing rewrite keeps the arithmetic: two momentum steps by hand."""
    params, opt = _opt(momentum=0.9, nesterov=True)
    theta0 = params["W_hh"].copy()
    g1, g2 = np.full((3, 3), 0.5), np.full((3, 3), -0.25)
    d = _direction(params)
    d["W_hh"] = g1
    opt.step(d)
    d["W_hh"] = g2
    opt.step(d)
    buf = 0.9 * g1 + g2
    expected = theta0 - 0.1 * (g1 + 0.9 * g1) - 0.1 * (g2 + 0.9 * buf)
    np.testing.assert_array_equal(params["W_hh"], expected)
