"""Results that are safe to hold: read-only arrays, and arrays computed on first read.

Every array an :class:`tpref.OracleResult` hands out is read-only (:func:`freeze`), so a
caller who keeps a result, passes it around or reads it later sees the numbers the call
computed. A backend may leave one of its outputs to be computed when first read (the
"numba" backend's TP displacements: a training step never reads them, and writing them was
most of what a TP call cost beyond BP; docs/benchmarks.md). Such an output is a
:class:`Deferred`: a module-level function and the inputs it will be called with, named and
frozen when the Deferred is made. Nothing the caller can write (the result's arrays, the
params, x and y passed to the call) is among those inputs, so a later read returns what an
immediate one would have.
"""

import numpy as np

__all__ = ["freeze", "Deferred"]


def freeze(a):
    """A read-only view of ``a``, after making ``a`` and every array its memory is borrowed
    from read-only too; ``None`` (and any non-array) is returned unchanged.

    The view's ``writeable`` flag cannot be turned back on (NumPy refuses it on a view of a
    read-only array), which it could on an array that owns its memory. Only for arrays the
    library made: freezing a caller's array would freeze it for the caller too.
    """
    if not isinstance(a, np.ndarray):
        return a
    b = a
    while isinstance(b, np.ndarray):
        b.flags.writeable = False
        b = b.base
    return a.view()


class Deferred:
    """An array computed the first time it is read, from inputs frozen when this is made.

    Parameters
    ----------
    compute : function
        A module-level function (it can be pickled, and it reads nothing but its arguments),
        called as ``compute(**inputs)``; returns an ndarray.
    **inputs
        Its arguments. Arrays among them are frozen here (:func:`freeze`), so they must be
        arrays the backend owns (the result's own arrays, or private copies): nothing can
        change them between now and the read.

    Notes
    -----
    ``OracleResult`` calls :meth:`evaluate` once, on first read of the field it backs, and
    caches the (frozen) array. Evaluating again gives the same bits.
    """

    def __init__(self, compute, **inputs):
        self.compute = compute
        self.inputs = {name: freeze(value) for name, value in inputs.items()}

    def evaluate(self):
        """``compute(**inputs)``, frozen."""
        return freeze(self.compute(**self.inputs))

    def __setstate__(self, state):
        """Unpickled arrays come back writeable: freeze them again."""
        self.__dict__.update(state)
        self.inputs = {name: freeze(value) for name, value in self.inputs.items()}

    def __repr__(self):
        return f"Deferred({self.compute.__module__}.{self.compute.__qualname__})"
