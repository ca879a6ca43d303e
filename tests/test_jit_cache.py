"""The kernels' disk cache follows the code they compile in, and the fast-math layer's use of
numba and llvmlite internals has a guarded fallback (tpref/kernels/jit_cache.py,
tpref/kernels/numba_math.py).

The cache tests run in subprocesses on a copy of the package, so that editing numba_math.py
there touches neither this checkout nor its cache.
"""

import os
import shutil
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest
from numba import njit

import tpref
from tpref.kernels import jit_cache, numba_math

PACKAGE = os.path.dirname(tpref.__file__)

# one forward pass through numba_rnn's kernels (which inline numba_math.vtanh); prints the
# result's bits and whether the kernel came from the disk cache
FORWARD = textwrap.dedent("""
    import sys
    import numpy as np
    from tpref.kernels import jit_cache, numba_rnn
    rng = np.random.default_rng(0)
    params = {"W_hh": rng.normal(size=(4, 4)), "W_xh": rng.normal(size=(4, 2)),
              "b_h": rng.normal(size=4)}
    h = numba_rnn.rnn_forward(params, rng.normal(size=(5, 3, 2)))
    stats = numba_rnn._forward.stats          # rnn_forward's kernel (it calls _forward_kernel)
    print(h.tobytes().hex(), sum(stats.cache_hits.values()), jit_cache.CACHE,
          type(numba_rnn._forward._cache).__name__)
""")


def _copy_package(tmp_path):
    root = tmp_path / "tree"
    shutil.copytree(PACKAGE, root / "tpref", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _run(root, script, prelude=""):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_CACHE")}
    env["PYTHONPATH"] = str(root)
    proc = subprocess.run([sys.executable, "-c", prelude + script], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    bits, hits, cache, kind = proc.stdout.split()
    return bits, int(hits), cache == "True", kind


def test_editing_the_vector_math_invalidates_the_kernels_that_inline_it(tmp_path):
    """Cached, then loaded from the cache; after an edit of vtanh in numba_math.py only (not
    in numba_rnn.py, which defines the kernel), the kernel is compiled again and computes
    with the new vtanh. And where numba's internal list of cache locators is not found
    (simulated: made a tuple), the kernels compile without a disk cache (never stale) and
    compute the same bits. (One test: each run compiles in a fresh process.)"""
    root = _copy_package(tmp_path)
    first = _run(root, FORWARD)
    again = _run(root, FORWARD)
    assert first[2] and first[3] == "FunctionCache"
    assert first[1] == 0 and again[1] == 1 and again[0] == first[0]     # miss, then hit
    hidden = textwrap.dedent("""
        from numba.core import caching
        caching.CacheImpl._locator_classes = tuple(caching.CacheImpl._locator_classes)
    """)
    bare = _run(root, FORWARD, prelude=hidden)
    assert not bare[2] and bare[3] == "NullCache" and bare[1] == 0 and bare[0] == first[0]
    math_py = root / "tpref" / "kernels" / "numba_math.py"
    source = math_py.read_text()
    line = "    return np.copysign(aa - aa * q, x)"
    assert source.count(line) == 1
    math_py.write_text(source.replace(line, line + " * 0.5"))          # float64 vtanh halved
    edited = _run(root, FORWARD)
    assert edited[1] == 0, "the kernel was loaded from a cache made with the old vtanh"
    h0 = np.frombuffer(bytes.fromhex(first[0]))
    h1 = np.frombuffer(bytes.fromhex(edited[0]))
    assert np.any(h1 != h0) and np.all(np.abs(h1) <= 0.5)


def test_install_finds_numbas_locators_and_is_idempotent(monkeypatch):
    from numba.core import caching
    classes = caching.CacheImpl._locator_classes
    ours = [c for c in classes if hasattr(c, "tpref_digest")]
    assert jit_cache.CACHE and ours and jit_cache.install()
    assert [c for c in classes if hasattr(c, "tpref_digest")] == ours       # not added twice
    assert all(c.tpref_digest == jit_cache.sources_digest() for c in ours)
    monkeypatch.setattr(caching.CacheImpl, "_locator_classes", tuple(classes))
    assert jit_cache._numba_locator_list() is None


def _narrow_loop():
    @njit(error_model="numpy", fastmath=numba_math.CONTRACT)
    def loop(u, out):
        numba_math.wide_vectors()
        for i in range(u.size):
            out[i] = numba_math.vtanh(u[i])
    return loop


def test_wide_vectors_without_llvmlites_private_hook(monkeypatch):
    """Without llvmlite's FunctionAttributes._to_list (simulated), there is no attribute
    class, and wide_vectors() is a no-op: the kernel compiles, without the 512-bit attribute,
    and gives the same bits; with it, the attribute is in the kernel's LLVM IR."""
    assert numba_math.WIDE_VECTORS
    assert numba_math._wide_attributes_class(types.SimpleNamespace()) is None
    no_hook = types.SimpleNamespace(FunctionAttributes=type("FunctionAttributes", (), {}))
    assert numba_math._wide_attributes_class(no_hook) is None
    u = np.linspace(-5, 5, 1001)
    wide, narrow = np.empty_like(u), np.empty_like(u)
    loop = _narrow_loop()
    loop(u, wide)
    assert "prefer-vector-width" in loop.inspect_llvm(loop.signatures[0])
    monkeypatch.setattr(numba_math, "_WIDE_ATTRIBUTES", None)
    loop = _narrow_loop()
    loop(u, narrow)
    assert "prefer-vector-width" not in loop.inspect_llvm(loop.signatures[0])
    np.testing.assert_array_equal(wide, narrow)
