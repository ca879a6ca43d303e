"""Fig. 6a / 6b studies: step-size selection by the smallest training-loss area, tables and
figures; one tiny study run end to end on a 2-worker cluster."""

import pytest

from tpref import presets, studies


def row(**kw):
    base = dict(status="finished", train_loss_auc=1.0, final_test_accuracy=0.5, seed=0)
    base.update(kw)
    return base


def test_select_best_takes_the_smallest_area_among_finished_runs():
    rows = [row(pixels_per_step=16, hidden=16, method="tp", lr=1e-3, train_loss_auc=2.0,
                final_test_accuracy=0.9),
            row(pixels_per_step=16, hidden=16, method="tp", lr=1e-2, train_loss_auc=1.5,
                final_test_accuracy=0.4),
            row(pixels_per_step=16, hidden=16, method="tp", lr=1e-1, status="diverged",
                train_loss_auc=None),
            row(pixels_per_step=16, hidden=16, method="bp", lr=1e-1, status="diverged",
                train_loss_auc=None)]
    best = studies.select_best(rows, ["pixels_per_step", "hidden", "method"], ["lr"])
    assert best[(16, 16, "tp")]["lr"] == 1e-2        # by area, not by accuracy
    assert best[(16, 16, "bp")] is None              # nothing finished: an empty point


def test_fig6a_table_and_figure_leave_diverged_runs_empty(tmp_path):
    rows = [row(lr=lr, reg=reg, train_loss_auc=None if reg == 0 else lr + reg,
                status="diverged" if reg == 0 else "finished")
            for lr in (1e-2, 1e-1) for reg in (0.0, 1.0)]
    table = studies.fig6a_table(rows)
    assert "| 0 | div. | div. |" in table and "r=0: 2/2" in table
    assert "| 1 | 1.010 | 1.100 |" in table
    assert studies.plot_fig6a(rows, tmp_path / "a.png") and (tmp_path / "a.png").exists()


def test_fig6b_table_counts_where_tp_is_ahead(tmp_path):
    study = presets.Study("t", base={}, grid={"pixels_per_step": (1, 196), "hidden": (16,),
                                               "method": ("bp", "tp")}, select={"lr": (0.1,)})
    acc = {(1, "bp"): 0.2, (1, "tp"): 0.6, (196, "bp"): 0.8, (196, "tp"): 0.3}
    best = {(k, 16, m): row(lr=0.1, final_test_accuracy=a) for (k, m), a in acc.items()}
    table = studies.fig6b_table(best, study)
    assert "TP ahead at 1 of 2 points; by length: T=784: 1/1, T=4: 0/1" in table
    studies.plot_fig6b(best, study, tmp_path / "b.png")
    assert (tmp_path / "b.png").exists()


def test_a_tiny_study_runs_end_to_end(tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    tiny = presets.Study(
        "fig6b-tiny", base=dict(task="temporal-order", length=12, batch_size=5, iterations=20,
                                eval_every=10, eval_size=40, checkpoint_every=10,
                                gamma_h=1e-2, reg=1.0),
        grid={"pixels_per_step": (1,), "hidden": (4, 8), "method": ("bp", "tp")},
        select={"lr": (0.01, 0.1)})
    monkeypatch.setitem(studies.STUDIES, "fig6b-tiny", tiny)
    table, png = studies.run_study("fig6b-tiny", str(tmp_path), backend="numpy", workers=2)
    assert "TP ahead at" in table and (tmp_path / "results.csv").exists()
    # a second call redraws from the finished cells without training
    table2, _ = studies.run_study("fig6b-tiny", str(tmp_path), backend="numpy", workers=2)
    assert table2 == table
    # a part of the grid: the same cells (nothing retrained), width 8 left empty
    table3, _ = studies.run_study("fig6b-tiny", str(tmp_path), backend="numpy", workers=2,
                                  only={"hidden": [4]})
    assert table3.splitlines()[2] == table.splitlines()[2].rsplit(" | ", 1)[0] + " | BP - / TP - |"
    assert "of 1 points" in table3


@pytest.mark.parametrize("only,match", [
    ({"hidden": [48]}, "48 not in fig6b's grid"),
    ({"momentum": [0.9]}, "not a field of fig6b's grid"),
])
def test_a_part_of_a_study_takes_only_the_studys_own_values(only, match):
    grid = {**presets.STUDIES["fig6b"].grid, **presets.STUDIES["fig6b"].select}
    with pytest.raises(ValueError, match=match):
        studies.restrict_grid("fig6b", grid, only)
    assert studies.restrict_grid("fig6b", grid, {"hidden": [256, 16]})["hidden"] == [16, 256]


def test_study_grids_match_the_paper():
    a, b = presets.STUDIES["fig6a"], presets.STUDIES["fig6b"]
    assert a.base["gamma_h"] == 1e-3 and a.base["iterations"] == 400
    assert a.grid["lr"] == (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
    assert a.grid["reg"] == (0.0, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
    assert b.grid["pixels_per_step"] == (1, 2, 4, 16, 56, 196)
    assert b.grid["hidden"] == (16, 32, 64, 128, 256, 512) and b.base["iterations"] == 400
