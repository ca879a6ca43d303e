"""What a report says about a divergence: known signatures (hints) and the faulty operation."""

import numpy as np
import pytest

import tpref
from tpref.verify import cases, compare, steps

CASES = {c.name: c for c in cases("all")}


def _run(name, dtype=np.float64, **kw):
    case = CASES[name]
    c = case.astype(dtype)
    return tpref.oracle(case.method, c.params, c.x, c.y, **dict(case.kwargs, backend="numpy",
                                                                 **kw))


@pytest.fixture(scope="module")
def grow():
    return _run("rnn-reg-small-grow"), _run("rnn-reg-small-grow", np.float32)


def test_gamma_ratio(grow):
    ref, mine = grow
    gamma = ref.call.options["gamma_h"]
    report = compare({"direction": {n: a / gamma for n, a in mine.direction.items()
                                    if n in ("W_hh", "W_xh", "b_h")}}, ref)
    assert any("1/gamma_h" in h for h in report.hints), report.hints


def test_other_update_mode(grow):
    ref, _ = grow
    other = _run("rnn-reg-small-grow", np.float32, update="through_time")
    cand = {"hidden": np.array(other.hidden), "displacements": np.array(other.displacements),
            "direction": dict(other.direction)}
    report = compare(cand, ref)
    first = report.first_divergence
    assert first.quantity == "direction" and first.name in ("W_hh", "W_xh", "b_h")
    assert any("update='through_time'" in h for h in report.hints), report.hints
    assert "update='through_time' form does" in first.operation


def test_transposed_direction(grow):
    ref, mine = grow
    report = compare({"direction": {"W_hh": mine.direction["W_hh"].T}}, ref)
    assert any("transpose" in h for h in report.hints), report.hints


def test_forward_with_transposed_weight(grow):
    ref, _ = grow
    case = CASES["rnn-reg-small-grow"]
    params = dict(case.params, W_hh=case.params["W_hh"].T.copy())
    alt = tpref.oracle(case.method, params, case.x, case.y, **dict(case.kwargs, backend="numpy"))
    report = compare({"hidden": np.array(alt.hidden)}, ref)
    first = report.first_divergence
    assert (first.quantity, first.step) == ("hidden", 2)      # h_1 = a(W_xh x_1 + b_h) agrees
    assert "W_hh transposed" in first.operation
    assert any("transposed" in h for h in report.hints), report.hints


def _broken_inverse(name, t_bad, **variant):
    """float32 displacements with one faulty inverse step (t_bad -> t_bad - 1)."""
    case = CASES[name]
    c = case.astype(np.float32)
    res = _run(name, np.float32)
    lam = np.array(res.displacements)
    kw = dict(reg=case.kwargs["reg"], activation=case.kwargs["activation"])
    kw.update(variant.pop("kw", {}))
    params = variant.pop("params", c.params)
    h = variant.pop("h", res.hidden[t_bad])
    with np.errstate(divide="ignore", invalid="ignore"):       # no clip: 1 / (1 - 1)
        lam[t_bad - 1] = steps.linearized_inverse_step(params, h, lam[t_bad], **kw)
    return {"hidden": np.array(res.hidden), "displacements": lam}


@pytest.mark.parametrize("name, variant, words", [
    ("rnn-saturated", {"kw": {"clip_eps": 1e-30}}, "clip"),
    ("rnn-reg-small-grow", {"kw": {"reg": 1e-6}}, "reg squared"),
    ("rnn-reg-small-grow", "transpose", "W_hh transposed in the inverse"),
    ("rnn-reg-small-grow", "shift", "one step off"),
])
def test_faulty_inverse_step_is_named(name, variant, words):
    t = 6
    ref = _run(name)
    if variant == "transpose":
        p = CASES[name].astype(np.float32).params
        variant = {"params": dict(p, W_hh=p["W_hh"].T.copy())}
    elif variant == "shift":
        variant = {"h": _run(name, np.float32).hidden[t - 1]}
    report = compare(_broken_inverse(name, t, **variant), ref)
    first = report.first_divergence
    assert (first.quantity, first.step) == ("displacements", t - 1), str(report)
    assert "the fault is in this operation" in first.operation
    assert words in first.operation, first.operation
    if words == "clip":
        assert any("non-finite" in h and "clip" in h for h in report.hints), report.hints


def test_first_target_and_loss_reduction():
    ref = _run("rnn-sigmoid-mse")
    mine = _run("rnn-sigmoid-mse", np.float32)
    B, k = mine.output.shape
    report = compare({"loss": mine.loss * B * k, "hidden": np.array(mine.hidden)}, ref)
    assert report.first_divergence.quantity == "loss"
    assert any("B*k" in h for h in report.hints), report.hints
    assert "output layer" in report.first_divergence.operation
    lam = np.array(mine.displacements)
    lam[-1] *= B
    report = compare({"hidden": np.array(mine.hidden), "displacements": lam}, ref)
    first = report.first_divergence
    assert (first.quantity, first.step) == ("displacements", lam.shape[0] - 1)
    assert "Eq. (1)" in first.operation
    assert any("B (B = " in h for h in report.hints), report.hints


def test_gru_convention_swap_is_named():
    ref = _run("gru-mse-through-time")
    case = CASES["gru-mse-through-time"]
    h = np.array(ref.hidden)
    t = 3
    _, g = tpref.models.gru.gru_step(case.params, case.x[t - 1], h[t - 1])
    h[t] = g["z"] * g["n"] + (1 - g["z"]) * h[t - 1]
    report = compare({"hidden": h}, ref)
    first = report.first_divergence
    assert (first.quantity, first.step) == ("hidden", t)
    assert "authors' GRU convention" in first.operation


def test_literal_eq3_in_float32_is_explained():
    """Eq. (3) as 1/2 ||tanh(u_t) - v_t||^2 in float32, v_t = h_t + lam_t rounded: at a small
    gamma_h the direction is lost to cancellation, and the report says why."""
    case = CASES["rnn-reg-large-decay"]
    kw = dict(case.kwargs, gamma_h=1e-6, backend="numpy")
    ref = tpref.oracle("tp", case.params, case.x, case.y, **kw)
    c = case.astype(np.float32)
    mine = tpref.oracle("tp", c.params, c.x, c.y, **kw)
    h = np.array(mine.hidden)
    v = (h + np.array(mine.displacements)).astype(np.float32)          # targets, rounded
    lam = v - h                                                         # cancellation
    direction = {}
    for t in range(1, h.shape[0]):
        for n, g in steps.direction_step(c.params, c.x[t - 1], h[t - 1], lam[t]).items():
            direction[n] = direction.get(n, 0) + g
    report = compare({"direction": direction}, ref)
    assert not report.ok
    assert any("cancellation" in hint and "displacement form" in hint for hint in report.hints)
    report = compare({"direction": {"W_hy": 2 * np.array(mine.direction["W_hy"])}}, ref)
    assert "output layer" in report.first_divergence.operation
