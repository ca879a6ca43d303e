"""``tpref plot DIR [--diagnostics]``: a run directory's plots, redrawn from its files.

Without ``--diagnostics``: the run's curves (test accuracy and loss, tpref.plotting). With it:
the run's diagnostics (tpref.diagnostics) in one figure, DIR/diagnostics.png:

- top: log10 of BP's ||dloss/dh_t|| and of TP's ||lam_t|| / gamma_h, time step t (vertical)
  by iteration (horizontal), on one colour scale (lam_T = -gamma_h dloss/dh_T, so the two
  agree at t = T and their difference below shows how each carries the signal back in time);
- bottom: those norms against t at the first and last diagnosis; the cosine between TP's direction and BP's gradient per block and update, the
  spectral radius and extreme singular values of W_hh, and Lemma 3.1's bound against the
  actual ||BP - TP/gamma_h||.
"""

import os

import numpy as np

from .config import RNN_TRANSITION_NAMES
from .diagnostics import UPDATES, read_diagnostics


def plot_diagnostics(run_dir, path=None, title=None):
    """Draw the diagnostics of ``run_dir`` into ``path`` (default run_dir/diagnostics.png)."""
    from .plotting import save_figure  # importing plotting selects Agg
    import matplotlib.pyplot as plt

    records, its, bp, tp = read_diagnostics(run_dir)
    if not len(records):
        raise ValueError(f"{run_dir} holds no complete diagnosis yet")
    path = path or os.path.join(run_dir, "diagnostics.png")
    gamma_h = np.array([r["gamma_h"] for r in records])[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        maps = {"BP: log10 ||dloss/dh_t||  (white: exactly 0)": np.log10(bp).T,
                "TP: log10 ||lam_t|| / gamma_h  (white: exactly 0)": np.log10(tp / gamma_h).T}
    finite = np.concatenate([m[np.isfinite(m)] for m in maps.values()])
    vmin, vmax = (np.percentile(finite, 1), finite.max()) if finite.size else (-1, 0)
    fig = plt.figure(figsize=(16, 8.5), dpi=80)
    grid = fig.add_gridspec(2, 4, height_ratios=(1.15, 1))
    T = bp.shape[1] - 1
    x_lo, x_hi = its[0], its[-1] if len(its) > 1 else its[0] + 1
    for i, (label, m) in enumerate(maps.items()):
        ax = fig.add_subplot(grid[0, 2 * i:2 * i + 2])
        im = ax.imshow(m, origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax,
                       extent=(x_lo, x_hi, -0.5, T + 0.5), interpolation="nearest")
        ax.set_title(label, fontsize="medium")
        ax.set_xlabel("iteration")
        ax.set_ylabel("time step t (T at the top)")
        fig.colorbar(im, ax=ax, fraction=0.05)
    _profiles(fig.add_subplot(grid[1, 0]), its, bp, tp / gamma_h)
    _alignment(fig.add_subplot(grid[1, 1]), its, records)
    _spectrum(fig.add_subplot(grid[1, 2]), its, records)
    _lemma(fig.add_subplot(grid[1, 3]), its, records)
    fig.suptitle(title or f"diagnostics of {os.path.basename(os.path.abspath(run_dir))} "
                 f"(T = {T}, gamma_h {records[-1]['gamma_h']:g}, r {records[-1]['reg']:g})")
    return save_figure(fig, path)


def _values(records, key):
    return np.array([np.nan if r.get(key) is None else r[key] for r in records], dtype=float)


def _profiles(ax, its, bp, tp):
    """||dloss/dh_t|| and ||lam_t|| / gamma_h against t at the first and the last diagnosis."""
    t = np.arange(bp.shape[1])
    for i, ls in ((0, ":"), (len(its) - 1, "-")):
        ax.semilogy(t, bp[i], color="tab:blue", ls=ls, label=f"BP, iteration {its[i]}")
        ax.semilogy(t, tp[i], color="tab:red", ls=ls, label=f"TP / gamma_h, iteration {its[i]}")
    ax.set_xlabel("time step t")
    ax.set_ylabel("norm over the batch")
    ax.legend(fontsize="x-small")
    ax.grid(alpha=0.3, which="both")


def _alignment(ax, its, records):
    colors = dict(zip(RNN_TRANSITION_NAMES, ("tab:red", "tab:blue", "tab:green")))
    for u, ls in zip(UPDATES, ("-", "--")):
        for block in RNN_TRANSITION_NAMES:
            ax.plot(its, _values(records, f"cos_{u}_{block}"), ls=ls, color=colors[block],
                    label=f"{block} {u.replace('_', '-')}")
    ax.set_ylim(-1.05, 1.05)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("iteration")
    ax.set_ylabel("cosine(TP direction, BP gradient)")
    ax.legend(fontsize="x-small", ncol=2, loc="lower left")
    ax.grid(alpha=0.3)


def _spectrum(ax, its, records):
    ax.plot(its, _values(records, "spectral_radius"), color="k", label="spectral radius")
    ax.plot(its, _values(records, "sigma_max"), color="tab:purple", label="largest sing. value")
    ax.plot(its, _values(records, "sigma_min"), color="tab:orange", label="smallest sing. value")
    ax.axhline(1, color="gray", lw=0.5, ls=":")
    ax.set_xlabel("iteration")
    ax.set_ylabel("W_hh")
    ax.legend(fontsize="x-small")
    ax.grid(alpha=0.3)


def _lemma(ax, its, records):
    ax.semilogy(its, _values(records, "lemma_bound"), color="tab:gray",
                label="Lemma 3.1 bound (corrected)")
    ax.semilogy(its, _values(records, "lemma_actual"), color="tab:red",
                label="actual ||BP - TP/gamma_h||")
    ax.set_xlabel("iteration")
    ax.set_ylabel("transition parameters")
    ax.legend(fontsize="x-small")
    ax.grid(alpha=0.3, which="both")


# ----------------------------------------------------------------------------------------------
# the command


def register(subparsers):
    """Add ``tpref plot`` to the ``tpref`` parser."""
    p = subparsers.add_parser("plot", help="redraw a run directory's plots (--diagnostics: "
                                           "norms through time, alignment, W_hh, Lemma 3.1)")
    p.add_argument("run_dir", help="a run directory (tpref train's output)")
    p.add_argument("--diagnostics", action="store_true",
                   help="draw DIR/diagnostics.png from diagnostics.jsonl/.npz (a run trained "
                        "with --diagnostics N)")
    p.add_argument("--png", default=None, help="where to write the figure (default: in DIR)")
    p.set_defaults(func=run_plot)


def run_plot(args):
    """The ``plot`` command."""
    if not os.path.isdir(args.run_dir):
        raise ValueError(f"run directory {args.run_dir} does not exist")
    if args.diagnostics:
        png = plot_diagnostics(args.run_dir, args.png)
    else:
        from .plotting import plot_comparison

        run_dir = os.path.abspath(args.run_dir)
        if not os.path.exists(os.path.join(run_dir, "metrics.jsonl")):
            raise ValueError(f"{args.run_dir} holds no metrics.jsonl (not a run directory)")
        png = plot_comparison(os.path.dirname(run_dir), [os.path.basename(run_dir)],
                              path=args.png or os.path.join(run_dir, "curves.png"))
    print(f"plot: {png}")
    return 0
