"""Method "dtp_learned" (TPTT) against an independent float64 PyTorch autograd model.

The gold model is written from Manchev & Spratling's description (docs/peers.md, "Manchev &
Spratling") and tpref's documented conventions, not from tpref's code: an explicit torch loop
for F and G, the targets as the plain difference h_{t-1} - G(x_t, h_t) + G(x_t, v_t) (no
cancellation trick: gamma_h is large enough here for that to be exact to ~1e-16), every
direction by autograd of the losses as TPTT states them (``torch.nn.functional.mse_loss`` per
step, summed over t; h_{t-1} and v_t detached), TPTT's schedule (inverse step, then targets
with the updated G) when ``reverse_lr`` is given. Both backends are compared with it.
"""

import itertools

import numpy as np
import pytest

import tpref
from tpref.testing import assert_close, assert_dict_close

from cases import random_case

torch = pytest.importorskip("torch")
F = torch.nn.functional

NAMES = ("W_hh", "W_xh", "b_h", "W_hy", "b_y", "V_hh", "c_h")


def act(activation, u):
    return torch.tanh(u) if activation == "tanh" else torch.sigmoid(u)


def gold(params, x, y, loss, gamma_h, noise, seed, activation, reverse_lr):
    """(loss, output, hidden, targets, direction, inverse loss) of one TPTT step, in torch."""
    th = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    xt = torch.tensor(x, dtype=torch.float64)
    T, B, _ = x.shape
    p = params["W_hh"].shape[0]

    def F_step(x_t, h):                       # forward step of the RNN
        return act(activation, x_t @ th["W_xh"].T + h @ th["W_hh"].T + th["b_h"])

    def G_step(x_t, h, V, c):                 # reverse layer, reusing W_xh
        return act(activation, x_t @ th["W_xh"].detach().T + h @ V.T + c)

    hs = [torch.zeros(B, p, dtype=torch.float64)]
    for t in range(T):
        hs.append(F_step(xt[t], hs[-1]))
    out = hs[-1] @ th["W_hy"].T + th["b_y"]
    if loss == "cross_entropy":
        value = F.cross_entropy(out, torch.tensor(y))
    else:
        value = F.mse_loss(out, torch.tensor(y))
    g_out = torch.autograd.grad(value, [th["W_hy"], th["b_y"]], retain_graph=True)
    g_T = torch.autograd.grad(value, hs[-1], retain_graph=True)[0]

    # inverse loss, noisy h~ for h_0..h_{T-1}
    eps = np.random.default_rng(seed).standard_normal((T, B, p)) if noise > 0 else np.zeros((T, B, p))
    inv_loss = 0.0
    for t in range(T):
        h_tilde = hs[t].detach() + noise * torch.tensor(eps[t])
        f_tilde = F_step(xt[t], h_tilde).detach()
        inv_loss = inv_loss + F.mse_loss(G_step(xt[t], f_tilde, th["V_hh"], th["c_h"]), h_tilde)
    dV, dc = torch.autograd.grad(inv_loss, [th["V_hh"], th["c_h"]])

    V, c = th["V_hh"].detach(), th["c_h"].detach()
    if reverse_lr is not None:                # TPTT: inverse step before the targets
        V, c = V - reverse_lr * dV, c - reverse_lr * dc
    targets = [None] * (T + 1)
    targets[T] = (hs[T] - gamma_h * g_T).detach()
    for t in range(T, 0, -1):
        h_t = hs[t].detach()
        targets[t - 1] = hs[t - 1].detach() - G_step(xt[t - 1], h_t, V, c) + G_step(xt[t - 1], targets[t], V, c)

    fwd_loss = 0.0
    for t in range(1, T + 1):
        fwd_loss = fwd_loss + F.mse_loss(F_step(xt[t - 1], hs[t - 1].detach()), targets[t])
    g_fwd = torch.autograd.grad(fwd_loss, [th["W_hh"], th["W_xh"], th["b_h"]])
    direction = dict(zip(("W_hy", "b_y", "W_hh", "W_xh", "b_h", "V_hh", "c_h"),
                         (g.numpy() for g in (*g_out, *g_fwd, dV, dc))))
    return (value.item(), out.detach().numpy(), torch.stack(hs).detach().numpy(),
            torch.stack(targets).detach().numpy(), direction, float(inv_loss.detach()))


def case(seed, loss, scale):
    params, x, y = random_case(seed, T=7, B=3, d=2, p=5, k=3, loss=loss, scale=scale)
    rng = np.random.default_rng(seed + 100)
    params["V_hh"] = scale * rng.normal(size=(5, 5)) / np.sqrt(5)
    params["c_h"] = 0.1 * rng.normal(size=5)
    return params, x, y


CASES = list(itertools.product(("tanh", "sigmoid"), ("cross_entropy", "mse"),
                               ((0.0, None), (0.3, 7)), (None, 0.05)))


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("activation,loss,noise_seed,reverse_lr", CASES)
def test_dtp_learned_matches_torch_autograd(backend, activation, loss, noise_seed, reverse_lr):
    """Loss, hidden states, targets, every direction and the inverse loss equal the torch gold
    model to ~1e-10 relative (config.RTOL float64), with and without noise and with and
    without the inverse step before the targets."""
    noise, seed = noise_seed
    params, x, y = case(5, loss, 1.5)
    gamma_h = 0.5
    res = tpref.oracle("dtp_learned", params, x, y, loss=loss, gamma_h=gamma_h, noise=noise,
                       seed=seed, activation=activation, reverse_lr=reverse_lr, backend=backend)
    value, out, hidden, targets, direction, inv_loss = gold(params, x, y, loss, gamma_h, noise,
                                                            seed, activation, reverse_lr)
    assert abs(res.loss - value) <= 1e-12 * max(1.0, abs(value))
    assert abs(res.reconstruction_loss - inv_loss) <= 1e-12 * max(1.0, abs(inv_loss))
    assert_close(res.output, out, name="output")
    assert_close(res.hidden, hidden, name="hidden")
    assert_close(res.targets, targets, name="targets")
    assert_close(res.displacements, targets - hidden, name="displacements")
    assert_dict_close(res.direction, direction, name="direction")


def test_gold_schedule_changes_the_targets():
    """The gold model's schedule is not vacuous: the inverse step moves the targets."""
    params, x, y = case(5, "cross_entropy", 1.5)
    a = gold(params, x, y, "cross_entropy", 0.5, 0.0, None, "tanh", None)[3]
    b = gold(params, x, y, "cross_entropy", 0.5, 0.0, None, "tanh", 0.5)[3]
    assert np.max(np.abs(a - b)) > 1e-6
