"""A user's PyTorch BP and TP for the simple RNN, written from the paper, with plantable bugs.

Written apart from tpref's code, the way a PyTorch user writes it: batch-first tensors
(B, T, ...), an ``nn.RNN(batch_first=True)`` holding the weights under torch's names and an
``nn.Linear`` head, the transition written out per step (TP needs f_t(h_{t-1}) with h_{t-1}
held fixed), autograd wherever a derivative is needed, and the direction left in the
parameters' ``.grad`` as ``loss.backward()`` would. From the paper (Sec. 2-3):

    h_t = a(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)                      (nn.RNN's two biases)
    lam_T = -gamma_h dl/dh_T                                              Eq. (1)
    lam_{t-1} = (W_hh^T W_hh + r I)^{-1} W_hh^T [ (a^{-1})'(pi(h_t)) * lam_t ]   Eq. (2)
    direction = grad_theta sum_t <f_t(h_{t-1}), -lam_t>                   Eq. (3)

Eq. (3) is computed in its displacement form: the gradient of sum_t 1/2 ||f_t(h_{t-1}) - v_t||^2
at f_t(h_{t-1}) = h_t is sum_t d_theta f_t^T (h_t - v_t) = sum_t d_theta f_t^T (-lam_t). Written
literally (``PITFALL_LITERAL_EQ3``), f_t - v_t subtracts two numbers of size ~1 that differ by
~gamma_h: in float32 at gamma_h = 1e-4 most of the direction's digits are lost.

``bugs`` plants realistic mistakes, one name of :data:`BUGS` each.
"""

import torch
import torch.nn.functional as F

#: Planted bugs: name -> what the buggy implementation does.
BUGS = {
    "no_clip": "(a^-1)' taken at h_t, not at pi(h_t): no clip before the inverse",
    "loss_sum": "loss with reduction='sum' instead of the batch mean",
    "inverse_transpose": "W_hh z instead of W_hh^T z in the regularized inverse",
    "update_mode": "the other update mode: h_{t-1} detached or not the wrong way round",
    "time_shift": "(a^-1)' taken at pi(h_{t-1}) instead of pi(h_t): off by one step",
    "reg_squared": "r^2 instead of r in W_hh^T W_hh + r I",
    "bias_forward": "the hand-written step forgets bias_hh",
    "bias_grad_sum": "b_h's direction read as bias_ih.grad + bias_hh.grad (the doubled bias)",
    "sign": "the paper's d_theta (theta + gamma d_theta) handed over as the direction",
    "axes_swapped": "batch-first outputs handed over as if time-major",
}

#: Not a bug in exact arithmetic: Eq. (3) written as 1/2 ||f_t(h_{t-1}) - v_t||^2.
PITFALL_LITERAL_EQ3 = "literal_eq3"


class UserRNN(torch.nn.Module):
    """nn.RNN(d, p, batch_first=True) (the weights, under torch's names) + nn.Linear(p, k)."""

    def __init__(self, d, p, k, dtype=torch.float64):
        super().__init__()
        self.rnn = torch.nn.RNN(d, p, batch_first=True, dtype=dtype)
        self.head = torch.nn.Linear(p, k, dtype=dtype)


def output_layer(model, hs, y, loss, method, reduction="mean"):
    """The loss of the head on h_T. BP: backward through everything, returns (loss, None);
    TP: the head's plain gradient into .grad, returns (loss, dl/dh_T)."""
    out = model.head(hs[-1])
    L = (F.cross_entropy(out, y, reduction=reduction) if loss == "cross_entropy"
         else F.mse_loss(out, y, reduction=reduction))
    model.zero_grad(set_to_none=True)
    if method == "bp":
        L.backward()
        return L, None
    gW, gb, g_T = torch.autograd.grad(L, [model.head.weight, model.head.bias, hs[-1]],
                                      retain_graph=True)
    model.head.weight.grad, model.head.bias.grad = gW, gb
    return L, g_T


def run(model, method, x, y, *, loss, gamma_h=None, reg=None, update="local",
        activation="tanh", clip_eps=1e-3, bugs=()):
    """One BP or TP iteration's quantities; the direction is left in the parameters' .grad.

    x : (B, T, d) tensor; y : (B,) labels or (B, k) targets.
    Returns a dict of batch-first tensors: loss, hidden (B, T+1, p) and, for TP, targets and
    displacements (B, T+1, p).
    """
    unknown = set(bugs) - set(BUGS) - {PITFALL_LITERAL_EQ3}
    assert not unknown, unknown
    W_ih, W_hh = model.rnn.weight_ih_l0, model.rnn.weight_hh_l0
    b_ih, b_hh = model.rnn.bias_ih_l0, model.rnn.bias_hh_l0
    act = torch.tanh if activation == "tanh" else torch.sigmoid

    def step(x_t, h_prev):                                   # f_t(h_{t-1}), rows of a batch
        u = x_t @ W_ih.T + b_ih + h_prev @ W_hh.T
        return act(u if "bias_forward" in bugs else u + b_hh)

    B, T, _ = x.shape
    p = W_hh.shape[0]
    hs = [x.new_zeros(B, p)]
    for t in range(T):
        hs.append(step(x[:, t], hs[-1]))
    reduction = "sum" if "loss_sum" in bugs else "mean"
    L, g_T = output_layer(model, hs, y, loss, method, reduction)
    result = {"loss": L.detach(), "hidden": torch.stack(hs, dim=1).detach()}
    if method == "bp":
        return result

    # Eq. (1): the first target, as a displacement
    lam = [None] * (T + 1)
    lam[T] = -gamma_h * g_T
    # Eq. (2): lam_{t-1} = (W^T W + r I)^{-1} W^T [(a^-1)'(pi(h_t)) * lam_t], batch of rows
    W = W_hh.detach()
    r = reg ** 2 if "reg_squared" in bugs else reg
    M = W.T @ W + r * torch.eye(p, dtype=W.dtype)
    lo, hi = (-1 + clip_eps, 1 - clip_eps) if activation == "tanh" else (clip_eps, 1 - clip_eps)
    for t in range(T, 0, -1):
        at = hs[t - 1 if "time_shift" in bugs else t].detach()
        if "no_clip" not in bugs:
            at = at.clamp(lo, hi)                            # pi(h_t)
        inv_slope = 1 / (1 - at * at) if activation == "tanh" else 1 / (at * (1 - at))
        z = inv_slope * lam[t]                               # (B, p)
        Wz = z @ W.T if "inverse_transpose" in bugs else z @ W   # rows of W^T z
        lam[t - 1] = torch.linalg.solve(M, Wz.T).T
    # Eq. (3), in the displacement form (or literally, the float32 pitfall)
    through_time = (update == "through_time") != ("update_mode" in bugs)
    S = 0
    for t in range(1, T + 1):
        f_t = hs[t] if through_time else step(x[:, t - 1], hs[t - 1].detach())
        if PITFALL_LITERAL_EQ3 in bugs:
            v_t = hs[t].detach() + lam[t]
            S = S + 0.5 * ((f_t - v_t) ** 2).sum()
        else:
            S = S + (f_t * -lam[t]).sum()
    grads = torch.autograd.grad(S, [W_ih, W_hh, b_ih, b_hh], allow_unused=True)
    for q, g in zip((W_ih, W_hh, b_ih, b_hh), grads):
        q.grad = None if g is None else (-g if "sign" in bugs else g)
    D = torch.stack(lam, dim=1)
    result.update(displacements=D, targets=result["hidden"] + D)
    return result
