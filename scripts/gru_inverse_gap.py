"""How far apart the per-gate and the exact linearized inverse of the GRU are (docs/gru.md).

For a GRU (d = 1, p = 100, the seeded orthogonal init, optionally scaled or perturbed) run on
random inputs, compare one step of both inverses on the same lam_t (so errors do not compound),
at every t of a short sequence: relative difference ||pg - ex|| / ||ex|| and cosine. Also the
same with BP's transpose J_t^T lam_t, for scale. Prints a markdown table.

Usage::

    python scripts/gru_inverse_gap.py
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

import tpref  # noqa: E402
from tpref.methods.reference_gru import (exact_inverse_step, gru_factors, gru_jacobian,  # noqa: E402
                                         per_gate_inverse_step)
from tpref.models.gru import gru_forward  # noqa: E402


def gap(params, x, reg, eps=1e-3, seed=0):
    hidden, cache = gru_forward(params, x)
    factors = gru_factors(params, reg)
    rng = np.random.default_rng(seed)
    rel, cos, cos_bp = [], [], []
    for s in range(x.shape[0]):
        gates = (hidden[s], cache["r"][s], cache["z"][s], cache["n"][s], cache["g"][s])
        lam = rng.normal(size=hidden[s].shape)
        pg = per_gate_inverse_step(params, factors, *gates, lam, reg, eps)
        ex = exact_inverse_step(params, *gates, lam, reg)
        bp = np.einsum("bji,bj->bi", gru_jacobian(params, *gates), lam)
        for b in range(lam.shape[0]):
            rel.append(np.linalg.norm(pg[b] - ex[b]) / np.linalg.norm(ex[b]))
            cos.append(pg[b] @ ex[b] / np.linalg.norm(pg[b]) / np.linalg.norm(ex[b]))
            cos_bp.append(bp[b] @ ex[b] / np.linalg.norm(bp[b]) / np.linalg.norm(ex[b]))
    return np.median(rel), np.median(cos), np.median(cos_bp)


def main():
    rng = np.random.default_rng(0)
    T, B, p = 30, 4, 100
    x = rng.normal(size=(T, B, 1))                               # normalized pixels ~ N(0, 1)
    base = tpref.init_gru(1, p, 10, seed=0)
    cases = {
        "init (orthogonal W_h*, zero biases)": base,
        "init, W_hr = W_hz = 0": {**base, "W_hr": 0 * base["W_hr"], "W_hz": 0 * base["W_hz"]},
        "init, W_hr = W_hz = 0, b_z = -6, b_r = +6": {
            **base, "W_hr": 0 * base["W_hr"], "W_hz": 0 * base["W_hz"],
            "b_xz": base["b_xz"] - 6, "b_xr": base["b_xr"] + 6},
        "init + N(0, 0.1^2) noise on every weight": {
            k: v + 0.1 * rng.normal(size=v.shape) for k, v in base.items()},
    }
    print("| parameters | reg | median rel. diff per step | median cos(pg, exact) | "
          "median cos(J^T lam, exact) |")
    print("|---|---|---|---|---|")
    for name, params in cases.items():
        for reg in (1.0, 1e2):
            rel, cos, cos_bp = gap(params, x, reg)
            print(f"| {name} | {reg:g} | {rel:.3g} | {cos:.3f} | {cos_bp:.3f} |")


if __name__ == "__main__":
    main()
