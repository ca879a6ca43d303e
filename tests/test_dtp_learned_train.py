"""Training with method "dtp_learned": TPTT's schedule step by step, resumption with the
reverse layer in the checkpoint, its own step sizes, presets on the command line."""

import json

import numpy as np
import pytest

import tpref
from tpref.cli import main
from tpref.presets import PRESETS
from tpref.run_io import load_checkpoint, read_metrics
from tpref.tasks import make_task
from tpref.train import RunConfig, train


def learned_config(**kw):
    fields = dict(task="temporal-order", length=10, method="dtp_learned", hidden=8,
                  batch_size=5, iterations=12, lr=0.05, gamma_h=0.1, reverse_lr=0.02,
                  noise=0.1, eval_every=4, eval_size=40, checkpoint_every=4, seed=3,
                  backend="numpy")
    fields.update(kw)
    return RunConfig(**fields)


def test_one_iteration_is_the_inverse_step_then_the_forward_step(tmp_path):
    """After one iteration: (V_hh, c_h) = their values minus reverse_lr times the inverse-loss
    gradient at the initial weights, and the forward weights moved by lr times the direction
    whose targets used those UPDATED reverse weights (TPTT: g_step, then f_step)."""
    cfg = learned_config(iterations=1, eval_every=1, checkpoint_every=1)
    train(cfg, tmp_path, progress=False)
    after, _, _ = load_checkpoint(tmp_path / "checkpoint.npz")
    task = make_task("temporal-order", length=10)
    p0 = tpref.init_rnn(task.d, 8, task.k, seed=3, reverse=True)
    x, y = task.train_batch(3, 0, 5)
    at_start = tpref.oracle("dtp_learned", p0, x, y, loss=task.loss, gamma_h=0.1, noise=0.1,
                            seed=(3, 3, 0), backend="numpy")
    v1 = {k: p0[k] - 0.02 * at_start.direction[k] for k in ("V_hh", "c_h")}
    after_inverse = tpref.oracle("dtp_learned", dict(p0, **v1), x, y, loss=task.loss,
                                 gamma_h=0.1, noise=0.1, seed=(3, 3, 0), backend="numpy")
    for k in ("V_hh", "c_h"):
        assert np.array_equal(after[k], v1[k]), k
    for k in ("W_hh", "W_xh", "b_h", "W_hy", "b_y"):
        assert np.array_equal(after[k], p0[k] - 0.05 * after_inverse.direction[k]), k


def test_resumed_run_is_bit_identical_with_the_reverse_layer(tmp_path):
    cfg = learned_config(momentum=0.9, nesterov=True)
    full = train(cfg, tmp_path / "full", progress=False)
    part = train(cfg, tmp_path / "part", progress=False, stop_after=7)
    assert part["status"] == "interrupted"
    resumed = train(cfg, tmp_path / "part", progress=False)
    assert resumed["status"] == "finished" == full["status"]
    a, buf_a, _ = load_checkpoint(tmp_path / "full" / "checkpoint.npz")
    b, _, _ = load_checkpoint(tmp_path / "part" / "checkpoint.npz")
    assert {"V_hh", "c_h"} <= set(a) and set(buf_a) == {"W_hh", "W_xh", "b_h", "W_hy", "b_y"}
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    p0 = tpref.init_rnn(6, 8, 4, seed=3, reverse=True)
    assert not np.array_equal(a["V_hh"], p0["V_hh"])          # the reverse layer learned
    clocks = ("wall_seconds", "elapsed_seconds")
    strip = [{k: v for k, v in r.items() if k not in clocks}
             for r in read_metrics(tmp_path / "full" / "metrics.jsonl")]
    assert strip == [{k: v for k, v in r.items() if k not in clocks}
                     for r in read_metrics(tmp_path / "part" / "metrics.jsonl")]


def test_noise_draws_depend_on_seed_and_iteration(tmp_path):
    a = train(learned_config(iterations=4), tmp_path / "a", progress=False)
    b = train(learned_config(iterations=4, noise=0.0), tmp_path / "b", progress=False)
    assert a["status"] == b["status"] == "finished"
    pa, _, _ = load_checkpoint(tmp_path / "a" / "checkpoint.npz")
    pb, _, _ = load_checkpoint(tmp_path / "b" / "checkpoint.npz")
    assert not np.array_equal(pa["V_hh"], pb["V_hh"])
    assert learned_config().oracle_options(5)["seed"] == (3, 3, 5)


@pytest.mark.parametrize("field,value,match", [
    ("reverse_lr", None, "needs reverse_lr > 0"),
    ("reverse_lr", 0.0, "needs reverse_lr > 0"),
    ("noise", -1.0, "noise must be >= 0"),
    ("reg", 1.0, "reg does not apply"),
    ("gamma_h", None, "needs gamma_h > 0"),
    ("update", "through_time", "update 'local' only"),
])
def test_bad_config(tmp_path, field, value, match):
    with pytest.raises(ValueError, match=match):
        train(learned_config(**{field: value}), tmp_path, progress=False)


def test_reverse_options_belong_to_dtp_learned_only(tmp_path):
    cfg = RunConfig(method="tp", gamma_h=0.1, reg=1.0, reverse_lr=0.1)
    with pytest.raises(ValueError, match="apply to method 'dtp_learned' only"):
        cfg.validate()


def test_cli_train_takes_tptt_step_sizes_from_the_preset(tmp_path, capsys):
    """`tpref train --method dtp_learned` on temporal order runs with TPTT's synthetic step
    sizes (preset), flags override them."""
    out = tmp_path / "run"
    rc = main(["train", "--task", "temporal-order", "--length", "10", "--method", "dtp_learned",
               "--iterations", "4", "--eval-every", "2", "--eval-size", "40", "--hidden", "8",
               "--backend", "numpy", "--noise", "0.05", "--out", str(out)])
    assert rc == 0
    run = json.loads((out / "config.json").read_text())["run"]
    tptt = PRESETS["temporal-order-60"].steps["dtp_learned"]
    assert (run["lr"], run["gamma_h"], run["reverse_lr"], run["momentum"], run["nesterov"]) == (
        tptt.lr, tptt.gamma_h, tptt.reverse_lr, tptt.momentum, tptt.nesterov)
    assert run["noise"] == 0.05 and run["reg"] is None and run["batch_size"] == 20
    assert "status finished" in capsys.readouterr().out
    assert main(["train", "--task", "adding", "--length", "10", "--method", "dtp_learned",
                 "--out", str(tmp_path / "x")]) == 2
    assert "no dtp_learned step sizes" in capsys.readouterr().err


def test_mnist_preset_is_tptt_and_appendix_d():
    s = PRESETS["mnist"].steps["dtp_learned"]
    assert (s.lr, s.gamma_h, s.reverse_lr, s.noise, s.momentum) == (1e-2, 1e-7, 1e-8, 0.1, 0.0)
    assert PRESETS["mnist"].batch_size == 16
    with pytest.raises(ValueError, match="no step sizes for method 'dtp_learned'"):
        PRESETS["adding-30"].steps_for("dtp_learned")


def test_reproduce_appendix_d_runs_every_panel_with_its_step_sizes(tmp_path, capsys):
    """`tpref reproduce appendix-d`: MNIST with tp, dtp (0.1, 1e-4, 1) and dtp_learned (TPTT:
    1e-2, 1e-7, reverse 1e-8, noise 0.1), temporal order 60 with bp, tp, dtp_learned; tables,
    panel plots and the figure (tiny: 7 steps of 112 pixels, hidden 4, 2 iterations)."""
    from test_loaders import make_mnist

    make_mnist(tmp_path / "data")
    out = tmp_path / "out"
    rc = main(["reproduce", "appendix-d", "--data-dir", str(tmp_path / "data"),
               "--pixels-per-step", "112", "--iterations", "2", "--eval-every", "1",
               "--eval-size", "4", "--hidden", "4", "--jobs", "1", "--backend", "numpy",
               "--out", str(out)])
    assert rc == 0
    runs = {p: {m: json.loads((out / p / m / "config.json").read_text())["run"]
                for m in methods}
            for p, methods in (("mnist", ("tp", "dtp", "dtp_learned")),
                               ("temporal-order-60", ("bp", "tp", "dtp_learned")))}
    for m in ("tp", "dtp"):
        assert (runs["mnist"][m]["lr"], runs["mnist"][m]["gamma_h"], runs["mnist"][m]["reg"]) == (
            0.1, 1e-4, 1.0)
    tptt = runs["mnist"]["dtp_learned"]
    assert (tptt["lr"], tptt["gamma_h"], tptt["reverse_lr"], tptt["noise"], tptt["batch_size"]) == (
        1e-2, 1e-7, 1e-8, 0.1, 16)
    assert runs["temporal-order-60"]["dtp_learned"]["length"] == 60
    assert (out / "appendix-d.png").exists() and (out / "mnist" / "table.md").exists()
    assert "reverse lr 1e-08" in (out / "mnist" / "table.md").read_text()
    assert main(["reproduce", "appendix-d", "--panels", "adding-30", "--out", str(out)]) == 2
    assert "unknown panel 'adding-30' of appendix-d" in capsys.readouterr().err
