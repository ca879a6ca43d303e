"""``tpref bench --grid``: BP against torch.nn.RNN, and every TP variant against BP, over a grid
of shapes, each point with its own roofline (issue 17's targets).

The grid varies one axis at a time around T = 400, p = 100, B = 16 (:data:`GRID_AXES`), and
adds pixel MNIST (T 784, B 16, p 100) and the temporal-order shapes (T 60 and 120, B 20,
p 100); the problem is MNIST's (d = 1, k = 10, cross entropy, its TP steps) unless the point
is a preset's own. At every point and dtype:

1. every backend is validated against the NumPy reference (``validation.validate``; TP with
   ``update="through_time"`` too); one that fails is not timed;
2. torch.nn.RNN autograd, numba BP, TP (local), TP (through time), DTP, the encoding of the
   inverse alone (``regularized_pinv_map``: the p^3 term of T_TP ~ p^3 + T_BP) and three probes
   are timed in one alternation (``timing.time_alternating``, one thread);
3. ratios are medians of per-repetition ratios of thread CPU time (``timing.paired_ratio``);
4. the roofline of one BP iteration at that point is its GEMM flops at the best rate this
   machine reaches for their shapes, measured by probes in the same alternation, plus the
   activation: 4 T B p^2 + 2 T B p d flops of per-step (B, p) x (p, p) products (forward and
   dL/dh recursion) at the per-step probe's rate, 2 T B p^2 + 2 T B p d flops of parameter
   products at the better of two (p, rows) x (rows, p) probes, and T B p tanh at ``vtanh``'s
   measured cost per element.

Targets (:func:`verdicts`): torch/BP >= 3 (>= 4.5 at pixel MNIST), or, where torch is already
within 3x of the roofline, BP within 1.3x of it; at T >= p, TP/BP <= 1.10 for both updates;
at T < p (the temporal-order shapes), TP/BP <= 1 + encoding/BP + 0.05; DTP/BP <= 1.20.
Nothing is asserted: the verdicts are reported.
"""

import json
import os

import numpy as np

from .configs import CONFIGS, bp_flops, make_problem
from .peers import torch_or_none, torch_runner, tpref_runner
from .report import grid_markdown, plot_grid
from .timing import gemm_probes, paired_ratio, summarize, time_alternating
from .validation import validate

#: The centre of the grid and the values each axis takes (one axis varied at a time).
GRID_BASE = {"T": 400, "p": 100, "B": 16}
GRID_AXES = {"T": (100, 400, 1600, 3200), "p": (32, 100, 256, 512), "B": (1, 16, 64, 256)}
#: Points added to the grid as they are: (name, bench configuration).
GRID_EXTRA = ("mnist", "temporal60", "temporal120")
#: Methods timed against numba BP, by the label they carry in the results.
METHODS = {"tp": ("tp", "local"), "tp_tt": ("tp", "through_time"), "dtp": ("dtp", "local")}
#: Targets: torch/BP (pixel MNIST's own), BP/roofline where 3x is out of reach, TP/BP, DTP/BP,
#: the slack over the encoding's share where T < p.
TARGETS = {"torch_over_bp": 3.0, "torch_over_bp_mnist": 4.5, "bp_over_roofline": 1.3,
           "tp_over_bp": 1.10, "dtp_over_bp": 1.20, "tp_slack_t_lt_p": 0.05}


def grid_points(axes=None, base=None, extra=GRID_EXTRA):
    """[(name, axis, cfg)]: the centre once, each axis's other values, then ``extra``.

    ``axis`` is "T", "p" or "B" for a point of an axis (the centre: "base"), else the extra
    point's name.
    """
    axes = GRID_AXES if axes is None else axes
    base = GRID_BASE if base is None else base
    template = CONFIGS["mnist"]
    points = [("base", "base", dict(template, **base))]
    for axis, values in axes.items():
        for v in values:
            if v != base[axis]:
                cfg = dict(template, **dict(base, **{axis: v}))
                points.append((f"{axis}={v}", axis, cfg))
    points += [(name, name, dict(CONFIGS[name])) for name in extra]
    return points


def _probes(cfg, dtype, n_steps):
    """name -> (callable, flops or element count, kind): the roofline's probes at this shape."""
    from ..kernels.numba_math import vtanh_array
    from ..kernels.numba_rnn import block_rows

    B, p = cfg["B"], cfg["p"]
    steps_name = f"gemm probe steps {B}x{p}x{p}"
    fn, flops = gemm_probes(dtype, p=p, B=B, n_steps=n_steps, n_square=8)[steps_name]
    out = {"probe steps": (fn, flops, "steps")}
    rng = np.random.default_rng(1)
    for rows in sorted({block_rows(p), 2048}):
        # two arrays, as the kernels' Delta^T H: NumPy computes a.T @ a (one array) with
        # syrk, half the flops, which made this probe's rate up to 1.5x what a product of
        # two arrays reaches (float32, 2048 rows, OpenBLAS's Haswell kernels: 140 vs 93 GFLOP/s)
        a, b = (rng.standard_normal((rows, p)).astype(dtype) for _ in range(2))
        out[f"probe block {rows}"] = (lambda a=a, b=b: a.T @ b, 2.0 * rows * p * p, "block")
    u = rng.uniform(-3.0, 3.0, size=(min(cfg["T"], 64), B, p)).astype(dtype)
    h = np.empty_like(u)
    out["probe tanh"] = (lambda: vtanh_array(u, h), u.size, "tanh")
    return out


def roofline_ms(cfg, rates):
    """The roofline of one BP iteration (ms) from the probes' rates: per-step GEMM flops at
    ``rates["steps"]`` GFLOP/s, parameter products at ``rates["block"]``, T B p tanh at
    ``rates["tanh_ns"]`` ns each."""
    T, B, d, p = cfg["T"], cfg["B"], cfg["d"], cfg["p"]
    step_flops = 4.0 * T * B * p * p + 2.0 * T * B * p * d
    param_flops = bp_flops(cfg) - step_flops
    return (step_flops / rates["steps"] + param_flops / rates["block"]) * 1e-6 \
        + T * B * p * rates["tanh_ns"] * 1e-6


def roofline_split_ms(cfg, rates):
    """The roofline of BP's two kernels (ms): the forward (its per-step products and the
    activation) and the backward (the dL/dh recursion's per-step products and the parameter
    products); they sum to :func:`roofline_ms`."""
    T, B, d, p = cfg["T"], cfg["B"], cfg["d"], cfg["p"]
    step = 2.0 * T * B * p * p + 2.0 * T * B * p * d
    forward = step / rates["steps"] * 1e-6 + T * B * p * rates["tanh_ns"] * 1e-6
    backward = (step / rates["steps"] + (bp_flops(cfg) - 2 * step) / rates["block"]) * 1e-6
    return forward, backward


def bp_kernels(params, x, y, cfg):
    """Runners of BP's two kernels alone, on this point's data: "bp forward"
    (``numba_rnn.rnn_forward``) and "bp backward" (``numba_rnn._bp_backward``, from the
    output layer's dl/dh_T); what a BP call spends beyond them is its fixed cost (checks,
    copies, output layer, result)."""
    from ..kernels import numba_rnn
    from ..kernels.core import flush_tiny

    dt = params["W_hh"].dtype
    T, B, p, d = x.shape[0], x.shape[1], params["W_hh"].shape[0], x.shape[2]
    hidden = np.empty((T + 1, B, p), dt)
    numba_rnn.rnn_forward(params, x, out=hidden)
    y = y.astype(np.intp) if y.dtype.kind in "iu" else y
    g_T = numba_rnn.fast_output_backward(params, hidden[-1], y, cfg["loss"])[3]
    out = np.empty((p, p), dt), np.empty((p, d), dt), np.empty(p, dt)
    args = (params["W_hh"], hidden, x, g_T, False, flush_tiny(dt), numba_rnn._chunk(T, B, p))
    return {"bp forward": lambda: numba_rnn.rnn_forward(params, x, out=hidden),
            "bp backward": lambda: numba_rnn._bp_backward(*args, *out)}


def bench_point(name, axis, cfg, dtype, repeats, with_torch=True, log=print):
    """Validate, then time torch, BP, the TP variants, the encoding and the probes at one point."""
    from ..kernels.numba_rnn import regularized_pinv_map

    dt = np.dtype(dtype)
    params, x, y = make_problem(cfg, dt)
    names = ["tpref numba bp", "tpref numba tp", "tpref numba dtp"]
    if with_torch and torch_or_none() is not None:
        names.append("torch nn.RNN")
    check = validate(cfg, dt, names)
    check["tpref numba tp_tt"] = validate(cfg, dt, ["tpref numba tp"],
                                          update="through_time")["tpref numba tp"]
    bad = [b for b, v in check.items() if not v["ok"]]
    if bad:
        log(f"  {name} {dt.name}: FAILED validation, not timed: {bad}")
    runners = {"bp": tpref_runner("bp", "numba", params, x, y, cfg)}
    for label, (method, update) in METHODS.items():
        runners[label] = tpref_runner(method, "numba", params, x, y, cfg, update=update)
    if "torch nn.RNN" in check:
        runners["torch"] = torch_runner(params, x, y, cfg, cell=False)
    for label in list(runners):
        if not check["torch nn.RNN" if label == "torch" else f"tpref numba {label}"]["ok"]:
            del runners[label]
    W_hh = params["W_hh"]
    runners["encoding"] = lambda: regularized_pinv_map(W_hh, cfg["reg"])
    if "bp" in runners:
        runners.update(bp_kernels(params, x, y, cfg))
    # the per-step probe does ~T steps (at least 200), so it lasts about a forward pass
    probes = _probes(cfg, dt, n_steps=max(200, cfg["T"]))
    runners.update({b: fn for b, (fn, _, _) in probes.items()})
    samples = time_alternating(runners, repeats)
    cpu = {b: s["cpu_ms"] for b, s in samples.items()}
    rates = {"steps": 0.0, "block": 0.0, "tanh_ns": np.inf}
    for b, (_, amount, kind) in probes.items():
        ms = summarize(cpu[b])["median"]
        if kind == "tanh":
            rates["tanh_ns"] = ms * 1e6 / amount
        else:
            rates[kind] = max(rates[kind], amount / (ms * 1e6))
    rates["block"] = max(rates["block"], rates["steps"])
    roof = roofline_ms(cfg, rates)
    times = {b: summarize(cpu[b]) for b in runners if b not in probes}
    row = {"point": name, "axis": axis, "dtype": dt.name, **cfg, "n": repeats,
           "check": check, "cpu_ms": times, "rates": rates, "roofline_ms": roof, "paired": {}}
    if "bp" in runners:
        for b in ("torch", "tp", "tp_tt", "dtp", "encoding"):
            if b in runners:
                key = "torch_over_bp" if b == "torch" else f"{b}_over_bp"
                row["paired"][key] = paired_ratio(cpu[b], cpu["bp"])
        row["bp_over_roofline"] = times["bp"]["median"] / roof
        # where BP's time goes: its two kernels against their rooflines, and the rest of the
        # call (medians; the rest is BP's median minus the kernels' medians)
        fwd_roof, bwd_roof = roofline_split_ms(cfg, rates)
        fwd, bwd = times["bp forward"]["median"], times["bp backward"]["median"]
        row["bp_split"] = {"forward_ms": fwd, "backward_ms": bwd,
                           "rest_ms": times["bp"]["median"] - fwd - bwd,
                           "forward_roof_ms": fwd_roof, "backward_roof_ms": bwd_roof}
        # through_time's second per-step product (delta_t W_hh next to z_t P) at the probe's
        # rate, over BP: TP through_time / BP cannot go below 1 + this
        T, B, p = cfg["T"], cfg["B"], cfg["p"]
        row["tp_tt_extra_gemm_over_bp"] = (2.0 * T * B * p * p / rates["steps"] * 1e-6
                                           / times["bp"]["median"])
    if "torch" in runners:
        row["torch_over_roofline"] = times["torch"]["median"] / roof
    row["verdicts"] = verdicts(row)
    return row


def verdicts(row):
    """Issue 17's targets at one point: name -> {"value", "target", "met"} (None: n/a)."""
    pr = {k: v["median"] for k, v in row["paired"].items()}
    out = {}
    if "torch_over_bp" in pr:
        want = TARGETS["torch_over_bp_mnist" if row["point"] == "mnist" else "torch_over_bp"]
        reachable = row["torch_over_roofline"] >= want
        if reachable:
            out["bp"] = {"value": pr["torch_over_bp"], "target": f"torch/BP >= {want}",
                         "met": pr["torch_over_bp"] >= want}
        else:                               # want x would beat the roofline: BP near it instead
            lim = TARGETS["bp_over_roofline"]
            out["bp"] = {"value": row["bp_over_roofline"],
                         "target": f"BP/roofline <= {lim} (torch/roofline "
                                   f"{row['torch_over_roofline']:.2f} < {want})",
                         "met": row["bp_over_roofline"] <= lim}
    t_ge_p = row["T"] >= row["p"]
    for key in ("tp", "tp_tt"):
        if f"{key}_over_bp" not in pr:
            continue
        if t_ge_p:
            lim = TARGETS["tp_over_bp"]
            target = f"<= {lim}"
        elif "encoding_over_bp" in pr:      # the p^3 / T term: the encoding's share of BP
            lim = 1.0 + pr["encoding_over_bp"] + TARGETS["tp_slack_t_lt_p"]
            target = f"<= 1 + encoding/BP + {TARGETS['tp_slack_t_lt_p']} = {lim:.3f}"
        else:
            continue
        out[key] = {"value": pr[f"{key}_over_bp"], "target": target,
                    "met": pr[f"{key}_over_bp"] <= lim}
    if "dtp_over_bp" in pr:
        lim = TARGETS["dtp_over_bp"]
        out["dtp"] = {"value": pr["dtp_over_bp"], "target": f"<= {lim}",
                      "met": pr["dtp_over_bp"] <= lim}
    return out


def _repeats_at(cfg, repeats):
    """Fewer repetitions at the expensive points (flops over 4x the centre's)."""
    heavy = bp_flops(cfg) > 4 * bp_flops(dict(CONFIGS["mnist"], **GRID_BASE))
    return repeats if not heavy else max(3, repeats // 3)


def run_grid(dtypes, repeats, out_dir, with_torch=True, points=None, meta=None, log=print):
    """Every grid point in every dtype; writes grid.json, grid.md and grid.png in ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    rows = []
    for dt in dtypes:
        for name, axis, cfg in (grid_points() if points is None else points):
            reps = _repeats_at(cfg, repeats)
            log(f"[grid {name} {np.dtype(dt).name}] T={cfg['T']} B={cfg['B']} p={cfg['p']} "
                f"d={cfg['d']} (n={reps})")
            row = bench_point(name, axis, cfg, dt, reps, with_torch=with_torch, log=log)
            rows.append(row)
            pr = {k: v["median"] for k, v in row["paired"].items()}
            log("  " + ", ".join(f"{k} {v:.3f}" for k, v in pr.items())
                + (f", BP/roofline {row['bp_over_roofline']:.2f}" if "bp_over_roofline" in row
                   else "")
                + "  " + " ".join(f"{k}:{'met' if v['met'] else 'NOT met'}"
                                  for k, v in row["verdicts"].items()))
    meta = dict(meta or {}, load_average_end=os.getloadavg())
    results = {"meta": meta, "targets": TARGETS, "grid": rows}
    with open(os.path.join(out_dir, "grid.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(out_dir, "grid.md"), "w") as f:
        f.write(grid_markdown(results) + "\n")
    plot_grid(rows, os.path.join(out_dir, "grid.png"), GRID_BASE)
    log(f"wrote {os.path.join(out_dir, 'grid.json')}, grid.md and grid.png")
    return results
