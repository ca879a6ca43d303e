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
