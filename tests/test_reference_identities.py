"""Independent checks of the NumPy reference: finite differences and identities of the paper.

Oracle calls pin ``backend="numpy"`` (``cases.reference``): the reference is what these checks
are about (the other backends are tested by equality with it, tests/test_numba_backend.py).
"""

import numpy as np
import pytest

import tpref
from tpref.losses import loss_and_grad, output_layer
from tpref.models.inverse import factor_regularized_gram
from tpref.methods.reference import regularized_inverse
from tpref.models.activations import activate
from tpref.testing import assert_close, check_grad

from cases import random_case, reference


def loss_value(params, x, y, loss, activation):
    h_T = tpref.rnn_forward(params, x, activation)[-1]
    return loss_and_grad(loss, output_layer(params, h_T), y)[0]


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_bp_gradient_matches_central_differences(activation, loss):
    params, x, y = random_case(0, T=7, loss=loss)
    res = reference("bp", params, x, y, loss=loss, activation=activation)
    check_grad(lambda th: loss_value(th, x, y, loss, activation), params, res.direction,
               seed=1, n_dirs=3, step=1e-5, rtol=1e-7)


@pytest.mark.parametrize("method", ["tp", "dtp"])
@pytest.mark.parametrize("update", ["local", "through_time"])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_tp_direction_is_gradient_of_eq3_surrogate(method, update, activation):
    """The TP/DTP direction for (W_hh, W_xh, b_h) is the gradient of Eq. (3)'s surrogate.

    Local: sum_t ||a(W_xh x_t + W_hh h_{t-1} + b_h) - v_t||^2 / 2 with h_{t-1}, v_t frozen.
    Through time: sum_t ||h_t(theta) - v_t||^2 / 2 with v_t frozen.
    """
    params, x, y = random_case(2, T=6)
    res = reference(method, params, x, y, loss="cross_entropy", gamma_h=0.3, reg=0.5,
                    update=update, activation=activation)
    v, h = res.targets, res.hidden

    def surrogate(th):
        full = dict(params, **th)
        if update == "through_time":
            h_run = tpref.rnn_forward(full, x, activation)
        total = 0.0
        for t in range(1, x.shape[0] + 1):
            h_prev = h_run[t - 1] if update == "through_time" else h[t - 1]
            f_t = activate(activation, x[t - 1] @ full["W_xh"].T + h_prev @ full["W_hh"].T + full["b_h"])
            total += 0.5 * np.sum((f_t - v[t]) ** 2)
        return total

    names = ("W_hh", "W_xh", "b_h")
    check_grad(surrogate, {k: params[k] for k in names}, {k: res.direction[k] for k in names},
               seed=3, n_dirs=2, step=1e-5, rtol=1e-7)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_linearized_targets_match_finite_differences_of_the_inverse(activation):
    """Eq. (2): lam_{t-1} = d f_t^{-1}(h_t)^T lam_t, checked by central differences of f_t^{-1}."""
    params, x, y = random_case(4, T=5, scale=0.8)
    reg = 0.2
    res = reference("tp", params, x, y, loss="cross_entropy", gamma_h=0.7, reg=reg,
                    activation=activation)
    factor = factor_regularized_gram(params["W_hh"], reg)
    s = 1e-6
    for t in range(x.shape[0], 0, -1):
        h_t, lam_t = res.hidden[t], res.displacements[t]
        fd = (regularized_inverse(params, factor, x[t - 1], h_t + s * lam_t, activation, 1e-3)
              - regularized_inverse(params, factor, x[t - 1], h_t - s * lam_t, activation, 1e-3)) / (2 * s)
        assert_close(res.displacements[t - 1], fd, name=f"lam_{t - 1}", rtol=1e-7, atol_scale=1e-7)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_inverse_of_transition_recovers_previous_state_as_reg_vanishes(activation):
    """f_t^{-1}(f_t(h)) -> h as r -> 0 for invertible W_hh (error O(r)), when pi is inactive."""
    params, x, _ = random_case(5, T=1, B=4, p=6, scale=0.5)
    params["W_hh"] = 0.8 * tpref.init_rnn(2, 6, 3, seed=5)["W_hh"]    # invertible, cond = 1
    rng = np.random.default_rng(6)
    h_prev = 0.5 * np.tanh(rng.normal(size=(4, 6))) + (0.5 if activation == "sigmoid" else 0.0)
    v = activate(activation, x[0] @ params["W_xh"].T + h_prev @ params["W_hh"].T + params["b_h"])
    errors = []
    for reg in (1e-2, 1e-4, 1e-6, 0.0):
        factor = factor_regularized_gram(params["W_hh"], reg)
        errors.append(np.max(np.abs(regularized_inverse(params, factor, x[0], v, activation, 1e-3) - h_prev)))
    assert errors[-1] < 1e-10                      # r = 0: exact inverse up to rounding
    assert errors[2] < 1e-5 and errors[1] < 1e-3   # O(r / sigma_min(W_hh)^2) error
    assert errors[0] > errors[1] > errors[2]       # and it shrinks with r


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_dtp_minus_tp_is_second_order_in_the_displacement(activation):
    """f^{-1}(v) - f^{-1}(h) = d f^{-1}(h)^T (v - h) + O(||v - h||^2) (Sec. 2.2): DTP - TP = O(gamma_h^2)."""
    params, x, y = random_case(7, T=4, scale=0.8)
    gaps = []
    gammas = (1e-2, 1e-3, 1e-4)
    for gamma_h in gammas:
        tp = reference("tp", params, x, y, loss="cross_entropy", gamma_h=gamma_h, reg=0.5,
                       activation=activation)
        dtp = reference("dtp", params, x, y, loss="cross_entropy", gamma_h=gamma_h, reg=0.5,
                        activation=activation)
        gaps.append(np.max(np.abs(dtp.displacements - tp.displacements)))
    ratios = [gaps[i] / gaps[i + 1] for i in range(2)]
    for r in ratios:                                # gamma_h / 10  ->  gap / 100
        assert 60 < r < 160, ratios


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
@pytest.mark.parametrize("method", ["tp", "dtp"])
def test_tp_with_one_step_is_gamma_h_times_bp(activation, method):
    """T = 1: the t = T term alone, h_T - v_T = gamma_h dl/dh_T, so TP = gamma_h * BP for theta_h."""
    params, x, y = random_case(8, T=1)
    bp = reference("bp", params, x, y, loss="cross_entropy", activation=activation)
    tp = reference(method, params, x, y, loss="cross_entropy", gamma_h=0.25, reg=1.0,
                   activation=activation)
    for key in ("W_hh", "W_xh", "b_h"):
        assert_close(tp.direction[key], 0.25 * bp.direction[key], name=key)
    for key in ("W_hy", "b_y"):
        assert_close(tp.direction[key], bp.direction[key], name=key)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("method", ["bp", "tp", "dtp"])
def test_oracle_is_deterministic_and_leaves_inputs_untouched(method, backend):
    """Two calls on the same inputs give the same bits (every output, the numba backend's
    recycled buffers included), and the caller's arrays are not written."""
    params, x, y = random_case(9)
    copies = {k: v.copy() for k, v in params.items()}, x.copy(), y.copy()
    kw = dict(gamma_h=0.1, reg=1.0) if method != "bp" else {}
    a = tpref.oracle(method, params, x, y, backend=backend, loss="cross_entropy", **kw)
    b = tpref.oracle(method, params, x, y, backend=backend, loss="cross_entropy", **kw)
    assert a.loss == b.loss
    for name in ("output", "hidden", "displacements"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    for key in params:
        assert np.array_equal(a.direction[key], b.direction[key])
        assert np.array_equal(params[key], copies[0][key])
    assert np.array_equal(x, copies[1]) and np.array_equal(y, copies[2])


def test_init_rnn_is_seeded_and_orthonormal():
    a, b = tpref.init_rnn(3, 8, 4, seed=0), tpref.init_rnn(3, 8, 4, seed=0)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["W_hh"], tpref.init_rnn(3, 8, 4, seed=1)["W_hh"])
    assert_close(a["W_hh"].T @ a["W_hh"], np.eye(8), name="W_hh^T W_hh", rtol=1e-13)
    assert_close(a["W_xh"].T @ a["W_xh"], np.eye(3), name="W_xh^T W_xh", rtol=1e-13)
    assert_close(a["W_hy"] @ a["W_hy"].T, np.eye(4), name="W_hy W_hy^T", rtol=1e-13)
    assert not a["b_h"].any() and not a["b_y"].any()
    assert tpref.init_rnn(1, 8, 2, seed=0, dtype=np.float32)["W_xh"].dtype == np.float32
