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
                       base=dict(task="temporal-order", length=12, iterations=200), seeds=[0,

The package, in import order: :mod:`~tpref.sweeps.grid` (the grid and its cells),
:mod:`~tpref.sweeps.results` (a cell's row, results.csv), :mod:`~tpref.sweeps.engine` (Dask:
workers, cluster, client loop, :func:`sweep`), :mod:`~tpref.sweeps.command` (``tpref sweep``).
"""

from .command import base_from_preset, cli_base, register
from .engine import (ALLOWED_WORKER_DEATHS, DASK_MISSING, WORKER_ENV, SweepProgress,
                     dask_client, default_workers, require_dask, run_cell, run_cells, sweep)
from .grid import Cell, SweepError, check_grid, make_cells, parse_grid, parse_seeds
from .results import (DONE_STATUSES, RESULT_COLUMNS, STATUSES, cell_is_done, cell_row,
                      read_results, train_loss_area, write_results)

__all__ = [
    "ALLOWED_WORKER_DEATHS", "Cell", "DASK_MISSING", "DONE_STATUSES", "RESULT_COLUMNS",
    "STATUSES", "SweepError", "SweepProgress", "WORKER_ENV", "base_from_preset", "cell_is_done",
    "cell_row", "check_grid", "cli_base", "dask_client", "default_workers", "make_cells",
    "parse_grid", "parse_seeds", "read_results", "register", "require_dask", "run_cell",
    "run_cells", "sweep", "train_loss_area", "write_results",
]
