"""Planted-bug suites: a user's torch BP/TP (tests/planted_rnn.py, planted_gru.py), written
from the paper apart from tpref, batch-first, converted with the TorchAdapter and checked with
``tpref.verify.compare`` on every default case (``tpref.verify.cases``), float32 and float64.

- The correct implementation passes every case, both methods, both dtypes: no false alarm.
- Each planted bug is detected on the default cases and localized: ``first_divergence`` is
  the quantity, step and parameter where the bug first changes the computation
  (tests/planted.py derives that place from the bug and the case, not from compare).
"""

import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import tpref  # noqa: E402
from tpref import verify  # noqa: E402

import planted_gru  # noqa: E402
import planted_rnn  # noqa: E402
from planted import IMPL_OPTIONS, first_transition, run_case, user_model, where  # noqa: E402
from planted import expected  # noqa: E402

DTYPES = ["float64", "float32"]
RNN_BUGS = [bug for bug in planted_rnn.BUGS if bug != "axes_swapped"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_correct_implementation_passes_every_case(cell, dtype):
    for case in verify.cases(cell=cell):
        for method in ("bp", "tp"):
            report, _, _ = run_case(case, method, cell=cell, dtype=dtype)
            assert report.ok, f"false alarm on {case.name}, {method}, {dtype}:\n{report}"


#: Where compare's single-step checks name the faulty operation, words its report must hold.
OPERATION = {"no_clip": "clip pi left out", "inverse_transpose": "W_hh transposed",
             "time_shift": "one step off", "reg_squared": "reg squared",
             "update_mode": "update mode", "bias_forward": "forward step at t = 1",
             "update_convention": "the authors' GRU convention",
             "reset_inside": "forward step at t = 1", "loss_sum": "output layer"}


def check_bug(bug, cell, dtype):
    """Every case where the bug can show: found there, and first found where it acts; every
    case where it cannot: passes. Returns the names of the cases that caught it."""
    caught = []
    for case in verify.cases(cell=cell):
        for method in ("bp", "tp"):
            report, ref, _ = run_case(case, method, cell=cell, dtype=dtype, bugs=(bug,))
            want = expected(bug, case, method, ref, cell)
            label = f"{bug} on {case.name}, {method}, {dtype}"
            if want is None:
                assert report.ok, f"{label}: the bug cannot act here, yet\n{report}"
                continue
            assert where(report) == want, f"{label}: expected {want}\n{report}"
            if bug in OPERATION:
                assert OPERATION[bug] in report.first_divergence.operation, str(report)
            caught.append(f"{case.name}/{method}")
    assert caught, f"{bug} ({dtype}) is caught by no default case"
    return caught


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bug", RNN_BUGS)
def test_rnn_bug_is_detected_and_localized(bug, dtype):
    check_bug(bug, "rnn", dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bug", list(planted_gru.BUGS))
def test_gru_bug_is_detected_and_localized(bug, dtype):
    check_bug(bug, "gru", dtype)


def test_batch_first_outputs_handed_over_as_time_major_are_refused():
    """Planted bug "axes_swapped": batch-first outputs declared time-major. The adapter and
    compare itself refuse them on every default case, naming the array and the layout."""
    for case in verify.cases(cell="rnn"):
        report, ref, cand = run_case(case, "tp")
        T1, B = ref.hidden.shape[:2]
        swapped = {q: np.swapaxes(cand[q], 0, 1) for q in ("hidden", "displacements")}
        with pytest.raises(ValueError, match="batch-first"):
            verify.compare(swapped, ref)
        if B != T1:                     # the adapter tells them apart by shape alone
            ad = verify.adapter.ArrayAdapter(batch_first=False)
            ad.set_shape(T1 - 1, B)
            with pytest.raises(ValueError, match="looks batch-first"):
                ad.candidate(displacements=swapped["displacements"])


def test_time_major_x_fed_to_a_batch_first_model_is_localized_when_B_equals_T():
    """The same mistake on the input side: the case's time-major x fed to a batch-first model
    untransposed. With B != T the user's own loss fails on shapes; with B == T it runs, and
    compare puts the fault at the first hidden state."""
    case = next(iter(verify.cases(cell="rnn")))
    B = case.x.shape[1]
    x = np.resize(case.x, (B,) + case.x.shape[1:])                 # T = B, time-major
    model, ad = user_model(case, "rnn", "float64")
    options = {k: case.kwargs[k] for k in IMPL_OPTIONS if k in case.kwargs}
    out = planted_rnn.run(model, "tp", torch.from_numpy(x), torch.from_numpy(case.y), **options)
    ref = tpref.oracle("tp", ad.params, x, case.y, **dict(case.kwargs, backend="numpy"))
    ad.set_shape(B, B)
    report = verify.compare(ad.candidate(direction=model, **out), ref)
    assert where(report) == ("hidden", 1, None), str(report)


def test_literal_eq3_loses_the_direction_to_cancellation():
    """The float32 pitfall: Eq. (3) written as 1/2 ||f_t(h_{t-1}) - v_t||^2 subtracts numbers of
    size ~|h_t| that differ by |lam_t|, losing about log10(|h| / |lam|) of float32's digits. At
    gamma_h = 1e-4 on a typical problem (init_rnn, reg = 1) compare flags the float32 direction
    of the transition, and nothing before it; the displacement form passes. On the default
    cases, wherever it is flagged, it is flagged at the direction."""
    pitfall = (planted_rnn.PITFALL_LITERAL_EQ3,)
    rng = np.random.default_rng(0)
    typical = types.SimpleNamespace(
        name="typical", params=tpref.init_rnn(3, 16, 5, seed=0), x=rng.normal(size=(12, 6, 3)),
        y=rng.integers(0, 5, size=6), kwargs=dict(loss="cross_entropy", gamma_h=1e-4, reg=1.0))
    report = run_case(typical, "tp", dtype="float32", bugs=pitfall)[0]
    quantity, _, name = where(report)
    assert quantity == "direction" and name in ("W_hh", "W_xh", "b_h"), str(report)
    assert run_case(typical, "tp", dtype="float32")[0].ok
    for base in verify.cases(cell="rnn"):
        case = types.SimpleNamespace(name=base.name, params=base.params, x=base.x, y=base.y,
                                     kwargs=dict(base.kwargs, gamma_h=1e-4))
        report = run_case(case, "tp", dtype="float32", bugs=pitfall)[0]
        assert report.ok or where(report)[0] == "direction", str(report)
