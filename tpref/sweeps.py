"""Sweeps: grids of independent training runs on Dask, one machine to a cluster.

A sweep is a base :class:`~tpref.train.RunConfig`, a grid (RunConfig field -> values) and a
list of seeds. Every combination is a *cell*: a normal training run (:func:`tpref.train.train`)
in its own directory, so it writes config.json, metrics.jsonl, checkpoint.npz and
summary.json, and resumes from its checkpoint when interrupted::

    DIR/sweep.json                 the sweep: base config, grid, seeds
    DIR/cells/<name>/              one run per cell, e.g. cells/lr-0.01_reg-1_seed-0/
    DIR/results.csv                one row per cell (see RESULT_COLUMNS)
    DIR/heatmap*.png, curves.png   plots (tpref.plotting)

Cells run on ``dask.distributed`` (the optional extra ``pip install -e ".[sweep]"``): an
embedded ``LocalCluster`` by default (worker processes with one thread each, BLAS pinned to
one thread), or an existing cluster given by its scheduler address. A worker that dies
mid-cell gets the cell retried on another worker by the scheduler (it resumes from the cell's
checkpoint: same numbers as an uninterrupted run); a cell that diverges or raises is recorded
with its status and reason and the other cells go on. A cell already finished (or diverged)
with the same configuration is not run again: rerunning a sweep recomputes nothing that
finished, and its results.csv is the same.

Python::

    rows = tpref.sweep({"lr": [1e-3, 1e-2], "reg": [0.0, 1.0]}, "runs/s",
                       base=dict(task="temporal-order", length=12, iterations=200), seeds=[0, 1])
"""

import contextlib
import csv
import dataclasses
import itertools
import json
import math
import os
import signal
import sys
import threading
import time
import traceback
import typing
import warnings

from .run_io import check_output_dir, read_metrics
from .train import RunConfig, train

#: Columns of results.csv after the grid's fields and the seed.
RESULT_COLUMNS = ("status", "reason", "iterations_done", "final_test_accuracy",
                  "best_test_accuracy", "first_iteration_at_100", "final_test_loss",
                  "final_train_loss", "train_loss_auc", "wall_seconds", "run_dir")
#: Cell statuses: training ended normally, stopped on divergence, raised, or was interrupted
#: (Ctrl-C / SIGTERM; resumed by the next run of the sweep).
STATUSES = ("finished", "diverged", "error", "interrupted")
#: Statuses a rerun of the sweep keeps (the others are run again).
DONE_STATUSES = ("finished", "diverged")
#: Times a cell may lose its worker before it is recorded as an error
#: (dask's distributed.scheduler.allowed-failures; embedded cluster only).
ALLOWED_WORKER_DEATHS = 3
#: Environment of the embedded cluster's worker processes: one BLAS / OpenMP thread each.
WORKER_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "NUMBA_NUM_THREADS": "1"}

DASK_MISSING = ("tpref sweep needs Dask (dask.distributed), an optional extra: "
                "pip install -e \".[sweep]\"  (or pip install \"tpref[sweep]\")")


class SweepError(ValueError):
    """A bad sweep specification (grid, seeds, a cell's configuration, the output directory)."""


def require_dask():
    """Import ``distributed`` or raise ImportError saying which extra installs it."""
    try:
        import distributed
    except ImportError as err:
        raise ImportError(DASK_MISSING) from err
    return distributed


# ----------------------------------------------------------------------------------------------
# grid specification


def _field_types():
    """RunConfig field -> (python type, whether None is allowed)."""
    hints = typing.get_type_hints(RunConfig)
    out = {}
    for f in dataclasses.fields(RunConfig):
        t = hints[f.name]
        args = typing.get_args(t)
        optional = type(None) in args
        if optional:
            t = next(a for a in args if a is not type(None))
        out[f.name] = (t, optional)
    return out


def _parse_value(field, text, kind, optional):
    s = text.strip()
    if optional and s.lower() == "none":
        return None
    if kind is bool:
        if s.lower() in ("true", "1", "yes"):
            return True
        if s.lower() in ("false", "0", "no"):
            return False
        raise SweepError(f"--grid {field}: {text!r} is not a boolean (true/false)")
    if kind is int:
        try:
            return int(s)
        except ValueError:
            raise SweepError(f"--grid {field}: {text!r} is not an integer") from None
    if kind is float:
        try:
            v = float(s)
        except ValueError:
            raise SweepError(f"--grid {field}: {text!r} is not a number") from None
        if not math.isfinite(v):
            raise SweepError(f"--grid {field}: {text!r} is not a finite number")
        return v
    if not s:
        raise SweepError(f"--grid {field}: empty value")
    return s


def parse_grid(specs):
    """Grid from ``FIELD=V1,V2,...`` strings (the ``--grid`` flags) -> {field: [values]}.

    Values are converted to the RunConfig field's type. Raises :class:`SweepError` naming
    the spec for a missing ``=``, an unknown or repeated field, no values, an empty value, a
    value that does not parse or a repeated value.
    """
    types = _field_types()
    grid = {}
    for spec in specs:
        field, eq, values = str(spec).partition("=")
        field = field.strip().replace("-", "_")
        if not eq or not field:
            raise SweepError(f"--grid {spec!r}: expected FIELD=V1,V2,... (e.g. lr=1e-3,1e-2)")
        if field not in types:
            raise SweepError(f"--grid {spec!r}: unknown field {field!r}; fields: "
                             f"{', '.join(sorted(types))}")
        if field in grid:
            raise SweepError(f"--grid {spec!r}: field {field!r} given twice")
        texts = values.split(",")
        if not values.strip():
            raise SweepError(f"--grid {spec!r}: field {field!r} has no values")
        if any(not t.strip() for t in texts):
            raise SweepError(f"--grid {spec!r}: empty value in the list for {field!r}")
        kind, optional = types[field]
        grid[field] = [_parse_value(field, t, kind, optional) for t in texts]
    return check_grid(grid)


def check_grid(grid):
    """Validate a grid given as a dict {field: values} (the Python API); return a copy."""
    types = _field_types()
    out = {}
    for field, values in dict(grid).items():
        if field not in types:
            raise SweepError(f"grid: unknown field {field!r}; fields: {', '.join(sorted(types))}")
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            values = [values]
        values = list(values)
        if not values:
            raise SweepError(f"grid: field {field!r} has no values")
        kind, optional = types[field]
        converted = []
        for v in values:
            if isinstance(v, str) and kind is not str:
                v = _parse_value(field, v, kind, optional)
            elif isinstance(v, (int, float)) and kind is float and not isinstance(v, bool):
                v = float(v)
            converted.append(v)
        seen = set()
        for v in converted:
            if v in seen:
                raise SweepError(f"grid: value {v!r} of {field!r} repeated")
            seen.add(v)
        out[field] = converted
    return out


def parse_seeds(text):
    """``"0,1,2"`` or ``"0-4"`` -> [0, 1, 2] / [0, 1, 2, 3, 4], or a SweepError."""
    text = str(text).strip()
    try:
        if "-" in text and "," not in text:
            lo, hi = (int(p) for p in text.split("-"))
            seeds = list(range(lo, hi + 1))
        else:
            seeds = [int(p) for p in text.split(",")]
    except ValueError:
        raise SweepError(f"--seeds {text!r}: expected integers like 0,1,2 or a range 0-4") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise SweepError(f"--seeds {text!r}: expected distinct non-negative integers")
    return seeds


# ----------------------------------------------------------------------------------------------
# cells


def _fmt(v):
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


@dataclasses.dataclass(frozen=True)
class Cell:
    """One run of a sweep: its grid values (seed last), configuration and directory name."""

    values: tuple              # ((field, value), ...) in grid order, ("seed", s) last
    config: RunConfig
    name: str


def make_cells(grid, base=None, seeds=None):
    """The cells of ``grid`` (field -> values) on ``base`` (RunConfig or dict of fields).

    ``seeds`` (a list) adds a seed axis; a grid may instead hold ``seed`` itself, not both.
    Every cell's configuration is validated here; errors name the cell.
    """
    grid = check_grid(grid)
    base = dataclasses.asdict(base) if isinstance(base, RunConfig) else dict(base or {})
    if seeds is not None:
        if "seed" in grid:
            raise SweepError("seed given both in the grid and as seeds; use one")
        grid["seed"] = list(seeds)
    elif "seed" not in grid:
        grid["seed"] = [base.get("seed", 0)]
    else:
        grid["seed"] = grid.pop("seed")             # seed last
    fields = list(grid)
    cells = []
    for combo in itertools.product(*(grid[f] for f in fields)):
        values = tuple(zip(fields, combo))
        name = "_".join(f"{f}-{_fmt(v)}" for f, v in values).replace("/", "-").replace(" ", "")
        try:
            config = RunConfig(**{**base, **dict(values)})
            config.validate()
        except (TypeError, ValueError) as err:
            raise SweepError(f"cell {name}: {err}") from None
        cells.append(Cell(values, config, name))
    if len({c.name for c in cells}) != len(cells):
        raise SweepError("two cells would share a directory name (values that print alike)")
    return cells


# ----------------------------------------------------------------------------------------------
# what a cell's directory says


def train_loss_area(rows):
    """Area under the per-iteration training-loss curve divided by the iterations (= the mean
    training loss over the run), from the window means of metrics.jsonl; None if any is missing.
    """
    area, last = 0.0, 0
    for r in rows[1:]:
        if r.get("train_loss") is None or not math.isfinite(r["train_loss"]):
            return None
        area += (r["iteration"] - last) * r["train_loss"]
        last = r["iteration"]
    return area / last if last else None


def cell_row(cell, run_dir, rel_dir, status=None, reason=None):
    """The results.csv row of ``cell`` read from its directory (``status`` overrides)."""
    summary = {}
    path = os.path.join(run_dir, "summary.json")
    if os.path.exists(path):
        with open(path) as f:
            summary = json.load(f)
    rows = read_metrics(os.path.join(run_dir, "metrics.jsonl"))
    status = status or summary.get("status", "error")
    train_losses = [r["train_loss"] for r in rows if r.get("train_loss") is not None]
    row = dict(cell.values)
    row.update(
        status=status, reason=reason if reason is not None else summary.get("reason"),
        iterations_done=summary.get("iterations_done"),
        final_test_accuracy=summary.get("final_test_accuracy"),
        best_test_accuracy=summary.get("best_test_accuracy"),
        first_iteration_at_100=summary.get("first_iteration_at_100"),
        final_test_loss=summary.get("final_test_loss"),
        final_train_loss=train_losses[-1] if train_losses else None,
        train_loss_auc=train_loss_area(rows) if status == "finished" else None,
        wall_seconds=summary.get("wall_seconds"), run_dir=rel_dir)
    return row


def _same_config(run_dir, config):
    path = os.path.join(run_dir, "config.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        saved = json.load(f)["run"]
    return saved == dataclasses.asdict(config)


def cell_is_done(cell, run_dir):
    """True when ``run_dir`` holds this cell's run, finished or diverged."""
    path = os.path.join(run_dir, "summary.json")
    if not os.path.exists(path) or not _same_config(run_dir, cell.config):
        return False
    with open(path) as f:
        s = json.load(f)
    if s.get("status") == "finished":
        return s.get("iterations_done") == cell.config.iterations
    return s.get("status") == "diverged"


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
                    "distributed.scheduler.worker-saturation": 1.0}):
                # the scheduler's HTTP endpoint (/health) falls back to a free port when 8787
                # is taken (another cluster on this machine); that is not worth a warning
                warnings.filterwarnings("ignore", message="Port .* is already in use")
                cluster = distributed.LocalCluster(
                    n_workers=n, threads_per_worker=1, processes=True, scheduler_port=0,
                    dashboard_address=None, worker_dashboard_address=None, env=dict(WORKER_ENV),
                    silence_logs=logging.ERROR)
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
        if _same_config(run_dir, cell.config) is False:
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
    distributed = require_dask()
    futures = {}
    for cell, run_dir, rel in todo:
        fut = client.submit(run_cell, cell, os.path.abspath(run_dir), rel, faults.get(cell.name),
                            key=f"tpref-cell-{cell.name.replace('/', '-')}-{os.urandom(4).hex()}",
                            pure=False)
        futures[fut] = cell
    rows = {}
    ac = distributed.as_completed(list(futures))
    last_poll = 0.0
    try:
        while not ac.is_empty() or ac.has_ready():
            if ac.has_ready():
                for fut in ac.next_batch(block=False):
                    cell = futures[fut]
                    if fut.status == "error":
                        err = fut.exception()
                        _, run_dir, rel = next(t for t in todo if t[0] is cell)
                        row = cell_row(cell, run_dir, rel, status="error",
                                       reason=f"{type(err).__name__}: {err}")
                    else:
                        row = fut.result()
                    rows[cell.name] = row
                    ok = row["status"] in DONE_STATUSES
                    prog.done += ok
                    prog.failed += not ok
                    msg = f"  {cell.name}: {row['status']}"
                    if row["reason"]:
                        msg += f" ({row['reason']})"
                    prog.show(msg)
                continue
            now = time.monotonic()
            if now - last_poll > 1.0:
                keys = {f.key for f in futures if not f.done()}
                try:
                    nthreads = client.nthreads()
                    prog.running = sum(min(nthreads.get(w, 1), sum(k in keys for k in ks))
                                       for w, ks in client.processing().items())
                except Exception:            # progress only; never stop the sweep for it
                    prog.running = 0
                prog.show()
                last_poll = now
            time.sleep(0.05)
    finally:
        for fut in futures:
            if not fut.done():
                fut.cancel()
    return rows


# ----------------------------------------------------------------------------------------------
# results


def write_results(path, rows, fields):
    """Write results.csv: the grid ``fields`` (seed last), then RESULT_COLUMNS."""
    columns = list(fields) + [c for c in RESULT_COLUMNS if c not in fields]
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else
                            repr(r[k]) if isinstance(r[k], float) else r[k]) for k in columns})
    os.replace(tmp, path)
    return path


def read_results(path):
    """The rows of a results.csv, numbers parsed (empty fields -> None)."""
    types = _field_types()
    numeric = {"iterations_done": int, "final_test_accuracy": float, "best_test_accuracy": float,
               "first_iteration_at_100": int, "final_test_loss": float, "final_train_loss": float,
               "train_loss_auc": float, "wall_seconds": float}
    out = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            row = {}
            for k, v in r.items():
                if v == "":
                    row[k] = None
                elif k in numeric:
                    row[k] = numeric[k](v)
                elif k in types and types[k][0] in (int, float):
                    row[k] = types[k][0](v)
                elif k in types and types[k][0] is bool:
                    row[k] = v == "True"
                else:
                    row[k] = v
            out.append(row)
    return out


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
        from .plotting import plot_sweep

        plot_sweep(out, rows, fields, score=score)
    return rows


# ----------------------------------------------------------------------------------------------
# command line


def register(subparsers, add_common, common_fields):
    """Add ``tpref sweep`` to the CLI's subparsers: ``add_common(parser)`` adds the flags shared
    by the training commands, ``common_fields(args)`` turns them into RunConfig fields."""
    from .config import METHODS

    sp = subparsers.add_parser(
        "sweep", help="a grid of training runs on Dask (embedded cluster or --scheduler)",
        description="Train every combination of --grid values (and --seeds) as its own run; "
                    "write OUT/results.csv and plots. Needs the [sweep] extra (Dask).")
    add_common(sp)
    sp.add_argument("--method", default="tp", choices=METHODS)
    sp.add_argument("--batch-size", type=int, default=None, help="default: the task's preset")
    sp.add_argument("--lr", type=float, default=None, help="gamma_theta (default: preset)")
    sp.add_argument("--momentum", type=float, default=None)
    sp.add_argument("--nesterov", action="store_true")
    sp.add_argument("--gamma-h", type=float, default=None)
    sp.add_argument("--reg", type=float, default=None)
    sp.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2,...",
                    help="a RunConfig field and its values (repeatable), e.g. --grid lr=1e-3,1e-2")
    sp.add_argument("--seeds", default=None, help="seeds, e.g. 0,1,2 or 0-4 (default: --seed)")
    sp.add_argument("--workers", type=int, default=None,
                    help="worker processes of the embedded cluster (default: CPU count)")
    sp.add_argument("--scheduler", default=None, metavar="ADDRESS",
                    help="submit to an existing Dask scheduler (tcp://host:8786) instead")
    sp.add_argument("--score", default="final_test_accuracy",
                    choices=("final_test_accuracy", "best_test_accuracy", "final_train_loss",
                             "train_loss_auc"), help="what the heatmap shows")
    sp.set_defaults(func=_cli_sweep, common_fields=common_fields)


def base_from_preset(task, method, **overrides):
    """A cell's base fields: the task's preset for ``method`` with ``overrides`` (None ignored)."""
    from .experiments import panel_configs, preset_name

    panel = preset_name(task, overrides.get("length"))
    fields = {k: v for k, v in overrides.items() if v is not None}
    cfg = panel_configs(panel, (method,), **{k: v for k, v in fields.items()
                                             if k not in ("lr", "gamma_h", "reg")})[0]
    base = dataclasses.asdict(cfg)
    base.update(fields)
    base["task"] = task
    return base


def cli_base(args):
    """The fields every cell of ``tpref sweep`` shares: the task's preset for --method, then
    the flags given (evaluation cadence as ``tpref train``'s when --eval-every is not)."""
    from .train import default_eval_every

    base = base_from_preset(
        args.task, args.method, **args.common_fields(args), iterations=args.iterations,
        batch_size=args.batch_size, lr=args.lr, momentum=args.momentum,
        nesterov=args.nesterov or None, gamma_h=args.gamma_h, reg=args.reg)
    if args.eval_every is None:
        base["eval_every"] = default_eval_every(base["iterations"])
    return base


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _sigterm_as_interrupt():
    """SIGTERM stops the sweep like Ctrl-C (cluster closed, cells keep their checkpoints);
    returns the previous handler (None off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_interrupt)


def _cli_sweep(args):
    try:
        require_dask()
    except ImportError as err:
        print(f"tpref sweep: error: {err}", file=sys.stderr)
        return 2
    if not args.grid:
        raise SweepError("give at least one --grid FIELD=V1,V2,...")
    if getattr(args, "restart", False):
        raise SweepError("--restart: a sweep resumes its cells; to start afresh, use a new --out")
    grid = parse_grid(args.grid)
    seeds = parse_seeds(args.seeds) if args.seeds is not None else None
    base = cli_base(args)
    n = len(make_cells(grid, base, seeds))
    where = args.scheduler or f"{args.workers or default_workers()} local worker processes"
    print(f"tpref sweep: {n} cells ({' x '.join(f'{k} {len(v)}' for k, v in grid.items())}"
          f"{f' x seeds {len(seeds)}' if seeds else ''}) on {where}; results in {args.out}",
          flush=True)
    previous = _sigterm_as_interrupt()
    try:
        rows = sweep(grid, args.out, base=base, seeds=seeds, workers=args.workers,
                     scheduler=args.scheduler, score=args.score)
    except KeyboardInterrupt:
        print(f"\ntpref sweep: interrupted; rerun the same command to resume (finished cells "
              f"are kept in {args.out}/cells)", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    counts = {s: sum(r["status"] == s for r in rows) for s in STATUSES}
    print("tpref sweep: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v)
          + f"; table {os.path.join(args.out, 'results.csv')}")
    return 0 if counts["interrupted"] == 0 else 130
