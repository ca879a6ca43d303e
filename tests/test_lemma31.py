"""Lemma 3.1 as property tests (Hypothesis), and the counterexamples to it as printed.

docs/lemma31.md derives what is checked here:
1. Sec. 3's claim that BP and TP share one graph: per sample, the BP gradient is
   sum_t d_theta f_t (J_{t+1}..J_T) g_T and the TP direction (gamma_h = 1) the same with K.
2. The first inequality with a constant that holds (the printed c lacks ||g_T|| and
   ||d_theta f_t||, so the printed bound fails when the loss is scaled: counterexample).
3. The second inequality, for the spectral and Frobenius norms, when pi is inactive; as
   printed "for any matrix norm" it fails for the induced infinity-norm (counterexample),
   and holds with ||W_hh^T|| in place of ||W_hh||.
Oracle calls pin the NumPy reference (``cases.reference``).
"""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tpref
from tpref.analysis import direction_from_jacobians, jacobians, lemma31
from tpref.losses import output_backward
from tpref.testing import assert_close

from cases import random_case, reference

cases = st.fixed_dictionaries({
    "seed": st.integers(0, 2**32 - 1),
    "T": st.integers(1, 6),
    "B": st.integers(1, 3),
    "d": st.integers(1, 3),
    "p": st.integers(1, 5),
    "k": st.integers(2, 4),
    "scale": st.floats(0.05, 2.0),
    "reg": st.floats(1e-3, 10.0),
    "activation": st.sampled_from(["tanh", "sigmoid"]),
    "loss": st.sampled_from(["cross_entropy", "mse"]),
})

SETTINGS = settings(max_examples=60, deadline=None)


def setup(c):
    params, x, y = random_case(c["seed"], T=c["T"], B=c["B"], d=c["d"], p=c["p"], k=c["k"],
                               loss=c["loss"], scale=c["scale"])
    hidden = tpref.rnn_forward(params, x, c["activation"])
    g_T = output_backward(params, hidden[-1], y, c["loss"])[3]
    return params, x, y, hidden, g_T


@SETTINGS
@given(cases)
def test_bp_and_tp_share_one_graph_of_computations(c):
    """Sum over samples of sum_t d_theta f_t (M_{t+1}..M_T) g_T: M = J^T gives BP, M = K gives TP."""
    params, x, y, hidden, g_T = setup(c)
    kw = dict(loss=c["loss"], activation=c["activation"])
    bp = reference("bp", params, x, y, **kw)
    tp = reference("tp", params, x, y, gamma_h=1.0, reg=c["reg"], **kw)
    for mats_name, res in (("J^T", bp), ("K", tp)):
        total = {"W_hh": 0.0, "W_xh": 0.0, "b_h": 0.0}
        for b in range(c["B"]):
            JT, K, D, _ = jacobians(params, x, hidden, c["reg"], c["activation"], sample=b)
            part = direction_from_jacobians(x, hidden, g_T, K if mats_name == "K" else JT, D, b)
            total = {key: total[key] + part[key] for key in total}
        for key in total:
            assert_close(res.direction[key], total[key], name=f"{mats_name}: {key}", rtol=1e-9)


@SETTINGS
@given(cases, st.sampled_from([2, "fro"]))
def test_first_inequality_with_corrected_constant(c, ord):
    """||BP - TP|| <= ||g_T|| sup_t||J_t^T - K_t|| sum_t ||D_t|| ||z_t|| sum_s a^s b^(T-t-1-s),
    per sample, for the matrix norms the derivation allows (spectral, Frobenius)."""
    params, x, y, hidden, g_T = setup(c)
    for b in range(c["B"]):
        r = lemma31(params, x, hidden, g_T, c["reg"], c["activation"], sample=b, ord=ord)
        assert r["diff"] <= r["first_corrected"] * (1 + 1e-9) + 1e-300, r


@SETTINGS
@given(cases, st.sampled_from([2, "fro"]))
def test_second_inequality_spectral_and_frobenius(c, ord):
    """||J_t^T - K_t|| <= ||W_hh|| (||D - D^-1|| + ||I - M^-1|| ||D^-1||) when pi is inactive."""
    params, x, y, hidden, g_T = setup(c)
    for b in range(c["B"]):
        r = lemma31(params, x, hidden, g_T, c["reg"], c["activation"], sample=b, ord=ord)
        assume(not r["clipped"])
        assert r["second_lhs"] <= r["second_printed"] * (1 + 1e-9), r
        assert r["second_lhs"] <= r["second_corrected"] * (1 + 1e-9), r


@SETTINGS
@given(cases, st.sampled_from([1, np.inf]))
def test_second_inequality_with_transposed_norm_for_induced_norms(c, ord):
    """For any submultiplicative norm the bound holds with ||W_hh^T|| (the corrected form)."""
    params, x, y, hidden, g_T = setup(c)
    for b in range(c["B"]):
        r = lemma31(params, x, hidden, g_T, c["reg"], c["activation"], sample=b, ord=ord)
        assume(not r["clipped"])
        assert r["second_lhs"] <= r["second_corrected"] * (1 + 1e-9), r


def test_first_inequality_as_printed_fails_when_the_loss_is_scaled():
    """The printed c has no factor ||dl/dh_T||: scaling the MSE targets breaks the bound."""
    params, x, y = random_case(0, T=3, B=1, d=2, p=3, k=2, loss="mse", scale=0.5)
    y = 1e3 * y                                              # same network, larger loss gradient
    hidden = tpref.rnn_forward(params, x)
    g_T = output_backward(params, hidden[-1], y, "mse")[3]
    r = lemma31(params, x, hidden, g_T, reg=1.0)
    assert r["diff"] > r["first_printed"], r                 # the printed inequality is false
    assert r["diff"] <= r["first_corrected"], r              # the corrected one holds


def test_second_inequality_as_printed_fails_for_the_induced_infinity_norm():
    """W_hh = [[1, 0], [1, 0]], r = 1, u_1 = 0 (so D_1 = E_1 = I): ||J^T - K||_inf = 4/3 > 2/3."""
    params = {"W_hh": np.array([[1.0, 0.0], [1.0, 0.0]]), "W_xh": np.zeros((2, 1)),
              "b_h": np.zeros(2), "W_hy": np.ones((1, 2)), "b_y": np.zeros(1)}
    x = np.zeros((1, 1, 1))
    hidden = tpref.rnn_forward(params, x)
    g_T = np.ones((1, 2))
    r = lemma31(params, x, hidden, g_T, reg=1.0, ord=np.inf)
    assert r["second_lhs"] == pytest.approx(4 / 3, rel=1e-14)
    assert r["second_printed"] == pytest.approx(2 / 3, rel=1e-14)        # false as printed
    assert r["second_corrected"] == pytest.approx(4 / 3, rel=1e-14)      # holds with ||W_hh^T||
    assert r["first_corrected"] is None                  # derived for ||.||_2-compatible norms
    r2 = lemma31(params, x, hidden, g_T, reg=1.0, ord=2)
    assert r2["second_lhs"] <= r2["second_printed"] * (1 + 1e-12)        # spectral norm: fine
    assert r2["first_corrected"] is not None
