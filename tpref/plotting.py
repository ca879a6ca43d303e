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


def _style(index, method):
    """(color, label) of the run ``method``, the ``index``-th on its axes."""
    if method in COLORS:
        return COLORS[method], method.upper()
    return EXTRA_COLORS[index % len(EXTRA_COLORS)], method


def _load(panel_dir, methods):
    from .train import read_metrics

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
    fig.tight_layout()
    path = path or os.path.join(panel_dir, "compare.png")
    fig.savefig(path)
    plt.close(fig)
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
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
