"""Helpers shared by the GRU tests: a seeded small problem and the one tolerance policy."""

import numpy as np

import tpref

from cases import random_targets
from tpref import testing
from tpref.config import RTOL


def assert_close(actual, reference, what, dtype=np.float64, rtol=None):
    """Normwise: |actual - reference| <= rtol * max|reference| (+ the policy's entrywise term),
    rtol from config.RTOL[dtype] unless given; tpref.testing.assert_close does the work."""
    rtol = RTOL[np.dtype(dtype)] if rtol is None else rtol
    testing.assert_close(actual, reference, name=what, dtype=dtype, rtol=rtol, atol_scale=rtol)


def problem(T=6, B=5, d=3, p=4, k=3, seed=0, noise=0.3, dtype=np.float64, loss="cross_entropy"):
    """(params, x, y): seeded GRU parameters (init plus noise, so biases and gates are generic),
    inputs (T, B, d) and targets."""
    rng = np.random.default_rng(seed)
    params = tpref.init_gru(d, p, k, seed=seed + 1)
    params = {name: (v + noise * rng.normal(size=v.shape)).astype(dtype) for name, v in params.items()}
    x = rng.normal(size=(T, B, d)).astype(dtype)
    return params, x, random_targets(rng, B, k, loss, dtype)
