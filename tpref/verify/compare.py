"""``compare``: check a candidate implementation's outputs against tpref and say where they part.

The candidate is a dict of what your implementation computed for one call, in tpref's layout
(time-major, index t as in ``OracleResult``):

    "loss"           float                      batch-mean loss
    "hidden"         (T+1, B, p)                hidden[t] = h_t, hidden[0] = h_0 = 0
    "targets"        (T+1, B, p)                targets[t] = v_t                (tp, dtp)
    "displacements"  (T+1, B, p)                lam_t = v_t - h_t               (tp, dtp)
    "direction"      dict name -> array         shaped like params, gradient-like

any subset of them. The reference is an ``OracleResult`` (it carries the call that made it,
``OracleResult.call``) or a golden case (``tpref.verify.golden``). Tolerances follow
``tpref.verify.tolerance`` (one policy, documented there).
"""

import warnings
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..oracle import NonFiniteResultWarning
from . import tolerance as _tol

#: Quantities a candidate may hold, in the order the computation produces them.
QUANTITIES = ("hidden", "loss", "displacements", "targets", "direction")
_STEPPED = ("hidden", "targets", "displacements")


# ----------------------------------------------------------------------------------------------
# the reference: float64 values and tpref's own run in another precision


class Reference:
    """tpref's float64 values of one call and, on demand, its own run in another precision.

    Built from an ``OracleResult`` (:meth:`from_result`) or a golden case; ``values(dtype)``
    gives the dict of quantities (float64: the reference itself), ``call`` the provenance:
    ``method``, ``params``, ``x``, ``y``, ``options`` (``oracle``'s keyword arguments).
    """

    def __init__(self, method, params, x, y, options, values, noise=None, name=None):
        self.method, self.params, self.x, self.y = method, params, x, y
        self.options = dict(options)
        self.name = name
        self._values = values
        self._noise = noise

    @classmethod
    def from_result(cls, result):
        call = getattr(result, "call", None)
        if call is None:
            raise ValueError("reference: this OracleResult carries no call (OracleResult.call is "
                             "None), so compare cannot rerun it in your precision; pass the "
                             "result of tpref.oracle(...)")
        params = {n: np.asarray(a) for n, a in call.params.items()}
        if next(iter(params.values())).dtype == np.float64:
            return cls(call.method, params, call.x, call.y, call.options, values_of(result))
        # a float32 reference: the truth is its float64 rerun
        params = {n: a.astype(np.float64) for n, a in params.items()}
        y = call.y.astype(np.float64) if call.y.dtype.kind == "f" else call.y
        ref = cls(call.method, params, call.x.astype(np.float64), y, call.options, None)
        ref._values = ref._run(np.float64)
        return ref

    @property
    def cell(self):
        return self.options.get("cell", "rnn")

    def _run(self, dtype, perturbed=False):
        import tpref

        dtype = np.dtype(dtype)
        params, x, y = self.params, np.asarray(self.x, np.float64), self.y
        if perturbed:                       # move every input by ~2 rounding errors of dtype
            rng = np.random.default_rng(20211)
            nudge = lambda a: a * (1.0 + 2.0 * np.finfo(dtype).eps * rng.choice((-1.0, 1.0),
                                                                               np.shape(a)))
            params = {n: nudge(a) for n, a in params.items()}
            x = nudge(x)
            y = nudge(y) if y.dtype.kind == "f" else y
        params = {n: np.asarray(a).astype(dtype) for n, a in params.items()}
        y = y.astype(dtype) if y.dtype.kind == "f" else y
        options = dict(self.options, backend="numpy")
        with warnings.catch_warnings(), np.errstate(over="ignore", invalid="ignore"):
            warnings.simplefilter("ignore", NonFiniteResultWarning)
            return values_of(tpref.oracle(self.method, params, x.astype(dtype), y, **options))

    def values(self):
        """tpref's float64 quantities of this call (the reference)."""
        return self._values

    def noise(self, dtype):
        """tpref's own runs in ``dtype`` whose errors against float64 measure a correct
        ``dtype`` implementation's: float32 on the exact and on perturbed inputs, float64 on
        perturbed inputs (``tpref.verify.tolerance``); [] if a run fails (float32 Cholesky)."""
        dtype = np.dtype(dtype)
        if self._noise is None:
            self._noise = {}
        if dtype not in self._noise:
            try:
                runs = [] if dtype == np.float64 else [self._run(dtype)]
                self._noise[dtype] = runs + [self._run(dtype, perturbed=True)]
            except (np.linalg.LinAlgError, FloatingPointError, ValueError):
                self._noise[dtype] = []
        return self._noise[dtype]

    def rerun(self, params=None, **options):
        """tpref's float64 run of this call with some params or options changed (a dict)."""
        import tpref

        options = dict(self.options, backend="numpy", **options)
        return values_of(tpref.oracle(self.method, params or self.params, self.x, self.y,
                                      **options))


def values_of(result):
    """The quantities of an OracleResult as a dict (float64 copies of the arrays)."""
    out = {"loss": float(result.loss), "output": np.array(result.output),
           "hidden": np.array(result.hidden),
           "direction": {n: np.array(a) for n, a in result.direction.items()}}
    if result.displacements is not None:
        out["displacements"] = np.array(result.displacements)
        out["targets"] = np.array(result.targets)
    return out


def as_reference(reference):
    """A :class:`Reference` from an OracleResult, a golden case or a Reference."""
    if isinstance(reference, Reference):
        return reference
    to_ref = getattr(reference, "to_reference", None)
    if to_ref is not None:
        return to_ref()
    if hasattr(reference, "hidden") and hasattr(reference, "direction"):
        return Reference.from_result(reference)
    raise TypeError(f"reference must be an OracleResult (from tpref.oracle) or a golden case "
                    f"(tpref.verify.load_golden), got {type(reference).__name__}")


# ----------------------------------------------------------------------------------------------
# the report


@dataclass(frozen=True)
class Check:
    """One comparison: a quantity at one step (or one parameter's direction, or the loss).

    ``error`` is the largest |candidate - reference| there, ``ratio`` the largest entrywise
    error / tolerance (ok when <= 1), ``index`` the entry where the ratio is worst (an index
    into the step's (B, p) array, or into the parameter), with ``got`` and ``expected`` there.
    """

    quantity: str
    name: Optional[str]
    step: Optional[int]
    error: float
    scale: float
    ratio: float
    index: tuple
    got: float
    expected: float
    tolerance: float

    @property
    def ok(self):
        return bool(self.ratio <= 1.0)

    @property
    def label(self):
        if self.quantity == "direction":
            return f"direction[{self.name}]"
        return self.quantity if self.step is None else f"{self.quantity}[t={self.step}]"

    def to_dict(self):
        return {"quantity": self.quantity, "name": self.name, "step": self.step,
                "max_abs_error": self.error, "max_abs_reference": self.scale,
                "error_over_tolerance": self.ratio, "ok": self.ok,
                "worst_index": list(self.index), "got": self.got, "expected": self.expected,
                "tolerance_there": self.tolerance}


@dataclass(frozen=True)
class Divergence:
    """Where a candidate first leaves the reference, in the order of the computation.

    ``quantity`` is one of "hidden", "loss", "targets", "displacements", "direction";
    ``name`` the parameter for "direction" (else None); ``step`` the time index t (None for
    the loss and directions); ``operation`` names the faulty operation where the single-step
    checks could tell (``tpref.verify.steps``), else None.
    """

    quantity: str
    name: Optional[str]
    step: Optional[int]
    check: Check
    operation: Optional[str] = None

    def to_dict(self):
        return {"quantity": self.quantity, "name": self.name, "step": self.step,
                "operation": self.operation, "check": self.check.to_dict()}

    def __str__(self):
        where = self.check.label
        c = self.check
        return (f"{where} first diverges: max |error| {c.error:.3e} is {c.ratio:.3g} x its "
                f"tolerance; worst at {c.index}: got {c.got:.9g}, expected {c.expected:.9g}")


@dataclass(frozen=True)
class Report:
    """The result of :func:`compare`.

    Attributes
    ----------
    ok : bool
        Every compared quantity within tolerance.
    first_divergence : Divergence or None
    hints : list of str
        Known signatures of common bugs recognised in the numbers, in words.
    checks : list of Check
        Every comparison, in the order of the computation.
    dtype : numpy dtype
        The candidate's precision the tolerances were sized for.
    reference : dict
        method, cell and options of the reference call (and the case name for golden cases).
    """

    ok: bool
    first_divergence: Optional[Divergence]
    hints: list
    checks: list
    dtype: np.dtype
    reference: dict = field(default_factory=dict)

    def to_dict(self):
        """A JSON-serializable dict of the whole report."""
        return {"ok": self.ok, "dtype": str(self.dtype), "reference": _jsonable(self.reference),
                "first_divergence": (None if self.first_divergence is None
                                     else self.first_divergence.to_dict()),
                "hints": list(self.hints), "checks": [c.to_dict() for c in self.checks]}

    def __str__(self):
        ref = self.reference
        head = (f"tpref.verify: {'OK' if self.ok else 'DIVERGES'} — candidate {self.dtype} vs "
                f"{ref.get('method')} ({ref.get('cell', 'rnn')}"
                + (f", case {ref['case']}" if ref.get("case") else "") + ")")
        lines = [head]
        if self.first_divergence is not None:
            lines.append("first divergence: " + str(self.first_divergence))
            if self.first_divergence.operation:
                lines.append("operation: " + self.first_divergence.operation)
        for hint in self.hints:
            lines.append("hint: " + hint)
        lines.append(f"{'quantity':<24}{'max|err|':>11}{'max|ref|':>11}{'err/tol':>10}  ")
        for block in _blocks(self.checks):
            lines.extend(block)
        return "\n".join(lines)


def _row(label, c):
    flag = "ok" if c.ok else "DIVERGES"
    return f"{label:<24}{c.error:>11.3e}{c.scale:>11.3e}{c.ratio:>10.3g}  {flag}"


def _blocks(checks):
    """Table lines: every step when few, else runs of passing steps folded into one line."""
    groups = {}
    for c in checks:
        groups.setdefault((c.quantity, c.name), []).append(c)
    for (quantity, name), cs in groups.items():
        if len(cs) <= 12:
            yield [_row(c.label, c) for c in cs]
            continue
        lines, run = [], []

        def flush():
            if not run:
                return
            if len(run) <= 2:
                lines.extend(_row(c.label, c) for c in run)
            else:
                worst = max(run, key=lambda c: c.ratio)
                label = f"{quantity}[t={run[0].step}..{run[-1].step}]"
                lines.append(_row(label, worst))
            run.clear()

        for c in cs:
            if c.ok:
                run.append(c)
            else:
                flush()
                lines.append(_row(c.label, c))
        flush()
        yield lines


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


# ----------------------------------------------------------------------------------------------
# checking the candidate


def _dtype_of(candidate, dtype):
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


def _check_candidate(candidate, ref_values, ref):
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


def _checks_of(quantity, name, cand, ref, tol, steps):
    """One Check per step (or one for the whole array when ``steps`` is None)."""
    out = []
    pieces = [(None, cand, ref, tol)] if steps is None else [
        (t, cand[t], ref[t], tol[t]) for t in steps]
    for step, c, r, tl in pieces:
        c, r, tl = np.atleast_1d(c), np.atleast_1d(r), np.broadcast_to(np.atleast_1d(tl), np.shape(np.atleast_1d(r)))
        err = np.where(np.isfinite(c), np.abs(c - r), np.inf)
        with np.errstate(invalid="ignore"):            # inf / inf where tpref's own run overflows
            ratio = np.where((err == 0) | ~np.isfinite(tl), 0.0, err / np.maximum(tl, 1e-300))
        i = np.unravel_index(int(np.argmax(ratio)), ratio.shape) if ratio.size else ()
        out.append(Check(quantity=quantity, name=name, step=step,
                         error=float(err.max()) if err.size else 0.0,
                         scale=float(np.abs(r).max()) if r.size else 0.0,
                         ratio=float(ratio[i]) if ratio.size else 0.0,
                         index=tuple(int(j) for j in i) if steps is not None or c.ndim else (),
                         got=float(c[i]) if c.size else 0.0,
                         expected=float(r[i]) if r.size else 0.0,
                         tolerance=float(tl[i]) if tl.size else 0.0))
    return out


def compare(candidate, reference, *, dtype=None):
    """Compare a candidate implementation's outputs with tpref's and localize the first fault.

    Parameters
    ----------
    candidate : dict
        Any subset of "loss" (float), "hidden", "targets", "displacements" ((T+1, B, p) each,
        time-major, index t as in ``OracleResult``) and "direction" (dict parameter name ->
        array shaped like the parameter, gradient-like: theta <- theta - lr * direction).
    reference : OracleResult or golden case
        The call to check against (``tpref.oracle(...)``'s result carries its inputs and
        options in ``.call``; a golden case from ``tpref.verify.load_golden``).
    dtype : float32 or float64, optional
        The candidate's precision; default: inferred from its arrays.

    Returns
    -------
    Report
        ``ok``, ``first_divergence`` (quantity, parameter name, step, faulty operation where
        known), ``hints``, a table per quantity and step (``str(report)``), ``to_dict()``.

    Raises
    ------
    TypeError, ValueError
        For a candidate that cannot be compared (unknown or missing quantity, wrong shape or
        dtype, batch-first arrays), naming what is wrong.

    Notes
    -----
    Tolerances: ``tpref.verify.tolerance`` (what tpref's own run in ``dtype`` gets wrong
    against float64, x SAFETY, per quantity and step, with an underflow floor).
    "First" follows the computation: hidden t = 0..T, loss, displacements and targets
    t = T..0 (displacements before targets at one step), then the directions: the output
    layer's (W_hy, b_y), then the transition's in the parameters' order.
    """
    ref = as_reference(reference)
    truth = ref.values()
    cand = _check_candidate(candidate, truth, ref)
    dtype = _dtype_of(candidate, dtype)
    noise = ref.noise(dtype)
    if not noise:
        raise ValueError(f"tpref's own {dtype} runs of this call fail (the regularized inverse "
                         f"cannot be factored in {dtype}): a {dtype} implementation cannot be "
                         f"checked on it" + ("; use float64" if dtype == np.float32 else ""))
    T = truth["hidden"].shape[0] - 1
    start = float(np.abs(truth["displacements"][T]).max()) if "displacements" in truth else 0.0
    checks = []
    order = [("hidden", range(0, T + 1)), ("loss", None),
             ("displacements", range(T, -1, -1)), ("targets", range(T, -1, -1))]
    tols = {}
    extra = None
    if ref.method == "dtp" and ("displacements" in cand or "targets" in cand):
        o = ref.options
        extra = _tol.difference_noise(ref.params, np.asarray(ref.x, np.float64),
                                      truth["hidden"], truth["displacements"], reg=o["reg"],
                                      activation=o.get("activation", "tanh"),
                                      clip_eps=o.get("clip_eps", 1e-3), dtype=dtype)
    for q, steps in order:
        if q not in cand:
            continue
        tol = _tol.tolerance(truth[q], [run[q] for run in noise], dtype,
                             stepped=steps is not None,
                             start_scale=start if q != "hidden" else 0.0,
                             extra=extra if q in ("displacements", "targets") else None)
        tols[q] = tol
        checks.extend(_checks_of(q, None, cand[q], truth[q], tol, steps))
    if "direction" in cand:
        tols["direction"] = _tol.direction_tolerances(
            truth["direction"], [run["direction"] for run in noise], dtype)
        for n in _direction_order(truth["direction"]):
            if n in cand["direction"]:
                checks.extend(_checks_of("direction", n, cand["direction"][n],
                                         truth["direction"][n], tols["direction"][n], None))
    first = _first(checks)
    hints, operation = [], None
    if first is not None:
        from .diagnose import diagnose
        operation, hints = diagnose(first, cand, ref, tols, dtype)
        first = Divergence(first.quantity, first.name, first.step, first, operation)
    unchecked = [q for q, t in tols.items() if q != "direction" and not np.all(np.isfinite(t))]
    unchecked += [f"direction[{n}]" for n, t in tols.get("direction", {}).items()
                  if not np.all(np.isfinite(t))]
    if unchecked:
        hints.append(f"tpref's own {np.dtype(dtype)} run overflows in {', '.join(unchecked)}: "
                     f"entries whose tolerance is infinite are not checked; compare in float64")
    info = {"method": ref.method, "cell": ref.cell,
            **{k: v for k, v in ref.options.items() if k != "backend"}}
    if ref.name:
        info["case"] = ref.name
    return Report(ok=first is None, first_divergence=first, hints=hints, checks=checks,
                  dtype=np.dtype(dtype), reference=info)


def _direction_order(names):
    """Parameters in the order the computation forms their directions: the output layer
    (W_hy, b_y) first, then the transition in the parameters' order."""
    head = [n for n in ("W_hy", "b_y") if n in names]
    return head + [n for n in names if n not in head]


def _first(checks):
    """The first failing check in computation order (displacements before targets at a step)."""
    failing = [c for c in checks if not c.ok]
    if not failing:
        return None
    rank = {"hidden": 0, "loss": 1, "displacements": 2, "targets": 2, "direction": 3}

    def key(c):
        if c.quantity == "hidden":
            return (0, c.step, 0)
        if c.quantity in ("displacements", "targets"):
            return (rank[c.quantity], -c.step, 0 if c.quantity == "displacements" else 1)
        return (rank[c.quantity], 0, 0)

    return min(failing, key=key)


def assert_matches(candidate, reference, *, dtype=None):
    """:func:`compare`, raising AssertionError with the report when the candidate diverges.

    Returns the report when it matches.
    """
    report = compare(candidate, reference, dtype=dtype)
    if not report.ok:
        err = AssertionError("candidate does not match tpref:\n" + str(report))
        err.report = report
        raise err
    return report
