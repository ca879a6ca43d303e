"""The sweep's execution on Dask: a cell trained on a worker (:func:`run_cell`), the
embedded LocalCluster or a remote scheduler (:func:`dask_client`), the client's loop over the
cells with its progress line (:func:`run_cells`), and :func:`sweep`, which runs a whole grid."""

import contextlib
import copy
import dataclasses
import json
import os
import queue
import sys
import time
import traceback
import warnings

from ..run_io import check_output_dir
from ..train import RunConfig, train
from .grid import SweepError, check_grid, make_cells, parse_grid
from .results import DONE_STATUSES, cell_is_done, cell_row, saved_config_matches, write_results

#: Times a cell may lose its worker before it is recorded as an error
#: (dask's distributed.scheduler.allowed-failures; embedded cluster only).
ALLOWED_WORKER_DEATHS = 3
#: Environment of the embedded cluster's worker processes: one BLAS / OpenMP thread each.
WORKER_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "NUMBA_NUM_THREADS": "1"}

#: Dask settings of the embedded cluster, each measured by scripts/bench_sweep.py (numbers in
#: docs/benchmarks.md). Dask starts worker processes with MALLOC_TRIM_THRESHOLD_=65536, which
#: also turns off glibc's adaptive mmap threshold: every array over 128 KiB (a T x B x p float64
#: block) is then mapped fresh and page-faulted in, ~95 000 page faults and ~20% more CPU per
#: 300-iteration cell than in a plain process; unset (None), a worker allocates as a plain
#: Python process does. The others slow the periodic work of an idle cluster (event-loop tick
#: checks every 20 ms in each nanny, the scheduler and the client, memory checks every 100 ms,
#: the workers' statistical profiler sampling every 10 ms, system monitors, work stealing,
#: useless when a worker holds one cell at a time) from ~10% of a core to ~1%: on 2 cores that
#: time is taken from the cells. None of it is used without a dashboard.
WORKER_DASK_CONFIG = {
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.worker.profile.enabled": False,
    "distributed.scheduler.work-stealing": False,
}

DASK_MISSING = ("tpref sweep needs Dask (dask.distributed), an optional extra: "
                "pip install -e \".[sweep]\"  (or pip install \"tpref[sweep]\")")



def require_dask():
    """Import ``distributed`` or raise ImportError saying which extra installs it."""
    try:
        import distributed
    except ImportError as err:
        raise ImportError(DASK_MISSING) from err
    return distributed



# ----------------------------------------------------------------------------------------------
# the worker's side


def _inject_fault(fault, config, run_dir):
    """Test hook: once (guarded by a marker file), train up to iteration ``fault['at']``, then
    SIGKILL this worker process (``kind='kill'``) or raise (``kind='raise'``)."""
    marker = fault.get("marker")
    if marker is not None:
        if os.path.exists(marker):
            return
        with open(marker, "w") as f:
            f.write(f"{os.getpid()}\n")
    if fault.get("at"):
        train(config, run_dir, progress=False, stop_after=fault["at"])
    if fault["kind"] == "kill":
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
    raise RuntimeError(f"injected fault at iteration {fault.get('at')}")


def run_cell(cell, run_dir, rel_dir, fault=None):
    """Train one cell in this process (a Dask worker); return its results.csv row.

    Exceptions are recorded, not raised: status "error", the reason, and the traceback in
    ``run_dir/error.txt``. BLAS runs on one thread.
    """
    from threadpoolctl import threadpool_limits

    os.makedirs(run_dir, exist_ok=True)
    error_file = os.path.join(run_dir, "error.txt")
    with threadpool_limits(1):
        try:
            if fault:
                _inject_fault(fault, cell.config, run_dir)
            train(cell.config, run_dir, progress=False)
        except Exception as err:             # a failing cell must not stop the sweep
            with open(error_file, "w") as f:
                f.write(traceback.format_exc())
            return cell_row(cell, run_dir, rel_dir, status="error",
                            reason=f"{type(err).__name__}: {err}")
    if os.path.exists(error_file):
        os.remove(error_file)
    return cell_row(cell, run_dir, rel_dir)


# ----------------------------------------------------------------------------------------------
# the client's side


def default_workers():
    """Worker processes of the embedded cluster: the CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@contextlib.contextmanager
def dask_client(workers=None, scheduler=None):
    """A ``distributed.Client``: on an embedded LocalCluster, or on ``scheduler``'s cluster.

    The embedded cluster has ``workers`` processes (default: the CPU count) of one thread, no
    dashboard, BLAS pinned to one thread; it and the client are closed on exit, whatever
    happens (Ctrl-C included), so that no worker process outlives the sweep.
    """
    distributed = require_dask()
    import dask
    import logging

    cluster = client = None
    try:
        if scheduler:
            client = distributed.Client(scheduler, timeout="20s")
        else:
            n = workers or default_workers()
            if n < 1:
                raise SweepError(f"--workers must be >= 1, got {n}")
            # a worker takes a cell only when it is free (saturation 1), so a long cell never
            # waits behind another on a busy worker while another worker idles
            with warnings.catch_warnings(), dask.config.set({
                    "distributed.scheduler.allowed-failures": ALLOWED_WORKER_DEATHS,
                    "distributed.scheduler.worker-saturation": 1.0,
                    **WORKER_DASK_CONFIG}):
                # the scheduler's HTTP endpoint (/health) falls back to a free port when 8787
                # is taken (another cluster on this machine); that is not worth a warning
                warnings.filterwarnings("ignore", message="Port .* is already in use")
                # a nanny hands its worker a shallow copy of the global config, whose nested
                # settings revert when this block exits: a worker it restarts after a crash
                # would lose them. A deep copy taken here keeps them for every restart.
                cluster = distributed.LocalCluster(
                    n_workers=n, threads_per_worker=1, processes=True, scheduler_port=0,
                    dashboard_address=None, worker_dashboard_address=None, env=dict(WORKER_ENV),
                    silence_logs=logging.ERROR, config=copy.deepcopy(dask.config.config))
                client = distributed.Client(cluster)
        yield client
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()


class SweepProgress:
    """Cells done / running / failed of the total and an ETA, on one line (tty) or one line
    per finished cell."""

    def __init__(self, total, skipped, stream=None, enabled=True):
        self.total, self.skipped = total, skipped
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.t0 = time.monotonic()
        self.done = self.failed = self.running = 0
        self.last = None

    def line(self):
        finished_now = self.done + self.failed
        left = self.total - self.skipped - finished_now
        elapsed = time.monotonic() - self.t0
        eta = f"{elapsed / finished_now * left:.0f}s" if finished_now else "?"
        return (f"sweep: {self.skipped + self.done}/{self.total} done "
                f"({self.skipped} from earlier runs), {self.running} running, {self.failed} "
                f"failed; {elapsed:.0f}s, eta {eta}")

    def show(self, message=None):
        if not self.enabled:
            return
        if message:
            self.stream.write(("\r\x1b[K" if self.tty else "") + message + "\n")
        line = self.line()
        counts = (self.done, self.failed, self.running)
        if self.tty:
            self.stream.write("\r" + line + "\x1b[K")
        elif message or counts != self.last:       # a log file: a line when a count changes
            self.stream.write(line + "\n")
        self.last = counts
        self.stream.flush()

    def close(self):
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def run_cells(cells, out, *, workers=None, scheduler=None, progress=True, stream=None,
              faults=None, client=None, subdir="cells"):
    """Run ``cells`` into ``out/<subdir>/<name>`` on Dask; return their rows (cells' order).

    Cells already done (:func:`cell_is_done`) are read back, not run. ``faults`` maps a cell
    name to a fault (:func:`_inject_fault`, tests only). ``client`` reuses a Dask client.
    """
    check_output_dir(out)
    rows, todo = {}, []
    for cell in cells:
        rel = os.path.join(subdir, cell.name)
        run_dir = os.path.join(out, rel)
        if saved_config_matches(run_dir, cell.config) is False:
            with open(os.path.join(run_dir, "config.json")) as f:
                saved = json.load(f)["run"]
            other = {k: v for k, v in dataclasses.asdict(cell.config).items()
                     if k != "iterations" and saved.get(k) != v}
            if other:
                raise SweepError(f"{run_dir} holds a run of another configuration (fields "
                                 f"{', '.join(sorted(other))} differ); use another --out")
        if cell_is_done(cell, run_dir):
            rows[cell.name] = cell_row(cell, run_dir, rel)
        else:
            todo.append((cell, run_dir, rel))
    prog = SweepProgress(len(cells), len(rows), stream, progress)
    if todo:
        _check_tasks([c for c, _, _ in todo])
        with contextlib.ExitStack() as stack:
            if client is None:
                client = stack.enter_context(dask_client(workers, scheduler))
            rows.update(_run_on(client, todo, prog, faults or {}))
        prog.running = 0
    prog.show()
    prog.close()
    return [rows[c.name] for c in cells]


def _check_tasks(cells):
    """Build each distinct task once here, so that missing data stops the sweep before it runs."""
    seen = set()
    for c in cells:
        key = (c.config.task, c.config.data_dir, c.config.length, c.config.pixels_per_step,
               c.config.markers, c.config.criterion, c.config.permutation_seed)
        if key not in seen:
            seen.add(key)
            try:
                c.config.make_task()
            except ValueError as err:
                raise SweepError(f"cell {c.name}: {err}") from None


def _run_on(client, todo, prog, faults):
    futures = {}
    for cell, run_dir, rel in todo:
        fut = client.submit(run_cell, cell, os.path.abspath(run_dir), rel, faults.get(cell.name),
                            key=f"tpref-cell-{cell.name.replace('/', '-')}-{os.urandom(4).hex()}",
                            pure=False)
        futures[fut] = (cell, run_dir, rel)
    rows = {}
    pending = set(futures)
    # each finished future lands in this queue (Dask calls the callback in its own thread):
    # the loop wakes as soon as a cell finishes, at O(1) cost per cell, or after a second to
    # refresh the running count
    finished = queue.Queue()
    for fut in futures:
        fut.add_done_callback(finished.put)
    last_poll = time.monotonic()
    try:
        while pending:
            try:
                fut = finished.get(timeout=max(0.0, last_poll + 1.0 - time.monotonic()))
            except queue.Empty:
                fut = None
            if fut is not None:
                pending.discard(fut)
                cell, run_dir, rel = futures[fut]
                if fut.status == "error":
                    err = fut.exception()
                    row = cell_row(cell, run_dir, rel, status="error",
                                   reason=f"{type(err).__name__}: {err}")
                else:
                    row = fut.result()
                rows[cell.name] = row
                ok = row["status"] in DONE_STATUSES
                prog.done += ok
                prog.failed += not ok
                prog.running = max(0, prog.running - 1)       # until the next poll says
                msg = f"  {cell.name}: {row['status']}"
                if row["reason"]:
                    msg += f" ({row['reason']})"
                prog.show(msg)
            now = time.monotonic()
            if pending and now - last_poll >= 1.0:
                keys = {f.key for f in pending}
                try:
                    nthreads = client.nthreads()
                    prog.running = sum(min(nthreads.get(w, 1), sum(k in keys for k in ks))
                                       for w, ks in client.processing().items())
                except Exception:            # progress only; never stop the sweep for it
                    prog.running = 0
                prog.show()
                last_poll = now
    finally:
        for fut in futures:
            if not fut.done():
                fut.cancel()
    return rows


def sweep(grid, out, *, base=None, seeds=None, workers=None, scheduler=None, progress=True,
          plot=True, score="final_test_accuracy", stream=None, client=None, _faults=None):
    """Run a grid of training runs; write ``out/results.csv`` (and plots); return its rows.

    Parameters
    ----------
    grid : dict or list of str
        RunConfig field -> values, or ``"FIELD=V1,V2"`` strings as on the command line.
    out : path
        The sweep's directory; rerunning into it resumes and recomputes nothing that finished.
    base : RunConfig or dict, optional
        The fields every cell shares (RunConfig defaults otherwise).
    seeds : list of int, optional
        One cell per seed for every grid point.
    workers : int, optional
        Processes of the embedded LocalCluster (default: the CPU count).
    scheduler : str, optional
        Address of an existing Dask scheduler (``tcp://host:8786``) instead.
    plot : bool
        Draw the heatmap (two or more grid fields) and the curves with seed bands.
    score : str
        The results column the heatmap shows.
    client : distributed.Client, optional
        An existing client to submit to (not closed here).

    Returns
    -------
    list of dict
        One row per cell, as in results.csv.
    """
    grid = parse_grid(grid) if isinstance(grid, (list, tuple)) else check_grid(grid)
    fields = [f for f in grid if f != "seed"]
    cells = make_cells(grid, base, seeds)
    check_output_dir(out)
    base_fields = dataclasses.asdict(base) if isinstance(base, RunConfig) else dict(base or {})
    with open(os.path.join(out, "sweep.json"), "w") as f:
        json.dump({"base": base_fields, "grid": {k: v for k, v in grid.items()},
                   "seeds": seeds, "cells": len(cells)}, f, indent=2)
    rows = run_cells(cells, out, workers=workers, scheduler=scheduler, progress=progress,
                     stream=stream, faults=_faults, client=client)
    write_results(os.path.join(out, "results.csv"), rows, fields + ["seed"])
    if plot:
        from ..plotting import plot_sweep

        plot_sweep(out, rows, fields, score=score)
    return rows
