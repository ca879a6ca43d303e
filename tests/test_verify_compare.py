"""tpref.verify.compare: tolerance policy, localization, hints, report and bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest

import tpref
from tpref.verify import assert_matches, compare

from cases import random_case

T, B, d, p, k = 9, 3, 2, 5, 4


def _call(method="tp", dtype=np.float64, backend="numpy", **kw):
    params, x, y = random_case(3, T=T, B=B, d=d, p=p, k=k, scale=1.5)
    params = {n: a.astype(dtype) for n, a in params.items()}
    opts = dict(loss="cross_entropy", backend=backend)
    if method != "bp":
        opts.update(gamma_h=0.1, reg=0.5)
    opts.update(kw)
    return tpref.oracle(method, params, x.astype(dtype), y, **opts)


def _candidate(res):
    out = {"loss": res.loss, "hidden": np.array(res.hidden), "direction": dict(res.direction)}
    if res.displacements is not None:
        out["displacements"] = np.array(res.displacements)
        out["targets"] = np.array(res.targets)
    return out


@pytest.fixture(scope="module")
def ref():
    return _call()


@pytest.fixture(scope="module")
def good32():
    return _candidate(_call(dtype=np.float32, backend="numba"))


def test_result_carries_its_call(ref):
    call = ref.call
    assert call.method == "tp" and call.options["reg"] == 0.5 and call.options["gamma_h"] == 0.1
    again = tpref.oracle(call.method, call.params, call.x, call.y, **call.options)
    np.testing.assert_array_equal(again.displacements, ref.displacements)
    with pytest.raises(ValueError):
        call.params["W_hh"][0, 0] = 1.0                   # read-only copies


def test_call_is_a_copy_of_the_inputs():
    params, x, y = random_case(0)
    res = tpref.oracle("bp", params, x, y, loss="cross_entropy", backend="numpy")
    params["W_hh"] += 1.0
    x += 1.0
    assert not np.shares_memory(res.call.x, x)
    np.testing.assert_array_equal(res.call.params["W_hh"] + 1.0, params["W_hh"])


def test_correct_float32_and_float64_pass(ref, good32):
    report = compare(good32, ref)
    assert report.ok, str(report)
    assert report.first_divergence is None and report.dtype == np.float32
    assert compare(_candidate(_call(backend="numba")), ref).ok


@pytest.mark.parametrize("quantity", ["hidden", "displacements", "targets"])
@pytest.mark.parametrize("step", [1, 4, T])
def test_one_step_perturbation_is_localized(ref, good32, quantity, step):
    cand = {quantity: good32[quantity].copy()}
    cand[quantity][step, 1, 2] *= 1.003
    report = compare(cand, ref)
    assert not report.ok
    first = report.first_divergence
    assert (first.quantity, first.step, first.name) == (quantity, step, None), str(report)
    failing = [c.step for c in report.checks if not c.ok]
    assert failing == [step]


def test_direction_perturbation_names_the_parameter(ref, good32):
    direction = dict(good32["direction"])
    direction["W_xh"] = direction["W_xh"].copy()
    i = np.unravel_index(np.argmax(np.abs(direction["W_xh"])), (p, d))
    direction["W_xh"][i] *= 1.01
    report = compare({"direction": direction}, ref)
    first = report.first_divergence
    assert (first.quantity, first.name, first.step) == ("direction", "W_xh", None)


def test_loss_divergence(ref, good32):
    report = compare({"loss": good32["loss"] * 1.01, "hidden": good32["hidden"]}, ref)
    assert report.first_divergence.quantity == "loss"


def test_first_in_computation_order(ref, good32):
    cand = {q: (np.array(v) if q != "direction" else v) for q, v in good32.items()}
    cand["targets"][2] *= 1.01                     # t = 2 is computed after t = 5 ...
    cand["displacements"][5] *= 1.01
    cand["hidden"][7] *= 1.01                      # ... and both after the forward pass
    assert compare(cand, ref).first_divergence.quantity == "hidden"
    cand["hidden"] = good32["hidden"]
    first = compare(cand, ref).first_divergence
    assert (first.quantity, first.step) == ("displacements", 5)


def test_displacements_growing_backwards_are_checked_per_step(ref, good32):
    lam = ref.displacements
    scales = np.abs(lam).max(axis=(1, 2))
    assert scales[0] > 1e4 * scales[T]             # this call's lam grows backwards
    cand = {"displacements": good32["displacements"].copy()}
    cand["displacements"][T - 1] *= 1.01           # invisible against max over all steps
    assert np.abs(cand["displacements"][T - 1] - lam[T - 1]).max() < 1e-5 * scales.max()
    first = compare(cand, ref).first_divergence
    assert (first.quantity, first.step) == ("displacements", T - 1)


def test_underflowing_displacements_are_not_flagged():
    """At a large reg the displacements decay to float32's subnormal range; a float32 run
    that flushes them to zero is still correct."""
    params, x, y = random_case(5, T=40, B=2, d=3, p=6, k=4)
    opts = dict(loss="cross_entropy", gamma_h=0.1, reg=100.0, backend="numpy")
    ref = tpref.oracle("tp", params, x, y, **opts)
    assert np.abs(ref.displacements[0]).max() < 1e-40
    r32 = tpref.oracle("tp", {n: a.astype(np.float32) for n, a in params.items()},
                       x.astype(np.float32), y, **opts)
    lam = np.array(r32.displacements)
    lam[np.abs(lam) < np.finfo(np.float32).tiny] = 0.0         # flush to zero
    assert compare({"displacements": lam}, ref).ok


def test_hints_batch_mean_and_sign(ref, good32):
    report = compare({"direction": {n: a / B for n, a in good32["direction"].items()}}, ref)
    assert any("1/B" in h for h in report.hints), report.hints
    report = compare({"direction": {n: -a for n, a in good32["direction"].items()}}, ref)
    assert any("sign flip" in h for h in report.hints), report.hints


def test_report_text_and_dict(ref, good32):
    cand = dict(good32, hidden=good32["hidden"].copy())
    cand["hidden"][3] += 0.01
    report = compare(cand, ref)
    text = str(report)
    assert "DIVERGES" in text and "hidden[t=3]" in text
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is False and data["first_divergence"]["step"] == 3
    with pytest.raises(AssertionError, match="hidden"):
        assert_matches(cand, ref)
    assert assert_matches(good32, ref).ok


def test_forward_step_fault_is_named(ref):
    params = {n: np.array(a) for n, a in ref.call.params.items()}
    hidden = np.array(ref.hidden)
    x = ref.call.x
    t = 4
    hidden[t] = np.tanh(x[t] @ params["W_xh"].T + hidden[t - 1] @ params["W_hh"].T
                        + params["b_h"])              # input one step late at t = 4 only
    report = compare({"hidden": hidden}, ref)
    assert report.first_divergence.step == t
    assert "forward step" in report.first_divergence.operation
    assert "one step late" in report.first_divergence.operation


# ----------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize("cand, exc, match", [
    ({}, ValueError, "empty"),
    ({"hiden": np.zeros((T + 1, B, p))}, ValueError, "unknown quantities"),
    ({"hidden": np.zeros((T + 1, B, p + 1))}, ValueError, r"candidate\['hidden'\] has shape"),
    ({"hidden": np.zeros((B, T + 1, p))}, ValueError, "batch-first"),
    ({"hidden": np.zeros((T, B, p))}, ValueError, "without t = 0"),
    ({"hidden": np.zeros((T + 1, B, p), dtype=np.int64)}, TypeError, "float"),
    ({"hidden": np.zeros((T + 1, B, p), dtype=np.float16)}, TypeError, "float16"),
    ({"direction": {"W_hh": np.zeros((p, p)), "W_xh": np.zeros((d, p))}}, ValueError,
     "transposed shape"),
    ({"direction": {"W_ih": np.zeros((p, d))}}, ValueError, "unknown parameters"),
    ({"loss": 1.0}, TypeError, "pass dtype"),
    ({"hidden": np.zeros((T + 1, B, p), np.float32),
      "direction": {"b_h": np.zeros(p)}}, TypeError, "mixes precisions"),
    ([1, 2], TypeError, "must be a dict"),
])
def test_bad_candidate(ref, cand, exc, match):
    with pytest.raises(exc, match=match):
        compare(cand, ref)


def test_bad_dtype_and_missing_quantity(ref, good32):
    with pytest.raises(TypeError, match="float32 arrays cannot"):
        compare({"hidden": good32["hidden"]}, ref, dtype=np.float64)
    with pytest.raises(TypeError, match="dtype must be"):
        compare({"hidden": good32["hidden"]}, ref, dtype="int32")
    bp = _call("bp")
    with pytest.raises(ValueError, match="has no targets"):
        compare({"targets": good32["targets"]}, bp)
    with pytest.raises(TypeError, match="reference must be"):
        compare(good32, {"hidden": 1})


def test_batch_first_detected_when_B_equals_T_plus_1():
    params, x, y = random_case(1, T=3, B=4, d=2, p=5, k=3)
    ref = tpref.oracle("bp", params, x, y, loss="cross_entropy", backend="numpy")
    with pytest.raises(ValueError, match="batch-first"):
        compare({"hidden": np.swapaxes(ref.hidden, 0, 1)}, ref)


def test_import_does_not_pull_torch_or_jax():
    code = ("import sys, tpref.verify; "
            "print('torch' in sys.modules, 'jax' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["False", "False"]


def test_float32_reference_is_rerun_in_float64(ref, good32):
    ref32 = _call(dtype=np.float32)
    assert compare(good32, ref32).ok
    cand = dict(good32, hidden=good32["hidden"].copy())
    cand["hidden"][5] *= 1.01
    assert compare(cand, ref32).first_divergence.step == 5


def test_result_without_call_is_refused(ref, good32):
    import dataclasses
    bare = dataclasses.replace(ref, call=None)
    with pytest.raises(ValueError, match="carries no call"):
        compare(good32, bare)
