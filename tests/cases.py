"""Random test cases shared by the test modules: seeded params, inputs and labels.

Unlike ``tpref.init_rnn`` (orthogonal weights, zero biases), these draw every parameter at
random, so that no term of a formula can hide behind a zero or an identity.
"""

import numpy as np


def random_params(rng, d, p, k, *, scale=1.0, dtype=np.float64):
    """Dense random RNN params; ``scale`` multiplies W_hh and W_xh (saturation knob)."""
    return {
        "W_hh": (scale * rng.normal(size=(p, p)) / np.sqrt(p)).astype(dtype),
        "W_xh": (scale * rng.normal(size=(p, d)) / np.sqrt(d)).astype(dtype),
        "b_h": (0.1 * rng.normal(size=p)).astype(dtype),
        "W_hy": (rng.normal(size=(k, p)) / np.sqrt(p)).astype(dtype),
        "b_y": (0.1 * rng.normal(size=k)).astype(dtype),
    }


def random_case(seed, *, T=5, B=3, d=2, p=4, k=3, loss="cross_entropy", scale=1.0,
                dtype=np.float64):
    """(params, x, y) for one oracle call; y matches ``loss``."""
    rng = np.random.default_rng(seed)
    params = random_params(rng, d, p, k, scale=scale, dtype=dtype)
    x = rng.normal(size=(T, B, d)).astype(dtype)
    return params, x, random_targets(rng, B, k, loss, dtype)


def random_targets(rng, B, k, loss, dtype=np.float64):
    """y for ``loss``: (B,) labels in [0, k) for cross_entropy, (B, k) normal floats for mse."""
    if loss == "cross_entropy":
        return rng.integers(0, k, size=B)
    return rng.normal(size=(B, k)).astype(dtype)
