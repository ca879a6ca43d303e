"""Training runs: bit-identical resumption, divergence detection, logging, bad input."""

import json
import os

import numpy as np
import pytest

from tpref.run_io import load_checkpoint, read_metrics
from tpref.train import RunConfig, train


def small_config(**kw):
    fields = dict(task="temporal-order", length=12, method="tp", hidden=8, batch_size=5,
                  iterations=30, lr=0.1, gamma_h=1e-2, reg=1.0, eval_every=10, eval_size=50,
                  checkpoint_every=10, seed=3)
    fields.update(kw)
    return RunConfig(**fields)


def strip_wall(rows):
    return [{k: v for k, v in r.items() if k not in ("wall_seconds", "elapsed_seconds")}
            for r in rows]


@pytest.mark.parametrize("method,extra", [
    ("tp", {}),
    ("bp", dict(lr=0.05, momentum=0.9, nesterov=True)),    # momentum buffers are resumed too
])
def test_resumed_run_is_bit_identical(tmp_path, method, extra):
    cfg = small_config(method=method, **extra)
    full = train(cfg, tmp_path / "full", progress=False)
    part = train(cfg, tmp_path / "part", progress=False, stop_after=17)
    assert part["status"] == "interrupted" and part["iterations_done"] == 17
    # metrics logged after the last checkpoint (iteration 10) are dropped on resumption
    resumed = train(cfg, tmp_path / "part", progress=False)
    assert resumed["status"] == "finished" == full["status"]
    a, _, sa = load_checkpoint(tmp_path / "full" / "checkpoint.npz")
    b, _, sb = load_checkpoint(tmp_path / "part" / "checkpoint.npz")
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    assert sa["iteration"] == sb["iteration"] == 30
    ma, mb = read_metrics(tmp_path / "full" / "metrics.jsonl"), read_metrics(tmp_path / "part" / "metrics.jsonl")
    assert strip_wall(ma) == strip_wall(mb)
    assert [r["iteration"] for r in ma] == [0, 10, 20, 30]


def test_extending_a_finished_run_matches_a_longer_run(tmp_path):
    train(small_config(iterations=20), tmp_path / "a", progress=False)
    train(small_config(iterations=30), tmp_path / "a", progress=False)
    train(small_config(iterations=30), tmp_path / "b", progress=False)
    a, _, _ = load_checkpoint(tmp_path / "a" / "checkpoint.npz")
    b, _, _ = load_checkpoint(tmp_path / "b" / "checkpoint.npz")
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_resume_refuses_another_configuration(tmp_path):
    train(small_config(iterations=10), tmp_path, progress=False)
    with pytest.raises(ValueError, match="different configuration"):
        train(small_config(iterations=10, lr=0.2), tmp_path, progress=False)


def test_seeded_runs_are_reproducible_and_seed_matters(tmp_path):
    r = [train(small_config(seed=s), tmp_path / str(i), progress=False)
         for i, s in enumerate((3, 3, 4))]
    m = [strip_wall(read_metrics(tmp_path / str(i) / "metrics.jsonl")) for i in range(3)]
    assert m[0] == m[1] and m[0] != m[2]
    assert r[0]["final_test_loss"] == r[1]["final_test_loss"]


def test_files_written(tmp_path):
    s = train(small_config(), tmp_path, progress=False)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["run"]["lr"] == 0.1 and cfg["task"]["length"] == 12
    row = read_metrics(tmp_path / "metrics.jsonl")[-1]
    assert set(row) >= {"iteration", "train_loss", "test_loss", "test_accuracy", "wall_seconds"}
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == s["status"] == "finished"
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]     # no temp files left


def test_divergence_by_loss_growth_stops_and_keeps_the_log(tmp_path):
    # BP with a huge step size on the adding task: the loss explodes within a few steps
    cfg = small_config(task="adding", length=10, method="bp", lr=50.0, iterations=200,
                       eval_every=5)
    s = train(cfg, tmp_path, progress=False)
    assert s["status"] == "diverged", s
    assert s["iterations_done"] < 200
    assert "initial loss" in s["reason"] or "not finite" in s["reason"] or "Error" in s["reason"]
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert rows[0]["iteration"] == 0 and len(rows) >= 2


def test_divergence_rule_uses_twice_the_initial_loss(tmp_path):
    # a moderate step that raises the loss above 2x without overflow
    cfg = small_config(task="adding", length=10, method="bp", lr=3.0, iterations=100,
                       eval_every=1)
    s = train(cfg, tmp_path, progress=False)
    rows = read_metrics(tmp_path / "metrics.jsonl")
    initial = rows[0]["test_loss"]
    if s["status"] == "diverged" and "initial loss" in s["reason"]:
        assert rows[-1]["train_loss"] > 2 * initial
        assert all(r["train_loss"] <= 2 * initial for r in rows[1:-1])
    else:
        pytest.fail(f"expected the 2x rule to fire, got {s}")


def test_divergence_by_nan_loss(tmp_path, monkeypatch):
    import tpref.train as tr

    real = tr.oracle
    calls = {"n": 0}

    def poisoned(*a, **kw):
        res = real(*a, **kw)
        calls["n"] += 1
        if calls["n"] == 7:
            return res.__class__(**{**res.__dict__, "loss": float("nan")})
        return res

    monkeypatch.setattr(tr, "oracle", poisoned)
    monkeypatch.setattr(tr._Run, "warm_up", lambda self: 0.0)   # count training calls only
    s = train(small_config(), tmp_path, progress=False)
    assert s["status"] == "diverged" and s["iterations_done"] == 6
    assert "not finite" in s["reason"]


@pytest.mark.parametrize("field,value,match", [
    ("method", "sgd", "unknown method"),
    ("backend", "cuda", "not available"),
    ("gamma_h", None, "gamma_h"),
    ("iterations", 0, "iterations"),
    ("nesterov", True, "nesterov"),
])
def test_bad_config(tmp_path, field, value, match):
    with pytest.raises(ValueError, match=match):
        train(small_config(**{field: value}), tmp_path, progress=False)
    assert not os.path.exists(tmp_path / "metrics.jsonl")


def test_unwritable_output_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError, match="not writable"):
        train(small_config(), blocker / "run", progress=False)


def test_sigterm_interrupts_cleanly(tmp_path):
    """A run killed with SIGTERM records "interrupted" and its summary."""
    import signal
    import subprocess
    import sys
    import time

    script = (
        "import sys; from tpref.train import RunConfig, train\n"
        "cfg = RunConfig(task='temporal-order', length=12, method='tp', hidden=8, batch_size=5,"
        " iterations=100000, lr=0.1, gamma_h=1e-2, reg=1.0, eval_every=50, eval_size=20,"
        " checkpoint_every=50, seed=3)\n"
        "print(train(cfg, sys.argv[1], progress=False)['status'], flush=True)\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], cwd=root,
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": root})
    deadline = time.time() + 60
    while not os.path.exists(tmp_path / "checkpoint.npz") and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert out.strip() == "interrupted"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["iterations_done"] >= 50


def test_warm_up_is_outside_the_clock_and_changes_no_number(tmp_path, monkeypatch):
    """The kernels are compiled / loaded before the clock starts (summary says how long); a
    run without the warm-up gives the same metrics and parameters; the numba evaluation
    agrees with the reference's."""
    import tpref.train as train_mod
    cfg = small_config(backend="numba", iterations=20)
    warm = train(cfg, tmp_path / "warm", progress=False)
    assert warm["warm_up_seconds"] > 0 and warm["status"] == "finished"
    monkeypatch.setattr(train_mod._Run, "warm_up", lambda self: 0.0)
    cold = train(cfg, tmp_path / "cold", progress=False)
    assert strip_wall(read_metrics(warm["paths"]["metrics"])) == \
        strip_wall(read_metrics(cold["paths"]["metrics"]))
    a, b = load_checkpoint(tmp_path / "warm" / "checkpoint.npz")[0], \
        load_checkpoint(tmp_path / "cold" / "checkpoint.npz")[0]
    assert all(np.array_equal(a[k], b[k]) for k in a)
    task = cfg.make_task()
    fast = train_mod.evaluate(task, a, cfg.seed, 200, "rnn", backend="numba")
    ref = train_mod.evaluate(task, a, cfg.seed, 200, "rnn", backend="numpy")
    assert fast[0] == pytest.approx(ref[0], rel=1e-12) and fast[1] == ref[1]
