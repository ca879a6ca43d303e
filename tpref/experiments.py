"""The paper's experiments: comparisons and figures run with the presets of tpref.presets.

A *panel* is one task with its preset: BP and TP runs with the paper's step sizes. A
comparison trains every method of a panel (in parallel processes), then draws one plot and
prints a table. ``fig3`` and ``fig4`` are lists of panels.

Directory layout of a comparison: ``<out>/<panel>/<method>/`` (one run each, see
:mod:`tpref.train`), ``<out>/<panel>/compare.png`` and ``<out>/<panel>/table.md``.
"""

import json
import os
import sys

from .presets import PRESETS
from .processes import Interrupted, run_in_workers
from .run_io import check_output_dir
from .train import RunConfig, train


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


def panel_configs(panel, methods=("bp", "tp"), **overrides):
    """RunConfigs of a panel's methods with the preset's hyperparameters and ``overrides``.

    ``overrides`` are RunConfig fields (None values are ignored); ``length`` may override the
    preset's length for synthetic tasks; a ``cell`` other than the preset's takes that cell's
    step sizes (``Preset.with_cell``).
    """
    preset = panel_preset(panel, overrides.get("cell"))
    configs = []
    for method in methods:
        fields = preset.run_fields(method)
        fields.update({k: v for k, v in overrides.items() if v is not None})
        cfg = RunConfig(**fields)
        cfg.validate()
        configs.append(cfg)
    return configs


def panel_preset(panel, cell=None):
    """The preset of ``panel``, run with ``cell`` when given (``Preset.with_cell``)."""
    preset = PRESETS[panel]
    return preset if cell is None else preset.with_cell(cell)


def _run_one(args):
    config, out_dir, progress = args
    return train(config, out_dir, progress=progress)


def run_panel(panel, configs, out_dir, *, jobs=None, stream=None, plot=True):
    """Train every config of a panel (parallel processes), plot, print a table; return summaries."""
    from .plotting import plot_comparison

    stream = stream if stream is not None else sys.stdout
    panel_dir = os.path.join(out_dir, panel)
    check_output_dir(panel_dir)
    configs[0].make_task()      # fail on missing data before any process starts
    work = [(c, os.path.join(panel_dir, c.method), True) for c in configs]
    jobs = jobs or min(len(work), os.cpu_count() or 1)
    print(f"{panel}: training {', '.join(c.method for c in configs)} for {configs[0].iterations} "
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
        png = plot_comparison(panel_dir, [c.method for c in configs], title=panel_title(panel, configs[0]))
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
        hp = (f"lr {c.lr:g}, momentum {c.momentum:g}{' Nesterov' if c.nesterov else ''}"
              if c.method == "bp" else f"lr {c.lr:g}, gamma_h {c.gamma_h:g}, r {c.reg:g}, {c.update}"
              + (f", {c.gru_inverse}" if c.cell == "gru" else ""))
        acc = lambda v: "-" if v is None else f"{100 * v:.1f}%"   # noqa: E731
        loss = "-" if s["final_test_loss"] is None else f"{s['final_test_loss']:.4g}"
        spi = "-" if s["seconds_per_iteration"] is None else f"{1e3 * s['seconds_per_iteration']:.1f} ms"
        lines.append(f"| {c.method} | {s['status']} | {s['iterations_done']} | "
                     f"{acc(s['final_test_accuracy'])} | {acc(s['best_test_accuracy'])} | "
                     f"{s['first_iteration_at_100'] if s['first_iteration_at_100'] is not None else '-'} | "
                     f"{loss} | {s['wall_seconds']:.0f} | {spi} | {hp} |")
    return "\n".join(lines) + "\n"


def panel_report(panel_dir, methods):
    """The table of the runs already in ``panel_dir`` (from their summary and config files)."""
    summaries, configs = [], []
    for m in methods:
        d = os.path.join(panel_dir, m)
        if os.path.exists(os.path.join(d, "summary.json")):
            with open(os.path.join(d, "summary.json")) as f:
                summaries.append(json.load(f))
            with open(os.path.join(d, "config.json")) as f:
                configs.append(RunConfig(**json.load(f)["run"]))
    if not summaries:
        return None
    return format_table(os.path.basename(os.path.normpath(panel_dir)), summaries, configs)
