"""tpref's NumPy reference against an independent float64 PyTorch autograd implementation.

The gold model below is written from the paper, not from tpref: forward with torch.nn.RNN
(where it applies) and an explicit torch loop, BP by autograd, TP targets by forward-mode
autodiff (torch.func.jvp) of the regularized inverse f_t^{-1} written with torch.linalg.solve,
DTP by evaluating f_t^{-1} twice, and the TP/DTP directions by autograd of
sum_t sum_b ||h_t - v_t||^2 / 2 with the targets detached (and h_{t-1} detached per step for
update="local"). Every array is compared in float64 with the one tolerance policy.
"""

import itertools

import numpy as np
import pytest

import tpref
from tpref.testing import assert_close, assert_dict_close

from cases import random_case

torch = pytest.importorskip("torch")
torch.set_default_dtype(torch.float64)

EPS = 1e-3
NAMES = ("W_hh", "W_xh", "b_h", "W_hy", "b_y")


def act(activation, u):
    return torch.tanh(u) if activation == "tanh" else torch.sigmoid(u)


def act_inv(activation, v):
    return torch.atanh(v) if activation == "tanh" else torch.logit(v)


def clip(activation, v):
    lo, hi = (-1 + EPS, 1 - EPS) if activation == "tanh" else (EPS, 1 - EPS)
    return torch.clamp(v, lo, hi)


def gold(method, params, x, y, loss, gamma_h, reg, update, activation):
    """The oracle, from the paper, in torch float64 autograd."""
    th = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    xt = torch.tensor(x)
    T, B, _ = x.shape

    def step(h_prev, t):
        return act(activation, xt[t - 1] @ th["W_xh"].T + h_prev @ th["W_hh"].T + th["b_h"])

    def loss_of(h_T):
        out = h_T @ th["W_hy"].T + th["b_y"]
        if loss == "cross_entropy":
            return torch.nn.functional.cross_entropy(out, torch.tensor(y)), out
        return torch.nn.functional.mse_loss(out, torch.tensor(y)), out

    hs = [torch.zeros(B, params["W_hh"].shape[0])]
    for t in range(1, T + 1):
        hs.append(step(hs[-1], t))
    value, out = loss_of(hs[-1])
    hidden = torch.stack(hs).detach().numpy()
    if method == "bp":
        grads = torch.autograd.grad(value, [th[k] for k in NAMES])
        return value.item(), out.detach().numpy(), hidden, None, dict(zip(NAMES, (g.numpy() for g in grads)))

    # output layer: plain gradient; first target v_T = h_T - gamma_h dl/dh_T (Eq. 1)
    g_out = torch.autograd.grad(value, [th["W_hy"], th["b_y"]], retain_graph=True)
    g_T = torch.autograd.grad(value, hs[-1], retain_graph=True)[0]
    W = th["W_hh"].detach()
    M = W.T @ W + reg * torch.eye(W.shape[0])

    def f_inv(v, t):                     # rows of (W^T W + rI)^{-1} W^T (a^{-1}(pi(v)) - W_xh x_t - b_h)
        z = act_inv(activation, clip(activation, v)) - xt[t - 1] @ th["W_xh"].detach().T - th["b_h"].detach()
        return torch.linalg.solve(M, (z @ W).T).T

    def g_lin(v, t):                     # same map without the clip: linearized at pi(h_t)
        z = act_inv(activation, v) - xt[t - 1] @ th["W_xh"].detach().T - th["b_h"].detach()
        return torch.linalg.solve(M, (z @ W).T).T

    targets = [None] * (T + 1)
    targets[T] = (hs[T] - gamma_h * g_T).detach()
    for t in range(T, 0, -1):
        h_t = hs[t].detach()
        if method == "tp":               # Eq. (2): d f^{-1}(pi(h_t)) applied to v_t - h_t
            _, jv = torch.func.jvp(lambda v: g_lin(v, t), (clip(activation, h_t),), (targets[t] - h_t,))
            targets[t - 1] = hs[t - 1].detach() + jv
        else:                            # difference TP
            targets[t - 1] = hs[t - 1].detach() + f_inv(targets[t], t) - f_inv(h_t, t)
    # Eq. (3)
    surrogate = 0.0
    for t in range(1, T + 1):
        h_prev = hs[t - 1].detach() if update == "local" else hs[t - 1]
        surrogate = surrogate + 0.5 * ((step(h_prev, t) - targets[t]) ** 2).sum()
    g_trans = torch.autograd.grad(surrogate, [th["W_hh"], th["W_xh"], th["b_h"]])
    direction = dict(zip(("W_hy", "b_y", "W_hh", "W_xh", "b_h"), (g.numpy() for g in (*g_out, *g_trans))))
    return value.item(), out.detach().numpy(), hidden, torch.stack(targets).numpy(), direction


CASES = [(m, u, a, l) for m, u, a, l in itertools.product(
    ("bp", "tp", "dtp"), ("local", "through_time"), ("tanh", "sigmoid"), ("cross_entropy", "mse"))
    if not (m == "bp" and u == "through_time")]          # update does not apply to bp


@pytest.mark.parametrize("method,update,activation,loss", CASES)
@pytest.mark.parametrize("scale", [0.7, 3.0])
def test_oracle_matches_torch_autograd(method, update, activation, loss, scale):
    """Every output of tpref.oracle equals the torch gold model to ~1e-10 relative.

    scale=3 saturates the activations, so the projection pi is active for some targets.
    """
    params, x, y = random_case(11, T=6, B=3, d=2, p=5, k=3, loss=loss, scale=scale)
    gamma_h, reg = (0.5, 0.3) if method != "bp" else (None, None)
    res = tpref.oracle(method, params, x, y, loss=loss, gamma_h=gamma_h, reg=reg, update=update,
                       activation=activation, backend="numpy")
    value, out, hidden, targets, direction = gold(method, params, x, y, loss, gamma_h, reg, update,
                                                  activation)
    assert abs(res.loss - value) <= 1e-12 * max(1.0, abs(value))
    assert_close(res.output, out, name="output")
    assert_close(res.hidden, hidden, name="hidden")
    if method == "bp":
        assert res.targets is None
    else:
        assert_close(res.targets, targets, name="targets")
    assert_dict_close(res.direction, direction, name="direction")


def test_hidden_states_match_torch_nn_rnn():
    """tpref's hidden states equal torch.nn.RNN's with weight_ih = W_xh, weight_hh = W_hh."""
    params, x, y = random_case(3, T=9, B=4, d=3, p=6, k=2)
    rnn = torch.nn.RNN(3, 6, nonlinearity="tanh")
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.tensor(params["W_xh"]))
        rnn.weight_hh_l0.copy_(torch.tensor(params["W_hh"]))
        rnn.bias_ih_l0.copy_(torch.tensor(params["b_h"]))
        rnn.bias_hh_l0.zero_()
        seq, _ = rnn(torch.tensor(x))
    hidden = tpref.rnn_forward(params, x)
    assert_close(hidden[1:], seq.numpy(), name="hidden")


@pytest.mark.parametrize("nesterov,momentum", [(False, 0.0), (False, 0.9), (True, 0.9)])
def test_sgd_matches_torch_optim_sgd(nesterov, momentum):
    """tpref.SGD follows torch.optim.SGD's momentum/Nesterov convention step by step."""
    rng = np.random.default_rng(0)
    params = {"a": rng.normal(size=(3, 2)), "b": rng.normal(size=4)}
    tparams = [torch.tensor(params[k].copy(), requires_grad=True) for k in ("a", "b")]
    opt = tpref.SGD(params, lr=0.1, momentum=momentum, nesterov=nesterov)
    topt = torch.optim.SGD(tparams, lr=0.1, momentum=momentum, nesterov=nesterov)
    for _ in range(4):
        g = {"a": rng.normal(size=(3, 2)), "b": rng.normal(size=4)}
        opt.step(g)
        for tp_, k in zip(tparams, ("a", "b")):
            tp_.grad = torch.tensor(g[k])
        topt.step()
    for tp_, k in zip(tparams, ("a", "b")):
        assert_close(params[k], tp_.detach().numpy(), name=k)
