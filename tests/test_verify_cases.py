"""tpref.verify.cases: every case exercises what it promises, a correct run in either precision
passes it, and a one-step perturbation is localized to that step on every case."""

import numpy as np
import pytest

from tpref.config import CLIP_EPS
from tpref.verify import cases, compare
from tpref.verify.tolerance import floor

ALL = list(cases("all"))
IDS = [c.name for c in ALL]


def _candidate(res):
    return {"loss": res.loss, "hidden": np.array(res.hidden),
            "displacements": np.array(res.displacements), "targets": np.array(res.targets),
            "direction": dict(res.direction)}


@pytest.fixture(scope="module")
def refs():
    return {c.name: c.oracle() for c in ALL}


def test_cases_are_named_distinct_and_cover_both_cells():
    assert len(set(IDS)) == len(IDS)
    assert {c.cell for c in ALL} == {"rnn", "gru"}
    assert [c.name for c in cases("gru")] == [c.name for c in ALL if c.cell == "gru"]
    with pytest.raises(ValueError, match="cell"):
        list(cases("lstm"))


@pytest.mark.parametrize("case", ALL, ids=IDS)
def test_shapes_all_differ(case):
    T, B, d = case.x.shape
    k, p = case.params["W_hy"].shape
    assert len({T, B, d, p, k}) == 5, (T, B, d, p, k)


@pytest.mark.parametrize("case", ALL, ids=IDS)
def test_branches_are_exercised(case, refs):
    res = refs[case.name]
    h, lam = res.hidden[1:], res.displacements
    scale = np.abs(lam).max(axis=(1, 2))                      # (T+1,)
    kw = case.kwargs
    for branch in case.branches:
        if branch == "clip":
            lo, hi = (-1.0, 1.0) if kw["activation"] == "tanh" else (0.0, 1.0)
            assert np.any((h > hi - CLIP_EPS) | (h < lo + CLIP_EPS)), "no unit beyond the clip"
        elif branch == "gates-clip":
            from tpref.models.gru import gru_forward
            _, cache = gru_forward(case.params, case.x)
            for gate in "zr":
                g = cache[gate]
                assert np.any(g > 1 - CLIP_EPS) and np.any(g < CLIP_EPS), gate
        elif branch == "grow":
            assert scale[0] > 100 * scale[-1]
        elif branch == "decay":
            assert scale[0] < 1e-30 * scale[-1]
        elif branch == "underflow":
            assert scale[0] < np.finfo(np.float32).tiny
        elif branch == "reg-small":
            assert kw["reg"] <= 1e-2
        elif branch == "reg-large":
            assert kw["reg"] >= 1e3
        elif branch in ("mse", "sigmoid", "through_time", "exact", "dtp"):
            assert branch in (kw["loss"], kw["activation"], kw["update"],
                              kw.get("gru_inverse"), case.method)
        else:
            raise AssertionError(f"unknown branch {branch!r}")


def test_every_branch_is_somewhere():
    have = {b for c in ALL for b in c.branches}
    assert {"clip", "gates-clip", "grow", "decay", "underflow", "reg-small", "reg-large", "mse",
            "sigmoid", "through_time", "dtp"} <= have
    assert {c.kwargs["update"] for c in ALL} == {"local", "through_time"}


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ALL, ids=IDS)
def test_correct_runs_pass(case, refs, dtype, backend):
    if backend == "numba" and case.kwargs.get("gru_inverse") == "exact":
        pytest.skip("the numba GRU's exact inverse is slow to compile; numpy covers it")
    res = case.oracle(dtype=dtype, backend=backend)
    report = compare(_candidate(res), refs[case.name])
    assert report.ok, str(report)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ALL, ids=IDS)
def test_one_step_perturbation_is_localized(case, refs, dtype):
    """A 5% change of one entry at one step is found at that step (and only steps above the
    underflow floor are judged: below it a value has no digits to check)."""
    ref = refs[case.name]
    base = _candidate(case.oracle(dtype=dtype))
    T = ref.hidden.shape[0] - 1
    start = float(np.abs(ref.displacements[T]).max())
    for q in ("hidden", "displacements", "targets"):
        for t in sorted({1, T // 2, T - 1, T}):
            if np.abs(ref.__getattribute__(q)[t]).max() < 1e3 * floor(dtype, start):
                continue
            a = base[q].copy()
            i = np.unravel_index(np.argmax(np.abs(a[t])), a[t].shape)
            a[t][i] *= 1.05
            first = compare(dict(base, **{q: a}), ref).first_divergence
            assert first is not None and (first.quantity, first.step) == (q, t), (q, t, first)
    for name in base["direction"]:
        d = dict(base["direction"])
        d[name] = d[name].copy()
        d[name][np.unravel_index(np.argmax(np.abs(d[name])), d[name].shape)] *= 1.05
        first = compare(dict(base, direction=d), ref).first_divergence
        assert (first.quantity, first.name, first.step) == ("direction", name, None)


def test_astype_and_kwargs_work_with_oracle():
    import tpref
    case = ALL[0]
    c32 = case.astype(np.float32)
    assert c32.params["W_hh"].dtype == np.float32 and c32.x.dtype == np.float32
    res = tpref.oracle("bp", case.params, case.x, case.y, **case.kwargs)
    assert res.displacements is None


def test_strategies_draw_cases_a_correct_run_passes():
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import given, settings, HealthCheck
    from tpref.verify import strategies

    seen = set()

    @given(strategies.problems(cell="rnn") | strategies.problems(cell="gru", methods=("tp",)))
    @settings(max_examples=25, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])
    def check(case):
        ref = case.oracle()
        seen.add((case.cell, case.method))
        assert ref.call.method == case.method
        r32 = case.oracle(dtype=np.float32)
        cand = {"hidden": np.array(r32.hidden), "direction": dict(r32.direction)}
        if r32.displacements is not None:
            cand["displacements"] = np.array(r32.displacements)
        assert compare(cand, ref).ok

    check()
    assert {"rnn", "gru"} <= {cell for cell, _ in seen}
