"""The reference of ``compare``: tpref's float64 values of one call and, on demand, tpref's own
runs of it in another precision (what sizes the tolerances, ``tpref.verify.tolerance``)."""

import warnings

import numpy as np

from ..oracle import NonFiniteResultWarning


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
