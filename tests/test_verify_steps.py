"""tpref.verify.steps: each single-step operation, chained over t, gives the oracle's output."""

import numpy as np
import pytest

import tpref
from tpref.verify import steps

from cases import random_case
from _gru_util import problem as gru_problem

OPTS = dict(loss="cross_entropy", gamma_h=0.2, reg=0.3, backend="numpy")


@pytest.mark.parametrize("method", ["tp", "dtp"])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_rnn_steps_rebuild_the_oracle(method, activation):
    params, x, y = random_case(2, T=6, B=3, d=2, p=5, k=4, scale=2.0)
    res = tpref.oracle(method, params, x, y, activation=activation, **OPTS)
    T = x.shape[0]
    h = np.zeros_like(res.hidden)
    for t in range(1, T + 1):
        h[t] = steps.forward_step(params, x[t - 1], h[t - 1], activation=activation)
    np.testing.assert_array_equal(h, res.hidden)
    lam = np.empty_like(h)
    lam[T] = steps.first_target(params, h[T], y, loss="cross_entropy", gamma_h=0.2)
    for t in range(T, 0, -1):
        if method == "tp":
            lam[t - 1] = steps.linearized_inverse_step(params, h[t], lam[t], reg=0.3,
                                                       activation=activation)
        else:
            lam[t - 1] = steps.difference_step(params, x[t - 1], h[t], lam[t], reg=0.3,
                                               activation=activation)
    np.testing.assert_allclose(lam, res.displacements, rtol=1e-12, atol=0)
    total = {}
    for t in range(1, T + 1):
        for n, g in steps.direction_step(params, x[t - 1], h[t - 1], lam[t],
                                         activation=activation).items():
            total[n] = total.get(n, 0) + g
    for n in ("W_hh", "W_xh", "b_h"):
        np.testing.assert_allclose(total[n], res.direction[n], rtol=1e-10)


def test_regularized_inverse_inverts_the_forward_step():
    params, x, _ = random_case(4, T=1, B=2, d=2, p=4, k=3)
    h_prev = 0.3 * np.random.default_rng(0).normal(size=(2, 4))
    h = steps.forward_step(params, x[0], h_prev)
    back = steps.regularized_inverse(params, x[0], h, reg=1e-9)
    np.testing.assert_allclose(back, h_prev, atol=1e-6)


def test_single_vectors_are_accepted():
    params, x, _ = random_case(4, T=1, B=2, d=2, p=4, k=3)
    h = steps.forward_step(params, x[0], np.zeros((2, 4)))
    one = steps.forward_step(params, x[0][1], np.zeros(4))
    assert one.shape == (4,)
    np.testing.assert_allclose(one, h[1], rtol=1e-14)


@pytest.mark.parametrize("inverse", ["per_gate", "exact", "authors"])
def test_gru_steps_rebuild_the_oracle(inverse):
    params, x, y = gru_problem(seed=1)
    res = tpref.oracle("tp", params, x, y, cell="gru", gru_inverse=inverse, **OPTS)
    T = x.shape[0]
    h = res.hidden
    for t in range(1, T + 1):
        np.testing.assert_array_equal(steps.forward_step(params, x[t - 1], h[t - 1], cell="gru"),
                                      h[t])
    lam = res.displacements
    for t in range(T, 0, -1):
        got = steps.linearized_inverse_step(params, h[t - 1], lam[t], reg=0.3, cell="gru",
                                            x_t=x[t - 1], gru_inverse=inverse)
        np.testing.assert_allclose(got, lam[t - 1], rtol=1e-12, atol=1e-300)
    total = {}
    for t in range(1, T + 1):
        for n, g in steps.direction_step(params, x[t - 1], h[t - 1], lam[t], cell="gru").items():
            total[n] = total.get(n, 0) + g
    for n in total:
        np.testing.assert_allclose(total[n], res.direction[n], rtol=1e-10, atol=1e-14)
    with pytest.raises(ValueError, match="x_t"):
        steps.linearized_inverse_step(params, h[0], lam[1], reg=0.3, cell="gru")
