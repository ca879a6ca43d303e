"""tpref.bench runs end to end on a tiny configuration (no timing is asserted)."""

import json

import numpy as np
import pytest

from tpref import bench
from tpref.cli import main as cli_main

TINY = dict(T=6, B=3, d=2, p=5, k=3, loss="cross_entropy", gamma_h=1e-2, reg=1.0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_bench_config_validates_and_times(dtype):
    res = bench.bench_config("tiny", TINY, dtype, repeats=2, with_numpy=True, with_torch=True,
                             ftz=True, log=lambda *a: None)
    assert all(v["ok"] for v in res["check"].values()), res["check"]
    assert "tpref numba bp" in res["times"] and "tpref numba tp [ftz]" in res["times"]
    assert "tpref numba tp+lam" in res["times"] and "tpref numba dtp_learned" in res["times"]
    for v in res["times"].values():
        assert v["wall"]["n"] >= 2 and v["wall"]["median"] > 0
    d = bench.derived(res)
    assert d["wall"]["tp_over_bp"] > 0 and d["cpu"]["tp_over_bp"] > 0
    assert d["cpu"]["tp / bp paired"] > 0 and d["cpu"]["torch nn.RNN / bp paired"] > 0
    assert d["cpu"]["tp+lam / bp paired"] > 0 and d["cpu"]["tp+lam_over_bp"] > 0
    assert d["cpu"]["dtp_learned_over_bp"] > 0 and d["cpu"]["dtp_learned / bp paired"] > 0
    assert d["cpu"]["roofline_ms"] > 0 and d["cpu"]["gemm_gflops"] > 0
    assert bench.markdown({"gemm_gflops": {}, "configs": [dict(res, derived=d)], "sweep": []})
    json.dumps(res)                                     # serializable as written by run()


def test_validate_checks_the_displacements_read_after_a_tp_call(monkeypatch):
    """"tpref numba tp+lam" is checked on its displacements too: wrong ones fail the check
    (and are then not timed) while the directions alone still pass."""
    from tpref.kernels import numba_rnn
    names = ["tpref numba tp", "tpref numba tp+lam"]
    assert all(v["ok"] for v in bench.validate(TINY, np.float64, names).values())
    right = numba_rnn.LinearizedTP.displacements
    monkeypatch.setattr(numba_rnn.LinearizedTP, "displacements",
                        lambda self: 1.001 * right(self))
    check = bench.validate(TINY, np.float64, names)
    assert check["tpref numba tp"]["ok"] and not check["tpref numba tp+lam"]["ok"]


def test_cli_bench_writes_json_and_plot(tmp_path, monkeypatch):
    from tpref.bench import cli, report
    monkeypatch.setitem(bench.CONFIGS, "tiny", TINY)
    monkeypatch.setattr(report, "SWEEP_P", (4,))
    monkeypatch.setattr(cli, "gemm_rate", lambda dtype: {"fake": 10.0})
    orig = bench.sweep
    monkeypatch.setattr(cli, "sweep", lambda dt, reps, log=print: orig(
        dt, 1, Ts=(4, 8), ps=(4,), base="tiny", log=log))
    with np.errstate():                                  # cli.main sets np.seterr(all="raise")
        assert cli_main(["bench", "--quick", "--configs", "tiny", "--dtypes", "float64",
                         "--repeats", "1", "--no-torch", "--out", str(tmp_path)]) == 0
    out = json.loads((tmp_path / "bench.json").read_text())
    assert out["configs"][0]["config"] == "tiny" and len(out["sweep"]) == 3
    assert (tmp_path / "tp_over_bp.png").stat().st_size > 0


def test_paired_ratio_pairs_samples_of_the_same_repetition():
    """a is 1.1 x b in every repetition while the machine halves its speed mid-run: the paired
    median is 1.1; the ratio of medians is not."""
    b = np.array([10.0, 10.0, 10.0, 20.0, 20.0])
    a = 1.1 * b[[0, 1, 2, 3, 4]]
    a[2] = 1.1 * 20.0                       # repetition 2 of a ran after the slowdown
    b_med, a_med = np.median(b), np.median(a)
    paired = bench.paired_ratio(a, b)
    assert paired["median"] == pytest.approx(1.1)
    assert a_med / b_med == pytest.approx(2.2)
    assert paired["n"] == 5 and paired["q25"] <= paired["median"] <= paired["q75"]


def test_grid_points_vary_one_axis_at_a_time():
    from tpref.bench import grid
    pts = grid.grid_points()
    names = [n for n, _, _ in pts]
    assert len(names) == len(set(names)) == 1 + 3 * 3 + len(grid.GRID_EXTRA)
    for name, axis, cfg in pts:
        if axis in grid.GRID_AXES:
            others = {k: v for k, v in grid.GRID_BASE.items() if k != axis}
            assert all(cfg[k] == v for k, v in others.items()) and cfg[axis] != grid.GRID_BASE[axis]
    assert dict(pts[0][2], **grid.GRID_BASE) == pts[0][2]


def test_grid_verdicts_use_the_roofline_where_torch_is_within_reach_of_it():
    from tpref.bench.grid import verdicts
    ratio = lambda v: {"median": v}                          # noqa: E731
    row = {"point": "p=512", "T": 400, "p": 512, "torch_over_roofline": 2.0,
           "bp_over_roofline": 1.2, "paired": {"torch_over_bp": ratio(1.6),
                                               "tp_over_bp": ratio(1.3), "dtp_over_bp": ratio(1.1)}}
    v = verdicts(row)
    assert v["bp"]["met"] and v["bp"]["value"] == 1.2          # 3x is out of reach: roofline
    assert "tp" not in v                                       # T < p and no encoding timed
    assert v["dtp"]["met"]
    row.update(torch_over_roofline=5.0, T=1600)
    v = verdicts(row)
    assert not v["bp"]["met"] and v["bp"]["value"] == 1.6 and not v["tp"]["met"]
    row.update(T=60, p=100)
    row["paired"]["encoding_over_bp"] = ratio(0.3)             # T < p: 1 + 0.3 + 0.05 allowed
    assert verdicts(row)["tp"]["met"]


def test_cli_bench_grid_writes_json_table_and_plot(tmp_path, monkeypatch):
    from tpref.bench import grid
    points = [("base", "base", dict(TINY, T=6, p=5, B=3))] + [
        (f"{a}={v}", a, dict(TINY, **dict(dict(T=6, p=5, B=3), **{a: v})))
        for a, v in (("T", 9), ("p", 7), ("B", 2))]
    monkeypatch.setattr(grid, "grid_points", lambda: points)
    with np.errstate():
        assert cli_main(["bench", "--grid", "--quick", "--repeats", "2", "--out",
                         str(tmp_path)]) == 0
    out = json.loads((tmp_path / "grid.json").read_text())
    assert [r["point"] for r in out["grid"]] == [n for n, _, _ in points]
    for r in out["grid"]:
        assert r["dtype"] == "float32" and all(v["ok"] for v in r["check"].values()), r["check"]
        assert set(r["paired"]) >= {"torch_over_bp", "tp_over_bp", "tp_tt_over_bp", "dtp_over_bp"}
        assert r["roofline_ms"] > 0 and r["cpu_ms"]["bp"]["n"] == 2
        assert r["tp_tt_extra_gemm_over_bp"] > 0
        assert set(r["verdicts"]) == {"bp", "tp", "tp_tt", "dtp"}
    assert "| base | 6 | 3 | 5 |" in (tmp_path / "grid.md").read_text()
    assert (tmp_path / "grid.png").stat().st_size > 0


def test_train_overhead_pairs_train_with_the_bare_loop(tmp_path):
    from tpref.bench import train_overhead as to
    config = to.run_config("temporal-order-60", "tp", iterations=3)
    config.eval_size, config.hidden = 40, 8
    out = to.train_overhead(config, repeats=1, log=lambda *a: None)
    assert out["train_over_bare"]["cpu"]["n"] == 1 and out["train_over_bare"]["wall"]["median"] > 0
    split = out["profile_seconds"]
    assert split["oracle"] > 0 and split["evaluation"] > 0 and split["total"] >= split["oracle"]
    # the bare loop trains what train() trains: same parameters after the same steps
    from tpref.train import train
    summary = train(config, tmp_path / "run", progress=False)
    from tpref.run_io import load_checkpoint
    trained = load_checkpoint(summary["paths"]["checkpoint"])[0]
    bare = to.bare_loop(config, config.make_task())
    assert all(np.array_equal(trained[k], bare[k]) for k in bare)


def test_train_overhead_stops_when_a_run_is_interrupted(monkeypatch):
    """Ctrl-C / SIGTERM inside a timed train() run stops the benchmark (train() reports it as
    a status instead of raising) and leaves no run directory behind."""
    import glob
    import tempfile
    import tpref.train
    from tpref.bench import train_overhead as to
    monkeypatch.setattr(tpref.train, "train", lambda *a, **k: {"status": "interrupted",
                                                               "reason": "SIGTERM"})
    config = to.run_config("temporal-order-60", "tp", iterations=2)
    before = set(glob.glob(tempfile.gettempdir() + "/tpref-train-overhead-*"))
    with pytest.raises(KeyboardInterrupt):
        to.train_overhead(config, repeats=1, log=lambda *a: None)
    assert set(glob.glob(tempfile.gettempdir() + "/tpref-train-overhead-*")) == before
