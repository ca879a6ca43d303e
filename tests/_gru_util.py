"""Helpers shared by the GRU tests: a seeded small problem and the one tolerance policy."""

import numpy as np

import tpref
from tpref.config import ATOL_SCALE, RTOL


def assert_close(actual, reference, what, dtype=np.float64, rtol=None):
    """|actual - reference| <= rtol * max|reference| + atol, rtol from config.RTOL[dtype]."""
    dtype = np.dtype(dtype)
    rtol = RTOL[dtype] if rtol is None else rtol
    actual, reference = np.asarray(actual), np.asarray(reference)
    assert actual.shape == reference.shape, f"{what}: shape {actual.shape} != {reference.shape}"
    scale = float(np.max(np.abs(reference))) if reference.size else 0.0
    err = float(np.max(np.abs(actual - reference))) if reference.size else 0.0
    assert err <= rtol * scale + ATOL_SCALE[dtype], (
        f"{what}: max abs error {err:.3e} > {rtol:.1e} * max|ref| {scale:.3e}")


def problem(T=6, B=5, d=3, p=4, k=3, seed=0, noise=0.3, dtype=np.float64, loss="cross_entropy"):
    """(params, x, y): seeded GRU parameters (init plus noise, so biases and gates are generic),
    inputs (T, B, d) and targets."""
    rng = np.random.default_rng(seed)
    params = tpref.init_gru(d, p, k, seed=seed + 1)
    params = {name: (v + noise * rng.normal(size=v.shape)).astype(dtype) for name, v in params.items()}
    x = rng.normal(size=(T, B, d)).astype(dtype)
    if loss == "cross_entropy":
        y = rng.integers(0, k, size=B)
    else:
        y = rng.normal(size=(B, k)).astype(dtype)
    return params, x, y
