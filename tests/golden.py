"""The tiny seeded run whose loss trajectory tests/test_golden.py pins."""

import numpy as np

import tpref

RUNS = {
    "bp": dict(method="bp", lr=0.5, momentum=0.9, nesterov=True),
    "tp-local": dict(method="tp", lr=0.05, gamma_h=0.3, reg=0.5, update="local"),
    "tp-through_time": dict(method="tp", lr=0.05, gamma_h=0.3, reg=0.5, update="through_time"),
    # ascends: DTP far from its linearization at this gamma_h (tests/test_golden.py says why)
    "dtp-local": dict(method="dtp", lr=0.05, gamma_h=0.3, reg=0.5, update="local"),
}


def golden_batch():
    """(params, x, y): the fixed initial parameters and batch of every pinned run."""
    rng = np.random.default_rng(1)
    x = 0.5 * rng.normal(size=(8, 4, 3))            # (T, B, d)
    y = rng.integers(0, 3, size=4)                  # (B,)
    params = tpref.init_rnn(3, 6, 3, seed=0)
    params["b_h"] += 0.1                            # nonzero bias so b_h's direction matters
    return params, x, y


def golden_trajectory(name, steps=6, backend="numpy"):
    """Losses before each of ``steps`` SGD steps of the run ``name`` on a fixed batch."""
    hp = dict(RUNS[name])
    params, x, y = golden_batch()
    opt = tpref.SGD(params, lr=hp.pop("lr"), momentum=hp.pop("momentum", 0.0),
                    nesterov=hp.pop("nesterov", False))
    losses = []
    for _ in range(steps):
        res = tpref.oracle(params=params, x=x, y=y, loss="cross_entropy", backend=backend, **hp)
        losses.append(res.loss)
        opt.step(res.direction)
    return losses


if __name__ == "__main__":
    for name in RUNS:
        print(f"    {name!r}: {golden_trajectory(name)!r},")
