"""``tpref reproduce sensitivity``: TP's sensitivity to gamma_h, gamma_theta and r, one at a time.

The study of the authors' later code (docs/peers.md, "The studies"): TP on MNIST (batch 16,
hidden 100, 400 iterations) around the centre gamma_theta = 0.1, gamma_h = 1e-4, r = 1; each
parameter in turn over a log10 grid while the two others stay at the centre:
gamma_h in 1e-6 ... 1e-2, gamma_theta in 1e-4 ... 1, r in 1e-1 ... 1e3. The figure draws the
training loss (the mean over each logging window) along iterations, one curve per value (median
and min-max band over the seeds), one panel per parameter.

Each parameter is one sweep on the sweep engine (tpref.sweeps), all three on one Dask cluster:
OUT/<field>/ holds its cells, results.csv and the usual sweep files; OUT/sensitivity.png and
OUT/table.md summarize. ``--quick``: 16 pixels per step (T = 49) and 200 iterations, the same
grids, minutes on 2 cores.
"""

import math
import os
import sys

from .presets import log10_grid

#: The centre of the study (TP's MNIST step sizes) and the run settings every cell shares.
CENTRE = {"lr": 0.1, "gamma_h": 1e-4, "reg": 1.0}
BASE = dict(task="mnist", method="tp", batch_size=16, hidden=100, iterations=400, eval_every=20,
            eval_size=500, checkpoint_every=100, **CENTRE)
QUICK = dict(BASE, pixels_per_step=16, iterations=200, eval_every=10, eval_size=200)
#: The parameter varied in each panel (RunConfig field), its grid and its name in the paper.
GRIDS = {"gamma_h": log10_grid(-6, -2), "lr": log10_grid(-4, 0), "reg": log10_grid(-1, 3)}
LABELS = {"gamma_h": "gamma_h (target step)", "lr": "gamma_theta (step size)",
          "reg": "r (regularization)"}


def run_sensitivity(out, *, quick=False, data_dir=None, backend=None, seeds=(0,),
                    iterations=None, workers=None, plot_only=False, stream=None):
    """Run (or resume) the study into ``out``; write table.md and sensitivity.png; return
    (table text, figure path)."""
    from .sweeps import dask_client, read_results, sweep
    from .train import default_backend

    stream = stream if stream is not None else sys.stdout
    base = dict(QUICK if quick else BASE, data_dir=data_dir, backend=backend or default_backend())
    if iterations:
        base.update(iterations=iterations, checkpoint_every=min(iterations, 100),
                    eval_every=max(1, iterations // 20))
    seeds = list(seeds)
    rows = {}
    if plot_only:
        for field in GRIDS:
            rows[field] = read_results(os.path.join(out, field, "results.csv"))
    else:
        n = sum(len(v) for v in GRIDS.values()) * len(seeds)
        print(f"sensitivity{' (quick)' if quick else ''}: {n} runs of TP on MNIST, "
              f"{base['iterations']} iterations, T = {784 // base.get('pixels_per_step', 1)}, "
              f"centre {CENTRE}, seeds {seeds}; results in {out}", file=stream, flush=True)
        with dask_client(workers) as client:
            for field, values in GRIDS.items():
                rows[field] = sweep({field: list(values)}, os.path.join(out, field), base=base,
                                    seeds=seeds, client=client, plot=False, stream=stream)
    table = sensitivity_table(rows)
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(table)
    png = plot_sensitivity(out, rows, os.path.join(out, "sensitivity.png"),
                           title=_title(base, seeds))
    print(table, file=stream)
    print(f"figure: {png}", file=stream)
    return table, png


def _title(base, seeds):
    k = base.get("pixels_per_step", 1)
    return (f"TP on MNIST, T = {784 // k}, batch {base['batch_size']}, {base['iterations']} "
            f"iterations; centre gamma_theta {CENTRE['lr']:g}, gamma_h {CENTRE['gamma_h']:g}, "
            f"r {CENTRE['reg']:g}; {len(seeds)} seed{'s' if len(seeds) > 1 else ''}")


def _runs(out, field, rows, value):
    """The metrics rows of every seed's run of ``field = value``, and how many diverged."""
    from .run_io import read_metrics

    mine = [r for r in rows if r[field] == value]
    runs = [read_metrics(os.path.join(out, field, r["run_dir"], "metrics.jsonl")) for r in mine]
    return [m for m in runs if m], sum(r["status"] == "diverged" for r in mine)


def sensitivity_table(rows):
    """Markdown: per parameter and value, the mean training loss over the run (area under the
    training-loss curve / iterations, median over seeds) and the diverged runs."""
    lines = ["| parameter | value | training-loss area (median) | final training loss | "
             "diverged |", "|---|---|---|---|---|"]
    for field, rs in rows.items():
        for value in sorted({r[field] for r in rs}):
            mine = [r for r in rs if r[field] == value]
            auc = sorted(r["train_loss_auc"] for r in mine if r["train_loss_auc"] is not None)
            fin = sorted(r["final_train_loss"] for r in mine if r["final_train_loss"] is not None)
            med = lambda v: f"{v[len(v) // 2]:.3f}" if v else "-"          # noqa: E731
            lines.append(f"| {LABELS[field]} | {value:g} | {med(auc)} | {med(fin)} | "
                         f"{sum(r['status'] == 'diverged' for r in mine)}/{len(mine)} |")
    return "\n".join(lines) + "\n"


def plot_sensitivity(out, rows, path, title=None):
    """Three panels (gamma_h, gamma_theta, r): training loss along iterations per value."""
    import matplotlib.pyplot as plt

    from .plotting import draw_band, save_figure

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), dpi=80, sharey=True)
    cmap = plt.get_cmap("viridis")
    for ax, (field, rs) in zip(axes, rows.items()):
        values = sorted({r[field] for r in rs})
        for i, value in enumerate(values):
            runs, diverged = _runs(out, field, rs, value)
            if not runs:
                continue
            label = f"{value:g}" + (" (centre)" if math.isclose(value, CENTRE[field]) else "") \
                + (f", {diverged} diverged" if diverged else "")
            draw_band(ax, runs, "train_loss", cmap(i / max(1, len(values) - 1)), label)
        ax.set_title(f"varying {LABELS[field]}", fontsize="medium")
        ax.set_xlabel("iteration")
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="small", title=field, title_fontsize="small")
    axes[0].set_ylabel("training loss (window mean)")
    if title:
        fig.suptitle(title, fontsize="medium")
    return save_figure(fig, path)
