"""What ``compare`` returns: one :class:`Check` per quantity and step, the first
:class:`Divergence`, and the :class:`Report` with its table (``str``) and JSON form
(``to_dict``)."""

from dataclasses import dataclass, field
from typing import Optional

import numpy as np


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
