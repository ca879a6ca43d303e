"""Timing and its statistics: alternating repetitions, medians, paired ratios, GEMM probes.

Backends are timed in one process, rotating their order every repetition, on wall-clock
and thread CPU time. Ratios are also taken sample by sample within a repetition
(:func:`paired_ratio`), which is robust to a shared machine changing speed during the run.
Two GEMM probes of known flops are timed in the same alternation, as the roofline's rate.
"""

import time

import numpy as np


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
         ("tpref numba dtp", "tpref numba bp"), ("tpref numba dtp_learned", "tpref numba bp"),
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
