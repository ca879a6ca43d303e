"""Signals and concurrent writers: no process outlives its command, one writer per run
directory, Ctrl-C ends with a short message (issue 14). POSIX only (signals, fork)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tpref.processes import RunLock, RunLockedError
from tpref.train import RunConfig, train

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:                                    # a zombie (exited, not reaped) counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def small_config(**kw):
    fields = dict(task="temporal-order", method="bp", length=10, hidden=4, batch_size=4,
                  iterations=20, lr=0.01, backend="numpy", eval_every=10, eval_size=20)
    fields.update(kw)
    return RunConfig(**fields)


def test_a_second_writer_is_refused_naming_the_first(tmp_path):
    with RunLock(str(tmp_path)):
        with pytest.raises(RunLockedError, match=f"another tpref process \\(pid {os.getpid()}\\)"):
            train(small_config(), str(tmp_path), progress=False)
    assert train(small_config(), str(tmp_path), progress=False)["status"] == "finished"


def test_a_killed_writer_leaves_no_stale_lock(tmp_path):
    code = ("import sys, time; from tpref.processes import RunLock; "
            f"RunLock({str(tmp_path)!r}).acquire(); print('locked', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": ROOT})
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=f"pid {holder.pid}"):
            RunLock(str(tmp_path)).acquire()
    finally:
        holder.kill()
        holder.wait()
    RunLock(str(tmp_path)).acquire().release()          # the kernel freed it: not stale


# ----------------------------------------------------------------------------------------------
# tpref compare under signals


def start_compare(out):
    argv = [sys.executable, "-m", "tpref", "compare", "--task", "temporal-order", "--length", "10",
            "--hidden", "4", "--iterations", "1000000", "--eval-every", "20", "--eval-size", "20",
            "--checkpoint-every", "100", "--backend", "numpy", "--jobs", "2", "--out", str(out)]
    # a shell's background job (and so a CI runner's) may start with SIGINT ignored, which the
    # child would inherit: give it the default disposition, as a terminal's command has
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": ROOT},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    runs = [out / "temporal-order-60" / m for m in ("bp", "tp")]

    def workers_training():
        if proc.poll() is not None:
            return True
        try:
            return all(len(open(r / "metrics.jsonl").readlines()) >= 2 for r in runs)
        except OSError:
            return False
    try:
        wait_for(workers_training, 120, "both workers to log metrics")
    except AssertionError:
        proc.kill()
        raise AssertionError(proc.communicate()[1])
    if proc.poll() is not None:
        raise AssertionError(f"compare ended early: {proc.communicate()[1]}")
    pids = [int(open(r / ".tpref-lock").read()) for r in runs]
    assert proc.pid not in pids and all(alive(p) for p in pids)
    return proc, runs, pids


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_to_compare_stops_every_worker_with_a_short_message(tmp_path, sig):
    proc, runs, pids = start_compare(tmp_path)
    proc.send_signal(sig)                       # to the parent only, not its process group
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert "interrupted" in err and "rerun the same command to resume" in err
    wait_for(lambda: not any(alive(p) for p in pids), 10, "the workers to exit")
    for r in runs:
        # (seen missing twice in ~200 runs, under load, not reproduced since: say what was
        # there and what the command printed)
        assert (r / "summary.json").exists(), (
            f"{r.name}: no summary.json after the workers {pids} exited; the run directory "
            f"holds {sorted(os.listdir(r))}; tpref compare printed:\n{err[-3000:]}")
        summary = json.load(open(r / "summary.json"))
        assert summary["status"] == "interrupted"
        # --checkpoint-every 100: a run stopped after its 100th step but before that step's
        # checkpoint was written (e.g. during the evaluation at 100) has none yet
        assert os.path.exists(r / "checkpoint.npz") or summary["iterations_done"] <= 100


def test_sigkill_to_compare_stops_every_worker(tmp_path):
    proc, runs, pids = start_compare(tmp_path)
    proc.kill()
    proc.communicate(timeout=60)
    wait_for(lambda: not any(alive(p) for p in pids), 15, "the orphaned workers to exit")
    sizes = [os.path.getsize(r / "metrics.jsonl") for r in runs]
    time.sleep(1.0)
    assert sizes == [os.path.getsize(r / "metrics.jsonl") for r in runs]   # no writer left
    for r in runs:                                    # and the lock is free for a rerun
        RunLock(str(r)).acquire().release()


def test_compare_into_a_run_being_written_is_refused(tmp_path):
    run = tmp_path / "temporal-order-60" / "tp"
    run.mkdir(parents=True)
    argv = [sys.executable, "-m", "tpref", "compare", "--task", "temporal-order", "--length", "10",
            "--hidden", "4", "--iterations", "40", "--eval-every", "20", "--eval-size", "20",
            "--backend", "numpy", "--jobs", "2", "--out", str(tmp_path)]
    with RunLock(str(run)):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": ROOT})
    assert done.returncode == 2, done.stderr
    assert f"{run} is being written by another tpref process (pid {os.getpid()})" in done.stderr
    assert "Traceback" not in done.stderr
