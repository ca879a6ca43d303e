"""Sweeps on a real Dask LocalCluster (2 worker processes): results equal to running the cells
one by one, reruns that recompute nothing, a killed worker's cell retried, failing cells
recorded, bad grid specs refused."""

import importlib.util
import multiprocessing
import os
import subprocess
import sys

import pytest

from tpref.sweeps import (SweepError, cell_row, make_cells, parse_grid, parse_seeds,
                          read_results, sweep)
from tpref.train import train

pytest.importorskip("distributed")

BASE = dict(task="temporal-order", length=12, method="tp", hidden=8, batch_size=5,
            iterations=30, lr=0.1, gamma_h=1e-2, reg=1.0, eval_every=10, eval_size=50,
            checkpoint_every=10, backend="numpy")
VOLATILE = ("wall_seconds", "elapsed_seconds")
#: read at collection, before any test has started a cluster
MALLOC_TRIM_PRESET = "MALLOC_TRIM_THRESHOLD_" in os.environ


def numbers(row):
    return {k: v for k, v in row.items() if k not in VOLATILE}


@pytest.fixture(scope="module")
def client():
    """One 2-worker cluster shared by the tests that do not test the embedded one."""
    from tpref.sweeps import dask_client

    with dask_client(workers=2) as c:
        yield c


def direct_rows(grid, tmp_path, seeds):
    """The cells run one after the other in this process, without Dask."""
    rows = []
    for cell in make_cells(grid, BASE, seeds):
        run_dir = tmp_path / "direct" / cell.name
        train(cell.config, run_dir, progress=False)
        rows.append(cell_row(cell, run_dir, os.path.join("cells", cell.name)))
    return rows


def test_sweep_equals_cells_run_one_by_one_and_rerun_recomputes_nothing(tmp_path):
    grid = {"lr": [0.05, 0.1], "reg": [1.0, 10.0]}
    out = tmp_path / "sweep"
    rows = sweep(grid, out, base=BASE, seeds=[0, 1], workers=2, progress=False)
    assert multiprocessing.active_children() == []      # the embedded cluster is gone
    table = read_results(out / "results.csv")
    assert len(table) == 8 and all(r["status"] == "finished" for r in table)
    assert [numbers(r) for r in table] == [numbers(r) for r in rows]
    assert list(table[0])[:3] == ["lr", "reg", "seed"]
    expected = direct_rows(grid, tmp_path, [0, 1])
    assert [numbers(r) for r in table] == [numbers(r) for r in expected]
    assert all(r["train_loss_auc"] > 0 and r["iterations_done"] == 30 for r in table)
    assert (out / "heatmap.png").exists() and (out / "curves.png").exists()

    # a rerun finds every cell done: no cluster, no file rewritten, same table
    stamps = {p: p.stat().st_mtime_ns for p in (out / "cells").rglob("*") if p.is_file()}
    before = (out / "results.csv").read_text()
    sweep(grid, out, base=BASE, seeds=[0, 1], workers=2, progress=False,
          client=_NoClient())
    assert {p: p.stat().st_mtime_ns for p in (out / "cells").rglob("*") if p.is_file()} == stamps
    assert (out / "results.csv").read_text() == before


class _NoClient:
    def submit(self, *a, **k):
        raise AssertionError("a rerun of a finished sweep submitted a cell")


def test_killed_worker_cell_is_retried_and_matches_an_uninterrupted_run(tmp_path, client):
    grid = {"lr": [0.05, 0.1]}
    marker = tmp_path / "killed-once"
    cells = make_cells(grid, BASE, [0])
    victim = cells[1].name
    rows = sweep(grid, tmp_path / "s", base=BASE, seeds=[0], client=client, progress=False,
                 plot=False, _faults={victim: dict(kind="kill", at=17, marker=str(marker))})
    killed_pid = int(marker.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(killed_pid, 0)                          # that worker process really died
    assert [r["status"] for r in rows] == ["finished", "finished"]
    expected = direct_rows(grid, tmp_path, [0])
    assert [numbers(r) for r in rows] == [numbers(r) for r in expected]


def test_embedded_workers_allocate_like_a_plain_process(client):
    """Dask's MALLOC_TRIM_THRESHOLD_ makes a worker page-fault every large array in (~20% more
    CPU per cell, docs/benchmarks.md): the embedded cluster's workers must not get it, nor may
    starting the cluster leave it in this process's environment for later children. Runs after
    the kill test, so one worker is a nanny's restart, which must keep the settings too."""
    if MALLOC_TRIM_PRESET:
        pytest.skip("MALLOC_TRIM_THRESHOLD_ is set in the test environment itself")
    import dask

    client.wait_for_workers(2, timeout=60)      # the kill test's worker restarted by its nanny
    env = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
    assert len(env) == 2 and set(env.values()) == {None}
    assert "MALLOC_TRIM_THRESHOLD_" not in os.environ
    profiling = client.run(lambda: dask.config.get("distributed.worker.profile.enabled"))
    assert set(profiling.values()) == {False}


def test_diverging_and_raising_cells_are_recorded_and_the_rest_finish(tmp_path, client):
    grid = {"lr": [0.05, 0.1, 1e3]}
    cells = make_cells(grid, BASE, [0])
    rows = sweep(grid, tmp_path / "s", base=BASE, seeds=[0], client=client, progress=False,
                 _faults={cells[1].name: dict(kind="raise", at=5)})
    status = {r["lr"]: r for r in rows}
    assert status[0.05]["status"] == "finished"
    assert status[0.1]["status"] == "error" and "injected fault" in status[0.1]["reason"]
    assert (tmp_path / "s" / status[0.1]["run_dir"] / "error.txt").exists()
    assert status[1e3]["status"] == "diverged" and status[1e3]["reason"]
    assert status[1e3]["train_loss_auc"] is None        # diverged cells get no score
    table = read_results(tmp_path / "s" / "results.csv")
    assert [r["status"] for r in table] == ["finished", "error", "diverged"]


@pytest.mark.parametrize("spec,message", [
    (["lrr=0.1"], "unknown field 'lrr'"),
    (["lr="], "'lr' has no values"),
    (["lr=0.1,,0.2"], "empty value"),
    (["lr=0.1,abc"], "'abc' is not a number"),
    (["hidden=8,1.5"], "'1.5' is not an integer"),
    (["lr=0.1", "lr=0.2"], "'lr' given twice"),
    (["lr0.1"], "expected FIELD=V1,V2"),
    (["lr=0.1,1e-1"], "repeated"),
])
def test_bad_grid_specs_name_the_problem(spec, message):
    with pytest.raises(SweepError, match=message):
        parse_grid(spec)


def test_bad_cells_and_seeds_are_refused_before_anything_runs(tmp_path):
    with pytest.raises(SweepError, match="cell lr--1_seed-0: lr must be > 0"):
        make_cells({"lr": [0.1, -1.0]}, BASE)
    with pytest.raises(SweepError, match="seed given both"):
        make_cells({"seed": [0, 1]}, BASE, seeds=[0])
    with pytest.raises(SweepError, match="--seeds"):
        parse_seeds("0,x")
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_grid(["hidden=8,16", "update=local,through_time"]) == {
        "hidden": [8, 16], "update": ["local", "through_time"]}


def test_cli_without_dask_names_the_extra(tmp_path):
    code = ("import sys; sys.modules['distributed'] = None; from tpref.cli import main; "
            "sys.exit(main(['sweep', '--grid', 'lr=0.1', '--out', sys.argv[1]]))")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                          text=True)
    assert proc.returncode == 2
    assert 'pip install -e ".[sweep]"' in proc.stderr


def test_cli_sweep_reports_a_bad_grid(capsys, tmp_path):
    from tpref.cli import main

    assert main(["sweep", "--grid", "nope=1", "--out", str(tmp_path)]) == 2
    assert "unknown field 'nope'" in capsys.readouterr().err


def test_compare_with_seeds_runs_every_seed_and_tabulates_median_and_range(tmp_path, capsys):
    from tpref.cli import main
    from tpref.train import RunConfig, read_metrics

    out = tmp_path / "cmp"
    assert main(["compare", "--task", "temporal-order", "--length", "12", "--hidden", "8",
                 "--iterations", "20", "--eval-every", "10", "--eval-size", "50",
                 "--backend", "numpy", "--seeds", "0,1", "--jobs", "2", "--out", str(out)]) == 0
    panel = out / "temporal-order-60"
    table = (panel / "table.md").read_text()
    assert "median [range]" in table and "| bp | 2 | 2 finished |" in table
    assert (panel / "compare.png").exists()
    for method in ("bp", "tp"):
        for seed in (0, 1):
            run = panel / method / f"seed-{seed}"
            cfg = RunConfig(**__import__("json").loads((run / "config.json").read_text())["run"])
            assert cfg.seed == seed and cfg.method == method
            direct = tmp_path / "direct" / f"{method}{seed}"
            train(cfg, direct, progress=False)
            strip = lambda rows: [{k: v for k, v in r.items() if k not in VOLATILE}  # noqa: E731
                                  for r in rows]
            assert strip(read_metrics(run / "metrics.jsonl")) == strip(
                read_metrics(direct / "metrics.jsonl"))


def _session_processes(sid, wait=10.0):
    """Live (not zombie) processes of session ``sid``, after waiting up to ``wait`` seconds
    for them to go."""
    import time

    deadline = time.monotonic() + wait
    while True:
        out = subprocess.run(["ps", "-e", "-o", "pid=,sid=,stat=,args="], capture_output=True,
                             text=True).stdout
        left = [line for line in out.splitlines()
                if int(line.split()[1]) == sid and not line.split()[2].startswith("Z")]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")
def test_ctrl_c_leaves_no_process_and_the_same_command_resumes(tmp_path):
    import signal
    import time

    out = tmp_path / "s"
    cmd = [sys.executable, "-m", "tpref", "sweep", "--task", "temporal-order", "--length", "12",
           "--hidden", "8", "--iterations", "2000", "--eval-every", "500", "--eval-size", "50",
           "--checkpoint-every", "100", "--backend", "numpy", "--grid", "lr=0.01,0.02",
           "--workers", "2", "--out", str(out)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
        + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    # Ctrl-C's SIGINT is ignored in processes started in the background by a shell; the
    # child gets the default disposition back so that Python turns it into KeyboardInterrupt
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not list(out.glob("cells/*/checkpoint.npz")):      # a cell is under way
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)                      # Ctrl-C reaches the whole group
    text = proc.communicate(timeout=60)[0]
    assert proc.returncode == 130, text
    assert _session_processes(proc.pid) == [], "a process outlived tpref sweep"
    assert "rerun the same command to resume" in text
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = read_results(out / "results.csv")
    assert [r["status"] for r in rows] == ["finished", "finished"]


def test_scheduler_address_submits_to_an_existing_cluster(tmp_path, client):
    rows = sweep({"lr": [0.05]}, tmp_path / "s", base=BASE, seeds=[2],
                 scheduler=client.scheduler.address, progress=False, plot=False)
    assert rows[0]["status"] == "finished" and rows[0]["seed"] == 2
    assert client.submit(abs, -1).result() == 1       # the cluster outlives the sweep's client


def test_cli_flags_reach_every_cell():
    from tpref.cli import build_parser
    from tpref.sweeps import cli_base

    args = build_parser().parse_args(
        ["sweep", "--task", "temporal-order", "--length", "12", "--hidden", "8", "--cell", "gru",
         "--dtype", "float32", "--iterations", "400", "--gamma-h", "0.05", "--grid", "lr=0.1"])
    base = cli_base(args)
    assert (base["hidden"], base["cell"], base["dtype"], base["length"]) == (8, "gru", "float32", 12)
    from tpref.train import default_eval_every

    assert base["iterations"] == 400 and base["gamma_h"] == 0.05
    assert base["eval_every"] == default_eval_every(400)      # tpref train's cadence
    cells = make_cells(parse_grid(args.grid), base)
    assert cells[0].config.cell == "gru" and cells[0].config.hidden == 8


@pytest.mark.slow
def test_throughput_benchmark_runs_and_every_variant_gives_the_serial_numbers(tmp_path):
    """scripts/bench_sweep.py exits non-zero when a variant's cells differ from the serial
    run's; on a tiny grid it must finish and print its paired ratios."""
    script = os.path.join(os.path.dirname(__file__), "..", "scripts", "bench_sweep.py")
    out = subprocess.run([sys.executable, script, "--workers", "2", "--cells", "2",
                          "--iterations", "5", "--length", "12", "--hidden", "6", "--repeats",
                          "2", "--no-cold", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "paired, each repetition's serial wall" in out.stdout
    assert "per-cell dispatch gap on a worker" in out.stdout      # the task-stream timeline
    assert out.stdout.count("x (") == 3          # warm, one worker, plain processes


def test_throughput_benchmark_timeline_splits_the_workers_time_exactly():
    """scripts/bench_sweep.py's task-stream split: busy + idle before, between, at the end and
    the client's return add up to workers x wall; gaps are per worker, in start order."""
    spec = importlib.util.spec_from_file_location(
        "bench_sweep", os.path.join(os.path.dirname(__file__), "..", "scripts", "bench_sweep.py"))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    def rec(worker, start, stop):
        return {"worker": worker, "startstops": [{"action": "transfer", "start": 0, "stop": 0},
                                                  {"action": "compute", "start": start,
                                                   "stop": stop}]}
    # worker a: cells [1, 4], [4.5, 7]; worker b: [2, 6] (listed out of order); call at 0,
    # return at 8
    records = [rec("a", 4.5, 7.0), rec("b", 2.0, 6.0), rec("a", 1.0, 4.0)]
    t = bench._timeline(records, 0.0, 8.0, 2)
    assert t["busy"] == pytest.approx(3 + 2.5 + 4)
    assert t["cells"] == 3
    assert t["start"] == pytest.approx(1 + 2)
    assert t["between"] == pytest.approx(0.5) and t["gap"] == pytest.approx(0.5)
    assert t["end"] == pytest.approx(0 + 1)                 # b idles from 6 until a's 7
    assert t["return"] == pytest.approx(2 * 1)
    assert (t["busy"] + t["start"] + t["between"] + t["end"] + t["return"]
            == pytest.approx(2 * t["wall"]))
