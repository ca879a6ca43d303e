"""What a sweep's directories say: a cell's row read from its run directory (summary.json,
metrics.jsonl), whether a cell is done, and the results.csv table written and read back."""

import csv
import dataclasses
import json
import math
import os

from ..run_io import read_metrics
from .grid import run_config_field_types

#: Columns of results.csv after the grid's fields and the seed.
RESULT_COLUMNS = ("status", "reason", "iterations_done", "final_test_accuracy",
                  "best_test_accuracy", "first_iteration_at_100", "final_test_loss",
                  "final_train_loss", "train_loss_auc", "wall_seconds", "run_dir")
#: Cell statuses: training ended normally, stopped on divergence, raised, or was interrupted
#: (Ctrl-C / SIGTERM; resumed by the next run of the sweep).
STATUSES = ("finished", "diverged", "error", "interrupted")
#: Statuses a rerun of the sweep keeps (the others are run again).
DONE_STATUSES = ("finished", "diverged")


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


def saved_config_matches(run_dir, config):
    """Whether ``run_dir``'s config.json holds ``config`` (None: no config.json there yet)."""
    path = os.path.join(run_dir, "config.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        saved = json.load(f)["run"]
    return saved == dataclasses.asdict(config)


def cell_is_done(cell, run_dir):
    """True when ``run_dir`` holds this cell's run, finished or diverged."""
    path = os.path.join(run_dir, "summary.json")
    if not os.path.exists(path) or not saved_config_matches(run_dir, cell.config):
        return False
    with open(path) as f:
        s = json.load(f)
    if s.get("status") == "finished":
        return s.get("iterations_done") == cell.config.iterations
    return s.get("status") == "diverged"


# ----------------------------------------------------------------------------------------------
# results.csv


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
    types = run_config_field_types()
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

