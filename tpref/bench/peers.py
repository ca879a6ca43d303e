"""The runners ``tpref bench`` times, and the thread and FTZ settings they share.

A runner is a zero-argument callable doing one iteration (forward, backward, direction: the
work of one SGD step): :func:`tpref_runner` for an oracle backend, :func:`torch_runner` for
PyTorch's ``nn.RNN`` (or an ``RNNCell`` loop) with a linear head and the same parameters.
"""

import os

import numpy as np

from ..oracle import oracle
from .configs import DTP_LEARNED_OPTIONS, with_reverse


def torch_or_none():
    """The torch module, or None when PyTorch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def set_threads(n):
    """Pin BLAS (threadpoolctl), Numba and PyTorch to n threads; return what was set."""
    from threadpoolctl import threadpool_limits
    threadpool_limits(limits=n)
    os.environ["OMP_NUM_THREADS"] = str(n)
    try:
        import numba
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    except Exception:                                          # noqa: BLE001 - report only
        pass
    torch = torch_or_none()
    if torch is not None:
        torch.set_num_threads(n)
        try:
            torch.set_num_interop_threads(n)
        except RuntimeError:                                   # already set in this process
            pass
    return n


def flush_denormal(on):
    """Set flush-to-zero / denormals-are-zero for this thread via PyTorch; False if unavailable."""
    torch = torch_or_none()
    if torch is None:
        return False
    return bool(torch.set_flush_denormal(on))


def with_ftz(fn, on):
    """``fn`` run with flush-to-zero set to ``on`` (and reset to off after it)."""
    def run():
        flush_denormal(on)
        try:
            return fn()
        finally:
            flush_denormal(False)
    return run


def tpref_runner(method, backend, params, x, y, cfg, update="local"):
    """One oracle call; method "tp+lam": the "tp" call, then its displacements read."""
    kw = dict(loss=cfg["loss"], backend=backend)
    if method == "dtp_learned":
        learned = with_reverse(params)
        kw.update(gamma_h=cfg["gamma_h"], **DTP_LEARNED_OPTIONS)
        return lambda: oracle("dtp_learned", learned, x, y, **kw)
    if method != "bp":
        kw.update(gamma_h=cfg["gamma_h"], reg=cfg["reg"], update=update)
    if method == "tp+lam":
        return lambda: oracle("tp", params, x, y, **kw).displacements
    return lambda: oracle(method, params, x, y, **kw)


class TorchModel:
    """torch.nn.RNN (or RNNCell) + linear head with tpref's parameters, bias_hh = 0."""

    def __init__(self, params, cell):
        torch = torch_or_none()
        dtype = torch.float64 if params["W_hh"].dtype == np.float64 else torch.float32
        p, d = params["W_xh"].shape
        k = params["W_hy"].shape[0]
        self.rnn = (torch.nn.RNNCell(d, p) if cell else torch.nn.RNN(d, p)).to(dtype)
        self.head = torch.nn.Linear(p, k).to(dtype)
        sfx = "" if cell else "_l0"
        with torch.no_grad():
            getattr(self.rnn, "weight_hh" + sfx).copy_(torch.from_numpy(params["W_hh"]))
            getattr(self.rnn, "weight_ih" + sfx).copy_(torch.from_numpy(params["W_xh"]))
            getattr(self.rnn, "bias_ih" + sfx).copy_(torch.from_numpy(params["b_h"]))
            getattr(self.rnn, "bias_hh" + sfx).zero_()
            self.head.weight.copy_(torch.from_numpy(params["W_hy"]))
            self.head.bias.copy_(torch.from_numpy(params["b_y"]))
        self.cell, self.sfx = cell, sfx

    def step(self, x, y, loss):
        """One BP iteration; returns (loss, grads dict in tpref's names)."""
        torch = torch_or_none()
        for prm in list(self.rnn.parameters()) + list(self.head.parameters()):
            prm.grad = None
        if self.cell:
            h = torch.zeros(x.shape[1], self.rnn.hidden_size, dtype=x.dtype)
            for t in range(x.shape[0]):
                h = self.rnn(x[t], h)
            h_T = h
        else:
            h_T = self.rnn(x)[1][0]
        out = self.head(h_T)
        value = (torch.nn.functional.cross_entropy(out, y) if loss == "cross_entropy"
                 else torch.nn.functional.mse_loss(out, y))
        value.backward()
        s = self.sfx
        return value, {"W_hh": getattr(self.rnn, "weight_hh" + s).grad,
                       "W_xh": getattr(self.rnn, "weight_ih" + s).grad,
                       "b_h": getattr(self.rnn, "bias_ih" + s).grad,
                       "W_hy": self.head.weight.grad, "b_y": self.head.bias.grad}


def torch_runner(params, x, y, cfg, cell):
    """One BP iteration of PyTorch on the same problem (``cell``: an RNNCell loop)."""
    torch = torch_or_none()
    model = TorchModel(params, cell)
    xt = torch.from_numpy(x)
    yt = torch.from_numpy(y)
    return lambda: model.step(xt, yt, cfg["loss"])
