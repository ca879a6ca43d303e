"""Every OracleResult is safe to hold (tpref/oracle.py, tpref/deferred.py).

A caller who edits the params, x or y it passed in, or tries to edit any array of a result,
and only then reads the result (the "numba" backend's TP displacements are computed at that
read), gets the numbers the call computed: the same as a "numpy" call on untouched copies.
The CUDA backend runs the same check in tests/test_cuda_rnn.py (under the simulator).
"""

import copy
import pickle

import numpy as np
import pytest

import tpref
from cases import check_safe_to_hold, random_case, result_arrays
from tpref.deferred import Deferred, freeze

GRU = dict(T=5, B=3, d=2, p=4, k=3)


def _gru_case(seed):
    rng = np.random.default_rng(seed)
    params = tpref.init_gru(GRU["d"], GRU["p"], GRU["k"], seed=seed)
    params = {name: a + 0.1 * rng.normal(size=a.shape) for name, a in params.items()}
    x = rng.normal(size=(GRU["T"], GRU["B"], GRU["d"]))
    return params, x, rng.integers(0, GRU["k"], size=GRU["B"])


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("method, update", [("bp", "local"), ("tp", "local"),
                                            ("tp", "through_time"), ("dtp", "local")])
def test_rnn_result_is_safe_to_hold(method, update, backend):
    params, x, y = random_case(7, T=9, B=3, d=2, p=5, k=3)
    kw = dict(loss="cross_entropy", update=update)
    if method != "bp":
        kw.update(gamma_h=0.1, reg=0.5)
    check_safe_to_hold(tpref.oracle, backend, method, params, x, y, **kw)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("method", ["bp", "tp"])
def test_gru_result_is_safe_to_hold(method, backend):
    kw = dict(loss="cross_entropy", cell="gru")
    if method != "bp":
        kw.update(gamma_h=0.1, reg=0.5)
    check_safe_to_hold(tpref.oracle, backend, method, *_gru_case(3), **kw)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("method", ["bp", "tp", "dtp"])
def test_result_arrays_cannot_be_written(method, backend):
    """Every array is read-only and its flag cannot be turned back on; unpickled or
    deep-copied results are read-only too and give the same numbers."""
    params, x, y = random_case(2, T=6, B=2, d=2, p=4, k=3, dtype=np.float32)
    kw = dict(gamma_h=0.1, reg=1.0) if method != "bp" else {}
    res = tpref.oracle(method, params, x, y, loss="cross_entropy", backend=backend, **kw)
    fresh = pickle.loads(pickle.dumps(res))               # before any read: deferred intact
    arrays = result_arrays(res)
    assert len(arrays) == (7 if method == "bp" else 9)
    every = dict(arrays)
    for i, other in enumerate((fresh, copy.deepcopy(res), pickle.loads(pickle.dumps(res)))):
        again = result_arrays(other)
        assert again.keys() == arrays.keys()
        for name, a in again.items():
            np.testing.assert_array_equal(a, arrays[name], err_msg=name)
            every[f"{name} (copy {i})"] = a
    for name, a in every.items():
        with pytest.raises(ValueError, match="read-only"):
            a[...] = 0
        with pytest.raises(ValueError):
            a.flags.writeable = True
        assert not a.flags.writeable, name


def test_numba_tp_defers_only_with_frozen_inputs():
    """The numba backend's TP displacements are a Deferred of a module-level function whose
    array inputs are the call's own, read-only; nothing else is deferred."""
    params, x, y = random_case(4, T=6, B=2, d=2, p=4, k=3)
    kw = dict(loss="cross_entropy", gamma_h=0.1, reg=1.0)
    res = tpref.oracle("tp", params, x, y, **kw)
    source = res.displacements_source
    assert isinstance(source, Deferred) and "displacements" not in res.__dict__
    arrays = [a for a in source.inputs.values() if isinstance(a, np.ndarray)]
    assert {"P", "hidden", "lam_T"} <= set(source.inputs) and len(arrays) == 3
    for a in arrays:
        assert not a.flags.writeable
        with pytest.raises(ValueError):
            a.flags.writeable = True
        for b in (*params.values(), x, y):
            assert not np.shares_memory(a, b)
    for method in ("bp", "dtp"):
        other = tpref.oracle(method, params, x, y, **kw)
        assert not isinstance(other.displacements_source, Deferred)


def test_freeze():
    owner = np.arange(12.0)
    a = owner.reshape(3, 4)
    v = freeze(a)
    assert v is not a and np.shares_memory(v, a) and not owner.flags.writeable
    with pytest.raises(ValueError):
        v.flags.writeable = True
    assert freeze(None) is None and freeze(1.5) == 1.5
