"""Known bug signatures in the numbers of a divergence (``tpref.verify.diagnose``).

:func:`signatures` fits candidate = c x reference and names known ratios c (B or 1/B: a sum
versus a mean; gamma_h; -1: a sign flip), and checks a transposed weight, the other
``update`` mode and Eq. (3) written literally in float32.
"""

import numpy as np

from .tolerance import within


def _fit(c, r):
    """(ratio, relative residual) of the least-squares fit c ~ ratio * r."""
    c, r = np.ravel(np.asarray(c, np.float64)), np.ravel(np.asarray(r, np.float64))
    rr = float(r @ r)
    if rr == 0 or not np.all(np.isfinite(c)):
        return None, np.inf
    ratio = float(c @ r) / rr
    norm = float(np.linalg.norm(c))
    resid = float(np.linalg.norm(c - ratio * r)) / norm if norm > 0 else np.inf
    return ratio, resid


def _ratio_names(ref):
    """Known ratios of a candidate to the reference and what each says."""
    T1, B = ref.values()["hidden"].shape[:2]
    k = ref.params["W_hy"].shape[0]
    known = [(-1.0, "a sign flip: tpref's direction is gradient-like (theta <- theta - lr * "
                    "direction); the paper writes theta + gamma * d theta")]
    if B > 1:
        known += [(1.0 / B, f"1/B (B = {B}): a mean over the batch where tpref sums (Eq. 3 "
                            f"sums over samples; dl/dh_T carries the 1/B of the batch-mean loss)"),
                  (float(B), f"B (B = {B}): a sum over the batch where tpref takes the mean "
                             f"(PyTorch's reduction='mean')")]
    if ref.options.get("loss") == "mse" and k > 1:
        known += [(float(k), f"k (k = {k}): MSE averaged over the batch only; PyTorch's "
                             f"mse_loss averages over all B*k entries"),
                  (1.0 / k, f"1/k (k = {k}): an extra mean over the k outputs")]
        if B > 1:
            known += [(float(B * k), f"B*k = {B * k}: a summed squared error where tpref "
                                     f"takes the mean over all B*k entries")]
    for factor, what in ((2.0, "2: a missing or extra factor 1/2 (||.||^2 / 2, or MSE's 2)"),
                         (0.5, "1/2: a missing or extra factor 1/2 (||.||^2 / 2, or MSE's 2)")):
        known.append((factor, what))
    gamma = ref.options.get("gamma_h")
    if gamma is not None and ref.method != "bp" and abs(np.log(gamma)) > 0.1:
        known += [(gamma, f"gamma_h (= {gamma:g}): tpref's TP direction is sum_t d_theta f_t "
                          f"(h_t - v_t), which already carries gamma_h through v_T; "
                          f"multiplied by gamma_h once more"),
                  (1.0 / gamma, f"1/gamma_h (1/{gamma:g}): the direction was divided by "
                                f"gamma_h; tpref's TP direction is gamma_h times a "
                                f"gradient-like direction")]
    return known


def _name_ratio(ratio, known, rel=2e-2):
    names = [what for value, what in known if abs(ratio - value) <= rel * abs(value)]
    return names


def signatures(first, cand, ref, tols, dtype):
    """Hints (list of str) from the numbers of the first divergent quantity."""
    hints = []
    truth = ref.values()
    q, n = first.quantity, first.name
    if q == "direction":
        failing = [name for name in cand["direction"]
                   if not within(cand["direction"][name], truth["direction"][name],
                                  tols["direction"][name])]
        pairs = [(f"direction[{name}]", cand["direction"][name], truth["direction"][name])
                 for name in failing]
    elif q == "loss":
        pairs = [("loss", cand["loss"], truth["loss"])]
    else:
        pairs = [(q, cand[q], truth[q])]
        if q in ("displacements", "targets") and first.step is not None:
            t = first.step
            pairs = [(f"{q}[t={t}]", cand[q][t] - (0 if q == "displacements" else
                                                   truth["hidden"][t]),
                      truth["displacements"][t])]
    known = _ratio_names(ref)
    by_ratio = {}                                    # rounded ratio -> (ratio, labels)
    for label, c, r in pairs:
        ratio, resid = _fit(c, r)
        if ratio is None or resid > 1e-3 or abs(ratio - 1.0) < 1e-3:
            continue
        key = float(f"{ratio:.3g}")
        by_ratio.setdefault(key, (ratio, []))[1].append(label)
    for ratio, labels in by_ratio.values():
        what = ", ".join(labels) + (" is" if len(labels) == 1 else " are")
        names = _name_ratio(ratio, known)
        if names:
            hints.append(f"{what} {ratio:.6g} x tpref's, a ratio of " + "; or ".join(names))
        else:
            hints.append(f"{what} {ratio:.6g} x tpref's (a constant factor: a scaling of the "
                         f"loss, of the step gamma_h or of the batch reduction)")
    if q == "direction":
        for label, c, r in pairs:
            if c.ndim == 2 and c.shape[0] == c.shape[1] and _fit(c, r.T)[1] < 1e-3 \
                    and _fit(c, r)[1] > 1e-3:
                hints.append(f"{label} agrees with the transpose of tpref's: the outer product "
                             f"is taken the wrong way round (tpref: delta^T h_{{t-1}}, shape "
                             f"(out, in) as torch's weights)")
        hints.extend(_other_update(cand, ref, tols))
        hints.extend(_literal_eq3(first, cand, ref, tols, dtype))
    if q in ("hidden", "displacements", "targets"):
        hints.extend(_transposed_run(q, cand, ref, tols))
        bad = ~np.isfinite(cand[q][first.step])
        if bad.any():
            hints.append(f"{q}[t={first.step}] holds {int(bad.sum())} non-finite values"
                         + ("" if q == "hidden" else
                            ": a^{-1} or its derivative taken at |h| = 1 (tanh) or h in "
                            "{0, 1} (sigmoid) overflows; is the clip pi onto the "
                            "activation's image shrunk by clip_eps missing?"))
    return hints


def _literal_eq3(first, cand, ref, tols, dtype):
    """In float32, Eq. (3) written as 1/2 ||a(u_t) - v_t||^2 forms h_t - v_t by cancellation."""
    truth = ref.values()
    if ref.method == "bp" or first.name in ("W_hy", "b_y") or "displacements" not in truth:
        return []
    lam = float(np.abs(truth["displacements"][1:]).max())      # the largest terms of Eq. 3
    lost = np.finfo(dtype).eps * float(np.abs(truth["hidden"]).max()) / max(lam, 1e-300)
    if lost < 1e-3:
        return []
    return [f"in {np.dtype(dtype)}, h_t - v_t is at most {lam:.2g} where |h_t| is up to "
            f"{np.abs(truth['hidden']).max():.2g}: Eq. (3) written literally as "
            f"1/2 ||a(u_t) - v_t||^2 loses ~{min(lost, 1.0):.0%} of the direction to "
            f"cancellation; use the displacement form, the gradient of -<f_t(h_{{t-1}}), "
            f"lam_t> with lam_t = v_t - h_t kept apart (docs/verifying.md)"]


def _other_update(cand, ref, tols):
    if ref.method == "bp":
        return []
    other = "through_time" if ref.options.get("update", "local") == "local" else "local"
    try:
        alt = ref.rerun(update=other)
    except Exception:                                   # pragma: no cover - defensive
        return []
    truth = ref.values()["direction"]
    names = [n for n in cand["direction"] if not within(cand["direction"][n], truth[n],
                                                         tols["direction"][n])]
    if names and all(within(cand["direction"][n], alt["direction"][n], tols["direction"][n])
                     for n in names):
        return [f"the direction equals tpref's with update={other!r} (the reference used "
                f"update={ref.options.get('update', 'local')!r}): "
                + ("h_{t-1} is not detached: the gradient flows through the recursion"
                   if other == "through_time" else
                   "h_{t-1} is held fixed (detached), the paper's Eq. (3)")]
    return []


def _transposed_run(q, cand, ref, tols):
    """Does the candidate agree with tpref run with W_hh (the recurrent weights) transposed?"""
    names = [n for n in ref.params if n.startswith("W_h") and n != "W_hy"]
    params = dict(ref.params, **{n: ref.params[n].T.copy() for n in names})
    try:
        alt = ref.rerun(params=params)
    except Exception:                                   # pragma: no cover - defensive
        return []
    if alt.get(q) is not None and within(cand[q], alt[q], tols[q]):
        return [f"{q} agrees with tpref run with {', '.join(names)} transposed: the recurrent "
                f"weights are applied as W^T where tpref uses W (h_{{t-1}} @ W_hh.T in row "
                f"layout)"]
    return []
