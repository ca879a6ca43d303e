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


def reference(method, params, x, y, **kw):
    """``tpref.oracle`` pinned to the NumPy reference loops (``backend="numpy"``), for the
    tests that check the reference itself."""
    import tpref
    return tpref.oracle(method, params, x, y, backend="numpy", **kw)


def random_targets(rng, B, k, loss, dtype=np.float64):
    """y for ``loss``: (B,) labels in [0, k) for cross_entropy, (B, k) normal floats for mse."""
    if loss == "cross_entropy":
        return rng.integers(0, k, size=B)
    return rng.normal(size=(B, k)).astype(dtype)


# ----------------------------------------------------------------------------------------------
# results safe to hold (tpref.OracleResult)


def result_arrays(res):
    """Every array a caller reaches through a result: outputs, directions, displacements and
    targets (read: computed now if deferred), and a stored displacements array."""
    arrays = {"displacements": res.displacements, "targets": res.targets,
              "output": res.output, "hidden": res.hidden,
              **{"direction " + name: a for name, a in res.direction.items()}}
    return {name: a for name, a in arrays.items() if a is not None}


def scribble(a):
    """Overwrite every entry of ``a`` as a careless caller would; False if ``a`` refused."""
    try:
        if a.dtype.kind in "iu":
            a[...] = a + 1                                # labels: another class
        else:
            a[...] = 3.0 * a + 0.5
    except ValueError:                                    # read-only
        return False
    return True


def check_safe_to_hold(oracle, backend, method, params, x, y, **kw):
    """Call ``oracle`` with ``backend``; then edit everything the caller can reach (the
    params, x and y passed in, and every array of the result before its displacements are
    read), then read the result: it must equal a "numpy" call made on untouched copies.
    Returns the result."""
    from tpref.testing import assert_close
    copy = lambda: ({n: a.copy() for n, a in params.items()}, x.copy(), y.copy())
    ref = oracle(method, *copy(), backend="numpy", **kw)
    params, x, y = copy()
    res = oracle(method, params, x, y, backend=backend, **kw)
    for a in (*params.values(), x, y):
        assert scribble(a)                                # the caller's own arrays: writeable
    source = getattr(res, "displacements_source", None)
    for a in (res.output, res.hidden, *res.direction.values(),
              source if isinstance(source, np.ndarray) else None):
        if a is not None:
            scribble(a)
    got, want = result_arrays(res), result_arrays(ref)
    assert got.keys() == want.keys()
    dtype = res.hidden.dtype
    for name in want:
        assert_close(got[name], want[name], name=f"{backend} {method} {name}", dtype=dtype)
    for name, a in got.items():
        assert not a.flags.writeable, name
        for b in (*params.values(), x, y):
            assert not np.shares_memory(a, b), name
    return res
