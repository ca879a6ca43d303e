"""tpref.presets: the paper's hyperparameters, read by experiments and bench, safe to share."""

import copy
import dataclasses
import pickle

import pytest

from tpref.experiments import panel_configs
from tpref.presets import BENCH_PROBLEMS, FIGURES, PRESETS, Preset, Steps
from tpref.train import RunConfig


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("method", ["bp", "tp", "dtp"])
def test_every_preset_gives_a_valid_run(name, method):
    config = RunConfig(**PRESETS[name].run_fields(method))
    if config.cell == "gru" and method == "dtp":                    # no DTP for the GRU
        with pytest.raises(ValueError, match="'dtp' is not defined for cell 'gru'"):
            config.validate()
        return
    config.validate()
    assert config.task == PRESETS[name].task and config.method == method


def test_panel_configs_carry_the_papers_step_sizes():
    """A few entries of the authors' table (docs/peers.md), by name."""
    bp, tp, dtp = panel_configs("temporal-order-60", ("bp", "tp", "dtp"))
    assert (bp.lr, bp.momentum, bp.nesterov, bp.gamma_h, bp.reg) == (1e-5, 0.9, True, None, None)
    assert (tp.lr, tp.gamma_h, tp.reg, tp.momentum, tp.nesterov) == (0.1, 1e-2, 10.0, 0.0, False)
    assert (dtp.lr, dtp.gamma_h, dtp.reg) == (0.1, 1e-2, 10.0)     # DTP runs with TP's steps
    assert (tp.length, tp.batch_size, tp.iterations, tp.hidden) == (60, 20, 40000, 100)
    bp, tp = panel_configs("mnist")
    assert (bp.lr, bp.momentum, tp.lr, tp.gamma_h, tp.reg, tp.batch_size) == (
        1e-5, 0.0, 0.1, 1e-4, 1.0, 16)
    bp, tp = panel_configs("cifar10", iterations=5, lr=None)        # None overrides ignored
    assert (bp.iterations, bp.lr, tp.lr, tp.reg) == (5, 1e-3, 1e-2, 10.0)


def test_bench_problems_are_the_presets_shapes():
    assert BENCH_PROBLEMS["mnist"].as_dict() == dict(
        T=784, B=16, d=1, p=100, k=10, loss="cross_entropy", gamma_h=1e-4, reg=1.0)
    assert BENCH_PROBLEMS["adding30"].as_dict() == dict(
        T=30, B=20, d=2, p=100, k=1, loss="mse", gamma_h=0.1, reg=1.0)
    for figure in FIGURES.values():
        assert all(name in PRESETS for name in figure)


def test_presets_cannot_be_changed_by_a_caller():
    preset = PRESETS["mnist"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        preset.batch_size = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        preset.steps["tp"].lr = 1.0
    with pytest.raises(TypeError):
        preset.steps["tp"] = Steps(lr=1.0)
    fields = preset.run_fields("tp")
    fields["lr"] = 123.0                                             # a copy, not the preset
    assert preset.steps_for("tp").lr == 0.1


def test_presets_pickle_and_copy():
    preset = Preset("x", task="adding", length=12, batch_size=4, iterations=10,
                    steps={"tp": Steps(lr=0.1, gamma_h=0.1, reg=1.0)},
                    options={"update": "through_time"})
    for clone in (pickle.loads(pickle.dumps(preset)), copy.deepcopy(preset),
                  dataclasses.replace(preset, iterations=10)):
        assert clone == preset
        with pytest.raises(TypeError):
            clone.steps["bp"] = Steps(lr=1.0)


def test_options_and_missing_methods():
    preset = Preset("x", task="adding", length=12, batch_size=4, iterations=10,
                    steps={"tp": Steps(lr=0.1, gamma_h=0.1, reg=1.0)},
                    options={"update": "through_time"})
    config = RunConfig(**preset.run_fields("dtp"))
    assert config.update == "through_time" and config.gamma_h == 0.1
    with pytest.raises(ValueError, match="no step sizes for method 'bp'"):
        preset.run_fields("bp")
