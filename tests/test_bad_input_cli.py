"""The command line as a newcomer meets it: bad flags named, damaged run files named with the
way on, no raw traceback, no empty directories left behind, the paper's presets by default
(issue 14)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tpref
from tpref.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--task", "temporal-order", "--length", "10", "--hidden", "4", "--eval-size", "20",
        "--backend", "numpy"]


def run_cli(capsys, argv):
    """(exit status, stdout, stderr) of ``tpref argv``; argparse errors exit with 2."""
    try:
        rc = main(argv)
    except SystemExit as exit_:
        rc = exit_.code
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return rc, out.out, out.err


def files_under(path):
    return [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs] if os.path.exists(path) else []


# ----------------------------------------------------------------------------------------------
# flags: refused by name


@pytest.mark.parametrize("argv,match", [
    (["train", "--method", "bp", "--iterations", "0"], "argument --iterations: must be a positive integer, got 0"),
    (["compare", "--iterations", "0"], "argument --iterations: must be a positive integer, got 0"),
    (["demo", "--iterations", "0"], "argument --iterations: must be a positive integer, got 0"),
    (["train", "--seed", "-1"], "argument --seed: must be an integer >= 0, got -1"),
    (["demo", "--seed", "-1"], "argument --seed: must be an integer >= 0, got -1"),
    (["train", "--eval-every", "0"], "argument --eval-every: must be a positive integer"),
    (["train", "--eval-size", "-5"], "argument --eval-size: must be an integer >= 0"),
    (["train", "--hidden", "zero"], "argument --hidden: must be a positive integer, got 'zero'"),
    (["compare", "--jobs", "0"], "argument --jobs: must be a positive integer"),
    (["train", "--checkpoint-every", "0"], "argument --checkpoint-every: must be a positive"),
])
def test_bad_flag_values_are_refused_by_name(tmp_path, capsys, argv, match):
    rc, _, err = run_cli(capsys, argv + ["--out", str(tmp_path / "out")])
    assert rc == 2 and match in err
    assert not os.path.exists(tmp_path / "out")


def test_eval_size_zero_on_a_synthetic_task_is_refused(tmp_path, capsys):
    rc, _, err = run_cli(capsys, ["train", *TINY, "--eval-size", "0", "--out", str(tmp_path / "o")])
    assert rc == 2 and "eval_size (--eval-size) 0 means the whole test set" in err
    assert not os.path.exists(tmp_path / "o")


def test_library_refuses_a_negative_seed_by_name():
    cfg = tpref.train.RunConfig(seed=-1, method="bp")
    with pytest.raises(ValueError, match=r"seed \(--seed\) must be an integer >= 0, got -1"):
        cfg.validate()


def test_version(capsys):
    rc, out, _ = run_cli(capsys, ["--version"])
    assert rc == 0 and out.strip() == f"tpref {tpref.__version__}"


# ----------------------------------------------------------------------------------------------
# damaged run files: named, with the way on (--restart)


def _finished_run(tmp_path, capsys):
    out = str(tmp_path / "run")
    argv = ["train", *TINY, "--method", "bp", "--iterations", "20", "--checkpoint-every", "10",
            "--out", out]
    rc, _, err = run_cli(capsys, argv)
    assert rc == 0, err
    return out, argv


@pytest.mark.parametrize("damage", ["zero-byte", "truncated", "random", "pickle"])
def test_damaged_checkpoint_names_the_file_and_the_way_on(tmp_path, capsys, damage):
    out, argv = _finished_run(tmp_path, capsys)
    ck = os.path.join(out, "checkpoint.npz")
    raw = open(ck, "rb").read()
    blob = {"zero-byte": b"", "truncated": raw[: len(raw) // 2],
            "random": np.random.default_rng(0).bytes(300),
            "pickle": b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01."}[damage]
    open(ck, "wb").write(blob)
    rc, _, err = run_cli(capsys, argv[:-2] + ["--iterations", "30", "--out", out])
    assert rc == 2
    assert f"checkpoint {ck} is damaged or not a tpref checkpoint" in err
    assert "--restart" in err and "allow_pickle" not in err
    rc, _, err = run_cli(capsys, argv[:-2] + ["--iterations", "30", "--out", out, "--restart"])
    assert rc == 0, err


def test_checkpoint_with_wrong_shapes_is_refused(tmp_path, capsys):
    out, argv = _finished_run(tmp_path, capsys)
    ck = os.path.join(out, "checkpoint.npz")
    with np.load(ck) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["param/b_h"] = np.zeros(1)                       # would broadcast onto every entry
    np.savez(ck, **arrays)
    rc, _, err = run_cli(capsys, argv[:-2] + ["--iterations", "30", "--out", out])
    assert rc == 2 and "param/b_h has shape (1,), expected (4,)" in err and "--restart" in err


def test_truncated_config_json_names_the_file(tmp_path, capsys):
    out, argv = _finished_run(tmp_path, capsys)
    cfg = os.path.join(out, "config.json")
    open(cfg, "w").write(open(cfg).read()[:40])
    rc, _, err = run_cli(capsys, argv[:-2] + ["--iterations", "30", "--out", out])
    assert rc == 2 and f"{cfg} is not valid JSON" in err and "--restart" in err


# ----------------------------------------------------------------------------------------------
# no empty directories after a failure


@pytest.mark.parametrize("command", [["train"], ["compare"], ["reproduce", "fig4", "--panels", "mnist"]])
def test_a_failed_command_leaves_no_directory(tmp_path, capsys, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = command + (["--task", "mnist"] if command[0] != "reproduce" else [])
    rc, _, err = run_cli(capsys, argv + ["--data-dir", str(empty), "--out", "deep/new/out"])
    assert rc == 2 and "mnist files not found" in err
    assert not os.path.exists(tmp_path / "deep")
    rc, _, err = run_cli(capsys, ["train", "--task", "mnist", "--data-dir", str(empty)])
    assert rc == 2 and not os.path.exists(tmp_path / "runs")


# ----------------------------------------------------------------------------------------------
# newcomer defaults


def test_train_takes_the_preset_and_its_own_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, out, err = run_cli(capsys, ["train", "--task", "temporal-order", "--length", "60",
                                    "--iterations", "4", "--hidden", "4", "--eval-size", "20",
                                    "--backend", "numpy"])
    assert rc == 0, err
    run = tmp_path / "runs" / "temporal-order-60" / "tp"
    cfg = json.load(open(run / "config.json"))["run"]
    assert (cfg["lr"], cfg["gamma_h"], cfg["reg"], cfg["batch_size"]) == (0.1, 0.01, 10.0, 20)
    assert "preset temporal-order-60" in out
    rc, _, err = run_cli(capsys, ["train", "--task", "temporal-order", "--method", "bp",
                                  "--iterations", "4", "--hidden", "4", "--eval-size", "20",
                                  "--backend", "numpy", "--lr", "0.001"])
    assert rc == 0, err
    cfg = json.load(open(tmp_path / "runs" / "temporal-order-60" / "bp" / "config.json"))["run"]
    assert (cfg["lr"], cfg["momentum"], cfg["nesterov"]) == (0.001, 0.9, True)   # flag overrides


def test_train_help_shows_the_preset_defaults(capsys):
    rc, out, _ = run_cli(capsys, ["train", "--help"])
    assert rc == 0
    assert "temporal-order-60 T=60: 40000 iterations, batch 20" in out
    assert "tp lr 0.1, gamma_h 0.01, reg 10" in out


def test_short_runs_are_evaluated_often_and_progress_counts_evaluation(tmp_path, capsys):
    out = str(tmp_path / "run")
    rc, _, err = run_cli(capsys, ["train", *TINY, "--method", "bp", "--iterations", "400",
                                  "--out", out])
    assert rc == 0, err
    rows = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    assert len(rows) > 3 and rows[1]["iteration"] == 40
    assert "train nan" not in err
    assert all(r["elapsed_seconds"] >= r["wall_seconds"] for r in rows)
    summary = json.load(open(os.path.join(out, "summary.json")))
    assert summary["elapsed_seconds"] >= summary["wall_seconds"]
    assert "s elapsed (evaluation included; training steps" in err


@pytest.mark.slow
def test_newcomer_command_from_the_issue(tmp_path):
    """``python -m tpref train --task temporal-order --length 60 --iterations 2000``."""
    done = subprocess.run([sys.executable, "-m", "tpref", "train", "--task", "temporal-order",
                           "--length", "60", "--iterations", "2000"], cwd=tmp_path,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ROOT})
    assert done.returncode == 0, done.stderr
    summary = json.load(open(tmp_path / "runs" / "temporal-order-60" / "tp" / "summary.json"))
    assert summary["status"] == "finished" and summary["iterations_done"] == 2000


def test_demo_every_method_learns_and_says_its_step_sizes(capsys):
    """The demo's DTP loss used to rise: gamma_h 0.1 saturated every unit (step sizes)."""
    from tpref.demo import run_demo

    curves = run_demo(iterations=60, seed=0)
    for method, curve in curves.items():
        assert max(curve[10:]) < curve[0] and curve[-1] < 0.7 * curve[0], method
    rc, out, _ = run_cli(capsys, ["demo", "--iterations", "3"])
    assert rc == 0 and "step sizes: bp lr 0.5; tp lr 0.5, gamma_h 0.01, reg 10" in out


@pytest.mark.parametrize("argv,match", [
    (["--configs", "bogus"], "argument --configs: unknown configuration(s) ['bogus']"),
    (["--configs", "mnist,nope"], "unknown configuration(s) ['nope']"),
    (["--dtypes", "float16"], "argument --dtypes: unknown dtype(s) ['float16']; choose a "
                              "comma-separated subset of float32,float64"),
    (["--repeats", "0"], "argument --repeats: must be a positive integer"),
])
def test_bench_refuses_bad_options_before_timing(tmp_path, capsys, monkeypatch, argv, match):
    import tpref.bench.cli as bench_cli

    monkeypatch.setattr(bench_cli, "gemm_rate", lambda *a: pytest.fail("timing started"))
    rc, _, err = run_cli(capsys, ["bench", *argv, "--out", str(tmp_path / "b")])
    assert rc == 2 and match in err
    assert not os.path.exists(tmp_path / "b")


def test_plot_only_names_a_truncated_summary(tmp_path, capsys):
    run = tmp_path / "temporal-order-60" / "bp"
    run.mkdir(parents=True)
    (run / "summary.json").write_text('{"status": "fini')
    rc, _, err = run_cli(capsys, ["reproduce", "fig3", "--plot-only", "--out", str(tmp_path)])
    assert rc == 2 and f"{run / 'summary.json'} is not valid JSON" in err


def test_a_run_that_fails_after_creating_its_directory_removes_it(tmp_path, capsys, monkeypatch):
    import tpref.train as train_module

    def refuse(*args, **kwargs):
        raise ValueError("refused for the test")
    monkeypatch.setattr(train_module, "train", refuse)
    out = tmp_path / "new" / "run"
    rc, _, err = run_cli(capsys, ["train", *TINY, "--iterations", "5", "--out", str(out)])
    assert rc == 2 and "refused for the test" in err
    assert not os.path.exists(tmp_path / "new")
