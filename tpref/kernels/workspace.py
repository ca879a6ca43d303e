"""Output buffers the Numba oracles reuse from call to call, so large ones are not faulted in again.

Why. glibc hands an allocation above its mmap threshold (at most 32 MiB on 64-bit) a fresh
mapping and unmaps it on free, so an oracle returning a (T+1, B, p) array of that size
page-faults the whole array in at every call: float64 at T = 3072, B = 16, p = 100 (39 MB per
array) measured ~400 faults and ~8 ms per array and call, 10% of a BP iteration and 18% of a
TP one (TP returns two such arrays). Smaller arrays freed together can be trimmed from the
heap and faulted in the same way (docs/benchmarks.md). A training loop drops each result
before the next one is needed, so the same memory can serve every iteration.

How. ``empty(shape, dtype)`` hands out a buffer kept from an earlier call only when nothing
outside this module refers to it any more (CPython's reference count: a result the caller
still holds, or any view of it, keeps its buffer's count up), else a new array, which it keeps
for later. So a result you hold is never overwritten; a result you dropped is recycled.
Up to config.WORKSPACE_KEEP buffers are kept per (shape, dtype) (two, so that
``res = oracle(...)`` in a loop, which holds the previous result during the call, alternates
between two buffers) for the config.WORKSPACE_SHAPES most recent shapes, at most
config.WORKSPACE_MAX_BYTES in all (least recently used shapes are forgotten first); arrays
under config.WORKSPACE_MIN_BYTES or over WORKSPACE_MAX_BYTES / WORKSPACE_KEEP are new
(aligned) arrays, not kept. ``clear()`` gives the kept memory back.

The contents of a buffer are whatever the previous call left: callers write every entry.
A result's arrays are read-only (``tpref.deferred.freeze``, which also freezes the uint8
owner); a buffer handed out again is made writeable again, once no one holds it.

Alignment. Every array made here starts on an ALIGN = 64-byte boundary (a view of a slightly
larger uint8 array; NumPy's own allocations are only 16-byte aligned): a 512-bit load of a
row then never straddles two cache lines, and ``aligned(a)`` gives the (p, p) matrices the
kernels multiply by at every step the alignment OpenBLAS's float64 small-matrix kernels need
(~10% per product otherwise). Because a view of such an array refers to the uint8 owner, not
to the array, "held" means: the array or its owner has a reference besides ours.
"""

import collections
import math
import sys
import threading

import numpy as np

from ..config import WORKSPACE_KEEP, WORKSPACE_MAX_BYTES, WORKSPACE_MIN_BYTES, WORKSPACE_SHAPES

__all__ = ["empty", "aligned_empty", "clear", "kept_bytes", "aligned"]

#: Byte boundary of every array made here (one cache line; one 512-bit vector).
ALIGN = 64

_LOCK = threading.Lock()
_KEPT = collections.OrderedDict()          # (shape, dtype.str) -> list of ndarrays, oldest first


def _unheld_counts():
    """sys.getrefcount of a kept array (a list item) and of its memory's owner when nothing but
    the list refers to them (2 each on CPython 3.11)."""
    probe = [aligned_empty((1,), np.float64)]
    return sys.getrefcount(probe[0]), sys.getrefcount(probe[0].base)


def aligned_empty(shape, dtype):
    """np.empty(shape, dtype) whose data starts on an ALIGN-byte boundary: a view of a larger
    uint8 array (its ``base``, which also becomes the ``base`` of every view of it). Never
    kept (for scratch arrays; ``empty`` for outputs)."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    buf = np.empty(nbytes + ALIGN, np.uint8)
    start = -buf.ctypes.data % ALIGN
    return buf[start:start + nbytes].view(dtype).reshape(shape)


def empty(shape, dtype):
    """A C-contiguous uninitialized array of ``shape`` and ``dtype``, ALIGN-byte aligned,
    reused when free.

    Parameters
    ----------
    shape : tuple of int
    dtype : numpy dtype

    Returns
    -------
    ndarray
        A kept buffer no one else holds, or a new array (kept for later calls when it has at
        least config.WORKSPACE_MIN_BYTES).
    """
    shape = tuple(map(int, shape))
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if not WORKSPACE_MIN_BYTES <= nbytes <= WORKSPACE_MAX_BYTES // WORKSPACE_KEEP:
        return aligned_empty(shape, dtype)
    key = (shape, dtype.str)
    with _LOCK:
        kept = _KEPT.pop(key, [])
        new = False
        for i in range(len(kept)):
            # free: only `kept` refers to the array, only the array to its memory's owner
            # (a caller's view of it refers to the owner, NumPy collapsing view chains)
            if (sys.getrefcount(kept[i]) == _UNHELD
                    and sys.getrefcount(kept[i].base) == _UNHELD_BASE):
                out = kept.pop(i)
                break
        else:
            out = aligned_empty(shape, dtype)
            new = True
        # a dropped result may have frozen it (or a view of it, and with it the owner)
        out.base.flags.writeable = True                   # the uint8 owner, then the array
        out.flags.writeable = True
        kept.append(out)                                  # most recently handed out last
        del kept[:-WORKSPACE_KEEP]                        # forget the oldest (a caller holds it)
        _KEPT[key] = kept
        # a reused buffer changed neither the shapes kept nor their bytes
        while new and (len(_KEPT) > WORKSPACE_SHAPES or _kept_bytes() > WORKSPACE_MAX_BYTES):
            _KEPT.popitem(last=False)                     # least recently used shape
    return out


def _kept_bytes():
    return sum(a.nbytes for kept in _KEPT.values() for a in kept)


def clear():
    """Forget every kept buffer (their memory is freed once no result refers to it)."""
    with _LOCK:
        _KEPT.clear()


def kept_bytes():
    """Bytes of the buffers currently kept (held by callers or free)."""
    with _LOCK:
        return _kept_bytes()


def aligned(a):
    """``a`` if it is C-contiguous and starts on an ALIGN-byte boundary, else such a copy.

    For the (p, p) matrices the kernels multiply by at every step (W_hh, its transpose, P):
    OpenBLAS's small-matrix float64 kernels run ~10% slower per step when that operand is
    8 or 16 bytes off a 32-byte boundary, and NumPy's allocations (malloc) are only 16-byte
    aligned, so the rate moved with wherever the user's array or a fresh copy happened to
    land (measured in docs/benchmarks.md, fourth round).
    """
    if a.flags.c_contiguous and a.ctypes.data % ALIGN == 0:
        return a
    out = aligned_empty(a.shape, a.dtype)
    out[...] = a
    return out


_UNHELD, _UNHELD_BASE = _unheld_counts()
