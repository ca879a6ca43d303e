"""Plots of training runs from their metrics.jsonl files (matplotlib, Agg backend).

Reads only files, so a plot can be redrawn from the results of any finished or running run.
"""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"bp": "tab:blue", "tp": "tab:red", "dtp": "tab:green"}
#: Colors of runs with other names (variants), in order of appearance.
EXTRA_COLORS = ("tab:purple", "tab:orange", "tab:brown", "tab:olive", "tab:cyan", "tab:pink")


def save_figure(fig, path, **savefig_kw):
    """Lay ``fig`` out, write it to ``path``, free its memory; return ``path``."""
    fig.tight_layout()
    fig.savefig(path, **savefig_kw)
    plt.close(fig)
    return path


def _style(index, method):
    """(color, label) of the run ``method``, the ``index``-th on its axes."""
    if method in COLORS:
        return COLORS[method], method.upper()
    base, _, update = method.partition("-")          # tp-through_time (experiments.run_name)
    if base in COLORS and update:
        return EXTRA_COLORS[index % len(EXTRA_COLORS)], f"{base.upper()} ({update.replace('_', ' ')})"
    return EXTRA_COLORS[index % len(EXTRA_COLORS)], method


def _load(panel_dir, methods):
    from .run_io import read_metrics

    out = {}
    for m in methods:
        rows = read_metrics(os.path.join(panel_dir, m, "metrics.jsonl"))
        if rows:
            out[m] = rows
    return out


def _curves(ax_row, runs, x_key, loss_key="test_loss"):
    """Test accuracy and loss of each run against ``x_key`` on a (accuracy, loss) pair of axes.

    For the adding task the second criterion (|out - target| < 0.04) is drawn dashed.
    """
    acc_ax, loss_ax = ax_row
    losses = []
    for i, (method, rows) in enumerate(runs.items()):
        xs = [r[x_key] for r in rows]
        color, label = _style(i, method)
        acc_ax.plot(xs, [100 * r["test_accuracy"] for r in rows], color=color, label=label)
        if "test_accuracy_abs" in rows[0]:
            acc_ax.plot(xs, [100 * r["test_accuracy_abs"] for r in rows], color=color, ls="--",
                        label=f"{label}, |err| < 0.04")
        ys = [r[loss_key] if r[loss_key] is not None else float("nan") for r in rows]
        losses += [y for y in ys if y == y]
        loss_ax.plot(xs, ys, color=color, label=label)
    acc_ax.set_ylabel("test accuracy (%)")
    loss_ax.set_ylabel("test loss")
    if losses and min(losses) > 0 and max(losses) / min(losses) > 20:
        loss_ax.set_yscale("log")


def plot_comparison(panel_dir, methods, title=None, path=None):
    """2x2 figure: test accuracy and loss versus iterations and versus training wall time."""
    runs = _load(panel_dir, methods)
    fig, axes = plt.subplots(2, 2, figsize=(9, 6), dpi=80)
    _curves(axes[:, 0], runs, "iteration")
    _curves(axes[:, 1], runs, "wall_seconds")
    axes[1, 0].set_xlabel("iterations")
    axes[1, 1].set_xlabel("training wall time (s)")
    axes[0, 0].legend()
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    path = save_figure(fig, path or os.path.join(panel_dir, "compare.png"))
    return path


def plot_figure(out_dir, panels, methods, path, titles=None):
    """One column per panel: test accuracy (top) and test loss (bottom) versus iterations."""
    fig, axes = plt.subplots(2, len(panels), figsize=(4 * len(panels), 6), dpi=80, squeeze=False)
    for j, panel in enumerate(panels):
        runs = _load(os.path.join(out_dir, panel), methods)
        _curves(axes[:, j], runs, "iteration")
        axes[0, j].set_title((titles or {}).get(panel, panel))
        axes[1, j].set_xlabel("iterations")
        for ax in axes[:, j]:
            ax.grid(alpha=0.3)
        if runs:
            axes[0, j].legend()
    return save_figure(fig, path)


# ----------------------------------------------------------------------------------------------
# several seeds, sweeps (tpref.sweeps)


def band(runs, key):
    """(iterations, median, low, high) of ``key`` across runs (lists of metrics rows).

    At each logged iteration the statistics are over the runs that reached it (a diverged
    run stops contributing when it stops); missing/None values are skipped.
    """
    import numpy as np

    its = sorted({r["iteration"] for rows in runs for r in rows})
    xs, med, lo, hi = [], [], [], []
    for it in its:
        vals = [r[key] for rows in runs for r in rows
                if r["iteration"] == it and r.get(key) is not None]
        if vals:
            xs.append(it)
            med.append(float(np.median(vals)))
            lo.append(min(vals))
            hi.append(max(vals))
    return xs, med, lo, hi


def draw_band(ax, runs, key, color, label, scale=1.0):
    """A median line with a min-max band across seeds on ``ax``."""
    xs, med, lo, hi = band(runs, key)
    ax.plot(xs, [scale * v for v in med], color=color,
            label=f"{label} (median of {len(runs)})" if len(runs) > 1 else label)
    if len(runs) > 1:
        ax.fill_between(xs, [scale * v for v in lo], [scale * v for v in hi], color=color,
                        alpha=0.2, lw=0)


def plot_seed_curves(groups, path, title=None):
    """Test accuracy and training loss versus iterations, one median line with a band
    (min to max across seeds) per group; ``groups`` maps a label to a list of run directories.
    """
    from .run_io import read_metrics

    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(10, 4), dpi=80)
    losses = []
    for i, (label, dirs) in enumerate(groups.items()):
        runs = [read_metrics(os.path.join(d, "metrics.jsonl")) for d in dirs]
        runs = [r for r in runs if r]
        if not runs:
            continue
        color, name = _style(i, label)
        draw_band(acc_ax, runs, "test_accuracy", color, name, scale=100)
        draw_band(loss_ax, runs, "train_loss", color, name)
        losses += [r["train_loss"] for rows in runs for r in rows
                   if r.get("train_loss") is not None and r["train_loss"] > 0]
    acc_ax.set_ylabel("test accuracy (%)")
    loss_ax.set_ylabel("training loss (window mean)")
    if losses and max(losses) / min(losses) > 20:
        loss_ax.set_yscale("log")
    for ax in (acc_ax, loss_ax):
        ax.set_xlabel("iterations")
        ax.grid(alpha=0.3)
    acc_ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def _grid_table(rows, xf, yf, score):
    """(x values, y values, median-over-seeds matrix with NaN where no run finished)."""
    import numpy as np

    xs = sorted({r[xf] for r in rows}, key=lambda v: (v is None, v))
    ys = sorted({r[yf] for r in rows}, key=lambda v: (v is None, v))
    z = np.full((len(ys), len(xs)), np.nan)
    for i, yv in enumerate(ys):
        for j, xv in enumerate(xs):
            vals = [r[score] for r in rows if r[xf] == xv and r[yf] == yv
                    and r["status"] == "finished" and r.get(score) is not None]
            if vals:
                z[i, j] = float(np.median(vals))
    return xs, ys, z


def plot_heatmap(rows, xf, yf, score, path, title=None, lower_is_better=None):
    """Median (over seeds) of ``score`` on the grid ``xf`` x ``yf``; cells where no run
    finished (diverged or failed) are left empty, as in the paper's Fig. 6a."""
    import numpy as np

    xs, ys, z = _grid_table(rows, xf, yf, score)
    if lower_is_better is None:
        lower_is_better = score in ("final_train_loss", "train_loss_auc")
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * len(xs), 1.2 + 0.6 * len(ys)), dpi=80)
    cmap = matplotlib.colormaps["viridis_r" if lower_is_better else "viridis"].with_extremes(
        bad="white")
    im = ax.imshow(np.ma.masked_invalid(z), cmap=cmap, origin="lower", aspect="auto")
    for i in range(len(ys)):
        for j in range(len(xs)):
            if np.isfinite(z[i, j]):
                ax.text(j, i, f"{z[i, j]:.3g}", ha="center", va="center", fontsize=7,
                        color="white" if im.norm(z[i, j]) < 0.5 else "black")
    ax.set_xticks(range(len(xs)), [f"{v:g}" if isinstance(v, float) else str(v) for v in xs])
    ax.set_yticks(range(len(ys)), [f"{v:g}" if isinstance(v, float) else str(v) for v in ys])
    ax.set_xlabel(xf)
    ax.set_ylabel(yf)
    fig.colorbar(im, ax=ax, label=f"{score} (median over seeds; empty = no finished run)")
    if title:
        ax.set_title(title, fontsize="medium")
    return save_figure(fig, path)


def plot_sweep(out, rows, fields, score="final_test_accuracy", max_curves=12):
    """A sweep's plots in ``out``: heatmap(s) of ``score`` over the first two grid fields (one
    per value combination of the others), and curves.png with seed bands; returns the paths."""
    import itertools

    paths = []
    if len(fields) >= 2:
        xf, yf, rest = fields[0], fields[1], fields[2:]
        combos = list(itertools.product(*({r[f]: None for r in rows}.keys() for f in rest)))
        for combo in combos[:max_curves]:
            sub = [r for r in rows if all(r[f] == v for f, v in zip(rest, combo))]
            tag = "_".join(f"{f}-{v}" for f, v in zip(rest, combo))
            paths.append(plot_heatmap(sub, xf, yf, score,
                                      os.path.join(out, f"heatmap{'_' + tag if tag else ''}.png"),
                                      title=", ".join(f"{f}={v}" for f, v in zip(rest, combo))))
    groups = {}
    for r in rows:
        label = ", ".join(f"{f}={r[f]:g}" if isinstance(r[f], float) else f"{f}={r[f]}"
                          for f in fields) or "runs"
        groups.setdefault(label, []).append(os.path.join(out, r["run_dir"]))
    if len(groups) <= max_curves:
        paths.append(plot_seed_curves(groups, os.path.join(out, "curves.png")))
    return paths


def plot_figure_seeds(out_dir, panels, methods, seeds, path, titles=None):
    """:func:`plot_figure` for runs with several seeds (``<panel>/<method>/seed-<s>/``): a
    median line with a min-max band per method."""
    from .run_io import read_metrics

    fig, axes = plt.subplots(2, len(panels), figsize=(4 * len(panels), 6), dpi=80, squeeze=False)
    for j, panel in enumerate(panels):
        for i, m in enumerate(methods):
            runs = [read_metrics(os.path.join(out_dir, panel, m, f"seed-{s}", "metrics.jsonl"))
                    for s in seeds]
            runs = [r for r in runs if r]
            if runs:
                color, label = _style(i, m)
                draw_band(axes[0, j], runs, "test_accuracy", color, label, scale=100)
                draw_band(axes[1, j], runs, "test_loss", color, label)
        axes[0, j].set_title((titles or {}).get(panel, panel))
        axes[0, j].set_ylabel("test accuracy (%)")
        axes[1, j].set_ylabel("test loss")
        axes[1, j].set_xlabel("iterations")
        for ax in axes[:, j]:
            ax.grid(alpha=0.3)
        axes[0, j].legend(fontsize="small")
    return save_figure(fig, path)
