"""The command line: a tiny compare end to end, and bad input stopped before any work."""

import io
import os

import pytest

from tpref.cli import main
from tpref.run_io import Progress


def test_compare_ends_with_table_and_plot(tmp_path, capsys):
    rc = main(["compare", "--task", "temporal-order", "--length", "12", "--iterations", "20",
               "--eval-every", "10", "--eval-size", "40", "--hidden", "8", "--jobs", "1",
               "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0
    assert "| bp | finished | 20 |" in out and "| tp | finished | 20 |" in out
    png = tmp_path / "temporal-order-60" / "compare.png"
    assert f"plot: {png}" in out
    assert png.stat().st_size > 1000 and open(png, "rb").read(4) == b"\x89PNG"


def test_train_prints_where_results_are(tmp_path, capsys):
    rc = main(["train", "--task", "adding", "--length", "10", "--method", "dtp", "--gamma-h", "0.1",
               "--reg", "1", "--iterations", "10", "--eval-every", "5", "--hidden", "8",
               "--eval-size", "20", "--out", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert rc == 0 and str(tmp_path / "run" / "metrics.jsonl") in out
    assert os.path.exists(tmp_path / "run" / "curves.png")


@pytest.mark.parametrize("argv,match", [
    (["compare", "--task", "temporal-order", "--length", "4"], "length >= 10"),
    (["compare", "--task", "mnist", "--pixels-per-step", "5"], "divisor of 784"),
    (["compare", "--methods", "bp,magic"], "unknown method"),
    (["reproduce", "fig4", "--panels", "mnist"], "mnist files not found"),
    (["compare", "--backend", "cuda"], "not available"),
    (["train", "--method", "tp", "--gamma-h", "-1"], "gamma_h"),
])
def test_bad_input_is_refused_before_work(tmp_path, capsys, argv, match):
    data = tmp_path / "empty"
    data.mkdir()
    rc = main(argv + ["--out", str(tmp_path / "out"), "--data-dir", str(data)])
    err = capsys.readouterr().err
    assert rc == 2 and match in err
    runs = [f for _, _, fs in os.walk(tmp_path / "out") for f in fs] if (tmp_path / "out").exists() else []
    assert runs == []


def test_unknown_task_and_unwritable_output(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--task", "sudoku"])
    assert "invalid choice" in capsys.readouterr().err
    blocker = tmp_path / "f"
    blocker.write_text("")
    assert main(["compare", "--out", str(blocker / "x")]) == 2
    assert "not writable" in capsys.readouterr().err


def test_progress_bar_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    s = Tty()
    p = Progress("[x]", 100, s)
    p.update(50, 10.0, force=True)
    assert "50/100" in s.getvalue() and "eta     10s" in s.getvalue()


def test_image_length_sets_pixels_per_step(tmp_path, capsys):
    from test_loaders import make_mnist

    make_mnist(tmp_path / "data")
    rc = main(["compare", "--task", "mnist", "--length", "7", "--iterations", "2", "--eval-every",
               "1", "--eval-size", "4", "--hidden", "4", "--jobs", "1", "--data-dir",
               str(tmp_path / "data"), "--out", str(tmp_path / "out")])
    assert rc == 0
    import json
    cfg = json.loads((tmp_path / "out" / "mnist" / "tp" / "config.json").read_text())
    assert cfg["task"]["length"] == 7 and cfg["task"]["pixels_per_step"] == 112
    assert main(["compare", "--task", "mnist", "--length", "9", "--data-dir",
                 str(tmp_path / "data"), "--out", str(tmp_path / "out2")]) == 2
    assert "does not divide" in capsys.readouterr().err


def test_compare_with_both_updates_runs_tp_once_per_update(tmp_path, capsys):
    import json

    rc = main(["compare", "--task", "temporal-order", "--length", "12", "--iterations", "6",
               "--eval-every", "3", "--eval-size", "20", "--hidden", "6", "--jobs", "1",
               "--update", "local,through_time", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0
    for name in ("bp", "tp", "tp-through_time"):
        assert f"| {name} | finished | 6 |" in out
    panel = tmp_path / "temporal-order-60"
    updates = {name: json.loads((panel / name / "config.json").read_text())["run"]["update"]
               for name in ("bp", "tp", "tp-through_time")}
    assert updates == {"bp": "local", "tp": "local", "tp-through_time": "through_time"}
    # the two TP runs differ (the update changes the directions), BP ran once
    losses = {n: [json.loads(line)["train_loss"] for line in open(panel / n / "metrics.jsonl")]
              for n in ("tp", "tp-through_time")}
    assert losses["tp"] != losses["tp-through_time"]
    assert sorted(os.listdir(panel)) == ["bp", "compare.png", "table.md", "tp", "tp-through_time"]


@pytest.mark.parametrize("argv,match", [
    (["compare", "--update", "local,sideways"], "--update: must be one of local, through_time"),
    (["compare", "--update", "local,local"], "lists an update twice"),
    (["reproduce", "fig6a", "--update", "local,through_time"], "fig3 and fig4 only"),
    (["reproduce", "fig3", "--grid", "hidden=16"], "fig6a/fig6b only"),
    (["reproduce", "fig6b", "--grid", "hidden=48"], "48 not in fig6b's grid"),
])
def test_bad_update_lists_are_refused(tmp_path, capsys, argv, match):
    import contextlib

    parse_error = "must be" in match or "twice" in match     # argparse's own exit
    with pytest.raises(SystemExit) if parse_error else contextlib.nullcontext():
        rc = main(argv + ["--out", str(tmp_path / "out")])
        assert rc == 2
    assert match in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not any(os.scandir(tmp_path / "out"))

