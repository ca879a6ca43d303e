"""Numba's disk cache for the kernels, keyed on every file whose code they compile in.

Numba keys a cached kernel on the source of the file that defines it only. A kernel of
numba_rnn.py or numba_gru.py also compiles in code from other files: ``numba_math.vtanh``,
``vatanh``, ``vlogit`` and ``wide_vectors`` are inlined, ``numba_blas.add_tn_product`` is
linked in. Without help, editing vtanh left every cached kernel running the old vtanh until
numba_rnn.py itself changed or __pycache__ was cleared.

Here every cached kernel under tpref/kernels is stamped with a SHA-256 digest of
``JIT_SOURCES`` (the files other kernels compile in) next to numba's own stamp of its file:
changing any of them invalidates every cached kernel of this package, and Numba compiles
them again on their next call (tests/test_jit_cache.py edits a copy of the package in a
subprocess and checks that the edit is seen).

How: numba picks a cache locator per function from a list of locator classes
(``numba.core.caching.CacheImpl._locator_classes``, ``_CacheImpl`` in older releases). For
each of its source-file locators, a subclass that claims only the files of this directory and
adds the digest to the source stamp is put in front of the list. That list is numba's
internal extension point, not a public API. If it is not found, ``CACHE`` is False and the
kernels are not cached on disk at all: every process compiles them again (a slower first call,
never a stale kernel).
"""

import hashlib
import os

#: Files under tpref/kernels whose code is compiled into kernels defined in other files
#: (inlined overloads and intrinsics, jitted callees). Add a file here when a kernel starts
#: to call into it.
JIT_SOURCES = ("numba_math.py", "numba_blas.py")

KERNELS_DIR = os.path.dirname(os.path.abspath(__file__))


def sources_digest(directory=KERNELS_DIR, names=JIT_SOURCES):
    """SHA-256 (hex) of the named files' names and bytes, in order."""
    h = hashlib.sha256()
    for name in names:
        with open(os.path.join(directory, name), "rb") as f:
            h.update(name.encode() + b"\0" + f.read())
    return h.hexdigest()


def _numba_locator_list():
    """numba's list of cache locator classes and its source-file locator mixin, or None."""
    try:
        from numba.core import caching
    except ImportError:
        return None
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
    classes = getattr(impl, "_locator_classes", None)
    mixin = getattr(caching, "_SourceFileBackedLocatorMixin", None)
    if not isinstance(classes, list) or mixin is None:
        return None
    return classes, mixin


def _dependent_locator(base, digest):
    """A subclass of numba's locator ``base`` for files of KERNELS_DIR whose stamp adds
    ``digest``."""
    def from_function(cls, py_func, py_file):
        if os.path.dirname(os.path.abspath(py_file)) != KERNELS_DIR:
            return None                                   # not ours: numba's own locators
        return super(locator, cls).from_function(py_func, py_file)

    def get_source_stamp(self):
        return (base.get_source_stamp(self), "tpref.kernels.jit_cache", digest)

    locator = type("Tpref" + base.__name__.lstrip("_"), (base,),
                   {"__module__": __name__, "from_function": classmethod(from_function),
                    "get_source_stamp": get_source_stamp, "tpref_digest": digest})
    return locator


def install():
    """Put the dependency-stamping locators in front of numba's list; True if done (or done
    before in this process), False if numba's list was not found."""
    found = _numba_locator_list()
    if found is None:
        return False
    classes, mixin = found
    if any(hasattr(c, "tpref_digest") for c in classes):
        return True
    digest = sources_digest()
    ours = [_dependent_locator(c, digest) for c in classes
            if isinstance(c, type) and issubclass(c, mixin)]
    if not ours:
        return False
    classes[:0] = ours
    return True


#: ``cache=`` of every kernel under tpref/kernels: True where the dependency stamp is
#: installed, else False (compiled in every process, never stale).
CACHE = install()
