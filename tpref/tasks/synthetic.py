"""Synthetic long-range tasks of Sec. 4: temporal order and adding (Hochreiter & Schmidhuber).

Each generator draws one batch from a ``numpy.random.Generator`` and returns (x, y) in the
oracle's layout: x (T, B, d) time-major. Positions below are 0-based (x[t] is the paper's
x_{t+1}); every interval is half-open, [lo, hi).
"""

import numpy as np

# ----------------------------------------------------------------------------------------------
# temporal order

#: Symbols of the temporal-order task: 0, 1 are X, Y; 2-5 the distractors a, b, c, d.
TEMPORAL_ORDER_SYMBOLS = 6
TEMPORAL_ORDER_CLASSES = 4
#: Where the two markers may fall: the paper's text or the authors' code (docs/results.md).
MARKER_RULES = ("paper", "code")


def temporal_order_positions(T, rule="paper"):
    """Intervals [lo0, hi0), [lo1, hi1) of the two marker positions for length T.

    - "paper" (Sec. 4): t1 in [T/10, 2T/10), t2 in [4T/10, 5T/10), floors of each bound.
    - "code" (authors' code): t1 in [floor(T/10), 2 floor(T/10)),
      t2 in [floor(T/2), floor(T/2) + floor(T/10)).
    """
    if rule == "paper":
        return (T // 10, (2 * T) // 10), ((4 * T) // 10, (5 * T) // 10)
    if rule == "code":
        return (T // 10, 2 * (T // 10)), (T // 2, T // 2 + T // 10)
    raise ValueError(f"marker rule must be one of {MARKER_RULES}, got {rule!r}")


def temporal_order_batch(rng, T, B, rule="paper"):
    """One batch of the temporal-order problem.

    Every step holds a one-hot symbol; distractors (2-5) everywhere except at two marker
    positions t1 < t2, which hold X (0) or Y (1). The label is v1 + 2 v2 in {0, 1, 2, 3}
    (XX, YX, XY, YY), the order in which X and Y appeared.

    Parameters
    ----------
    rng : numpy.random.Generator
    T, B : int
        Length (>= 10) and batch size.
    rule : {"paper", "code"}
        Marker intervals, see :func:`temporal_order_positions`.

    Returns
    -------
    x : ndarray of shape (T, B, 6), float64 one-hot
    y : ndarray of shape (B,), int64 labels in [0, 4)
    """
    (lo0, hi0), (lo1, hi1) = temporal_order_positions(T, rule)
    symbols = rng.integers(2, TEMPORAL_ORDER_SYMBOLS, size=(T, B))     # (T, B) distractors
    t1 = rng.integers(lo0, hi0, size=B)                                 # (B,)
    t2 = rng.integers(lo1, hi1, size=B)                                 # (B,)
    v = rng.integers(0, 2, size=(2, B))                                 # (2, B) X=0 / Y=1
    cols = np.arange(B)
    symbols[t1, cols] = v[0]
    symbols[t2, cols] = v[1]
    x = np.zeros((T, B, TEMPORAL_ORDER_SYMBOLS))
    x[np.arange(T)[:, None], cols[None, :], symbols] = 1.0              # (T, B, 6) one-hot
    y = (v[0] + 2 * v[1]).astype(np.int64)
    return x, y


# ----------------------------------------------------------------------------------------------
# adding

#: Accuracy thresholds of the adding problem: "abs" |out - target| < 0.04 (authors' code),
#: "squared" (out - target)^2 < 0.04 (Manchev & Spratling, the paper's text).
ADDING_TOLERANCE = 0.04


def adding_batch(rng, T, B):
    """One batch of the adding problem.

    Channel 1 holds U[0, 1) numbers, channel 0 marks two steps t1 in [0, T/10) and
    t2 in [T/10, T/2) with ones. The target is the mean of the two marked numbers.

    Returns
    -------
    x : ndarray of shape (T, B, 2)
    y : ndarray of shape (B, 1)
    """
    cols = np.arange(B)
    values = rng.random((T, B))                                          # (T, B)
    t1 = rng.integers(0, T // 10, size=B)
    t2 = rng.integers(T // 10, T // 2, size=B)
    x = np.zeros((T, B, 2))
    x[:, :, 1] = values
    x[t1, cols, 0] = 1.0
    x[t2, cols, 0] = 1.0
    y = 0.5 * (values[t1, cols] + values[t2, cols])
    return x, y[:, None]


def adding_accuracy(output, y):
    """Fractions of samples within tolerance: {"accuracy_abs": ..., "accuracy_sq": ...}."""
    err = np.abs(output[:, 0] - y[:, 0])
    return {"accuracy_abs": float(np.mean(err < ADDING_TOLERANCE)),
            "accuracy_sq": float(np.mean(err ** 2 < ADDING_TOLERANCE))}
