"""One benchmark: validate, then time every backend on a problem; derived ratios; the sweep."""

import numpy as np

from .configs import CONFIGS, SWEEP_P, SWEEP_T, bp_flops, make_problem
from .peers import torch_or_none, torch_runner, tpref_runner, with_ftz
from .timing import PAIRS, gemm_probes, paired_ratio, summarize, time_alternating
from .validation import validate


def bench_config(name, cfg, dtype, repeats, with_numpy, with_torch, ftz=False, log=print):
    """Validate, then time every backend on one configuration and dtype."""
    dt = np.dtype(dtype)
    params, x, y = make_problem(cfg, dtype)
    backends = ["tpref numba bp", "tpref numba tp", "tpref numba tp+lam", "tpref numba dtp",
                "tpref numba dtp_learned"]
    if with_numpy:
        backends += ["tpref numpy bp", "tpref numpy tp"]
    if with_torch and torch_or_none() is not None:
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
    if ftz and torch_or_none() is not None:             # FTZ/DAZ is toggled through PyTorch
        for b in ("tpref numba bp", "tpref numba tp"):
            if b in runners:
                runners[b + " [ftz]"] = with_ftz(runners[b], True)
        if "tpref numpy tp" in runners:
            runners["tpref numpy tp [ftz]"] = with_ftz(runners["tpref numpy tp"], True)
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
            for m in ("tp", "tp+lam", "dtp", "dtp_learned"):
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
