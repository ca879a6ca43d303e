"""Harness of the planted-bug suites: run a user's torch implementation on a tpref.verify case
the way a user would (batch-first tensors, the TorchAdapter, compare), and say where each
planted bug must be found.

The expected place of each bug is derived here from the bug's nature and the case (which step
saturates, whether reg is 1, ...), never from what ``compare`` reports.
"""

import numpy as np
import torch

import tpref
from tpref import verify
from tpref.models.gru import gru_forward
from tpref.verify.torch_adapter import TorchAdapter

import planted_gru
import planted_rnn

TORCH_DTYPES = {"float64": torch.float64, "float32": torch.float32}
IMPL_OPTIONS = ("loss", "gamma_h", "reg", "update", "activation", "clip_eps")


def user_model(case, cell, dtype):
    """The user's module holding the case's parameters; nn.RNN's bias split in two nonzero
    halves (b_h = bias_ih + bias_hh), as any trained torch model has."""
    params = case.params
    if cell == "rnn":
        d, p, k = params["W_xh"].shape[1], params["W_hh"].shape[0], params["W_hy"].shape[0]
        model = planted_rnn.UserRNN(d, p, k, dtype=TORCH_DTYPES[dtype])
        with torch.no_grad():
            gen = torch.Generator().manual_seed(p * 1000 + d)
            model.rnn.bias_hh_l0.copy_(0.3 * torch.randn(p, generator=gen, dtype=torch.float64))
    else:
        d, p, k = params["W_xr"].shape[1], params["W_hr"].shape[0], params["W_hy"].shape[0]
        model = planted_gru.UserGRU(d, p, k, dtype=TORCH_DTYPES[dtype])
    adapter = TorchAdapter(model)
    adapter.load(params)
    return model, adapter


def run_case(case, method, *, cell="rnn", dtype="float64", bugs=()):
    """(report, reference OracleResult, candidate) of the user's implementation on ``case``."""
    model, ad = user_model(case, cell, dtype)
    tdt = TORCH_DTYPES[dtype]
    x = torch.from_numpy(np.swapaxes(case.x, 0, 1).copy()).to(tdt)      # the user's (B, T, d)
    y = torch.from_numpy(np.asarray(case.y))
    y = y.to(tdt) if y.is_floating_point() else y
    impl = planted_rnn if cell == "rnn" else planted_gru
    options = {k: case.kwargs[k] for k in IMPL_OPTIONS if k in case.kwargs}
    out = impl.run(model, method, x, y, bugs=bugs, **options)
    xs, ys = ad.inputs(x, y)
    # the truth for the user's exact parameters (float32 values read back), in float64
    params64 = {n: a.astype(np.float64) for n, a in ad.params.items()}
    options = dict(case.kwargs, backend="numpy")
    if cell == "gru":
        options["gru_inverse"] = "per_gate"          # the scheme the user's GRU TP implements
    ref = tpref.oracle(method, params64, xs.astype(np.float64),
                       ys.astype(np.float64) if ys.dtype.kind == "f" else ys, **options)
    direction = model
    if "bias_grad_sum" in bugs:                   # the b_h direction built by hand, summed
        direction = dict(ad.direction())
        direction["b_h"] = (model.rnn.bias_ih_l0.grad + model.rnn.bias_hh_l0.grad).numpy()
    cand = ad.candidate(direction=direction, **out)
    return verify.compare(cand, ref), ref, cand


def first_transition(ref):
    """The first transition parameter in compare's direction order (after W_hy, b_y)."""
    return next(n for n in ref.direction if n not in ("W_hy", "b_y"))


def expected(bug, case, method, ref, cell="rnn"):
    """(quantity, step, name) where ``bug`` must first show on ``case``, or None where it
    cannot show (the branch it breaks is not exercised, or the method does not use it)."""
    opts = dict(case.kwargs)
    T, B = ref.hidden.shape[0] - 1, ref.hidden.shape[1]
    eps = opts.get("clip_eps", 1e-3)
    direction_of = ("direction", None, first_transition(ref))
    if bug == "loss_sum":
        return ("loss", None, None) if B > 1 else None
    if bug == "bias_forward":
        return ("hidden", 1, None)
    if bug == "bias_grad_sum":
        return ("direction", None, "b_h")
    if method != "tp" and bug not in ("reset_inside", "update_convention"):
        return None                                  # a TP-only branch: BP does not reach it
    if bug in ("inverse_transpose", "time_shift"):
        return ("displacements", T - 1, None)
    if bug == "reg_squared":
        return None if opts["reg"] in (0.0, 1.0) else ("displacements", T - 1, None)
    if bug == "no_clip":
        h = ref.hidden[1:]
        if opts.get("activation", "tanh") == "tanh":
            sat = np.abs(h) > 1 - eps
        else:
            sat = (h < eps) | (h > 1 - eps)
        steps = np.flatnonzero(sat.reshape(T, -1).any(axis=1)) + 1
        return ("displacements", int(steps.max()) - 1, None) if steps.size else None
    if bug == "update_mode":
        return direction_of if T > 1 else None
    if bug == "sign":
        return direction_of
    if bug == "carry_unregularized":
        return ("displacements", T - 1, None) if opts["reg"] > 0 else None
    if bug == "gate_no_clip":
        _, cache = gru_forward(case.params, case.x)
        sat = np.zeros(T, dtype=bool)
        for gate in ("r", "z"):
            g = cache[gate].reshape(T, -1)
            sat |= ((g < eps) | (g > 1 - eps)).any(axis=1)
        steps = np.flatnonzero(sat) + 1
        return ("displacements", int(steps.max()) - 1, None) if steps.size else None
    if bug == "reset_inside":
        return ("hidden", 1 if np.any(case.params["b_hn"] != 0) else 2, None)
    if bug == "update_convention":
        return ("hidden", 1, None)
    raise KeyError(bug)


def where(report):
    """(quantity, step, name) of a report's first divergence, or None."""
    f = report.first_divergence
    return None if f is None else (f.quantity, f.step, f.name)
