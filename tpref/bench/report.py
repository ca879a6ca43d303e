"""What ``tpref bench`` writes: the TP/BP sweep plot and Markdown tables of bench.json."""

import numpy as np

from .configs import SWEEP_P


def plot_sweep(rows, path):
    """TP/BP - 1 against p/T (log-log), with the paper's claim TP/BP - 1 ~ p/T as a guide."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ..plotting import save_figure

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for dtype, marker in (("float32", "o"), ("float64", "s")):
        rs = [r for r in rows if r["dtype"] == dtype]
        if not rs:
            continue
        pt = np.array([r["p"] / r["T"] for r in rs])
        excess = np.array([r["tp_over_bp_paired"] - 1.0 for r in rs])
        axes[0].scatter(pt, np.maximum(excess, 1e-3), marker=marker, label=f"TP {dtype}")
        excess_d = np.array([r["dtp_over_bp_paired"] - 1.0 for r in rs])
        axes[0].scatter(pt, np.maximum(excess_d, 1e-3), marker=marker, facecolors="none",
                        edgecolors="gray", label=f"DTP {dtype}")
        if all("tp_lam_over_bp_paired" in r for r in rs):
            excess_l = np.array([r["tp_lam_over_bp_paired"] - 1.0 for r in rs])
            axes[0].scatter(pt, np.maximum(excess_l, 1e-3), marker=marker, facecolors="none",
                            edgecolors="C3", label=f"TP + displacements read, {dtype}")
        for r in rs:
            axes[1].errorbar(r["T"], r["tp_over_bp_paired"],
                             yerr=[[r["tp_over_bp_paired"] - r["tp_over_bp_paired_q"][0]],
                                   [r["tp_over_bp_paired_q"][1] - r["tp_over_bp_paired"]]],
                             fmt="none", ecolor="gray", lw=0.8)
            axes[1].scatter(r["T"], r["tp_over_bp_paired"], marker=marker,
                            c=f"C{SWEEP_P.index(r['p']) if r['p'] in SWEEP_P else 0}")
    for i, p in enumerate(SWEEP_P):
        axes[1].scatter([], [], c=f"C{i}", label=f"p={p}")
    axes[1].scatter([], [], c="gray", marker="o", label="float32")
    axes[1].scatter([], [], c="gray", marker="s", label="float64")
    g = np.geomspace(5e-3, 20, 50)
    axes[0].plot(g, g / 4, "k--", lw=1, label="slope 1: (TP/BP - 1) ~ p/T")
    axes[0].set(xscale="log", yscale="log", xlabel="p / T",
                ylabel="TP/BP - 1 (median of paired CPU ratios)",
                title="TP overhead vs p/T (clipped at 1e-3)")
    axes[0].legend(fontsize=7)
    axes[1].axhline(1.0, color="k", lw=0.8)
    axes[1].axhline(1.1, color="r", lw=0.8, ls=":", label="1.10 target")
    axes[1].set(xscale="log", xlabel="T (colour: p)", ylabel="TP / BP (paired, quartiles)",
                title="TP / BP per iteration, numba backend")
    axes[1].legend(fontsize=7)
    save_figure(fig, path, dpi=120)


def markdown(results):
    """Markdown tables of a results dict (as written to bench.json), for docs/benchmarks.md."""
    lines = []
    g = results["gemm_gflops"]
    lines.append("GEMM rate measured in this run (GFLOP/s): " + "; ".join(
        f"{dt}: " + ", ".join(f"{k} {v:.1f}" for k, v in r.items()) for dt, r in g.items()))
    lines.append("")
    for res in results["configs"]:
        dv = res["derived"]
        lines.append(f"### {res['config']} {res['dtype']} (T={res['T']}, B={res['B']}, d={res['d']}, "
                     f"p={res['p']}, k={res['k']}, {res['loss']})")
        lines.append("")
        lines.append("| backend | check (max rel err) | wall median ms [q25, q75] | CPU median ms | n |")
        lines.append("|---|---|---|---|---|")
        for b, v in res["times"].items():
            c = res["check"].get(b.replace(" [ftz]", ""), {})
            w = v["wall"]
            chk = f"{c['max_rel_err']:.1e}" if c else ""
            lines.append(f"| {b} | {chk} | {w['median']:.2f} [{w['q25']:.2f}, {w['q75']:.2f}] | "
                         f"{v['cpu']['median']:.2f} | {w['n']} |")
        lines.append("")
        lines.append("; ".join(
            f"{clock}: " + ", ".join(f"{k} {x:.2f}" for k, x in dv[clock].items())
            for clock in ("cpu", "wall")))
        lines.append("")
    if results.get("sweep"):
        lines.append("### sweep (numba backend, median CPU ms; TP/BP from CPU medians, and the "
                     "median of paired per-repetition CPU ratios)")
        lines.append("")
        lines.append("| dtype | T | p | p/T | BP | TP | DTP | TP/BP | TP/BP (wall) "
                     "| TP/BP paired [q25, q75] | TP+lam read / BP paired |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in results["sweep"]:
            c = r["cpu_median_ms"]
            lines.append(f"| {r['dtype']} | {r['T']} | {r['p']} | {r['p'] / r['T']:.3f} | {c['bp']:.2f} | "
                         f"{c['tp']:.2f} | {c['dtp']:.2f} | {r['tp_over_bp']:.3f} | {r['tp_over_bp_wall']:.3f} | "
                         f"{r['tp_over_bp_paired']:.3f} [{r['tp_over_bp_paired_q'][0]:.3f}, "
                         f"{r['tp_over_bp_paired_q'][1]:.3f}] | "
                         f"{r.get('tp_lam_over_bp_paired', float('nan')):.3f} |")
        lines.append("")
    return "\n".join(lines)


def _axis_rows(rows, axis, dtype):
    """The grid rows along ``axis`` ("T", "p" or "B"), the centre included, sorted by it."""
    rs = [r for r in rows if r["dtype"] == dtype and r["axis"] in (axis, "base")]
    return sorted(rs, key=lambda r: r[axis])


def plot_grid(rows, path, base):
    """Ratios against T, p and B (one axis varied at a time around ``base``, a dict T, p, B
    -> value): torch.nn.RNN / BP above, with
    torch / roofline (the most any BP could gain); TP (local, through time) and DTP over BP
    below, with the targets as dotted lines."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ..plotting import save_figure

    fig, axes = plt.subplots(2, 3, figsize=(13, 7), sharey="row")
    for j, axis in enumerate(("T", "p", "B")):
        for dtype, ls in (("float32", "-"), ("float64", "--")):
            rs = _axis_rows(rows, axis, dtype)
            if not rs:
                continue
            xs = [r[axis] for r in rs]

            def line(ax, key, label, color, marker="o"):
                # a paired ratio's median, or a number of the row itself (torch / roofline)
                vals = [(x, r["paired"][key]["median"] if key in r["paired"] else r.get(key))
                        for x, r in zip(xs, rs)]
                vals = [(x, v) for x, v in vals if v is not None]
                if vals:
                    ax.plot(*zip(*vals), ls=ls, marker=marker, color=color,
                            label=f"{label} {dtype}")

            line(axes[0, j], "torch_over_bp", "torch/BP", "C0")
            line(axes[0, j], "torch_over_roofline", "torch/roofline", "C7", "x")
            line(axes[1, j], "tp_over_bp", "TP local/BP", "C1")
            line(axes[1, j], "tp_tt_over_bp", "TP through_time/BP", "C2")
            line(axes[1, j], "dtp_over_bp", "DTP/BP", "C3", "s")
        fixed = ", ".join(f"{k} {v}" for k, v in base.items() if k != axis)
        axes[0, j].axhline(3.0, color="k", lw=0.8, ls=":")
        axes[1, j].axhline(1.1, color="k", lw=0.8, ls=":")
        axes[1, j].axhline(1.2, color="C3", lw=0.8, ls=":")
        axes[0, j].set(xscale="log", title=f"along {axis} ({fixed})")
        axes[1, j].set(xscale="log", xlabel=axis)
    axes[0, 0].set_ylabel("torch.nn.RNN / numba BP (paired CPU)")
    axes[1, 0].set_ylabel("method / numba BP (paired CPU)")
    axes[0, 0].legend(fontsize=7)
    axes[1, 0].legend(fontsize=7)
    save_figure(fig, path, dpi=110)


def grid_markdown(results):
    """Markdown tables of a ``tpref bench --grid`` run, one per target of issue 17 (BP against
    torch.nn.RNN, TP over BP, DTP over BP), float32 and float64 side by side, with verdicts."""
    rows = results["grid"]
    dtypes = list(dict.fromkeys(r["dtype"] for r in rows))
    points = list(dict.fromkeys(r["point"] for r in rows))
    at = {(r["point"], r["dtype"]): r for r in rows}

    def pr(r, key):
        v = r["paired"].get(key) if r else None
        return v["median"] if v else None

    def f(v, fmt="{:.2f}"):
        return "" if v is None else fmt.format(v)

    def verdict(point, key):
        out = []
        for dt in dtypes:
            v = at.get((point, dt), {}).get("verdicts", {}).get(key)
            out.append("" if v is None else ("met" if v["met"] else "**not met**"))
        return " / ".join(out)

    def shape(point):
        r = next(at[(point, dt)] for dt in dtypes if (point, dt) in at)
        return f"| {point} | {r['T']} | {r['B']} | {r['p']} |"

    d = " / ".join(dtypes)
    lines = [f"BP against torch.nn.RNN autograd ({d}; roof: the point's roofline):", "",
             "| point | T | B | p | torch/BP | BP/roof | torch/roof | target | verdict |",
             "|---|---|---|---|---|---|---|---|---|"]
    for point in points:
        rs = [at.get((point, dt)) for dt in dtypes]
        vs = [r["verdicts"].get("bp") if r else None for r in rs]
        target = next((v["target"].split(" (")[0] for v in vs if v), "")
        lines.append(shape(point) + " " + " | ".join(
            " / ".join(f(x) for x in xs) for xs in (
                [pr(r, "torch_over_bp") for r in rs], [r and r.get("bp_over_roofline") for r in rs],
                [r and r.get("torch_over_roofline") for r in rs])) + f" | {target} | "
            f"{verdict(point, 'bp')} |")
    lines += ["", f"Where BP's time goes ({d}; ms of thread CPU time, medians): its forward and "
              "backward kernels timed alone in the same alternation, each over its part of the "
              "roofline, and the rest of the call (checks, copies, output layer, result):", "",
              "| point | T | B | p | BP ms | forward ms | forward/roof | backward ms | "
              "backward/roof | rest ms | rest/BP |", "|---" * 11 + "|"]
    for point in points:
        rs = [at.get((point, dt)) for dt in dtypes]
        sp = [r.get("bp_split") if r else None for r in rs]

        def col(fn, fmt="{:.2f}"):
            return " / ".join(f(fn(r, s) if s else None, fmt) for r, s in zip(rs, sp))
        lines.append(shape(point) + " " + " | ".join((
            col(lambda r, s: r["cpu_ms"]["bp"]["median"]),
            col(lambda r, s: s["forward_ms"]),
            col(lambda r, s: s["forward_ms"] / s["forward_roof_ms"]),
            col(lambda r, s: s["backward_ms"]),
            col(lambda r, s: s["backward_ms"] / s["backward_roof_ms"]),
            col(lambda r, s: s["rest_ms"], "{:.3f}"),
            col(lambda r, s: s["rest_ms"] / r["cpu_ms"]["bp"]["median"], "{:.3f}"))) + " |")
    lines += ["", f"TP over BP, update local and through_time ({d}); at T < p the limit is "
              "1 + encoding/BP + 0.05; extra GEMM/BP: through_time's second per-step product "
              "at the probe's rate, over BP:", "",
              "| point | T | B | p | TP local/BP | TP through_time/BP | encoding/BP | "
              "extra GEMM/BP | limit | local | through_time |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for point in points:
        rs = [at.get((point, dt)) for dt in dtypes]
        vs = [r["verdicts"].get("tp") for r in rs if r and "tp" in r["verdicts"]]
        limit = " / ".join(v["target"].split("= ")[-1].replace("<= ", "") for v in vs)
        lines.append(shape(point) + " " + " | ".join(
            " / ".join(f(pr(r, key), "{:.3f}") for r in rs)
            for key in ("tp_over_bp", "tp_tt_over_bp", "encoding_over_bp"))
            + " | " + " / ".join(f(r and r.get("tp_tt_extra_gemm_over_bp"), "{:.3f}") for r in rs)
            + f" | {limit} | {verdict(point, 'tp')} | {verdict(point, 'tp_tt')} |")
    lines += ["", f"DTP over BP ({d}; target <= 1.20):", "",
              "| point | T | B | p | DTP/BP | verdict |", "|---|---|---|---|---|---|"]
    for point in points:
        rs = [at.get((point, dt)) for dt in dtypes]
        lines.append(shape(point) + " " + " / ".join(f(pr(r, "dtp_over_bp"), "{:.3f}") for r in rs)
                     + f" | {verdict(point, 'dtp')} |")
    n_met = sum(v["met"] for r in rows for v in r["verdicts"].values())
    n_all = sum(len(r["verdicts"]) for r in rows)
    lines += ["", f"Targets met: {n_met} of {n_all} (point x dtype x target). Ratios: medians of "
              "per-repetition ratios of thread CPU time (tpref.bench.grid)."]
    return "\n".join(lines)
