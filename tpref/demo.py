"""A tiny synthetic run for the README: BP, TP and DTP on one fixed batch.

The batch is a teacher task: a random RNN (the teacher) labels random sequences by the argmax
of its output; a freshly initialized student RNN learns them with each method.
"""

import numpy as np

from .models.rnn import init_rnn, rnn_forward
from .optim import SGD
from .oracle import oracle

#: Hyperparameters of the demo (T, B, d, p, k) and per-method step sizes. TP and DTP take the
#: target step and regularization of the paper's temporal-order-60 preset (gamma_h 0.01,
#: r 10). With gamma_h 0.1 and r 1 (this demo before) the displacements grew ~40x back
#: through the 20 steps, the first update saturated every hidden unit, the transition
#: directions were exactly 0 from then on, and DTP's loss rose: step sizes, not a bug.
DEMO_SHAPE = dict(T=20, B=32, d=4, p=16, k=3)
DEMO_METHODS = {
    "bp": dict(lr=0.5),
    "tp": dict(lr=0.5, gamma_h=0.01, reg=10.0),
    "dtp": dict(lr=0.5, gamma_h=0.01, reg=10.0),
}


def demo_batch(seed):
    """(x, y): x (T, B, d) standard normal, y (B,) labels given by a random teacher RNN."""
    s = DEMO_SHAPE
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(s["T"], s["B"], s["d"]))
    teacher = init_rnn(s["d"], s["p"], s["k"], seed=rng)
    h_T = rnn_forward(teacher, x)[-1]
    y = np.argmax(h_T @ teacher["W_hy"].T, axis=1)
    return x, y


def run_demo(iterations=200, seed=0, out=None, every=20):
    """Train the student with each method; print and return the loss curves.

    Returns
    -------
    dict of str -> list of float
        Loss before each SGD step, per method.
    """
    s = DEMO_SHAPE
    x, y = demo_batch(seed)
    curves = {}
    for method, hp in DEMO_METHODS.items():
        params = init_rnn(s["d"], s["p"], s["k"], seed=seed + 1)
        opt = SGD(params, lr=hp["lr"])
        curve = []
        for _ in range(iterations):
            res = oracle(method, params, x, y, loss="cross_entropy",
                         gamma_h=hp.get("gamma_h"), reg=hp.get("reg"))
            curve.append(res.loss)
            opt.step(res.direction)
        curves[method] = curve
    if out is not None:
        print(f"tpref demo: teacher task, T={s['T']} B={s['B']} d={s['d']} p={s['p']} "
              f"k={s['k']}, seed {seed}, training loss (cross-entropy)", file=out)
        print("step sizes: " + "; ".join(f"{m} " + ", ".join(f"{k} {v:g}" for k, v in hp.items())
                                         for m, hp in DEMO_METHODS.items())
              + " (TP/DTP: the temporal-order-60 preset's gamma_h and r; a much larger gamma_h "
                "saturates the units and the loss rises)", file=out)
        print("iteration " + "".join(f"{m:>12}" for m in curves), file=out)
        for i in list(range(0, iterations, every)) + [iterations - 1]:
            print(f"{i:9d} " + "".join(f"{curves[m][i]:12.5f}" for m in curves), file=out)
    return curves
