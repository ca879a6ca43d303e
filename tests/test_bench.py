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
