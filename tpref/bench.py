"""Benchmark of the oracle backends against PyTorch: validate first, then time (llm.c style).

``tpref bench`` / ``python scripts/bench.py``. For each configuration it

1. checks every backend against the NumPy reference (``tpref.oracle(backend="numpy")``) on the
   same shapes with a shorter sequence (T_check = min(T, 48)): float64 with config's RTOL /
   ATOL_SCALE, the benchmark dtype with the float32 policy (config.F32_REF_FACTOR). PyTorch's
   BP gradients are compared with tpref's BP direction. A backend that fails is not timed.
2. times one oracle iteration (forward + backward + direction, the work of one SGD step) of
   every backend in one process, alternating between backends repetition by repetition, with
   BLAS, Numba and PyTorch all on the same number of threads; reports the median, the
   quartiles and the minimum of wall-clock time and of thread CPU time. "tpref numba tp+lam"
   is the numba TP call followed by reading ``result.displacements``, which that backend
   computes only when read (what a verification run pays; ``OracleResult``).
3. reports ratios (tpref / torch, TP / BP: of medians, and the median of the ratios of
   samples paired within a repetition, robust to the machine changing speed during the run)
   and the fraction of a roofline: the GEMM flops of one BP iteration,
   6 T B p^2 + 4 T B p d (forward, dL/dh recursion, parameter products), at
   the best rate of two GEMM probes (a square 512^3 product; 1000 per-step (B, p) x (p, p)
   products) timed in the same alternation as the backends, so that the roofline sees the same
   machine load (Sec. 3 of the paper: BP's cost is driven by these products, TP adds one p^3
   encoding of the inverse).

Nothing here is a test: numbers are reported, never asserted.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

from .config import F32_REF_FACTOR, RTOL, ATOL_SCALE
from .models.rnn import init_rnn
from .presets import BENCH_PROBLEMS

# ----------------------------------------------------------------------------------------------
# configurations: the paper's problems (tpref.presets.BENCH_PROBLEMS)

#: name -> dict(T, B, d, p, k, loss, gamma_h, reg)
CONFIGS = {name: problem.as_dict() for name, problem in BENCH_PROBLEMS.items()}
SWEEP_T = (30, 120, 784, 3072)
SWEEP_P = (32, 100, 256, 512)


def make_problem(cfg, dtype, seed=0):
    """Seeded synthetic data with the task's shapes (pixel-like for d = 1: 80% zeros)."""
    rng = np.random.default_rng(seed)
    T, B, d, p, k = (cfg[n] for n in "TBdpk")
    params = init_rnn(d, p, k, seed=rng, dtype=dtype)
    x = rng.uniform(0.0, 1.0, size=(T, B, d))
    if d == 1:
        x[x < 0.8] = 0.0                                       # MNIST-like sparsity, pixels in [0, 1]
    x = x.astype(dtype)
    if cfg["loss"] == "cross_entropy":
        y = rng.integers(0, k, size=B)
    else:
        y = rng.uniform(0.0, 1.0, size=(B, k)).astype(dtype)
    return params, x, y


def bp_flops(cfg):
    """GEMM flops of one BP iteration: forward, dL/dh recursion and parameter products."""
    T, B, d, p = cfg["T"], cfg["B"], cfg["d"], cfg["p"]
    return 6.0 * T * B * p * p + 4.0 * T * B * p * d


# ----------------------------------------------------------------------------------------------
# machine


def set_threads(n):
    """Pin BLAS (threadpoolctl), Numba and PyTorch to n threads; return what was set."""
    from threadpoolctl import threadpool_limits
    threadpool_limits(limits=n)
    os.environ["OMP_NUM_THREADS"] = str(n)
    try:
        import numba
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    except Exception:                                          # noqa: BLE001 - report only
        pass
    torch = _torch()
    if torch is not None:
        torch.set_num_threads(n)
        try:
            torch.set_num_interop_threads(n)
        except RuntimeError:                                   # already set in this process
            pass
    return n


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _steps_kernel():
    from numba import njit

    @njit(cache=True)
    def steps(h, W, n):
        out = np.empty_like(h)
        for _ in range(n):
            np.dot(h, W, out)
        return out
    return steps


def gemm_probes(dtype, p=100, B=16, n_steps=1000, n_square=512):
    """Two GEMM workloads of known flops, timed like the backends (alternating with them):
    a square (n_square)^3 product and n_steps per-step (B, p) x (p, p) products in a Numba loop.

    Returns
    -------
    dict name -> (callable, flops)
    """
    rng = np.random.default_rng(0)
    A = rng.standard_normal((n_square, n_square)).astype(dtype)
    h = rng.standard_normal((B, p)).astype(dtype)
    W = rng.standard_normal((p, p)).astype(dtype)
    steps = _steps_kernel()
    return {f"gemm probe square {n_square}": (lambda: A @ A, 2.0 * n_square ** 3),
            f"gemm probe steps {B}x{p}x{p}": (lambda: steps(h, W, n_steps), 2.0 * B * p * p * n_steps)}


def gemm_rate(dtype, p=100, B=16, repeats=5):
    """Best GEMM rate (GFLOP/s) of the probes, measured on their own (reported as context; the
    roofline of each configuration uses the probes timed alongside its backends)."""
    rates = {}
    for name, (fn, flops) in gemm_probes(dtype, p, B).items():
        fn()
        best = np.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        rates[name] = flops / best / 1e9
    return rates


def flush_denormal(on):
    """Set flush-to-zero / denormals-are-zero for this thread via PyTorch; False if unavailable."""
    torch = _torch()
    if torch is None:
        return False
    return bool(torch.set_flush_denormal(on))


# ----------------------------------------------------------------------------------------------
# runners: each returns a zero-argument callable doing one iteration


def tpref_runner(method, backend, params, x, y, cfg):
    """One oracle call; method "tp+lam": the "tp" call, then its displacements read."""
    import tpref
    kw = dict(loss=cfg["loss"], backend=backend)
    if method != "bp":
        kw.update(gamma_h=cfg["gamma_h"], reg=cfg["reg"])
    if method == "tp+lam":
        return lambda: tpref.oracle("tp", params, x, y, **kw).displacements
    return lambda: tpref.oracle(method, params, x, y, **kw)


class _TorchModel:
    """torch.nn.RNN (or RNNCell) + linear head with tpref's parameters, bias_hh = 0."""

    def __init__(self, params, cell):
        torch = _torch()
        dtype = torch.float64 if params["W_hh"].dtype == np.float64 else torch.float32
        p, d = params["W_xh"].shape
        k = params["W_hy"].shape[0]
        self.rnn = (torch.nn.RNNCell(d, p) if cell else torch.nn.RNN(d, p)).to(dtype)
        self.head = torch.nn.Linear(p, k).to(dtype)
        sfx = "" if cell else "_l0"
        with torch.no_grad():
            getattr(self.rnn, "weight_hh" + sfx).copy_(torch.from_numpy(params["W_hh"]))
            getattr(self.rnn, "weight_ih" + sfx).copy_(torch.from_numpy(params["W_xh"]))
            getattr(self.rnn, "bias_ih" + sfx).copy_(torch.from_numpy(params["b_h"]))
            getattr(self.rnn, "bias_hh" + sfx).zero_()
            self.head.weight.copy_(torch.from_numpy(params["W_hy"]))
            self.head.bias.copy_(torch.from_numpy(params["b_y"]))
        self.cell, self.sfx = cell, sfx

    def step(self, x, y, loss):
        """One BP iteration; returns (loss, grads dict in tpref's names)."""
        torch = _torch()
        for prm in list(self.rnn.parameters()) + list(self.head.parameters()):
            prm.grad = None
        if self.cell:
            h = torch.zeros(x.shape[1], self.rnn.hidden_size, dtype=x.dtype)
            for t in range(x.shape[0]):
                h = self.rnn(x[t], h)
            h_T = h
        else:
            h_T = self.rnn(x)[1][0]
        out = self.head(h_T)
        value = (torch.nn.functional.cross_entropy(out, y) if loss == "cross_entropy"
                 else torch.nn.functional.mse_loss(out, y))
        value.backward()
        s = self.sfx
        return value, {"W_hh": getattr(self.rnn, "weight_hh" + s).grad,
                       "W_xh": getattr(self.rnn, "weight_ih" + s).grad,
                       "b_h": getattr(self.rnn, "bias_ih" + s).grad,
                       "W_hy": self.head.weight.grad, "b_y": self.head.bias.grad}


def torch_runner(params, x, y, cfg, cell):
    torch = _torch()
    model = _TorchModel(params, cell)
    xt = torch.from_numpy(x)
    yt = torch.from_numpy(y)
    return lambda: model.step(xt, yt, cfg["loss"])


# ----------------------------------------------------------------------------------------------
# validation


def _max_err(comp, ref):
    comp, ref = np.asarray(comp, np.float64), np.asarray(ref, np.float64)
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    return float(np.max(np.abs(comp - ref))) / scale if scale > 0 else float(np.max(np.abs(comp)))


def validate(cfg, dtype, backends, seed=0, t_check=48):
    """Max relative (to max|ref|) error of each backend against the reference; ok flags.

    float64: ok when within config's RTOL + ATOL_SCALE (normwise). Other dtypes: ok when within
    the same policy plus F32_REF_FACTOR x the float32 reference's own error against float64.
    """
    import tpref
    c = dict(cfg, T=min(cfg["T"], t_check))
    params, x, y = make_problem(c, dtype, seed)
    p64 = {n: a.astype(np.float64) for n, a in params.items()}
    x64 = x.astype(np.float64)
    y64 = y if y.dtype.kind in "iu" else y.astype(np.float64)
    dt = np.dtype(dtype)
    report = {}
    for name in backends:
        method = name.split()[-1] if name.startswith("tpref") else "bp"
        with_lam = method == "tp+lam"                    # directions and displacements
        method = "tp" if with_lam else method
        kw = dict(loss=c["loss"])
        if method != "bp":
            kw.update(gamma_h=c["gamma_h"], reg=c["reg"])
        ref = tpref.oracle(method, p64, x64, y64, backend="numpy", **kw)
        ref_dir = ref.direction
        if name.startswith("torch"):
            _, grads = _TorchModel(params, cell="cell" in name).step(
                _torch().from_numpy(x), _torch().from_numpy(y), c["loss"])
            comp_dir = {n: g.detach().numpy() for n, g in grads.items()}
            own = tpref.oracle("bp", params, x, y, backend="numpy", **kw).direction
        else:
            backend = name.split()[1]
            comp = tpref.oracle(method, params, x, y, backend=backend, **kw)
            own_res = tpref.oracle(method, params, x, y, backend="numpy", **kw)
            comp_dir, own = dict(comp.direction), dict(own_res.direction)
            if with_lam:
                comp_dir["lam"], own["lam"] = comp.displacements, own_res.displacements
                ref_dir = dict(ref_dir, lam=ref.displacements)
        err = max(_max_err(comp_dir[n], ref_dir[n]) for n in ref_dir)
        allowed = RTOL[dt] + ATOL_SCALE[dt]
        if method == "dtp":
            # the reference's f^{-1}(v) - f^{-1}(h) cancels: its displacements carry
            # ~eps |f^{-1}(h)| of noise, relative to |lam| ~ gamma_h |dl/dh_T| (numba_rnn, point 2)
            f_inv = np.max(np.abs(np.arctanh(np.clip(ref.hidden, -1 + 1e-3, 1 - 1e-3))))
            allowed += 1e3 * np.finfo(np.float64).eps * (1.0 + f_inv) / np.max(np.abs(ref.displacements[-1]))
        if dt != np.float64:
            allowed += F32_REF_FACTOR * max(_max_err(own[n], ref_dir[n]) for n in ref_dir)
        report[name] = {"max_rel_err": err, "allowed": allowed, "ok": bool(err <= allowed)}
    return report


# ----------------------------------------------------------------------------------------------
# timing


def time_alternating(runners, repeats, warmup=1):
    """Time each runner ``repeats`` times, rotating the order every repetition.

    Returns
    -------
    dict name -> {"wall_ms": [...], "cpu_ms": [...]}
    """
    names = list(runners)
    for name in names:
        for _ in range(warmup):
            runners[name]()
    out = {n: {"wall_ms": [], "cpu_ms": []} for n in names}
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            c0, t0 = time.thread_time(), time.perf_counter()
            runners[name]()
            t1, c1 = time.perf_counter(), time.thread_time()
            out[name]["wall_ms"].append(1e3 * (t1 - t0))
            out[name]["cpu_ms"].append(1e3 * (c1 - c0))
    return out


def summarize(samples):
    """median, quartiles, min of a list of times."""
    q = np.percentile(samples, [25, 50, 75])
    return {"median": float(q[1]), "q25": float(q[0]), "q75": float(q[2]),
            "min": float(np.min(samples)), "n": len(samples)}


#: (numerator, denominator) backends whose ratio is also reported paired, repetition by
#: repetition (both are in the same alternation, so sample r of each is adjacent in time)
PAIRS = (("tpref numba tp", "tpref numba bp"), ("tpref numba tp+lam", "tpref numba bp"),
         ("tpref numba dtp", "tpref numba bp"),
         ("torch nn.RNN", "tpref numba bp"), ("tpref numba bp [ftz]", "tpref numba bp"),
         ("tpref numba tp [ftz]", "tpref numba tp"))


def paired_ratio(a, b):
    """Median and quartiles of a[r] / b[r] over repetitions r of one alternation.

    A ratio of medians mixes repetitions made while the machine ran at different speeds (a
    shared VM's single-core GEMM rate moved by 1.5x within an hour here); the ratio of two
    samples taken one after the other sees the same speed, so its median is the robust
    estimate of "how much slower is a than b" (as benchstat/pyperf pair their samples).
    """
    r = np.asarray(a, dtype=float) / np.asarray(b, dtype=float)
    return summarize(r)


def _with_ftz(fn, on):
    def run():
        flush_denormal(on)
        try:
            return fn()
        finally:
            flush_denormal(False)
    return run


def bench_config(name, cfg, dtype, repeats, with_numpy, with_torch, ftz=False, log=print):
    """Validate, then time every backend on one configuration and dtype."""
    dt = np.dtype(dtype)
    params, x, y = make_problem(cfg, dtype)
    backends = ["tpref numba bp", "tpref numba tp", "tpref numba tp+lam", "tpref numba dtp"]
    if with_numpy:
        backends += ["tpref numpy bp", "tpref numpy tp"]
    if with_torch and _torch() is not None:
        backends += ["torch nn.RNN", "torch RNNCell loop"]
    check = validate(cfg, dtype, backends)
    for b, v in check.items():
        log(f"  check {b:22s} max rel err {v['max_rel_err']:.2e} (allowed {v['allowed']:.1e}) "
            f"{'ok' if v['ok'] else 'FAILED: not timed'}")
    runners = {}
    for b in backends:
        if not check[b]["ok"]:
            continue
        if b.startswith("tpref"):
            _, backend, method = b.split()
            runners[b] = tpref_runner(method, backend, params, x, y, cfg)
        else:
            runners[b] = torch_runner(params, x, y, cfg, cell="cell" in b)
    if ftz and _torch() is not None:             # FTZ/DAZ is toggled through PyTorch
        for b in ("tpref numba bp", "tpref numba tp"):
            if b in runners:
                runners[b + " [ftz]"] = _with_ftz(runners[b], True)
        if "tpref numpy tp" in runners:
            runners["tpref numpy tp [ftz]"] = _with_ftz(runners["tpref numpy tp"], True)
    probes = gemm_probes(dtype, p=cfg["p"], B=cfg["B"])
    for b, (fn, _) in probes.items():
        runners[b] = fn
    # slow backends get fewer repetitions (they are 10-100x slower)
    fast = {b: r for b, r in runners.items() if "numpy" not in b and "RNNCell" not in b}
    slow = {b: r for b, r in runners.items() if b not in fast}
    samples = time_alternating(fast, repeats)
    if slow:
        samples.update(time_alternating(slow, max(3, repeats // 4)))
    res = {"config": name, "dtype": dt.name, **cfg, "check": check, "times": {}, "gemm_gflops": {},
           "paired": {}}
    for a, b in PAIRS:
        if a in fast and b in fast:
            res["paired"][f"{a} / {b}"] = {clock: paired_ratio(samples[a][clock + "_ms"],
                                                                samples[b][clock + "_ms"])
                                           for clock in ("wall", "cpu")}
    for b, s in samples.items():
        if b in probes:
            flops = probes[b][1]
            res["gemm_gflops"][b] = {clock: flops / (summarize(s[clock + "_ms"])["median"] * 1e6)
                                     for clock in ("wall", "cpu")}
            continue
        res["times"][b] = {"wall": summarize(s["wall_ms"]), "cpu": summarize(s["cpu_ms"])}
    return res


def derived(res, rate_gflops=None):
    """Ratios and roofline fraction from one bench_config result, from the medians of wall
    time ("wall") and of thread CPU time ("cpu": robust when other processes share the cores).

    The roofline is ``bp_flops`` at the best GEMM probe rate timed alongside the backends
    (same clock, same conditions), or at ``rate_gflops`` if given."""
    out = {}
    for clock in ("wall", "cpu"):
        rate = rate_gflops or max(v[clock] for v in res["gemm_gflops"].values())
        roof_ms = bp_flops(res) / (rate * 1e9) * 1e3
        t = {b: v[clock]["median"] for b, v in res["times"].items()}
        d = {"gemm_gflops": rate, "roofline_ms": roof_ms}
        bp = t.get("tpref numba bp")
        if bp:
            d["bp_over_roofline"] = bp / roof_ms
            for m in ("tp", "tp+lam", "dtp"):
                if f"tpref numba {m}" in t:
                    d[f"{m}_over_bp"] = t[f"tpref numba {m}"] / bp
            for other in ("torch nn.RNN", "torch RNNCell loop", "tpref numpy bp"):
                if other in t:
                    d[f"{other} / numba bp"] = t[other] / bp
            if "tpref numba bp [ftz]" in t:
                d["bp ftz on/off"] = t["tpref numba bp [ftz]"] / bp
        for name in ("tpref numba tp", "tpref numpy tp"):
            if name + " [ftz]" in t and name in t:
                d[name.split()[1] + " tp ftz on/off"] = t[name + " [ftz]"] / t[name]
        for pair, v in res.get("paired", {}).items():
            d[pair.replace("tpref numba ", "") + " paired"] = v[clock]["median"]
        out[clock] = d
    return out


def sweep(dtype, repeats, Ts=SWEEP_T, ps=SWEEP_P, base="mnist", log=print):
    """TP/BP of the numba backend along T (p = 100) and along p (T = 784)."""
    rows = []
    points = [(T, 100) for T in Ts] + [(784, p) for p in ps if p != 100]
    for T, p in points:
        cfg = dict(CONFIGS[base], T=T, p=p)
        params, x, y = make_problem(cfg, dtype)
        runners = {m: tpref_runner(m, "numba", params, x, y, cfg)
                   for m in ("bp", "tp", "tp+lam", "dtp")}
        reps = repeats if T * p * p <= 784 * 100 * 100 * 4 else max(3, repeats // 3)
        s = time_alternating(runners, reps)
        med = {m: summarize(v["wall_ms"])["median"] for m, v in s.items()}
        cpu = {m: summarize(v["cpu_ms"])["median"] for m, v in s.items()}
        # ratios of CPU-time medians: the wall clock is at the mercy of other processes
        paired = {m: paired_ratio(s[m]["cpu_ms"], s["bp"]["cpu_ms"]) for m in ("tp", "tp+lam", "dtp")}
        row = {"T": T, "p": p, "dtype": np.dtype(dtype).name, "n": reps, "median_ms": med,
               "cpu_median_ms": cpu, "tp_over_bp": cpu["tp"] / cpu["bp"],
               "dtp_over_bp": cpu["dtp"] / cpu["bp"], "tp_over_bp_wall": med["tp"] / med["bp"],
               "tp_over_bp_paired": paired["tp"]["median"],
               "tp_over_bp_paired_q": [paired["tp"]["q25"], paired["tp"]["q75"]],
               "tp_lam_over_bp_paired": paired["tp+lam"]["median"],
               "dtp_over_bp_paired": paired["dtp"]["median"]}
        rows.append(row)
        log(f"  sweep {row['dtype']} T={T:5d} p={p:4d}  cpu: bp {cpu['bp']:9.2f} ms  tp {cpu['tp']:9.2f}"
            f" ms  dtp {cpu['dtp']:9.2f} ms  TP/BP {row['tp_over_bp']:.3f} (wall "
            f"{row['tp_over_bp_wall']:.3f}, paired {row['tp_over_bp_paired']:.3f}; TP+lam read "
            f"{row['tp_lam_over_bp_paired']:.3f})  p/T {p / T:.3f}")
    return rows


def plot_sweep(rows, path):
    """TP/BP - 1 against p/T (log-log), with the paper's claim TP/BP - 1 ~ p/T as a guide."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


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


# ----------------------------------------------------------------------------------------------
# entry point


def build_parser(parser=None):
    parser = parser or argparse.ArgumentParser(prog="tpref bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="few repeats, float32 sweep only, no numpy reference on long T")
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help=f"comma-separated subset of {','.join(CONFIGS)}")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--repeats", type=int, default=None, help="timed repetitions per backend")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-sweep", action="store_true")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--out", default="bench_results", help="folder for JSON and the plot")
    return parser


def run(args, log=print):
    set_threads(args.threads)
    repeats = args.repeats or (5 if args.quick else 15)
    dtypes = [np.dtype(s) for s in args.dtypes.split(",") if s]
    os.makedirs(args.out, exist_ok=True)
    torch = _torch()
    meta = {"python": sys.version.split()[0], "numpy": np.__version__,
            "platform": platform.platform(), "processor": platform.processor(),
            "threads": args.threads, "cpu_count": os.cpu_count(),
            "torch": torch.__version__ if torch is not None else None,
            "command": " ".join(sys.argv), "quick": bool(args.quick),
            "load_average_start": os.getloadavg()}
    import numba
    import scipy
    meta.update(numba=numba.__version__, scipy=scipy.__version__)
    results = {"meta": meta, "gemm_gflops": {}, "configs": [], "sweep": []}
    for dt in dtypes:
        rates = gemm_rate(dt)
        results["gemm_gflops"][dt.name] = rates
        log(f"GEMM rate {dt.name}: " + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in rates.items()))
    for name in args.configs.split(","):
        cfg = CONFIGS[name]
        for dt in dtypes:
            log(f"[{name} {dt.name}] T={cfg['T']} B={cfg['B']} d={cfg['d']} p={cfg['p']}")
            with_numpy = not (args.quick and cfg["T"] > 200)
            res = bench_config(name, cfg, dt, repeats, with_numpy, not args.no_torch,
                               ftz=(name == "mnist"), log=log)
            res["derived"] = derived(res)
            results["configs"].append(res)
            for b, v in res["times"].items():
                w, c = v["wall"], v["cpu"]
                log(f"  {b:26s} wall median {w['median']:9.2f} ms [{w['q25']:.2f}, {w['q75']:.2f}]"
                    f"  cpu median {c['median']:9.2f} ms  (n={w['n']})")
            dv = res["derived"]
            for clock in ("wall", "cpu"):
                log(f"  {clock}: " + ", ".join(f"{k} {v:.3f}" for k, v in dv[clock].items()))
    if not args.no_sweep:
        for dt in (dtypes[:1] if args.quick else dtypes):
            results["sweep"] += sweep(dt, max(5, repeats // 2), log=log)
        plot_sweep(results["sweep"], os.path.join(args.out, "tp_over_bp.png"))
    meta["load_average_end"] = os.getloadavg()
    with open(os.path.join(args.out, "bench.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(args.out, "bench.md"), "w") as f:
        f.write(markdown(results) + "\n")
    log(f"wrote {os.path.join(args.out, 'bench.json')}"
        + ("" if args.no_sweep else f" and {os.path.join(args.out, 'tp_over_bp.png')}"))
    return results


def main(argv=None):
    """Console entry: parse arguments and run the benchmark; returns 0."""
    args = build_parser().parse_args(argv)
    with np.errstate(under="ignore"):        # the reference underflows by design on long T
        run(args)
    return 0
