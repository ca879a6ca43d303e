"""Redraw docs/figures/ from the runs of docs/results.md (run from the repository root).

    PYTHONPATH=. python docs/make_figures.py [RUNS_DIR]

Reads only the runs' metrics.jsonl files (RUNS_DIR defaults to ./runs).
"""

import os
import shutil
import sys

from tpref.plotting import plot_comparison, plot_figure

runs = sys.argv[1] if len(sys.argv) > 1 else "runs"
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "figures")
os.makedirs(out, exist_ok=True)

print(plot_figure(os.path.join(runs, "fig3"), ("temporal-order-60", "temporal-order-120", "adding-30"),
                  ("bp", "tp"), os.path.join(out, "fig3.png")))
print(plot_figure(os.path.join(runs, "fig4"), ("mnist", "pmnist", "cifar10"), ("bp", "tp"),
                  os.path.join(out, "fig4.png")))


def variants(name, members, title):
    """Plot runs from several directories side by side, under the given labels."""
    d = os.path.join(runs, "variants", name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for label, src in members.items():
        os.symlink(os.path.abspath(src), os.path.join(d, label))
    print(plot_comparison(d, list(members), title=title, path=os.path.join(out, f"{name}.png")))


variants("temporal-order-60-variants", {
    "bp": os.path.join(runs, "fig3", "temporal-order-60", "bp"),
    "tp": os.path.join(runs, "fig3", "temporal-order-60", "tp"),
    "tp-through-time": os.path.join(runs, "fig3-through-time", "temporal-order-60", "tp"),
}, "temporal order T=60: BP (lr 1e-5), TP Eq. (3), TP through time (authors' code)")
variants("temporal-order-120-variants", {
    "bp": os.path.join(runs, "fig3", "temporal-order-120", "bp"),
    "tp": os.path.join(runs, "fig3", "temporal-order-120", "tp"),
    "tp-through-time": os.path.join(runs, "fig3-through-time", "temporal-order-120", "tp"),
}, "temporal order T=120: BP (lr 1e-5), TP Eq. (3), TP through time (authors' code)")
sweep = {f"bp-lr{lr}": os.path.join(runs, "bp-lr-sweep", f"lr{lr}") for lr in ("1e-4", "1e-3", "1e-2")}
sweep["bp-lr1e-3-no-momentum"] = os.path.join(runs, "bp-lr-sweep", "lr1e-3-no-momentum")
variants("bp-lr-sweep-t60", sweep, "temporal order T=60: BP, Nesterov momentum 0.9 unless said otherwise")
