"""A user's PyTorch TP (and BP) for the GRU with the per-gate linearized inverse, plantable bugs.

Written apart from tpref's code, batch-first, weights in an ``nn.GRU(batch_first=True)`` (rows
stacked r, z, n) and an ``nn.Linear`` head; the direction is left in ``.grad``. PyTorch's GRU:

    r = sigma(W_ir x + b_ir + W_hr h + b_hr),  z = sigma(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),  h_t = (1 - z) * n + z * h_{t-1}

TP's Eq. (2) with one regularized pseudo-inverse P_* u = (W_h*^T W_h* + r I)^{-1} W_h*^T u per
path of dh_t/dh_{t-1} (the per-gate scheme of docs/gru.md), gates clipped to [eps, 1 - eps]
where their sigmoid derivative is divided by:

    lam_{t-1} = z / (z^2 + r) lam + P_n[(1 - z) n' r lam] + P_z[(h_{t-1} - n) lam / (z~(1 - z~))]
              + P_r[(1 - z) n' g lam / (r~(1 - r~))]

with n' = 1 - n^2, g = W_hn h_{t-1} + b_hn and z~, r~ the clipped gates.

Eq. (3) in the displacement form, as in planted_rnn.py.
"""

import torch

from planted_rnn import output_layer

BUGS = {
    "carry_unregularized": "carry path inverted as 1 / z instead of z / (z^2 + r)",
    "gate_no_clip": "sigmoid derivatives of the gates divided by without clipping the gates",
    "reset_inside": "n = tanh(W_in x + b_in + W_hn (r * h) + b_hn): reset gate inside the product",
    "update_convention": "h_t = z * n + (1 - z) * h_{t-1} instead of PyTorch's (1 - z) * n + z * h",
}


class UserGRU(torch.nn.Module):
    def __init__(self, d, p, k, dtype=torch.float64):
        super().__init__()
        self.gru = torch.nn.GRU(d, p, batch_first=True, dtype=dtype)
        self.head = torch.nn.Linear(p, k, dtype=dtype)


def run(model, method, x, y, *, loss, gamma_h=None, reg=None, update="local", clip_eps=1e-3,
        bugs=(), **_):
    """As planted_rnn.run, for the GRU (x (B, T, d); batch-first tensors out)."""
    assert not set(bugs) - set(BUGS), bugs
    g = model.gru
    W_ir, W_iz, W_in = g.weight_ih_l0.chunk(3)
    W_hr, W_hz, W_hn = g.weight_hh_l0.chunk(3)
    b_ir, b_iz, b_in = g.bias_ih_l0.chunk(3)
    b_hr, b_hz, b_hn = g.bias_hh_l0.chunk(3)

    def step(x_t, h):
        r = torch.sigmoid(x_t @ W_ir.T + b_ir + h @ W_hr.T + b_hr)
        z = torch.sigmoid(x_t @ W_iz.T + b_iz + h @ W_hz.T + b_hz)
        gh = h @ W_hn.T + b_hn
        if "reset_inside" in bugs:
            n = torch.tanh(x_t @ W_in.T + b_in + (r * h) @ W_hn.T + b_hn)
        else:
            n = torch.tanh(x_t @ W_in.T + b_in + r * gh)
        h_new = z * n + (1 - z) * h if "update_convention" in bugs else (1 - z) * n + z * h
        return h_new, (r, z, n, gh)

    B, T, _ = x.shape
    p = W_hr.shape[0]
    hs, gates = [x.new_zeros(B, p)], []
    for t in range(T):
        h, cache = step(x[:, t], hs[-1])
        hs.append(h)
        gates.append(tuple(c.detach() for c in cache))
    L, g_T = output_layer(model, hs, y, loss, method)
    result = {"loss": L.detach(), "hidden": torch.stack(hs, dim=1).detach()}
    if method == "bp":
        return result
    eye = torch.eye(p, dtype=x.dtype)

    def pinv(W):                       # u (B, p) -> rows of (W^T W + r I)^{-1} W^T u
        M = W.T @ W + reg * eye
        return lambda u: torch.linalg.solve(M, (u @ W).T).T
    P_r, P_z, P_n = (pinv(W.detach()) for W in (W_hr, W_hz, W_hn))
    lam = [None] * (T + 1)
    lam[T] = -gamma_h * g_T
    for t in range(T, 0, -1):
        r, z, n, gh = gates[t - 1]
        h_prev, l = hs[t - 1].detach(), lam[t]
        rc, zc = (r, z) if "gate_no_clip" in bugs else (r.clamp(clip_eps, 1 - clip_eps),
                                                        z.clamp(clip_eps, 1 - clip_eps))
        dn = (1 - z) * (1 - n * n)                          # dh/d(candidate pre-activation)
        carry = l / z if "carry_unregularized" in bugs else z / (z * z + reg) * l
        lam[t - 1] = (carry + P_n(dn * r * l) + P_z((h_prev - n) * l / (zc * (1 - zc)))
                      + P_r(dn * gh * l / (rc * (1 - rc))))
    S = 0
    for t in range(1, T + 1):
        f_t = hs[t] if update == "through_time" else step(x[:, t - 1], hs[t - 1].detach())[0]
        S = S + (f_t * -lam[t]).sum()
    params = [g.weight_ih_l0, g.weight_hh_l0, g.bias_ih_l0, g.bias_hh_l0]
    for q, d in zip(params, torch.autograd.grad(S, params)):
        q.grad = d
    D = torch.stack(lam, dim=1)
    result.update(displacements=D, targets=result["hidden"] + D)
    return result
