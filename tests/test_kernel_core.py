"""The kernel twins compute what must be identical in one place (tpref/kernels/core.py).

The TP flush threshold once drifted: fixed in numba_rnn (it underflowed to 0 for tiny
gamma_h), still FLUSH_TINY * s in cuda_rnn. Here the same inputs go through both twins'
threshold code, the host code each twin launches its kernels with; and the import rules that
keep the twins on one core are checked on the source.
"""

import ast
import pathlib

import numpy as np
import pytest

from tpref.config import FLUSH_TINY
from tpref.kernels import core, cuda_rnn, numba_rnn

KERNELS = pathlib.Path(core.__file__).parent
TWINS = ("numba_rnn", "numba_gru", "cuda_rnn")


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_tp_units_and_thresholds_are_the_same_in_every_twin(dtype, activation):
    """s, the flush threshold and pi's bounds: equal in the numba and CUDA twins for lam_T
    from O(1) down to near the smallest normal number (the scaled pass), and the threshold is
    a positive normal number that flushes exactly the entries below FLUSH_TINY in units of s."""
    rng = np.random.default_rng(0)
    info = np.finfo(dtype)
    P = np.eye(4, dtype=dtype)
    hidden = np.zeros((3, 2, 4), dtype)
    tiny_exponents = (-200, -290, -300) if dtype == np.float64 else (-20, -30, -36)
    for gamma in (1.0, 1e-3, 1e-12, *(10.0 ** e for e in tiny_exponents)):
        lam_T = (gamma * rng.uniform(0.5, 1.0, size=(2, 4))).astype(dtype)
        cpu = numba_rnn.LinearizedTP(P, hidden, lam_T, activation, 1e-3)
        gpu = cuda_rnn.tp_launch_scalars(lam_T, activation, 1e-3)
        assert (cpu.s, cpu.flush, cpu.lo, cpu.hi) == gpu, (gamma, gpu)
        assert all(type(v) is np.dtype(dtype).type for v in gpu)
        s, flush = gpu[:2]
        assert flush >= info.tiny, (gamma, flush)                 # never 0, never subnormal
        scale = core.power_of_two_scale(lam_T)
        assert 0.5 * np.max(np.abs(lam_T)) < scale <= np.max(np.abs(lam_T))
        if s == 1:                                                # units of lam
            assert flush == dtype(FLUSH_TINY[np.dtype(dtype)] * scale)
        else:                                                     # units of s
            assert s == scale and flush == dtype(FLUSH_TINY[np.dtype(dtype)])


def test_clip_bounds_are_the_references():
    """pi's interval as the reference's ``project`` (np.clip with Python-float bounds) sees
    it, in both dtypes: the same entries land on the bounds, with the same values."""
    from tpref.models.activations import project
    for dtype in (np.float64, np.float32):
        for activation in ("tanh", "sigmoid"):
            for eps in (1e-3, 0.1, 1e-7):
                lo, hi = core.clip_bounds(activation, eps, dtype)
                v = np.concatenate([np.linspace(-1.0, 1.0, 101),
                                    np.nextafter(np.array([lo, hi]), dtype(0)),
                                    [lo, hi], np.nextafter([lo, hi], [-2, 2])]).astype(dtype)
                np.testing.assert_array_equal(np.clip(v, lo, hi), project(activation, v, eps))


def _imports(path):
    """(module, names) of every import in a kernel file, relative imports as written."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            out.append(("." * node.level + (node.module or ""), [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out.extend((a.name, []) for a in node.names)
    return out


def test_no_kernel_imports_methods_and_no_twin_imports_another():
    """Kernels sit below the reference (they twin it, never call it), and each twin reaches
    what it shares with the others through kernels/core.py only."""
    files = sorted(KERNELS.glob("*.py"))
    assert {f.stem for f in files} >= {"core", *TWINS}
    for path in files:
        for module, names in _imports(path):
            assert "methods" not in module.split("."), (path.name, module)
            if path.stem in TWINS:
                others = {f".{t}" for t in TWINS if t != path.stem}
                assert module not in others, (path.name, module)
                assert not (module == "." and set(names) & set(TWINS)), (path.name, names)
