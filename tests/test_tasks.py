"""Task generators: shapes, label balance, marker positions, determinism in (seed, iteration)."""

import numpy as np
import pytest

from tpref.tasks import make_task
from tpref.tasks.synthetic import (adding_accuracy, adding_batch, temporal_order_batch,
                                   temporal_order_positions)


@pytest.mark.parametrize("T", [60, 120, 37])
@pytest.mark.parametrize("rule", ["paper", "code"])
def test_temporal_order_shapes_one_hot_and_markers(T, rule):
    x, y = temporal_order_batch(np.random.default_rng(0), T, 400, rule)
    assert x.shape == (T, 400, 6) and y.shape == (400,)
    assert np.array_equal(x.sum(axis=2), np.ones((T, 400)))          # one symbol per step
    sym = x.argmax(axis=2)                                              # (T, B)
    (lo0, hi0), (lo1, hi1) = temporal_order_positions(T, rule)
    for b in range(400):
        pos = np.flatnonzero(sym[:, b] < 2)                             # X/Y positions
        assert len(pos) == 2
        assert lo0 <= pos[0] < hi0 and lo1 <= pos[1] < hi1
        assert y[b] == sym[pos[0], b] + 2 * sym[pos[1], b]


def test_temporal_order_marker_intervals_of_paper_and_code():
    assert temporal_order_positions(60, "paper") == ((6, 12), (24, 30))
    assert temporal_order_positions(60, "code") == ((6, 12), (30, 36))
    assert temporal_order_positions(120, "paper") == ((12, 24), (48, 60))
    assert temporal_order_positions(125, "code") == ((12, 24), (62, 74))


def test_temporal_order_markers_cover_their_intervals():
    x, _ = temporal_order_batch(np.random.default_rng(1), 60, 5000, "paper")
    sym = x.argmax(axis=2)
    first = np.argmax(sym < 2, axis=0)
    assert set(first) == set(range(6, 12))


def test_temporal_order_labels_balanced():
    _, y = temporal_order_batch(np.random.default_rng(2), 60, 20000)
    counts = np.bincount(y, minlength=4)
    assert counts.shape == (4,)
    assert np.all(np.abs(counts / 20000 - 0.25) < 0.015), counts


def test_adding_batch():
    x, y = adding_batch(np.random.default_rng(3), 30, 500)
    assert x.shape == (30, 500, 2) and y.shape == (500, 1)
    assert np.array_equal(x[:, :, 0].sum(axis=0), np.full(500, 2.0))
    for b in range(500):
        t1, t2 = np.flatnonzero(x[:, b, 0])
        assert 0 <= t1 < 3 and 3 <= t2 < 15
        assert y[b, 0] == 0.5 * (x[t1, b, 1] + x[t2, b, 1])
    assert 0 <= x[:, :, 1].min() and x[:, :, 1].max() < 1


def test_adding_accuracy_criteria_differ():
    y = np.array([[0.5], [0.5], [0.5]])
    out = np.array([[0.53], [0.45], [0.8]])          # errors 0.03, 0.05, 0.3
    m = adding_accuracy(out, y)
    assert m["accuracy_abs"] == pytest.approx(1 / 3)
    assert m["accuracy_sq"] == pytest.approx(2 / 3)   # 0.05^2 = 0.0025 < 0.04


def test_task_streams_are_functions_of_seed_and_iteration():
    task = make_task("temporal-order", length=60)
    a = task.train_batch(5, 17, 20)
    b = task.train_batch(5, 17, 20)
    c = task.train_batch(5, 18, 20)
    d = task.train_batch(6, 17, 20)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[0], d[0])
    ev = list(make_task("adding", length=30).eval_batches(0, 1200))
    assert [x.shape[1] for x, _ in ev] == [500, 500, 200]
    # held-out data differs from training data
    x_tr, _ = make_task("adding", length=30).train_batch(0, 0, 500)
    assert not np.array_equal(ev[0][0], x_tr)


@pytest.mark.parametrize("name,kwargs,match", [
    ("sudoku", {}, "unknown task"),
    ("temporal-order", {"length": 5}, "length >= 10"),
    ("adding", {"length": 3}, "length >= 10"),
    ("temporal-order", {"markers": "middle"}, "markers"),
])
def test_bad_synthetic_tasks(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_task(name, **kwargs)
