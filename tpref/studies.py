"""The paper's grid studies (Fig. 6a, 6b) on the sweep engine, drawn like the paper's figures.

- ``fig6a``: TP on MNIST for 400 iterations over a log10 grid of step sizes gamma_theta and
  regularizations r (r = 0 included), gamma_h = 1e-3 (the paper's text; the authors' later
  code used 1e-4). Each point is scored by the area under the training-loss curve (smaller is
  brighter); diverged runs get no dot.
- ``fig6b``: BP and TP on MNIST for 400 iterations over widths (hidden sizes) and lengths
  (k pixels per step, length 784 / k). At each point each method's step size is chosen from a
  log grid by the smallest area under its training loss; the point is scored by the chosen
  run's test accuracy.

The grids are :data:`tpref.presets.STUDIES`; ``<name>-quick`` variants finish in minutes.
Output: the sweep's ``results.csv`` and cells (:mod:`tpref.sweeps`), ``table.md`` and
``<name>.png``.
"""

import math
import os
import sys

from .presets import STUDIES
from .sweeps import sweep


def restrict_grid(name, grid, only):
    """``grid`` with the fields of ``only`` cut down to the values given there, each of which
    must be one of the study's own (a ValueError names the field and the allowed values)."""
    grid = dict(grid)
    for field, values in (only or {}).items():
        if field not in grid:
            raise ValueError(f"--grid {field}: not a field of {name}'s grid; its fields: "
                             f"{', '.join(grid)}")
        bad = [v for v in values if v not in grid[field]]
        if bad:
            raise ValueError(f"--grid {field}: {', '.join(map(str, bad))} not in {name}'s grid "
                             f"({', '.join(f'{v:g}' if isinstance(v, float) else str(v) for v in grid[field])})")
        grid[field] = [v for v in grid[field] if v in values]
    return grid


def run_study(name, out, *, data_dir=None, backend=None, seed=0, iterations=None,
              workers=None, scheduler=None, stream=None, plot_only=False, only=None):
    """Run (or resume) study ``name`` into ``out``; write table.md and the figure; return
    (table text, figure path).

    ``only`` ({field: values}) runs a part of the grid: each value must be one of the study's;
    the table and figure keep the study's full axes, the points not run shown empty.
    """
    from .sweeps import read_results
    from .train import default_backend

    if name not in STUDIES:
        raise ValueError(f"unknown study {name!r}; choose one of {sorted(STUDIES)}")
    stream = stream if stream is not None else sys.stdout
    study = STUDIES[name]
    base = dict(study.base, data_dir=data_dir, backend=backend or default_backend(), seed=seed)
    if iterations:
        base.update(iterations=iterations, checkpoint_every=min(iterations,
                                                                base["checkpoint_every"]))
    grid = restrict_grid(name, {**{k: list(v) for k, v in study.grid.items()},
                                **{k: list(v) for k, v in study.select.items()}}, only)
    if plot_only:
        rows = read_results(os.path.join(out, "results.csv"))
    else:
        n = math.prod(len(v) for v in grid.values())
        part = "".join(f"; only {k}={','.join(map(str, v))}" for k, v in (only or {}).items())
        print(f"{name}: {n} runs ({study.note}{part}); {base['iterations']} iterations each; "
              f"results in {out}", file=stream, flush=True)
        rows = sweep(grid, out, base=base, workers=workers, scheduler=scheduler, plot=False)
    if name.startswith("fig6a"):
        table, png = fig6a_table(rows), plot_fig6a(rows, os.path.join(out, f"{name}.png"),
                                                   title=_title(name, base))
    else:
        best = select_best(rows, list(study.grid), list(study.select))
        table = fig6b_table(best, study)
        png = plot_fig6b(best, study, os.path.join(out, f"{name}.png"), title=_title(name, base))
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(table)
    print(table, file=stream)
    print(f"figure: {png}", file=stream)
    return table, png


def _title(name, base):
    k = base.get("pixels_per_step", 1)
    extra = (f", {k} pixel{'s' if k > 1 else ''}/step (T={784 // k}), gamma_h "
             f"{base['gamma_h']:g}" if name.startswith("fig6a") else "")
    return (f"{name}: MNIST, {base['iterations']} iterations, batch {base['batch_size']}"
            f"{extra}, seed {base['seed']}")


# ----------------------------------------------------------------------------------------------
# Fig. 6a


def fig6a_table(rows):
    """Markdown: area under the training loss (mean training loss) for each (r, gamma_theta);
    "div." where the run diverged."""
    lrs = sorted({r["lr"] for r in rows})
    regs = sorted({r["reg"] for r in rows})
    lines = ["| r \\ gamma_theta | " + " | ".join(f"{v:g}" for v in lrs) + " |",
             "|---|" + "---|" * len(lrs)]
    for reg in regs:
        cells = []
        for lr in lrs:
            r = next(x for x in rows if x["lr"] == lr and x["reg"] == reg)
            cells.append(f"{r['train_loss_auc']:.3f}" if r["train_loss_auc"] is not None
                         else ("div." if r["status"] == "diverged" else r["status"]))
        lines.append(f"| {reg:g} | " + " | ".join(cells) + " |")
    n_div = {reg: sum(r["status"] == "diverged" for r in rows if r["reg"] == reg) for reg in regs}
    lines.append("")
    lines.append("Diverged runs per r: " + ", ".join(f"r={k:g}: {v}/{len(lrs)}"
                                                     for k, v in n_div.items()))
    return "\n".join(lines) + "\n"


def plot_fig6a(rows, path, title=None):
    """Dots on the (gamma_theta, r) log grid, brighter for a smaller area under the training
    loss, no dot where the run diverged (the paper's Fig. 6a)."""
    import numpy as np

    from .plotting import save_figure  # importing plotting selects Agg
    import matplotlib.pyplot as plt

    lrs = sorted({r["lr"] for r in rows})
    regs = sorted({r["reg"] for r in rows})
    pts = [(lrs.index(r["lr"]), regs.index(r["reg"]), r["train_loss_auc"]) for r in rows
           if r["train_loss_auc"] is not None]
    fig, ax = plt.subplots(figsize=(max(6.0, 2.5 + 0.7 * len(lrs)), 1.8 + 0.5 * len(regs)),
                           dpi=80)
    if pts:
        x, y, z = (np.array(v) for v in zip(*pts))
        sc = ax.scatter(x, y, c=z, cmap="viridis_r", s=260, edgecolors="k", linewidths=0.5)
        fig.colorbar(sc, ax=ax, label="training-loss area / iterations")
    ax.set_xticks(range(len(lrs)), [f"{v:g}" for v in lrs])
    ax.set_yticks(range(len(regs)), [f"{v:g}" for v in regs])
    ax.set_xlim(-0.5, len(lrs) - 0.5)
    ax.set_ylim(-0.5, len(regs) - 0.5)
    ax.set_xlabel("step size gamma_theta")
    ax.set_ylabel("regularization r")
    ax.grid(alpha=0.3)
    ax.set_title((title or "").replace(", batch", ",\nbatch")
                 + "\nbrighter = smaller area; no dot = diverged", fontsize="small")
    return save_figure(fig, path)


# ----------------------------------------------------------------------------------------------
# Fig. 6b


def select_best(rows, axes, select):
    """For each point of ``axes`` (method included), the row whose ``select`` values give the
    smallest area under the training loss among runs that finished (None if none did)."""
    points = {}
    for r in rows:
        key = tuple(r[a] for a in axes)
        points.setdefault(key, [])
        if r["status"] == "finished" and r["train_loss_auc"] is not None:
            points[key].append(r)
    return {k: min(v, key=lambda r: r["train_loss_auc"]) if v else None
            for k, v in points.items()}


def fig6b_table(best, study):
    """Markdown: test accuracy of BP and TP (step size chosen) at each length x width."""
    ks, widths = study.grid["pixels_per_step"], study.grid["hidden"]
    lines = ["| length (k pixels/step) | " + " | ".join(f"width {w}" for w in widths) + " |",
             "|---|" + "---|" * len(widths)]

    def cell(k, w):
        parts = []
        for m in ("bp", "tp"):
            r = best.get((k, w, m))
            parts.append(f"{m.upper()} -" if r is None else
                         f"{m.upper()} {100 * r['final_test_accuracy']:.1f}% (lr {r['lr']:g})")
        return " / ".join(parts)

    for k in ks:
        lines.append(f"| {784 // k} ({k}) | " + " | ".join(cell(k, w) for w in widths) + " |")
    wins = [(k, w) for k in ks for w in widths
            if best.get((k, w, "tp")) and best.get((k, w, "bp"))
            and best[(k, w, "tp")]["final_test_accuracy"] > best[(k, w, "bp")]["final_test_accuracy"]]
    both = [(k, w) for k in ks for w in widths if best.get((k, w, "tp")) and best.get((k, w, "bp"))]
    lines.append("")
    lines.append(f"TP ahead at {len(wins)} of {len(both)} points; by length: " +
                 ", ".join(f"T={784 // k}: {sum(1 for kk, _ in wins if kk == k)}/"
                           f"{sum(1 for kk, _ in both if kk == k)}" for k in ks))
    return "\n".join(lines) + "\n"


def plot_fig6b(best, study, path, title=None):
    """Three panels over length x width: BP's and TP's test accuracy (step size chosen per
    point) and their difference TP - BP (red: TP better, blue: BP better)."""
    import numpy as np

    from .plotting import save_figure  # importing plotting selects Agg
    import matplotlib.pyplot as plt

    ks, widths = study.grid["pixels_per_step"], study.grid["hidden"]
    acc = {m: np.array([[best[(k, w, m)]["final_test_accuracy"] * 100 if best.get((k, w, m))
                         else np.nan for w in widths] for k in ks]) for m in ("bp", "tp")}
    diff = acc["tp"] - acc["bp"]
    fig, axes = plt.subplots(1, 3, figsize=(4 + 2.2 * len(widths), 1.5 + 0.5 * len(ks)), dpi=80)
    lim = np.nanmax(np.abs(diff)) if np.isfinite(diff).any() else 1.0
    for ax, (label, z, cmap, vmin, vmax) in zip(axes, (
            ("BP test accuracy (%)", acc["bp"], "viridis", 0, 100),
            ("TP test accuracy (%)", acc["tp"], "viridis", 0, 100),
            ("TP - BP (points of %)", diff, "RdBu_r", -lim, lim))):
        im = ax.imshow(np.ma.masked_invalid(z), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
        for i in range(len(ks)):
            for j in range(len(widths)):
                if np.isfinite(z[i, j]):
                    ax.text(j, i, f"{z[i, j]:.0f}", ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(widths)), [str(w) for w in widths])
        ax.set_yticks(range(len(ks)), [str(784 // k) for k in ks])
        ax.set_xlabel("width (hidden size)")
        ax.set_ylabel("length T = 784 / k")
        ax.set_title(label, fontsize="small")
        fig.colorbar(im, ax=ax)
    if title:
        fig.suptitle(title + "; step size per point by smallest training-loss area",
                     fontsize="small")
    return save_figure(fig, path)
