"""Training diagnostics (tpref.diagnostics): values against independent computations, a run's
numbers unchanged by them, resumption, the plot command, bad input."""

import json
import os

import numpy as np
import pytest

import tpref
from tpref.analysis import lemma31
from tpref.cli import main
from tpref.diagnostics import (diagnose, first_bound, hidden_gradients, lemma_bound,
                               read_diagnostics, spectrum, step_norms)
from tpref.losses import output_backward
from tpref.models.rnn import init_rnn
from tpref.run_io import load_checkpoint
from tpref.train import RunConfig, train

BLOCKS = ("W_hh", "W_xh", "b_h")


def _case(seed=0, T=7, B=3, d=2, p=5, k=3, scale=1.0):
    rng = np.random.default_rng(seed)
    params = init_rnn(d, p, k, seed=seed)
    params["W_hh"] = params["W_hh"] * scale
    params["b_h"] = rng.normal(0, 0.3, p)
    x = rng.normal(size=(T, B, d))
    y = rng.integers(0, k, B)
    return params, x, y


OPTS = dict(loss="cross_entropy", gamma_h=1e-2, reg=0.5, backend="numpy")


def test_norms_equal_the_oracles_own_outputs():
    params, x, y = _case()
    record, bp_norms, tp_norms = diagnose(params, x, y, **OPTS)
    tp = tpref.oracle("tp", params, x, y, loss="cross_entropy", gamma_h=1e-2, reg=0.5,
                      backend="numpy")
    lam = np.asarray(tp.displacements)
    np.testing.assert_allclose(tp_norms, [np.linalg.norm(lam[t]) for t in range(len(lam))],
                               rtol=1e-12)
    # BP: the g_t rebuild the oracle's BP gradient, and g_T is -lam_T / gamma_h
    _, _, _, g_T = output_backward(params, tp.hidden[-1], y, "cross_entropy")
    g = hidden_gradients(params, np.asarray(tp.hidden), g_T)
    np.testing.assert_allclose(g[-1], -lam[-1] / 1e-2, rtol=1e-12)
    h = np.asarray(tp.hidden)
    delta = g[1:] * (1 - h[1:] ** 2)                            # dloss/du_t
    bp = tpref.oracle("bp", params, x, y, loss="cross_entropy", backend="numpy")
    np.testing.assert_allclose(np.einsum("tbi,tbj->ij", delta, h[:-1]), bp.direction["W_hh"],
                               rtol=1e-10)
    np.testing.assert_allclose(np.einsum("tbi,tbj->ij", delta, x), bp.direction["W_xh"],
                               rtol=1e-10)
    np.testing.assert_allclose(bp_norms, [np.linalg.norm(g[t]) for t in range(len(g))])
    assert record["bp_decay"] == pytest.approx(bp_norms[1] / bp_norms[-1])
    assert record["loss"] == pytest.approx(bp.loss)


def test_numba_backend_gives_the_same_diagnosis():
    params, x, y = _case(seed=3)
    ref, bp_ref, tp_ref = diagnose(params, x, y, **OPTS)
    fast, bp_fast, tp_fast = diagnose(params, x, y, **{**OPTS, "backend": "numba"})
    np.testing.assert_allclose(bp_fast, bp_ref, rtol=1e-9)
    np.testing.assert_allclose(tp_fast, tp_ref, rtol=1e-9)
    for key, v in ref.items():
        assert fast[key] == pytest.approx(v, rel=1e-8, abs=1e-12), key


def test_alignment_against_separately_computed_directions():
    params, x, y = _case(seed=1)
    record, _, _ = diagnose(params, x, y, **OPTS)
    bp = tpref.oracle("bp", params, x, y, loss="cross_entropy", backend="numpy").direction
    for update in ("local", "through_time"):
        tp = tpref.oracle("tp", params, x, y, loss="cross_entropy", gamma_h=1e-2, reg=0.5,
                          update=update, backend="numpy").direction
        for b in BLOCKS:
            u, v = np.ravel(bp[b]), np.ravel(tp[b]) / 1e-2
            cos = u @ v / np.sqrt((u @ u) * (v @ v))
            assert record[f"cos_{update}_{b}"] == pytest.approx(cos, rel=1e-10)
            assert record[f"ratio_{update}_{b}"] == pytest.approx(
                np.linalg.norm(v) / np.linalg.norm(u), rel=1e-10)


def test_spectrum_against_numpy_linalg():
    params, _, _ = _case(seed=2, p=6, scale=1.7)
    W = params["W_hh"] + np.random.default_rng(0).normal(0, 0.3, (6, 6))
    spec, _ = spectrum(W, 0.5)
    assert spec["spectral_radius"] == pytest.approx(max(abs(np.linalg.eigvals(W))), rel=1e-12)
    assert spec["sigma_max"] == pytest.approx(np.linalg.norm(W, 2), rel=1e-12)
    assert spec["sigma_min"] == pytest.approx(np.linalg.norm(W, -2), rel=1e-12)
    assert spec["gram_condition"] == pytest.approx(np.linalg.cond(W.T @ W + 0.5 * np.eye(6)),
                                                   rel=1e-10)


@pytest.mark.parametrize("seed,scale", [(0, 1.0), (1, 0.5), (2, 2.5), (4, 6.0)])
def test_lemma_bound_against_tpref_analysis_lemma31(seed, scale):
    """One sample: the actual value is lemma31's ``diff``; the cheap a, b, delta bound the
    lemma's exact sup-norms, so the bound is at least lemma31's corrected right side; and with
    the exact a, b, delta, :func:`first_bound` is lemma31's corrected right side. (scale 6
    saturates units: pi is active.)"""
    params, x, y = _case(seed=seed, B=1, scale=scale)
    reg = 0.5
    record, _, _ = diagnose(params, x, y, **OPTS)
    tp = tpref.oracle("tp", params, x, y, loss="cross_entropy", gamma_h=1e-2, reg=reg,
                      backend="numpy")
    h = np.asarray(tp.hidden)
    _, _, _, g_T = output_backward(params, h[-1], y, "cross_entropy")
    exact = lemma31(params, x, h, g_T, reg, ord=2)
    assert record["lemma_actual"] == pytest.approx(exact["diff"], rel=1e-9)
    _, sigma = spectrum(params["W_hh"], reg)
    bound, a, b, delta = lemma_bound(params, x, h, g_T, reg, sigma)
    assert a[0] >= exact["a"] * (1 - 1e-12) and b[0] >= exact["b"] * (1 - 1e-12)
    assert delta[0] >= exact["delta"] * (1 - 1e-12)
    assert bound[0] >= exact["first_corrected"] * (1 - 1e-12) >= exact["diff"] * (1 - 1e-12)
    assert record["lemma_bound"] == pytest.approx(bound[0])
    D = 1 - h[1:, 0] ** 2
    z = np.sqrt((h[:-1, 0] ** 2).sum(1) + (x[:, 0] ** 2).sum(1) + 1)
    again = first_bound(*(np.array([v]) for v in (np.linalg.norm(g_T[0]), exact["delta"],
                                                   exact["a"], exact["b"])),
                        np.abs(D).max(1)[:, None], z[:, None])
    assert again[0] == pytest.approx(exact["first_corrected"], rel=1e-10)


def test_lemma_bound_holds_for_a_batch():
    params, x, y = _case(seed=5, B=6, scale=3.0)
    record, _, _ = diagnose(params, x, y, **OPTS)
    assert record["lemma_bound"] >= record["lemma_actual"] > 0


# ----------------------------------------------------------------------------------------------
# in a run


def _config(**kw):
    base = dict(task="temporal-order", length=10, hidden=6, batch_size=4, iterations=24,
                eval_every=8, eval_size=16, checkpoint_every=5, gamma_h=1e-2, reg=1.0,
                backend="numpy")
    return RunConfig(**{**base, **kw})


def _params(run_dir):
    return load_checkpoint(os.path.join(run_dir, "checkpoint.npz"))[0]


@pytest.mark.parametrize("method,backend", [("tp", "numpy"), ("bp", "numpy"), ("tp", "numba"),
                                            ("bp", "numba")])
def test_a_run_with_diagnostics_ends_with_the_same_bits(tmp_path, method, backend):
    plain, diag = str(tmp_path / "plain"), str(tmp_path / "diag")
    train(_config(method=method, backend=backend), plain, progress=False)
    train(_config(method=method, backend=backend, diagnostics=5), diag, progress=False)
    a, b = _params(plain), _params(diag)
    for k in a:
        assert a[k].tobytes() == b[k].tobytes(), k
    records, its, bp, tp = read_diagnostics(diag)
    assert list(its) == [0, 5, 10, 15, 20] == [r["iteration"] for r in records]
    assert bp.shape == tp.shape == (5, 11)
    assert records[0]["gamma_h"] == 1e-2


def test_a_bp_run_takes_the_presets_tp_steps(tmp_path):
    cfg = _config(method="bp", gamma_h=None, reg=None, diagnostics=10, iterations=10)
    train(cfg, str(tmp_path), progress=False)
    records, _, _, _ = read_diagnostics(str(tmp_path))
    tp = tpref.presets.PRESETS["temporal-order-60"].steps_for("tp")
    assert (records[0]["gamma_h"], records[0]["reg"]) == (tp.gamma_h, tp.reg)


def test_a_resumed_run_continues_the_files_without_duplicates(tmp_path):
    whole, parts = str(tmp_path / "whole"), str(tmp_path / "parts")
    train(_config(diagnostics=4), whole, progress=False)
    # stops at 17: checkpoint at 15, diagnoses 0..16 written; resuming drops 16 and redoes it
    s = train(_config(diagnostics=4), parts, progress=False, stop_after=17)
    assert s["status"] == "interrupted"
    assert [r["iteration"] for r in read_diagnostics(parts)[0]] == [0, 4, 8, 12, 16]
    train(_config(diagnostics=4), parts, progress=False)
    r1, i1, bp1, tp1 = read_diagnostics(whole)
    r2, i2, bp2, tp2 = read_diagnostics(parts)
    assert list(i1) == list(i2) == [0, 4, 8, 12, 16, 20]
    assert np.array_equal(bp1, bp2) and np.array_equal(tp1, tp2)
    drop = lambda r: {k: v for k, v in r.items() if k != "seconds"}   # noqa: E731
    assert [drop(r) for r in r1] == [drop(r) for r in r2]
    with open(os.path.join(parts, "diagnostics.jsonl")) as f:
        assert len(f.readlines()) == 6


def test_a_truncated_record_line_is_dropped_on_resume(tmp_path):
    run = str(tmp_path)
    train(_config(diagnostics=4), run, progress=False, stop_after=17)
    with open(os.path.join(run, "diagnostics.jsonl"), "a") as f:
        f.write('{"iteration": 99, "lo')                        # killed mid-line
    train(_config(diagnostics=4), run, progress=False)
    with open(os.path.join(run, "diagnostics.jsonl")) as f:
        its = [json.loads(line)["iteration"] for line in f]
    assert its == [0, 4, 8, 12, 16, 20]


def test_restart_removes_old_diagnostics(tmp_path):
    train(_config(diagnostics=4), str(tmp_path), progress=False)
    train(_config(diagnostics=10), str(tmp_path), progress=False, resume=False)
    assert list(read_diagnostics(str(tmp_path))[1]) == [0, 10, 20]


@pytest.mark.parametrize("bad", [-1, 2.5, "5", True])
def test_bad_diagnostics_values_are_named(bad):
    with pytest.raises(ValueError, match="diagnostics"):
        _config(diagnostics=bad).validate()


def test_gru_diagnostics_say_they_are_not_implemented():
    with pytest.raises(ValueError, match="cell 'rnn' only"):
        _config(cell="gru", diagnostics=5).validate()


@pytest.mark.parametrize("flag", ["0", "-3", "x", "1.5"])
def test_cli_rejects_bad_diagnostics(flag, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--diagnostics", flag, "--out", str(tmp_path / "r")])
    assert exc.value.code == 2
    assert "--diagnostics" in capsys.readouterr().err


def test_train_and_plot_commands(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert main(["train", "--length", "10", "--hidden", "6", "--iterations", "12",
                 "--batch-size", "4", "--eval-size", "16", "--backend", "numpy",
                 "--diagnostics", "4", "--out", run]) == 0
    assert main(["plot", run, "--diagnostics"]) == 0
    png = os.path.join(run, "diagnostics.png")
    assert os.path.getsize(png) > 10_000
    assert f"plot: {png}" in capsys.readouterr().out
    assert main(["plot", run]) == 0
    assert os.path.exists(os.path.join(run, "curves.png"))


def test_plot_without_diagnostics_is_a_clear_error(tmp_path, capsys):
    run = str(tmp_path / "run")
    train(_config(iterations=4), run, progress=False)
    assert main(["plot", run, "--diagnostics"]) == 2
    assert "holds no diagnostics" in capsys.readouterr().err
    assert main(["plot", str(tmp_path / "nowhere"), "--diagnostics"]) == 2
    assert step_norms(np.ones((2, 1, 4))).tolist() == [2.0, 2.0]
