"""Gold model: torch.nn.GRU + nn.Linear autograd in float64, weights loaded through the
documented mapping (tpref.gru_params_to_torch). Skipped cleanly when torch is absent."""

import numpy as np
import pytest

import tpref
from tpref.config import GRU_PARAM_NAMES
from tpref.methods.reference_gru import gru_jacobian
from tpref.models.gru import gru_forward

from _gru_util import assert_close, problem

torch = pytest.importorskip("torch")


def torch_model(params):
    """nn.GRU(d, p) and nn.Linear(p, k) in float64 holding ``params``."""
    d, p, k = params["W_xr"].shape[1], params["W_hr"].shape[0], params["W_hy"].shape[0]
    gru = torch.nn.GRU(d, p).double()
    lin = torch.nn.Linear(p, k).double()
    st = tpref.gru_params_to_torch(params)
    gru.load_state_dict({name: torch.from_numpy(v) for name, v in st["gru"].items()})
    lin.load_state_dict({name: torch.from_numpy(v) for name, v in st["linear"].items()})
    return gru, lin


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_bp_equals_torch_autograd(loss, backend):
    params, x, y = problem(T=9, B=5, d=2, p=6, k=4, seed=21, loss=loss)
    res = tpref.oracle("bp", params, x, y, loss=loss, cell="gru", backend=backend)
    gru, lin = torch_model(params)
    H, h_T = gru(torch.from_numpy(x))                             # (T, B, p), (1, B, p)
    out = lin(H[-1])
    yt = torch.from_numpy(y)
    value = (torch.nn.functional.cross_entropy(out, yt) if loss == "cross_entropy"
             else torch.nn.functional.mse_loss(out, yt))
    value.backward()
    assert abs(res.loss - value.item()) <= 1e-12 * abs(value.item())
    assert_close(res.hidden[1:], H.detach().numpy(), "hidden states h_1..h_T")
    assert_close(res.output, out.detach().numpy(), "logits")
    grads = tpref.gru_params_from_torch({n: q.grad for n, q in gru.named_parameters()},
                                        {n: q.grad for n, q in lin.named_parameters()})
    for name in GRU_PARAM_NAMES:
        assert_close(res.direction[name], grads[name], f"d loss / d {name}")


def test_torch_default_init_loads_and_runs_identically():
    """A torch-initialized GRU (PyTorch's uniform default) read through gru_params_from_torch
    gives the same hidden states in tpref: the mapping works in both directions."""
    torch.manual_seed(0)
    gru = torch.nn.GRU(3, 7).double()
    lin = torch.nn.Linear(7, 2).double()
    params = tpref.gru_params_from_torch(gru.state_dict(), lin.state_dict())
    x = np.random.default_rng(0).normal(size=(11, 4, 3))
    H, _ = gru(torch.from_numpy(x))
    assert_close(gru_forward(params, x)[0][1:], H.detach().numpy(), "hidden states")


def test_jacobian_equals_torch_cell_jacobian():
    """J_t of the TP inverses is dh_t/dh_{t-1} of torch.nn.GRUCell (PyTorch's convention)."""
    params, x, _ = problem(T=1, B=3, d=2, p=5, seed=22)
    gru, _ = torch_model(params)
    cell = torch.nn.GRUCell(2, 5).double()
    cell.load_state_dict({"weight_ih": gru.weight_ih_l0, "weight_hh": gru.weight_hh_l0,
                          "bias_ih": gru.bias_ih_l0, "bias_hh": gru.bias_hh_l0})
    h_prev = np.random.default_rng(1).normal(size=(3, 5)) * 0.7
    xt = torch.from_numpy(x[0])
    for b in range(3):
        J_torch = torch.autograd.functional.jacobian(
            lambda h: cell(xt[b:b + 1], h[None])[0], torch.from_numpy(h_prev[b])).numpy()
        s = lambda u: 1 / (1 + np.exp(-u))
        P, xb, hb = params, x[0, b], h_prev[b]
        r = s(P["W_xr"] @ xb + P["b_xr"] + P["W_hr"] @ hb + P["b_hr"])
        z = s(P["W_xz"] @ xb + P["b_xz"] + P["W_hz"] @ hb + P["b_hz"])
        g = P["W_hn"] @ hb + P["b_hn"]
        n = np.tanh(P["W_xn"] @ xb + P["b_xn"] + r * g)
        J = gru_jacobian(params, hb[None], r[None], z[None], n[None], g[None])[0]
        assert_close(J, J_torch, f"dh_t/dh_(t-1), sample {b}")
