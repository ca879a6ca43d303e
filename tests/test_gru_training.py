"""The GRU as a training cell: RunConfig.cell, train/compare/reproduce --cell, the
fashion-mnist preset (the paper's GRU), resumption, and the fallbacks for other tasks."""

import json
import os

import numpy as np
import pytest

from tpref.cli import main
from tpref.config import GRU_PARAM_NAMES, RNN_PARAM_NAMES
from tpref.experiments import panel_configs
from tpref.models.cells import init_params, last_hidden
from tpref.models.gru import gru_forward
from tpref.presets import PRESETS
from tpref.train import RunConfig, load_checkpoint, read_metrics, train

from test_loaders import make_mnist


def gru_config(**kw):
    fields = dict(task="temporal-order", length=12, method="tp", hidden=6, batch_size=5,
                  iterations=12, lr=0.1, gamma_h=1e-2, reg=1.0, eval_every=4, eval_size=30,
                  checkpoint_every=4, seed=2, cell="gru", backend="numba")
    fields.update(kw)
    return RunConfig(**fields)


@pytest.fixture
def fashion_dir(tmp_path):
    """Small synthetic Fashion-MNIST IDX files (the official names) in a tmp directory."""
    make_mnist(tmp_path / "data" / "fashion-mnist")
    return tmp_path / "data"


# ----------------------------------------------------------------------------------------------
# the preset


def test_fashion_mnist_preset_is_the_papers_gru():
    preset = PRESETS["fashion-mnist"]
    bp, tp = panel_configs("fashion-mnist")
    assert preset.cell == "gru" and bp.cell == tp.cell == "gru"
    assert (tp.hidden, tp.batch_size, tp.iterations) == (100, 16, 8000)
    assert (tp.lr, tp.gamma_h, tp.reg, tp.gru_inverse) == (0.1, 1e-2, 1.0, "per_gate")
    assert (bp.lr, bp.momentum) == (1e-2, 0.0)
    assert all(PRESETS[name].cell == "rnn" for name in PRESETS if name != "fashion-mnist")


def test_other_cell_takes_that_cells_steps_and_says_so():
    """A task the paper runs with the RNN, asked for the GRU: its own batch size, length and
    iteration count, the GRU's step sizes (and the reverse for fashion-mnist with the RNN)."""
    bp, tp = panel_configs("temporal-order-60", cell="gru")
    gru = PRESETS["fashion-mnist"]
    assert tp.cell == bp.cell == "gru" and (tp.length, tp.batch_size, tp.iterations) == (60, 20, 40000)
    assert (tp.lr, tp.gamma_h, tp.reg) == (0.1, 1e-2, 1.0) and bp.lr == gru.steps["bp"].lr
    assert not bp.nesterov
    assert "temporal-order-60" in PRESETS["temporal-order-60"].with_cell("gru").note
    bp, tp = panel_configs("fashion-mnist", cell="rnn")
    assert tp.cell == "rnn" and (tp.gamma_h, bp.lr) == (1e-4, 1e-5)          # mnist's steps
    assert PRESETS["mnist"].with_cell("rnn") is PRESETS["mnist"]
    with pytest.raises(ValueError, match="cell"):
        PRESETS["mnist"].with_cell("lstm")


# ----------------------------------------------------------------------------------------------
# RunConfig and train()


def test_run_config_checks_the_gru_fields():
    with pytest.raises(ValueError, match="cell must be one of"):
        gru_config(cell="lstm").validate()
    with pytest.raises(ValueError, match="gru_inverse must be one of .*authors"):
        gru_config(gru_inverse="author").validate()
    with pytest.raises(ValueError, match="dtype must be one of"):
        gru_config(dtype="float16").validate()
    with pytest.raises(ValueError, match="init must be one of"):
        gru_config(init="xavier").validate()
    with pytest.raises(ValueError, match="'dtp' is not defined for cell 'gru'"):
        gru_config(method="dtp").validate()
    with pytest.raises(ValueError, match="gru_inverse='authors' applies to cell 'gru' only"):
        gru_config(cell="rnn", gru_inverse="authors").validate()


@pytest.mark.parametrize("method", ["tp", "bp"])
def test_gru_run_resumes_bit_identically(tmp_path, method):
    cfg = gru_config(method=method, lr=0.1 if method == "tp" else 0.05)
    full = train(cfg, tmp_path / "full", progress=False)
    part = train(cfg, tmp_path / "part", progress=False, stop_after=7)
    assert part["status"] == "interrupted"
    resumed = train(cfg, tmp_path / "part", progress=False)
    assert full["status"] == resumed["status"] == "finished"
    a, _, _ = load_checkpoint(tmp_path / "full" / "checkpoint.npz")
    b, _, _ = load_checkpoint(tmp_path / "part" / "checkpoint.npz")
    assert tuple(a) == GRU_PARAM_NAMES
    for name in a:
        assert np.array_equal(a[name], b[name]), name
    init = init_params("gru", 6, 6, 4, seed=2)
    assert not np.array_equal(a["W_hz"], init["W_hz"])              # the GRU was trained
    strip = lambda rows: [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in rows]
    assert strip(read_metrics(tmp_path / "full" / "metrics.jsonl")) == strip(
        read_metrics(tmp_path / "part" / "metrics.jsonl"))


def test_gru_run_logs_the_gru_evaluation(tmp_path, monkeypatch):
    """The logged test loss at iteration 0 is the GRU's (the reference forward), not an RNN's."""
    cfg = gru_config(iterations=1, eval_every=1, backend="numpy")
    train(cfg, tmp_path, progress=False)
    task = cfg.make_task()
    params = init_params("gru", task.d, cfg.hidden, task.k, seed=cfg.seed)
    from tpref.train import evaluate
    loss, _ = evaluate(task, params, cfg.seed, cfg.eval_size, cell="gru")
    assert read_metrics(tmp_path / "metrics.jsonl")[0]["test_loss"] == pytest.approx(loss, rel=1e-12)
    x, _ = next(task.eval_batches(cfg.seed, 30))
    for backend in ("numba", "numpy"):                             # in chunks, as one batch
        monkeypatch.setattr("tpref.models.cells.GRU_EVAL_CHUNK", 7)
        assert np.allclose(last_hidden("gru", params, x, backend), gru_forward(params, x)[0][-1],
                           rtol=1e-10, atol=1e-12)


def test_gru_authors_inverse_float32_and_torch_init(tmp_path):
    cfg = gru_config(gru_inverse="authors", dtype="float32", init="torch", iterations=4)
    summary = train(cfg, tmp_path, progress=False)
    assert summary["status"] == "finished"
    params, _, _ = load_checkpoint(tmp_path / "checkpoint.npz")
    assert all(v.dtype == np.float32 for v in params.values())
    torch_init = init_params("gru", 6, 6, 4, seed=2, init="torch")
    bound = 1 / np.sqrt(6)
    assert all(np.abs(v).max() <= bound for v in torch_init.values())
    assert np.any(torch_init["b_hz"] != 0)                           # biases drawn too
    saved = json.loads((tmp_path / "config.json").read_text())["run"]
    assert (saved["cell"], saved["gru_inverse"], saved["dtype"], saved["init"]) == (
        "gru", "authors", "float32", "torch")


def test_an_older_config_without_the_cell_fields_still_resumes(tmp_path):
    """config.json written before RunConfig had cell/gru_inverse/dtype/init: the run was the
    RNN in float64 with the orthogonal init, the present defaults, so it resumes."""
    cfg = gru_config(cell="rnn", iterations=4)
    train(cfg, tmp_path, progress=False, stop_after=4)
    path = tmp_path / "config.json"
    saved = json.loads(path.read_text())
    for key in ("cell", "gru_inverse", "dtype", "init"):
        del saved["run"][key]
    path.write_text(json.dumps(saved))
    cfg.iterations = 8
    assert train(cfg, tmp_path, progress=False)["status"] == "finished"
    params, _, _ = load_checkpoint(tmp_path / "checkpoint.npz")
    assert tuple(params) == RNN_PARAM_NAMES


# ----------------------------------------------------------------------------------------------
# the command line


def test_compare_fashion_mnist_trains_the_gru_by_default(tmp_path, fashion_dir, capsys):
    rc = main(["compare", "--task", "fashion-mnist", "--length", "7", "--iterations", "2",
               "--eval-every", "1", "--eval-size", "6", "--hidden", "4", "--jobs", "1",
               "--data-dir", str(fashion_dir), "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "per_gate |" in out and "note:" not in out
    for method in ("bp", "tp"):
        params, _, _ = load_checkpoint(tmp_path / "out" / "fashion-mnist" / method / "checkpoint.npz")
        assert tuple(params) == GRU_PARAM_NAMES


def test_compare_cell_gru_on_an_rnn_task_says_whose_steps(tmp_path, capsys):
    rc = main(["compare", "--task", "temporal-order", "--length", "12", "--cell", "gru",
               "--gru-inverse", "authors", "--iterations", "2", "--eval-every", "1",
               "--eval-size", "10", "--hidden", "4", "--jobs", "1", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0 and "note: the paper runs temporal-order-60 with the simple RNN" in out
    assert "authors |" in out
    cfg = json.loads((tmp_path / "temporal-order-60" / "tp" / "config.json").read_text())["run"]
    assert (cfg["cell"], cfg["gru_inverse"], cfg["reg"]) == ("gru", "authors", 1.0)


def test_cell_gru_refuses_dtp_before_work(tmp_path, capsys):
    rc = main(["compare", "--task", "adding", "--cell", "gru", "--methods", "bp,dtp",
               "--out", str(tmp_path / "out")])
    assert rc == 2 and "'dtp' is not defined for cell 'gru'" in capsys.readouterr().err
    assert not any(files for _, _, files in os.walk(tmp_path / "out"))


def test_train_cell_gru(tmp_path, fashion_dir, capsys):
    rc = main(["train", "--task", "fashion-mnist", "--cell", "gru", "--method", "tp",
               "--gamma-h", "0.01", "--reg", "1", "--iterations", "2", "--eval-every", "1",
               "--hidden", "4", "--length", "7", "--data-dir", str(fashion_dir),
               "--out", str(tmp_path / "run")])
    assert rc == 0, capsys.readouterr().err
    params, _, state = load_checkpoint(tmp_path / "run" / "checkpoint.npz")
    assert tuple(params) == GRU_PARAM_NAMES and state["iteration"] == 2


def test_train_takes_the_tasks_cell_when_not_given(tmp_path, fashion_dir, capsys):
    rc = main(["train", "--task", "fashion-mnist", "--method", "bp", "--lr", "0.01",
               "--iterations", "1", "--hidden", "4", "--length", "7", "--data-dir",
               str(fashion_dir), "--out", str(tmp_path / "gru")])
    assert rc == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "gru" / "config.json").read_text())["run"]["cell"] == "gru"
    rc = main(["train", "--task", "adding", "--length", "10", "--method", "bp", "--lr", "0.01",
               "--iterations", "1", "--hidden", "4", "--eval-size", "10", "--out",
               str(tmp_path / "rnn")])
    assert rc == 0
    assert json.loads((tmp_path / "rnn" / "config.json").read_text())["run"]["cell"] == "rnn"


def test_reproduce_fig4_draws_four_panels_the_last_with_the_gru(tmp_path, capsys):
    """MNIST, permuted MNIST, CIFAR-10 (simple RNN) and Fashion-MNIST (GRU), from small
    synthetic files in one data directory (16 pixels per step: T = 49 and 192);
    --gru-inverse reaches the GRU panel only."""
    from test_loaders import make_cifar
    data = tmp_path / "data"
    make_mnist(data / "mnist")
    make_mnist(data / "fashion-mnist", seed=1)
    os.makedirs(data / "cifar10")
    make_cifar(data / "cifar10", archive=False)
    rc = main(["reproduce", "fig4", "--iterations", "1", "--eval-every", "1", "--eval-size", "4",
               "--hidden", "3", "--pixels-per-step", "16", "--jobs", "1", "--data-dir", str(data),
               "--gru-inverse", "authors", "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert rc == 0
    panels = ("mnist", "pmnist", "cifar10", "fashion-mnist")
    for panel in panels:
        runs = [json.loads((tmp_path / "out" / panel / m / "config.json").read_text())["run"]
                for m in ("bp", "tp")]
        gru = panel == "fashion-mnist"                               # --gru-inverse: GRU only
        assert {r["cell"] for r in runs} == {"gru" if gru else "rnn"}, panel
        assert {r["gru_inverse"] for r in runs} == {"authors" if gru else "per_gate"}, panel
    png = (tmp_path / "out" / "fig4.png").read_bytes()
    width = int.from_bytes(png[16:20], "big")                        # IHDR: 4 columns of 4 in
    assert png[:4] == b"\x89PNG" and width == 4 * 4 * 80
    assert f"figure: {tmp_path / 'out' / 'fig4.png'}" in out


def test_sweep_base_takes_the_cell_and_a_grid_can_vary_it():
    """tpref sweep --cell gru: the base of every sweep cell is the GRU with the GRU's steps;
    cell is a RunConfig field, so --grid cell=rnn,gru varies it like any other."""
    from tpref.sweeps import base_from_preset, make_cells
    base = base_from_preset("temporal-order", "tp", length=12, cell="gru", gru_inverse="authors")
    assert (base["cell"], base["gru_inverse"], base["reg"], base["length"]) == (
        "gru", "authors", 1.0, 12)
    cells = make_cells({"cell": ["rnn", "gru"]}, base_from_preset("adding", "bp"), None)
    assert sorted(c.config.cell for c in cells) == ["gru", "rnn"]


def test_train_fashion_mnist_cell_gru_needs_no_other_flag(tmp_path, monkeypatch, capsys):
    """The issue's newcomer command, `tpref train --task fashion-mnist --cell gru --iterations
    N`: data from the system directory where dataset-fashion-mnist installs it (here a tmp
    copy of small synthetic files), the paper's GRU preset (hidden 100, batch 16, TP 0.1,
    1e-2, 1), its own run directory."""
    from tpref.tasks import images
    make_mnist(tmp_path / "system", n_test=4)
    monkeypatch.setattr(images, "FASHION_MNIST_SYSTEM_DIR", str(tmp_path / "system"))
    monkeypatch.chdir(tmp_path)
    rc = main(["train", "--task", "fashion-mnist", "--cell", "gru", "--iterations", "2"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    configs = list(tmp_path.glob("runs/**/config.json"))
    assert len(configs) == 1
    run = json.loads(configs[0].read_text())["run"]
    assert (run["cell"], run["method"], run["hidden"], run["batch_size"]) == ("gru", "tp", 100, 16)
    assert (run["lr"], run["gamma_h"], run["reg"], run["iterations"]) == (0.1, 1e-2, 1.0, 2)
    params, _, state = load_checkpoint(configs[0].parent / "checkpoint.npz")
    assert tuple(params) == GRU_PARAM_NAMES and state["iteration"] == 2
    assert params["W_hr"].shape == (100, 100)
