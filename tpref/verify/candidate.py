"""The candidate of ``compare`` checked before any number is: its keys, its precision, and
its shapes against the reference (time-major layout, t = 0..T), each error saying what to do."""

import numpy as np

from . import tolerance as _tol

#: Quantities a candidate may hold, in the order the computation produces them.
QUANTITIES = ("hidden", "loss", "displacements", "targets", "direction")


def candidate_dtype(candidate, dtype):
    """The candidate's precision: ``dtype`` if given (checked against the arrays), else the
    arrays' common float dtype."""
    found = {}
    for q, value in candidate.items():
        if q == "direction":
            for n, a in value.items():
                found[f"candidate['direction'][{n!r}]"] = np.asarray(a).dtype
        elif q != "loss":
            found[f"candidate[{q!r}]"] = np.asarray(value).dtype
    # the loss is often accumulated in float64 by float32 code: it sets the precision only alone
    loss_dt = np.asarray(candidate["loss"]).dtype if "loss" in candidate else None
    if loss_dt is not None and loss_dt.kind not in "fiu":
        raise TypeError(f"candidate['loss'] must be a number, got dtype {loss_dt}")
    if not found and loss_dt == np.float32:
        found["candidate['loss']"] = loss_dt
    for where, dt in found.items():
        if dt.kind != "f":
            raise TypeError(f"{where} must be a float array (float32 or float64), got dtype {dt}")
        if dt not in _tol.DTYPES:
            raise TypeError(f"{where} has dtype {dt}; tpref.verify checks float32 and float64 "
                            f"implementations (cast a half-precision result up and pass "
                            f"dtype=np.float32 only if it was computed in float32)")
    if dtype is not None:
        try:
            dtype = np.dtype(dtype)
        except TypeError as err:
            raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from err
        if dtype not in _tol.DTYPES:
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        if dtype == np.float64:
            low = [w for w, dt in found.items() if dt == np.float32]
            if low:
                raise TypeError(f"dtype=float64 but {low[0]} is float32: float32 arrays cannot "
                                f"carry a float64 computation; pass dtype=np.float32")
        return dtype
    kinds = set(found.values())
    if not kinds:
        raise TypeError("cannot infer the candidate's precision from a Python float loss alone: "
                        "pass dtype=np.float32 or np.float64")
    if len(kinds) > 1:
        mixed = ", ".join(f"{w}: {dt}" for w, dt in found.items())
        raise TypeError(f"candidate mixes precisions ({mixed}); pass dtype= the precision it "
                        f"was computed in")
    return kinds.pop()


def check_candidate(candidate, ref_values, ref):
    """Candidate as float64 arrays after checking keys and shapes against the reference."""
    if not isinstance(candidate, dict):
        raise TypeError(f"candidate must be a dict with any of the keys {QUANTITIES}, got "
                        f"{type(candidate).__name__}")
    unknown = sorted(set(candidate) - set(QUANTITIES))
    if unknown:
        raise ValueError(f"candidate has unknown quantities {unknown}; known: {QUANTITIES} "
                         f"(time-major arrays; 'direction' is a dict of parameter arrays)")
    if not candidate:
        raise ValueError(f"candidate is empty: give at least one of {QUANTITIES}")
    out = {}
    for q, value in candidate.items():
        if q not in ref_values:
            raise ValueError(f"candidate[{q!r}] cannot be checked: the reference "
                             f"(method {ref.method!r}) has no {q}")
        if q == "loss":
            a = np.asarray(value, dtype=np.float64)
            if a.size != 1:
                raise ValueError(f"candidate['loss'] must be one number, got shape {a.shape}")
            out[q] = float(a.reshape(()))
        elif q == "direction":
            if not isinstance(value, dict):
                raise TypeError(f"candidate['direction'] must be a dict name -> array, got "
                                f"{type(value).__name__}")
            names = ref_values["direction"]
            extra = sorted(set(value) - set(names))
            if extra:
                raise ValueError(f"candidate['direction'] has unknown parameters {extra}; "
                                 f"{ref.cell} parameters are {tuple(names)}")
            if not value:
                raise ValueError("candidate['direction'] is empty")
            out[q] = {}
            for n in names:
                if n in value:
                    a = np.asarray(value[n], dtype=np.float64)
                    _check_shape(f"candidate['direction'][{n!r}]", a, names[n].shape,
                                 transposable=True)
                    out[q][n] = a
        else:
            a = np.asarray(value, dtype=np.float64)
            _check_stepped(q, a, ref_values[q].shape)
            out[q] = a
    return out


def _check_shape(where, a, shape, transposable=False):
    if a.shape == shape:
        return
    note = ""
    if transposable and a.shape == shape[::-1]:
        note = " (it has the transposed shape: tpref's weights are (out, in), as torch's)"
    raise ValueError(f"{where} has shape {a.shape}, expected {shape}{note}")


def _check_stepped(q, a, shape):
    T1, B, p = shape
    where = f"candidate[{q!r}]"
    if a.shape == shape:
        if q == "hidden" and T1 == B and T1 > 1 and np.any(a[0] != 0) and not np.any(a[:, 0]):
            raise ValueError(f"{where} looks batch-first: hidden[:, 0] is zero where hidden[0] "
                             f"(h_0) should be; tpref's layout is time-major (T+1, B, p): pass "
                             f"np.swapaxes(hidden, 0, 1)")
        return
    if a.shape == (B, T1, p):
        raise ValueError(f"{where} has shape {a.shape}: batch-first (B, T+1, p); tpref's layout "
                         f"is time-major (T+1, B, p) = {shape}: pass np.swapaxes(a, 0, 1)")
    if a.shape == (T1 - 1, B, p) or a.shape == (B, T1 - 1, p):
        raise ValueError(f"{where} has shape {a.shape}: T steps without t = 0; tpref's layout "
                         f"holds t = 0..T, shape (T+1, B, p) = {shape} (hidden[0] = h_0 = 0; "
                         f"prepend h_0, or v_0 / lam_0 for targets and displacements)")
    raise ValueError(f"{where} has shape {a.shape}, expected (T+1, B, p) = {shape}")
