"""``tpref sweep``: its flags (:func:`register`), the base configuration of its cells (the
task's preset for ``--method``), and the command itself, which stops cleanly on Ctrl-C or
SIGTERM."""

import dataclasses
import os
import signal
import sys
import threading

from .engine import default_workers, require_dask, sweep
from .grid import SweepError, make_cells, parse_grid, parse_seeds
from .results import STATUSES


def register(subparsers, add_common, common_fields):
    """Add ``tpref sweep`` to the CLI's subparsers: ``add_common(parser)`` adds the flags shared
    by the training commands, ``common_fields(args)`` turns them into RunConfig fields."""
    from ..config import METHODS

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
    from ..experiments import panel_configs, preset_name

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
    from ..train import default_eval_every

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
