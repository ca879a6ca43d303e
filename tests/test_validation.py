"""Bad input gets a clear error naming the argument, never a silent wrong answer."""

import numpy as np
import pytest

import tpref

from cases import random_case


def call(method="tp", params=None, x=None, y=None, **kw):
    p0, x0, y0 = random_case(0)
    kw.setdefault("loss", "cross_entropy")
    if method != "bp":
        kw.setdefault("gamma_h", 0.1)
        kw.setdefault("reg", 1.0)
    return tpref.oracle(method, p0 if params is None else params, x0 if x is None else x,
                        y0 if y is None else y, **kw)


def with_param(name, value):
    params = random_case(0)[0]
    params[name] = value
    return params


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(method="gd"), ValueError, "method must be one of"),
    (dict(loss="hinge"), ValueError, "loss must be one of"),
    (dict(activation="relu"), ValueError, "activation must be one of"),
    (dict(update="global"), ValueError, "update must be one of"),
    (dict(backend="jax"), ValueError, "backend must be one of"),
    (dict(gamma_h=None), ValueError, "needs gamma_h"),
    (dict(reg=None), ValueError, "needs reg"),
    (dict(reg=-1.0), ValueError, "reg must be a finite number >= 0"),
    (dict(gamma_h=0.0), ValueError, "gamma_h must be a finite number > 0"),
    (dict(gamma_h=float("nan")), ValueError, "gamma_h must be a finite number"),
    (dict(gamma_h="0.1"), TypeError, "gamma_h must be a real number"),
    (dict(clip_eps=0.7), ValueError, "clip_eps must lie in"),
])
def test_bad_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        call(**kwargs)


@pytest.mark.parametrize("params,error,match", [
    ([1, 2], TypeError, "params must be a dict"),
    ({"W_hh": np.eye(2)}, ValueError, r"missing \['W_xh', 'W_hy', 'b_h', 'b_y'\]|missing"),
    (with_param("W_hh", np.eye(3)), ValueError, r"params\['W_xh'\] must have shape \(p, d\) = \(3, d\)"),
    (with_param("W_hh", np.ones((4, 3))), ValueError, r"params\['W_hh'\] must have shape \(p, p\)"),
    (with_param("b_h", np.zeros(5)), ValueError, r"params\['b_h'\] must have shape \(p,\) = \(4,\)"),
    (with_param("W_hy", np.zeros((3, 5))), ValueError, r"params\['W_hy'\] must have shape \(k, p\)"),
    (with_param("b_y", np.zeros(2)), ValueError, r"params\['b_y'\] must have shape \(k,\) = \(3,\)"),
    (with_param("b_y", [0.0, 0.0, 0.0]), TypeError, r"params\['b_y'\] must be a numpy ndarray"),
    (with_param("W_hh", np.eye(4, dtype=int)), TypeError, r"params\['W_hh'\] must have dtype float32 or float64"),
    (with_param("b_h", np.zeros(4, dtype=np.float32)), TypeError, "share one dtype"),
    (with_param("W_hh", np.full((4, 4), np.nan)), ValueError, r"params\['W_hh'\] must be finite"),
    (with_param("b_y", np.array([0.0, np.inf, 0.0])), ValueError, r"params\['b_y'\] must be finite; it holds inf at index \(1,\)"),
])
def test_bad_params(params, error, match):
    with pytest.raises(error, match=match):
        call(params=params)


def test_bad_params_extra_key():
    params = dict(random_case(0)[0], W_extra=np.eye(2))
    with pytest.raises(ValueError, match=r"unexpected \['W_extra'\]"):
        call(params=params)


@pytest.mark.parametrize("x,error,match", [
    (np.zeros((5, 3)), ValueError, r"x must have shape \(T, B, d\) = \(T, B, 2\)"),
    (np.zeros((5, 3, 4)), ValueError, r"x must have shape"),
    (np.zeros((0, 3, 2)), ValueError, r"T, B >= 1"),
    (np.zeros((5, 3, 2), dtype=int), TypeError, "x must have a floating dtype"),
    ([[[0.0, 0.0]]], TypeError, "x must be a numpy ndarray"),
    (np.full((5, 3, 2), np.nan), ValueError, r"x must be finite; it holds nan at index \(0, 0, 0\)"),
])
def test_bad_inputs(x, error, match):
    with pytest.raises(error, match=match):
        call(x=x)


@pytest.mark.parametrize("loss,y,error,match", [
    ("cross_entropy", np.array([0, 1]), ValueError, r"y must have shape \(B,\) = \(3,\)"),
    ("cross_entropy", np.array([0, 1, 3]), ValueError, r"y labels must lie in \[0, k\) = \[0, 3\)"),
    ("cross_entropy", np.array([0, -1, 2]), ValueError, "y labels must lie in"),
    ("cross_entropy", np.array([0.0, 1.0, 2.0]), TypeError, "integer class labels"),
    ("mse", np.zeros((3, 2)), ValueError, r"y must have shape \(B, k\) = \(3, 3\)"),
    ("mse", np.array([0, 1, 2]), TypeError, "floating array for loss='mse'"),
    ("mse", np.full((3, 3), np.inf), ValueError, "y must be finite"),
])
def test_bad_targets(loss, y, error, match):
    with pytest.raises(error, match=match):
        call(y=y, loss=loss)


def test_singular_w_hh_with_zero_reg_is_a_clear_error():
    params = random_case(0)[0]
    params["W_hh"][:, 0] = 0.0                     # singular: W_hh^T W_hh has a zero row/column
    with pytest.raises(tpref.RegularizedInverseError, match="reg > 0"):
        call(params=params, reg=0.0)
    call(params=params, reg=1e-3)                  # regularization makes it well defined


def test_nearly_singular_w_hh_with_zero_reg_is_a_clear_error():
    params = random_case(0)[0]
    params["W_hh"][:, 0] = params["W_hh"][:, 1] * (1 + 1e-15)   # rank deficient up to rounding
    with pytest.raises(tpref.RegularizedInverseError, match="reg"):
        call(params=params, reg=0.0)


def test_bp_ignores_tp_options_and_float32_runs_in_float32():
    params, x, y = random_case(0, dtype=np.float32)
    res = tpref.oracle("bp", params, x, y, loss="cross_entropy")
    assert res.hidden.dtype == np.float32
    assert all(v.dtype == np.float32 for v in res.direction.values())


@pytest.mark.parametrize("kwargs,match", [
    (dict(lr=0.0), "lr must be a finite number > 0"),
    (dict(lr=0.1, momentum=1.0), r"momentum must lie in \[0, 1\)"),
    (dict(lr=0.1, nesterov=True), "nesterov=True needs momentum > 0"),
])
def test_bad_sgd_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tpref.SGD({}, **kwargs)
