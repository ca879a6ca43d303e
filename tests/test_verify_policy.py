"""The tolerance policy against an implementation written apart from tpref: a small torch
BP/TP/DTP for the simple RNN (linalg.solve instead of Cholesky, autograd for Eq. 3), correct
by construction, must never be flagged, in float32 or float64, on the hard cases and on
random problems (reg 1e-3..1e3, saturation, sigmoid, MSE, both updates)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402

from tpref.verify import cases, compare, strategies  # noqa: E402


def run(case, method, dtype):
    """tpref's quantities of ``case`` computed by torch in ``dtype`` (numpy arrays)."""
    P = {n: torch.tensor(a, dtype=dtype, requires_grad=True) for n, a in case.params.items()}
    x = torch.tensor(case.x, dtype=dtype)
    kw = case.kwargs; act = kw["activation"]; eps = kw["clip_eps"]
    a = torch.tanh if act == "tanh" else torch.sigmoid
    T, B, _ = x.shape; p = P["W_hh"].shape[0]
    def f(h, t):
        return a(x[t - 1] @ P["W_xh"].T + h @ P["W_hh"].T + P["b_h"])
    hs = [torch.zeros(B, p, dtype=dtype)]
    for t in range(1, T + 1):
        hs.append(f(hs[-1], t))
    out = hs[-1] @ P["W_hy"].T + P["b_y"]
    if kw["loss"] == "cross_entropy":
        loss = torch.nn.functional.cross_entropy(out, torch.tensor(case.y))
    else:
        loss = torch.nn.functional.mse_loss(out, torch.tensor(case.y, dtype=dtype))
    hidden = torch.stack(hs)
    if method == "bp":
        loss.backward()
        return {"loss": loss.item(), "hidden": hidden.detach().numpy(),
                "direction": {n: v.grad.numpy() for n, v in P.items()}}
    gT, = torch.autograd.grad(loss, hs[-1], retain_graph=True)
    lam = [None] * (T + 1)
    lam[T] = -kw["gamma_h"] * gT.detach()
    W = P["W_hh"].detach(); reg = kw["reg"]
    M = W.T @ W + reg * torch.eye(p, dtype=dtype)
    lo, hi = (-1 + eps, 1 - eps) if act == "tanh" else (eps, 1 - eps)
    def ainv(v):
        v = v.clamp(lo, hi)
        return torch.atanh(v) if act == "tanh" else torch.log(v / (1 - v))
    for t in range(T, 0, -1):
        h = hidden[t].detach()
        if method == "dtp":
            def finv(v):
                z = ainv(v) - x[t - 1] @ P["W_xh"].detach().T - P["b_h"].detach()
                return torch.linalg.solve(M, W.T @ z.T).T
            lam[t - 1] = finv(h + lam[t]) - finv(h)
        else:
            hc = h.clamp(lo, hi)
            dinv = 1 / (1 - hc * hc) if act == "tanh" else 1 / (hc * (1 - hc))
            lam[t - 1] = torch.linalg.solve(M, W.T @ (dinv * lam[t]).T).T
    lam = torch.stack(lam)
    obj = 0
    for t in range(1, T + 1):
        hprev = hidden[t - 1] if kw["update"] == "through_time" else hidden[t - 1].detach()
        obj = obj + (f(hprev, t) * (-lam[t])).sum()
    gtrans = torch.autograd.grad(obj, [P["W_hh"], P["W_xh"], P["b_h"]], retain_graph=True)
    gout = torch.autograd.grad(loss, [P["W_hy"], P["b_y"]])
    d = dict(zip(["W_hh", "W_xh", "b_h"], gtrans)); d.update(zip(["W_hy", "b_y"], gout))
    return {"loss": loss.item(), "hidden": hidden.detach().numpy(), "displacements": lam.numpy(),
            "targets": (hidden.detach() + lam).numpy(), "direction": {n: v.numpy() for n, v in d.items()}}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", list(cases("rnn")), ids=lambda c: c.name)
def test_hard_cases_never_flag_a_correct_implementation(case, dtype):
    for method in dict.fromkeys((case.method, "bp")):
        report = compare(run(case, method, dtype), case.oracle(method))
        assert report.ok, str(report)


@given(strategies.problems(cell="rnn", max_T=20))
@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_random_problems_never_flag_a_correct_implementation(case):
    ref = case.oracle()
    for dtype in (torch.float32, torch.float64):
        report = compare(run(case, case.method, dtype), ref)
        assert report.ok, str(report)
