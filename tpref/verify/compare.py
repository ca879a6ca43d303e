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

import numpy as np

from . import tolerance as _tol
from .candidate import candidate_dtype, check_candidate
from .reference import as_reference
from .report import Check, Divergence, Report


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
    cand = check_candidate(candidate, truth, ref)
    dtype = candidate_dtype(candidate, dtype)
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
