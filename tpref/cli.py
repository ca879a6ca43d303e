"""Command line: ``tpref <command>`` or ``python -m tpref <command>``.

Commands
--------
demo        train a tiny RNN with BP, TP and DTP on one synthetic batch, print the losses
train       one training run: the paper's preset for its task and method, flags override
compare     BP versus TP on one task with the paper's hyperparameters: runs, table, plot
reproduce   the panels of the paper's Fig. 3 (synthetic) or Fig. 4 (images; Fashion-MNIST with
            the GRU)
sweep       a grid of training runs on Dask (tpref.sweeps; the [sweep] extra)
golden      write the verification cases' golden files (tpref.verify.golden)
verify      check a candidate's outputs against golden files
plot        redraw a run directory's plots; --diagnostics: what happens inside the run
bench       validate then time the oracle backends against PyTorch (docs/benchmarks.md)

Every run prints where its results and plot are. Bad input (unknown task or method,
impossible lengths, missing data, unwritable output directory) stops before any work.
"""

import argparse
import os
import sys


from .cli_support import CreatedDirs, nonnegative_int, positive_int, update_list
from .config import CELLS, DTYPES, GRU_INVERSES, METHODS, UPDATES


def _demo(args):
    from .demo import run_demo

    run_demo(iterations=args.iterations, seed=args.seed, out=sys.stdout)
    return 0


def _bench(args):
    from .bench import main as bench_main   # lazy: imports numba, matplotlib, torch

    return bench_main(args.bench_args)


# ----------------------------------------------------------------------------------------------
# shared flags


def _add_common(p, *, synthetic_length=True, out_default="runs", several_updates=False):
    from .tasks import TASK_NAMES

    p.add_argument("--task", default="temporal-order", choices=TASK_NAMES,
                   help="task (default temporal-order, which needs no data)")
    p.add_argument("--length", type=positive_int, default=None,
                   help="sequence length T (default 60 temporal order, 30 adding; for images a "
                        "divisor of 784 or 3072, setting k; ignored by reproduce)")
    p.add_argument("--pixels-per-step", type=positive_int, default=1,
                   help="image tasks: k pixels per step, length 784/k (default 1)")
    p.add_argument("--markers", default="paper", choices=("paper", "code"),
                   help="temporal order marker intervals: the paper's text or the authors' code")
    p.add_argument("--criterion", default="squared", choices=("squared", "abs"),
                   help="adding: accuracy counts (out-target)^2 < 0.04 (squared, paper) or "
                        "|out-target| < 0.04 (abs, authors' code); both are logged")
    p.add_argument("--data-dir", default=None,
                   help="directory with the official data files (image tasks); searched one "
                        "level deep")
    p.add_argument("--iterations", type=positive_int, default=None,
                   help="SGD steps per run (default: the preset's)")
    p.add_argument("--out", default=out_default,
                   help=f"output directory (default {out_default or 'runs/<task>-<length>/<method>'})")
    p.add_argument("--seed", type=nonnegative_int, default=0,
                   help="seed of initialization and data (default 0)")
    p.add_argument("--backend", default=None,
                   help="oracle backend (default: numba when installed, else numpy)")
    p.add_argument("--eval-every", type=positive_int, default=None,
                   help="evaluate on held-out data every N iterations (default: about 10 "
                        "evaluations per run, at most every 200 iterations)")
    p.add_argument("--eval-size", type=nonnegative_int, default=1000,
                   help="held-out samples per evaluation (default 1000; 0 = whole test set)")
    p.add_argument("--checkpoint-every", type=positive_int, default=1000,
                   help="write a checkpoint every N iterations (default 1000)")
    if several_updates:
        p.add_argument("--update", default="local", type=update_list(UPDATES),
                       help="TP/DTP update: local = the paper's Eq. (3), through_time = authors' "
                            "code; local,through_time runs TP/DTP once with each (the second "
                            "named tp-through_time)")
    else:
        p.add_argument("--update", default="local", choices=UPDATES,
                       help="TP/DTP update: local = the paper's Eq. (3), through_time = authors' "
                            "code")
    p.add_argument("--hidden", type=positive_int, default=None,
                   help="hidden size p (default: the preset's, 100)")
    p.add_argument("--restart", action="store_true",
                   help="start afresh instead of resuming from a run directory's checkpoint "
                        "(also the way on from a damaged checkpoint)")
    _add_cell_flags(p)


def _add_cell_flags(p):
    """--cell, --gru-inverse, --dtype, --init: the model a run trains (tpref.models.cells)."""
    from .models.cells import INITS

    p.add_argument("--cell", default=None, choices=CELLS,
                   help="recurrent cell: rnn (Sec. 2) or gru (PyTorch's GRU); default: the "
                        "paper's for the task (gru for fashion-mnist, else rnn)")
    p.add_argument("--gru-inverse", default="per_gate", choices=GRU_INVERSES,
                   help="GRU runs' TP: per_gate (default), exact (slow reference) or authors "
                        "(the authors' code: their gate convention and carry; docs/gru.md); "
                        "refused for the simple RNN, given only to a figure's GRU panels")
    p.add_argument("--dtype", default="float64", choices=DTYPES,
                   help="computation float type (default float64; float32 is ~2x faster)")
    p.add_argument("--init", default="orthogonal", choices=INITS,
                   help="orthogonal (the authors' scheme, default) or torch (PyTorch's default "
                        "uniform init, what the authors' GRU ran with)")


def _backend(args):
    from .train import default_backend

    return args.backend or default_backend()


def _common_fields(args):
    return dict(length=args.length, pixels_per_step=args.pixels_per_step, markers=args.markers,
                criterion=args.criterion, data_dir=args.data_dir, seed=args.seed,
                backend=_backend(args), eval_every=args.eval_every, eval_size=args.eval_size,
                checkpoint_every=args.checkpoint_every, update=args.update, hidden=args.hidden,
                cell=args.cell, gru_inverse=args.gru_inverse, dtype=args.dtype, init=args.init)


# ----------------------------------------------------------------------------------------------
# compare / reproduce


def _panel(args, panel, methods, overrides):
    from .experiments import panel_configs, run_panel, run_panel_seeds

    configs = panel_configs(panel, methods, **overrides)
    _print_preset_note(panel, overrides.get("cell"))
    if args.seeds:
        return run_panel_seeds(panel, configs, args.out, _seeds(args), workers=args.jobs)
    return run_panel(panel, configs, args.out, jobs=args.jobs, resume=not args.restart)


def _print_preset_note(panel, cell):
    """Say so when a panel runs with another cell than the paper's (Preset.with_cell)."""
    from .experiments import panel_preset

    note = panel_preset(panel, cell).note
    if note:
        print(f"note: {note}", flush=True)


def _figure_overrides(panel, overrides):
    """A figure's flags for one of its panels: --gru-inverse reaches its GRU panels only (Fig. 4
    mixes simple-RNN and GRU panels)."""
    from .experiments import panel_preset

    if panel_preset(panel, overrides.get("cell")).cell == "gru":
        return overrides
    return {k: v for k, v in overrides.items() if k != "gru_inverse"}


def _panel_label(panel, cell):
    """A figure's panel title: the preset's name, and the cell when it is the GRU."""
    from .experiments import panel_preset

    return f"{panel} (GRU)" if panel_preset(panel, cell).cell == "gru" else panel


def _seeds(args):
    from .sweeps import parse_seeds, require_dask

    require_dask()                          # --seeds runs on Dask: say so before any work
    return parse_seeds(args.seeds)


def _compare(args):
    from .experiments import preset_name
    from .run_io import check_output_dir

    methods = tuple(args.methods.split(","))
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"unknown method {m!r}; choose from {METHODS}")
    panel = preset_name(args.task, args.length)
    check_output_dir(args.out)
    overrides = _common_fields(args)
    overrides["iterations"] = args.iterations
    _panel(args, panel, methods, overrides)
    return 0


def _reproduce(args):
    if not isinstance(args.update, str) and args.figure not in ("fig3", "fig4"):
        raise ValueError(f"--update {','.join(args.update)}: several updates apply to fig3 and "
                         f"fig4 only, not to {args.figure}")
    if args.figure == "appendix-d":                 # its own panels and methods
        from .appendix_d import reproduce

        return reproduce(args, _common_fields(args))
    from .experiments import panel_configs, run_names, run_panel
    from .presets import FIGURES
    from .plotting import plot_figure
    from .run_io import check_output_dir

    if args.grid and not args.figure.startswith("fig6"):
        raise ValueError(f"--grid restricts the grid of fig6a/fig6b only, not {args.figure}")
    if args.figure.startswith("fig6"):
        return _study(args)
    if args.figure == "sensitivity":
        from .sensitivity import run_sensitivity

        run_sensitivity(args.out, quick=args.quick, data_dir=args.data_dir, backend=args.backend,
                        seeds=_seeds(args) if args.seeds else (args.seed,),
                        iterations=args.iterations, workers=args.jobs, plot_only=args.plot_only)
        return 0
    panels = FIGURES[args.figure]
    if args.panels:
        panels = tuple(args.panels.split(","))
        for p in panels:
            if p not in FIGURES[args.figure]:
                raise ValueError(f"unknown panel {p!r} of {args.figure}; choose from "
                                 f"{FIGURES[args.figure]}")
    methods = ("bp", "tp")
    names = run_names(methods, args.update)          # run directories: bp, tp, tp-through_time
    check_output_dir(args.out)
    overrides = _common_fields(args)
    overrides["iterations"] = args.iterations
    overrides.pop("length")
    seeds = _seeds(args) if args.seeds else None
    if not args.plot_only:
        configs = {p: panel_configs(p, methods, **_figure_overrides(p, overrides))
                   for p in panels}
        for p in panels:                         # every panel's data, before any training
            configs[p][0].make_task()
    if seeds:
        from .plotting import plot_figure_seeds

        if not args.plot_only:
            for p in panels:
                _panel(args, p, methods, _figure_overrides(p, overrides))
        png = plot_figure_seeds(args.out, FIGURES[args.figure], names, seeds,
                                os.path.join(args.out, f"{args.figure}.png"),
                                titles={p: f"{_panel_label(p, args.cell)} ({len(seeds)} seeds)"
                                        for p in FIGURES[args.figure]})
        print(f"figure: {png}")
        return 0
    if not args.plot_only:
        for p in panels:
            _print_preset_note(p, args.cell)
            run_panel(p, configs[p], args.out, jobs=args.jobs, resume=not args.restart)
    else:
        from .experiments import panel_report
        from .plotting import plot_comparison

        for p in panels:
            table = panel_report(os.path.join(args.out, p), names)
            if table:
                print(table)
                print(f"plot: {plot_comparison(os.path.join(args.out, p), names, title=p)}")
    png = plot_figure(args.out, FIGURES[args.figure], names,
                      os.path.join(args.out, f"{args.figure}.png"),
                      titles={p: _panel_label(p, args.cell) for p in FIGURES[args.figure]})
    print(f"figure: {png}")
    return 0


def _study(args):
    from .studies import run_study
    from .sweeps import require_dask

    require_dask()
    from .sweeps import parse_grid

    run_study(args.figure + ("-quick" if args.quick else ""), args.out, data_dir=args.data_dir,
              backend=args.backend, seed=args.seed, iterations=args.iterations,
              workers=args.jobs, plot_only=args.plot_only, only=parse_grid(args.grid))
    return 0


# ----------------------------------------------------------------------------------------------
# parser


def build_parser():
    """The argparse parser of the ``tpref`` command."""
    from . import __version__
    from .cli_train import register as register_train

    parser = argparse.ArgumentParser(
        prog="tpref", description="Reference engine for BP / TP / DTP training of RNNs.")
    parser.add_argument("--version", action="version", version=f"tpref {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="train a tiny RNN with BP, TP and DTP on a synthetic batch")
    demo.add_argument("--iterations", type=positive_int, default=200,
                      help="SGD steps per method (default 200)")
    demo.add_argument("--seed", type=nonnegative_int, default=0,
                      help="seed of data and initialization")
    demo.set_defaults(func=_demo)

    register_train(sub, lambda p: _add_common(p, out_default=None), _common_fields)

    cp = sub.add_parser("compare", help="BP vs TP on one task with the paper's hyperparameters")
    _add_common(cp, several_updates=True)
    cp.add_argument("--methods", default="bp,tp", help="comma-separated methods (default bp,tp)")
    cp.add_argument("--jobs", type=positive_int, default=None,
                    help="parallel processes (default: one per method, at most the CPU count; "
                         "with --seeds: Dask workers, default the CPU count)")
    cp.add_argument("--seeds", default=None,
                    help="seeds, e.g. 0,1,2 or 0-4: every method once per seed on Dask (the "
                         "[sweep] extra); table of median [range], plot of median and band")
    cp.set_defaults(func=_compare)

    rp = sub.add_parser("reproduce", help="the paper's Fig. 3 (synthetic), Fig. 4 (images: "
                        "MNIST, permuted MNIST, CIFAR-10 with the RNN, Fashion-MNIST with the GRU), "
                        "the grid studies of Fig. 6a/6b and the sensitivity study (on Dask) or "
                        "Appendix D")
    rp.add_argument("figure", choices=("fig3", "fig4", "fig6a", "fig6b", "sensitivity",
                                       "appendix-d"),
                    help="appendix-d: MNIST, TP vs DTP with the regularized vs a learned inverse "
                         "(TPTT), and TPTT on temporal order T=60 against BP and TP; sensitivity: "
                         "TP on MNIST, gamma_h, gamma_theta and r one at a time")
    _add_common(rp, several_updates=True)
    rp.add_argument("--panels", default=None, help="comma-separated subset of the figure's panels")
    rp.add_argument("--jobs", type=positive_int, default=None,
                    help="parallel processes per panel")
    rp.add_argument("--seeds", default=None,
                    help="seeds, e.g. 0-4: every run once per seed on Dask (the [sweep] extra)")
    rp.add_argument("--quick", action="store_true",
                    help="fig6a/fig6b/sensitivity: the small variant on shorter sequences "
                         "(minutes, not hours)")
    rp.add_argument("--plot-only", action="store_true",
                    help="redraw the figure from the runs already in --out")
    rp.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2",
                    help="fig6a/fig6b: run only these values of one of the study's grid fields "
                         "(each one of the study's own), e.g. hidden=16,32,64; repeatable; fig6b's "
                         "figure keeps the full axes and shows the points not run as empty")
    rp.set_defaults(func=_reproduce)

    from .sweeps import register as register_sweep

    register_sweep(sub, _add_common, _common_fields)

    from .verify.golden import register as register_verify

    register_verify(sub)

    from .diagnostics_plot import register as register_plot

    register_plot(sub)

    bench = sub.add_parser("bench", help="validate then time the oracle backends against PyTorch",
                           add_help=False)
    bench.set_defaults(func=_bench)
    return parser


def main(argv=None):
    """Entry point of the console script; returns the exit status."""
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "bench":
        args.bench_args = rest                  # tpref.bench parses its own options
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command is None:
        parser.print_help()
        return 2
    from .processes import Interrupted

    created = CreatedDirs(getattr(args, "out", None))
    try:
        return args.func(args)
    except (ValueError, OSError, ImportError) as err:
        created.remove_empty()                  # a failed command leaves no empty directory
        print(f"tpref {args.command}: error: {err}", file=sys.stderr)
        return 2
    except Interrupted as err:
        print(f"tpref {args.command}: {err}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"tpref {args.command}: interrupted; what was written is kept (rerun the same "
              f"command to resume a run)", file=sys.stderr)
        return 130
