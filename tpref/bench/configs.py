"""The problems ``tpref bench`` times: the paper's shapes, seeded data, the flops of BP."""

import numpy as np

from ..models.rnn import init_rnn
from ..presets import BENCH_PROBLEMS

#: name -> dict(T, B, d, p, k, loss, gamma_h, reg), from tpref.presets.BENCH_PROBLEMS
CONFIGS = {name: problem.as_dict() for name, problem in BENCH_PROBLEMS.items()}
#: Points of the TP/BP sweep: T at p = 100, and p at T = 784 (MNIST's length).
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


#: The options of a timed "dtp_learned" call (TPTT's MNIST noise and reverse lr; gamma_h is the
#: problem's): the noise draws (T * B * p normals) are part of what a training step pays.
DTP_LEARNED_OPTIONS = dict(noise=0.1, seed=0, reverse_lr=1e-8)


def with_reverse(params):
    """``params`` plus a reverse layer for "dtp_learned": V_hh = W_hh^T (orthogonal), c_h = 0."""
    return dict(params, V_hh=params["W_hh"].T.copy(), c_h=np.zeros_like(params["b_h"]))


def bp_flops(cfg):
    """GEMM flops of one BP iteration: forward, dL/dh recursion and parameter products."""
    T, B, d, p = cfg["T"], cfg["B"], cfg["d"], cfg["p"]
    return 6.0 * T * B * p * p + 4.0 * T * B * p * d
