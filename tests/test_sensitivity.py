"""``tpref reproduce sensitivity``: one sweep per parameter around the centre, table, figure."""

import os

import pytest

from tpref import sensitivity
from tpref.sweeps import read_results


def test_grids_are_the_studys():
    assert sensitivity.GRIDS["gamma_h"] == (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
    assert sensitivity.GRIDS["lr"] == (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
    assert sensitivity.GRIDS["reg"] == (0.1, 1.0, 10.0, 100.0, 1000.0)
    assert sensitivity.BASE["iterations"] == 400 and sensitivity.BASE["task"] == "mnist"
    assert {k: sensitivity.BASE[k] for k in ("lr", "gamma_h", "reg")} == sensitivity.CENTRE


def test_a_tiny_sensitivity_study_runs_end_to_end(tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    tiny = dict(task="temporal-order", length=12, method="tp", batch_size=5, hidden=6,
                iterations=20, eval_every=5, eval_size=40, checkpoint_every=10,
                **sensitivity.CENTRE)
    monkeypatch.setattr(sensitivity, "BASE", tiny)
    monkeypatch.setattr(sensitivity, "GRIDS", {"gamma_h": (1e-4, 1e-2), "lr": (0.1, 10.0),
                                               "reg": (1.0, 100.0)})
    table, png = sensitivity.run_sensitivity(str(tmp_path), backend="numpy", seeds=(0, 1),
                                             workers=2)
    assert os.path.getsize(png) > 10_000
    for field, values in sensitivity.GRIDS.items():
        rows = read_results(str(tmp_path / field / "results.csv"))
        assert sorted({r[field] for r in rows}) == list(values) and len(rows) == 4
        centre = [r for r in rows if r[field] == sensitivity.CENTRE[field]]
        other = {f: v for f, v in sensitivity.CENTRE.items() if f != field}
        assert all(r["status"] == "finished" for r in centre)
        cfg = os.path.join(tmp_path, field, centre[0]["run_dir"], "config.json")
        import json
        run = json.load(open(cfg))["run"]
        assert {f: run[f] for f in other} == other
    assert "| gamma_theta (step size) | 0.1 |" in table
    # the figure redraws from the files alone
    table2, _ = sensitivity.run_sensitivity(str(tmp_path), plot_only=True)
    assert table2 == table
