"""The faulty operation at a divergence (``tpref.verify.diagnose``).

:func:`locate` reruns the single operation that produced the first divergent value
(``tpref.verify.steps``) on the candidate's *own* inputs of that step. If it reproduces the
candidate's value, the operation is right and the fault is upstream; if not, the fault is in
that operation, and a few known variants of it (a transposed W_hh, the clip left out, reg
squared, an input or derivative taken one step off, the other update mode) are tried to say
which.
"""

import numpy as np

from ..losses import loss_and_grad
from ..methods import reference as _rnn
from ..methods import reference_gru as _gru
from ..models.gru import gru_step
from . import steps
from .tolerance import within


def _lam(cand, ref_values):
    """The candidate's displacements (given, or targets - hidden) and hidden (its own or ours)."""
    hidden = cand.get("hidden", ref_values["hidden"])
    if "displacements" in cand:
        return cand["displacements"], hidden
    if "targets" in cand:
        return cand["targets"] - hidden, hidden
    return None, hidden


def locate(first, cand, ref, tols, dtype):
    """A sentence naming the operation at fault at the first divergence, or None."""
    q, t = first.quantity, first.step
    if q == "hidden":
        return _locate_hidden(t, cand, ref, tols)
    if q == "loss":
        return _locate_loss(cand, ref, tols)
    if q in ("displacements", "targets"):
        return _locate_target(q, t, cand, ref, tols)
    if q == "direction":
        return _locate_direction(first.name, cand, ref, tols)
    return None


def _opts(ref):
    o = ref.options
    return o.get("activation", "tanh"), o.get("clip_eps", 1e-3), o.get("reg"), ref.cell


def _locate_hidden(t, cand, ref, tols):
    if t == 0:
        return "hidden[0] must be h_0 = 0: tpref's layout holds h_0 at index 0"
    activation, _, _, cell = _opts(ref)
    h = cand["hidden"]
    x = ref.x
    tol = tols["hidden"][t]

    def fwd(params=ref.params, x_t=x[t - 1], h_prev=h[t - 1], act=activation):
        return steps.forward_step(params, x_t, h_prev, activation=act, cell=cell)

    if within(fwd(), h[t], tol):
        return (f"the forward step (Sec. 2) reproduces your h_{t} from your own h_{t - 1}: "
                f"step {t} is computed right from its inputs, the difference is rounding "
                f"amplified beyond this tolerance")
    variants = []
    if t < x.shape[0]:
        variants.append(("x[t] (one step late) as the input of step t", lambda: fwd(x_t=x[t])))
    if t >= 2:
        variants.append(("x[t - 2] (one step early) as the input of step t",
                         lambda: fwd(x_t=x[t - 2])))
    if cell == "rnn":
        p = ref.params
        variants += [
            ("W_hh transposed", lambda: fwd(params=dict(p, W_hh=p["W_hh"].T))),
            ("b_h counted twice (both torch biases set to b_h)",
             lambda: fwd(params=dict(p, b_h=2 * p["b_h"]))),
            ("b_h left out", lambda: fwd(params=dict(p, b_h=0 * p["b_h"]))),
            ("the other activation", lambda: fwd(act="sigmoid" if activation == "tanh"
                                                 else "tanh"))]
    else:
        def swapped():
            _, g = gru_step(ref.params, x[t - 1], h[t - 1])
            return g["z"] * g["n"] + (1 - g["z"]) * h[t - 1]
        variants.append(("h_t = (1 - z) h_{t-1} + z n (the authors' GRU convention; PyTorch's "
                         "is (1 - z) n + z h_{t-1})", swapped))
        for gate in "rzn":
            p = ref.params
            variants.append((f"W_h{gate} transposed", lambda g=gate: fwd(
                params=dict(p, **{"W_h" + g: p["W_h" + g].T}))))
    return _name(f"the forward step h_{t} = f_{t}(h_{t - 1}) (Sec. 2) does not reproduce your "
                 f"h_{t} from your own h_{t - 1}: the fault is in the forward step at t = {t}",
                 variants, h[t], tol)


def _name(sentence, variants, got, tol):
    for what, fn in variants:
        try:
            with np.errstate(all="ignore"):                     # a variant may blow up
                alt = fn()
        except (ValueError, np.linalg.LinAlgError, FloatingPointError):
            continue
        if _reproduces(alt, got, tol):
            return sentence + f"; it matches with {what}"
    return sentence


def _reproduces(alt, got, tol):
    """A variant reproduces the candidate's values: within ``tol``, or within 1e-4 of the
    candidate's own largest finite entry (a bug such as a missing clip blows the values far
    beyond the reference's scale, which ``tol`` is sized by), with NaN and inf where it has them."""
    alt, got = np.asarray(alt, np.float64), np.asarray(got, np.float64)
    if alt.shape != got.shape:
        return False
    same = (alt == got) | (np.isnan(alt) & np.isnan(got))
    scale = float(np.max(np.abs(got[np.isfinite(got)]), initial=0.0))
    with np.errstate(invalid="ignore"):
        close = np.abs(alt - got) <= np.maximum(tol, 1e-4 * scale)
    return bool(np.all(same | close))


def _locate_loss(cand, ref, tols):
    h_T = cand.get("hidden", ref.values()["hidden"])[-1]
    out = h_T @ ref.params["W_hy"].T + ref.params["b_y"]
    value, _ = loss_and_grad(ref.options["loss"], out, ref.y)
    if abs(value - cand["loss"]) <= tols["loss"]:
        return ("the loss from your own h_T reproduces yours: the output layer and loss are "
                "right, the fault is in h_T")
    return ("the loss computed from your own h_T does not match yours: the fault is in the "
            "output layer W_hy h_T + b_y or the loss (batch mean, PyTorch's convention)")


def _locate_target(q, t, cand, ref, tols):
    truth = ref.values()
    lam, hidden = _lam(cand, truth)
    if lam is None:
        return None
    T = hidden.shape[0] - 1
    activation, eps, reg, cell = _opts(ref)
    tol = tols[q][t]
    own_h = "your own" if "hidden" in cand else "tpref's"
    if t == T:
        gamma = ref.options["gamma_h"]
        lam_T = steps.first_target(ref.params, hidden[T], ref.y, loss=ref.options["loss"],
                                   gamma_h=gamma)
        if within(lam_T, lam[T], tol):
            return (f"the first target (Eq. 1) from {own_h} h_T reproduces your lam_T: the fault "
                    f"is in h_T")
        return (f"the first target v_T = h_T - gamma_h dl/dh_T (Eq. 1) from {own_h} h_T does not "
                f"reproduce your lam_T: the fault is in Eq. (1) (dl/dh_T of the batch-mean loss, "
                f"or gamma_h)")
    x_t = ref.x[t]                                           # the input of step t + 1
    p = ref.params
    if ref.method == "dtp":
        op = "the difference step (Sec. 2.2)"

        def step(params=p, h=hidden[t + 1], e=eps, r=reg):
            return steps.difference_step(params, x_t, h, lam[t + 1], reg=r, activation=activation,
                                         clip_eps=e)
    elif cell == "gru":
        op = f"the linearized inverse step (Eq. 2, {ref.options.get('gru_inverse', 'per_gate')})"

        def step(params=p, h=hidden[t], e=eps, r=reg, inv=ref.options.get("gru_inverse",
                                                                           "per_gate")):
            return steps.linearized_inverse_step(params, h, lam[t + 1], reg=r, clip_eps=e,
                                                 cell="gru", x_t=x_t, gru_inverse=inv)
    else:
        op = "the linearized inverse step (Eq. 2)"

        def step(params=p, h=hidden[t + 1], e=eps, r=reg):
            return steps.linearized_inverse_step(params, h, lam[t + 1], reg=r,
                                                 activation=activation, clip_eps=e)
    if within(step(), lam[t], tol):
        return (f"{op} from t = {t + 1} reproduces your lam_{t} from your own lam_{t + 1} and "
                f"{own_h} hidden states: the fault is upstream of this step"
                + ("" if "hidden" in cand else " (pass 'hidden' too to check h_t)"))
    variants = [("the clip pi left out (no projection before a^{-1})",
                 lambda: step(e=1e-300)),
                ("reg squared (r^2 where r belongs)", lambda: step(r=reg * reg)),
                ("sqrt(reg) where reg belongs", lambda: step(r=np.sqrt(reg)))]
    if cell == "rnn":
        variants.insert(0, ("W_hh transposed in the inverse",
                            lambda: step(params=dict(p, W_hh=p["W_hh"].T))))
        variants.append(("the derivative of a^{-1} taken at h_{t-1} instead of h_t (one step off)",
                         lambda: step(h=hidden[t])))
        if t + 2 <= T:
            variants.append(("h_{t+1} instead of h_t (one step off)",
                             lambda: step(h=hidden[t + 2])))
    else:
        for other in ("per_gate", "authors", "exact"):
            if other != ref.options.get("gru_inverse", "per_gate"):
                variants.insert(0, (f"gru_inverse={other!r}", lambda o=other: step(inv=o)))
    return _name(f"{op} from t = {t + 1} to t = {t} does not reproduce your lam_{t} from your "
                 f"own lam_{t + 1} and {own_h} hidden states: the fault is in this operation",
                 variants, lam[t], tol)


def _direction_from(ref, hidden, lam, update):
    """Eq. (3) (or BPTT's explicit part) on given hidden states and displacements."""
    activation = ref.options.get("activation", "tanh")
    tt = update == "through_time"
    if ref.cell == "gru":
        T = hidden.shape[0] - 1
        cache = {k: [] for k in "rzng"}
        for t in range(1, T + 1):
            _, g = gru_step(ref.params, ref.x[t - 1], hidden[t - 1])
            for k in "rzng":
                cache[k].append(g[k])
        cache = {k: np.stack(v) for k, v in cache.items()}
        return _gru.gru_transition_backward(ref.params, ref.x, hidden, cache, -lam, tt)
    return _rnn.transition_backward(ref.params, ref.x, hidden, -lam, activation, tt)


def _locate_direction(name, cand, ref, tols):
    truth = ref.values()
    if name in ("W_hy", "b_y"):
        h_T = cand.get("hidden", truth["hidden"])[-1]
        out = h_T @ ref.params["W_hy"].T + ref.params["b_y"]
        _, d_out = loss_and_grad(ref.options["loss"], out, ref.y)       # (B, k)
        grad = {"W_hy": d_out.T @ h_T, "b_y": d_out.sum(axis=0)}[name]
        own = "your own" if "hidden" in cand else "tpref's"
        if within(grad, cand["direction"][name], tols["direction"][name]):
            return (f"the loss gradient of {name} from {own} h_T reproduces yours: the fault "
                    f"is in h_T")
        return (f"the gradient of the batch-mean loss for {name} from {own} h_T does not "
                f"reproduce yours: the fault is in the output layer's gradient")
    if ref.method == "bp":
        return (f"the direction of {name} is the gradient by back-propagation through time; "
                f"compare 'hidden' and 'loss' too to see whether its inputs are right")
    lam, hidden = _lam(cand, truth)
    if lam is None:
        return (f"pass 'hidden' and 'displacements' (or 'targets') too, so that Eq. (3) can be "
                f"checked on your own inputs")
    update = ref.options.get("update", "local")
    mine = _direction_from(ref, hidden, lam, update)
    tol = tols["direction"][name]
    if within(mine[name], cand["direction"][name], tol):
        return (f"Eq. (3) (update={update!r}) applied to your own hidden states and "
                f"displacements gives your direction of {name}: the fault is upstream, in the "
                f"targets or hidden states")
    other = "through_time" if update == "local" else "local"
    if within(_direction_from(ref, hidden, lam, other)[name], cand["direction"][name], tol):
        return (f"Eq. (3) applied to your own hidden states and displacements does not give "
                f"your direction of {name}, but the update={other!r} form does: the fault is "
                f"the update mode (whether h_{{t-1}} is detached)")
    return (f"Eq. (3) (update={update!r}) applied to your own hidden states and displacements "
            f"does not give your direction of {name}: the fault is in the parameter update "
            f"(sum over t and b of d_theta f_t(h_{{t-1}})^T (h_t - v_t))")
