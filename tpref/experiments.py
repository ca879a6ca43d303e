"""The paper's experiments: comparisons and figures run with the presets of tpref.presets.

A *panel* is one task with its preset: BP and TP runs with the paper's step sizes. A
comparison trains every method of a panel (in parallel processes), then draws one plot and
prints a table. ``fig3`` and ``fig4`` are lists of panels.

Directory layout of a comparison: ``<out>/<panel>/<method>/`` (one run each, see
:mod:`tpref.train`), ``<out>/<panel>/compare.png`` and ``<out>/<panel>/table.md``.
"""

import os
import sys

from .presets import PRESETS
from .processes import Interrupted, run_in_workers
from .run_io import check_output_dir, read_json
from .train import RunConfig, default_eval_every, train


def preset_name(task, length=None):
    """The preset of a task (and length for the synthetic ones), or a clear ValueError."""
    if task in ("temporal-order", "adding"):
        default = {"temporal-order": 60, "adding": 30}[task]
        name = f"{task}-{length or default}"
        if name in PRESETS:
            return name
        # any other length: the nearest preset of that task
        same = [n for n in PRESETS if PRESETS[n].task == task]
        return min(same, key=lambda n: abs(PRESETS[n].length - (length or default)))
    if task in PRESETS:
        return task
    raise ValueError(f"unknown task {task!r}; choose one of "
                     f"{sorted({p.task for p in PRESETS.values()})}")


#: methods whose runs depend on ``update`` (local = the paper's Eq. (3), through_time = the
#: authors' code); the others take the first update given.
UPDATED_METHODS = ("tp", "dtp")


def run_name(method, update="local"):
    """A run's directory and label in a panel: the method, suffixed with its update when that is
    not the paper's Eq. (3) (``tp-through_time``), so that both updates can share a panel."""
    if method in UPDATED_METHODS and update != "local":
        return f"{method}-{update}"
    return method


def _method_updates(methods, updates):
    """(method, update) of each run of a panel: TP and DTP once per update, the other methods
    once with the first (``updates``: one update, a sequence, or None for the preset's)."""
    updates = (updates,) if updates is None or isinstance(updates, str) else tuple(updates)
    return [(m, u) for m in methods for u in (updates if m in UPDATED_METHODS else updates[:1])]


def run_names(methods, updates=("local",)):
    """The run names of ``methods`` x ``updates`` (the order of :func:`panel_configs`)."""
    return [run_name(m, u) for m, u in _method_updates(methods, updates)]


def panel_configs(panel, methods=("bp", "tp"), **overrides):
    """RunConfigs of a panel's methods with the preset's hyperparameters and ``overrides``.

    ``overrides`` are RunConfig fields (None values are ignored); ``length`` may override the
    preset's length for synthetic tasks; a ``cell`` other than the preset's takes that cell's
    step sizes (``Preset.with_cell``). ``update`` may be a tuple of updates: TP and DTP then run
    once per update (named by :func:`run_name`), the other methods once with the first.
    """
    preset = panel_preset(panel, overrides.get("cell"))
    configs = []
    for method, update in _method_updates(methods, overrides.get("update")):
        fields = preset.run_fields(method)
        fields.update({k: v for k, v in overrides.items() if v is not None})
        if update is not None:
            fields["update"] = update
        if overrides.get("eval_every") is None:
            fields["eval_every"] = default_eval_every(fields["iterations"])
        cfg = RunConfig(**fields)
        cfg.validate()
        configs.append(cfg)
    return configs


def config_name(config):
    """:func:`run_name` of a RunConfig."""
    return run_name(config.method, config.update)


def panel_preset(panel, cell=None):
    """The preset of ``panel``, run with ``cell`` when given (``Preset.with_cell``)."""
    preset = PRESETS[panel]
    return preset if cell is None else preset.with_cell(cell)


def _run_one(args):
    config, out_dir, progress, resume = args
    return train(config, out_dir, progress=progress, resume=resume)


def run_panel(panel, configs, out_dir, *, jobs=None, stream=None, plot=True, resume=True):
    """Train every config of a panel (parallel processes), plot, print a table; return summaries."""
    from .plotting import plot_comparison

    stream = stream if stream is not None else sys.stdout
    panel_dir = os.path.join(out_dir, panel)
    configs[0].make_task()      # fail on missing data before any directory or process
    check_output_dir(panel_dir)
    work = [(c, os.path.join(panel_dir, config_name(c)), True, resume) for c in configs]
    jobs = jobs or min(len(work), os.cpu_count() or 1)
    print(f"{panel}: training {', '.join(map(config_name, configs))} for {configs[0].iterations} "
          f"iterations ({jobs} process{'es' if jobs > 1 else ''}); runs in {panel_dir}",
          file=stream, flush=True)
    if jobs == 1:
        summaries = []
        for w in work:
            summaries.append(_run_one(w))
            if summaries[-1]["status"] == "interrupted":
                raise Interrupted(f"{panel} interrupted; rerun the same command to resume")
    else:
        try:
            summaries = run_in_workers(_run_one, work, jobs)
        except Interrupted as err:
            raise Interrupted(f"{panel} {err}") from None
        if None in summaries:             # a worker stopped from outside before its summary
            raise Interrupted(f"{panel}: a run was interrupted; rerun the same command to resume")
    table = format_table(panel, summaries, configs)
    with open(os.path.join(panel_dir, "table.md"), "w") as f:
        f.write(table)
    print(table, file=stream)
    if plot:
        png = plot_comparison(panel_dir, [config_name(c) for c in configs], title=panel_title(panel, configs[0]))
        print(f"plot: {png}", file=stream)
    print(f"results: {panel_dir}/<method>/metrics.jsonl, config.json, summary.json", file=stream,
          flush=True)
    return summaries


def panel_title(panel, config):
    """Plot title: the task as run (length included) and the settings shared by its runs."""
    length = f" T={config.length}" if config.length else ""
    cell = "GRU" if config.cell == "gru" else "RNN"
    return (f"{config.task}{length}, {cell} (preset {panel}; batch {config.batch_size}, "
            f"hidden {config.hidden}, seed {config.seed})")


def format_table(panel, summaries, configs):
    """A Markdown table of a panel's runs."""
    lines = [f"| {panel} | status | iterations | final test acc | best test acc | first 100% at "
             "| final test loss | train wall s | s / iteration | hyperparameters |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for s, c in zip(summaries, configs):
        hp = hyperparameters(c)
        acc = lambda v: "-" if v is None else f"{100 * v:.1f}%"   # noqa: E731
        loss = "-" if s["final_test_loss"] is None else f"{s['final_test_loss']:.4g}"
        spi = "-" if s["seconds_per_iteration"] is None else f"{1e3 * s['seconds_per_iteration']:.1f} ms"
        lines.append(f"| {config_name(c)} | {s['status']} | {s['iterations_done']} | "
                     f"{acc(s['final_test_accuracy'])} | {acc(s['best_test_accuracy'])} | "
                     f"{s['first_iteration_at_100'] if s['first_iteration_at_100'] is not None else '-'} | "
                     f"{loss} | {s['wall_seconds']:.0f} | {spi} | {hp} |")
    return "\n".join(lines) + "\n"


def hyperparameters(c):
    """A RunConfig's step sizes in one short line (the method's own)."""
    momentum = f", momentum {c.momentum:g}{' Nesterov' if c.nesterov else ''}" if c.momentum else ""
    if c.method == "bp":
        return f"lr {c.lr:g}, momentum {c.momentum:g}{' Nesterov' if c.nesterov else ''}"
    if c.method == "dtp_learned":
        return (f"lr {c.lr:g}, gamma_h {c.gamma_h:g}, reverse lr {c.reverse_lr:g}, "
                f"noise {c.noise:g}{momentum}")
    return (f"lr {c.lr:g}, gamma_h {c.gamma_h:g}, r {c.reg:g}, {c.update}"
            + (f", {c.gru_inverse}" if c.cell == "gru" else ""))


def panel_report(panel_dir, methods):
    """The table of the runs already in ``panel_dir`` (from their summary and config files)."""
    summaries, configs = [], []
    for m in methods:
        d = os.path.join(panel_dir, m)
        if os.path.exists(os.path.join(d, "summary.json")):
            summaries.append(read_json(os.path.join(d, "summary.json")))
            configs.append(RunConfig(**read_json(os.path.join(d, "config.json"), "run")))
    if not summaries:
        return None
    return format_table(os.path.basename(os.path.normpath(panel_dir)), summaries, configs)


# ----------------------------------------------------------------------------------------------
# several seeds (on Dask, through tpref.sweeps)


def seed_cells(configs, seeds):
    """One sweep cell per (method, seed), named ``<method>/seed-<s>``."""
    import dataclasses

    from .sweeps import Cell

    return [Cell((("method", config_name(c)), ("seed", s)), dataclasses.replace(c, seed=s),
                 f"{config_name(c)}/seed-{s}") for c in configs for s in seeds]


def run_panel_seeds(panel, configs, out_dir, seeds, *, workers=None, scheduler=None,
                    stream=None, plot=True, client=None):
    """Train every config of a panel with every seed on Dask; table of medians and ranges,
    plot with a median line and a min-max band per method; return the cells' rows.

    Layout: ``<out>/<panel>/<method>/seed-<s>/`` (one run each), ``compare.png``, ``table.md``.
    """
    from .plotting import plot_seed_curves
    from .sweeps import run_cells

    stream = stream if stream is not None else sys.stdout
    panel_dir = os.path.join(out_dir, panel)
    check_output_dir(panel_dir)
    cells = seed_cells(configs, seeds)
    print(f"{panel}: training {', '.join(map(config_name, configs))} x seeds "
          f"{','.join(map(str, seeds))} for {configs[0].iterations} iterations on Dask; "
          f"runs in {panel_dir}", file=stream, flush=True)
    rows = run_cells(cells, panel_dir, workers=workers, scheduler=scheduler, client=client,
                     subdir="")
    table = format_seed_table(panel, rows, configs)
    with open(os.path.join(panel_dir, "table.md"), "w") as f:
        f.write(table)
    print(table, file=stream)
    if plot:
        groups = {config_name(c): [os.path.join(panel_dir, config_name(c), f"seed-{s}") for s in seeds]
                  for c in configs}
        png = plot_seed_curves(groups, os.path.join(panel_dir, "compare.png"),
                               title=panel_title(panel, configs[0]).replace(
                                   f"seed {configs[0].seed}", f"seeds {len(seeds)}"))
        print(f"plot: {png}", file=stream)
    return rows


def _median_range(values, fmt):
    import numpy as np

    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return f"{fmt(float(np.median(values)))} [{fmt(min(values))}, {fmt(max(values))}]"


def format_seed_table(panel, rows, configs):
    """Markdown table of a panel run with several seeds: median [min, max] across seeds."""
    pct = lambda v: f"{100 * v:.1f}%"           # noqa: E731
    lines = [f"| {panel} | seeds | status | final test acc, median [range] | best test acc "
             "| reached 100% | final test loss | train wall s | hyperparameters |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in configs:
        mine = [r for r in rows if r["method"] == config_name(c)]
        statuses = {}
        for r in mine:
            statuses[r["status"]] = statuses.get(r["status"], 0) + 1
        reached = [r["first_iteration_at_100"] for r in mine
                   if r.get("first_iteration_at_100") is not None]
        hp = (f"lr {c.lr:g}, momentum {c.momentum:g}{' Nesterov' if c.nesterov else ''}"
              if c.method == "bp" else f"lr {c.lr:g}, gamma_h {c.gamma_h:g}, r {c.reg:g}, {c.update}")
        lines.append(
            f"| {config_name(c)} | {len(mine)} | {', '.join(f'{n} {s}' for s, n in statuses.items())} | "
            f"{_median_range([r['final_test_accuracy'] for r in mine], pct)} | "
            f"{_median_range([r['best_test_accuracy'] for r in mine], pct)} | "
            f"{len(reached)} of {len(mine)}"
            f"{f' (first at {min(reached)})' if reached else ''} | "
            f"{_median_range([r['final_test_loss'] for r in mine], lambda v: f'{v:.4g}')} | "
            f"{_median_range([r['wall_seconds'] for r in mine], lambda v: f'{v:.3g}')} | {hp} |")
    return "\n".join(lines) + "\n"
