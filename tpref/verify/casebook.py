"""Small hard cases that exercise every branch of the oracles (``tpref.verify.cases()``).

A check on one benign case misses bugs: with reg = 1 and no saturated unit, leaving out the
clip before atanh or squaring reg changes nothing measurable. Each case here is built so that
a named branch is active, with B, T, d, p, k all different (a swapped axis cannot go
unnoticed) and every parameter dense and random (no term hides behind a zero):

=====================  ===================================================================
case                   exercises
=====================  ===================================================================
rnn-saturated          tanh units beyond the clip (|h_t| > 1 - clip_eps): pi is active
rnn-reg-small-grow     reg = 1e-3, displacements growing backwards through time
rnn-reg-large-decay    reg = 1e3, displacements decaying backwards (to ~1e-40 at t = 0)
rnn-sigmoid-mse        sigmoid activation, MSE loss, update="through_time"
rnn-dtp-saturated      difference TP with saturated units
gru-saturated-gates    GRU with update/reset gates beyond the clip (sigmoid near 0 and 1)
gru-mse-through-time   GRU, MSE loss, update="through_time"
gru-exact              GRU, the exact linearized inverse, reg = 1e-2
=====================  ===================================================================

All are seeded and small: a pass over every case in both precisions takes well under a
second per case.
"""

from dataclasses import dataclass, field

import numpy as np

from ..config import CLIP_EPS
from ..models.gru import init_gru


@dataclass(frozen=True)
class Case:
    """One named problem for ``tpref.oracle``.

    ``tpref.oracle(case.method, case.params, case.x, case.y, **case.kwargs)`` runs it (any
    method works with these kwargs where the cell has it; ``method`` is the one the case was
    built for). ``branches`` names what it exercises, ``description`` says how.
    """

    name: str
    method: str
    params: dict
    x: np.ndarray
    y: np.ndarray
    kwargs: dict
    branches: tuple = ()
    description: str = ""

    @property
    def cell(self):
        return self.kwargs.get("cell", "rnn")

    def astype(self, dtype):
        """The same case in ``dtype`` (params, x, and y for MSE)."""
        y = self.y.astype(dtype) if self.y.dtype.kind == "f" else self.y
        return Case(self.name, self.method, {n: a.astype(dtype) for n, a in self.params.items()},
                    self.x.astype(dtype), y, dict(self.kwargs), self.branches, self.description)

    def oracle(self, method=None, *, dtype=np.float64, backend="numpy"):
        """``tpref.oracle`` on this case (default: its method, float64, the NumPy reference)."""
        import tpref

        c = self.astype(dtype)
        kwargs = dict(self.kwargs, backend=backend)
        return tpref.oracle(method or self.method, c.params, c.x, c.y, **kwargs)


def _rnn_params(rng, d, p, k, *, s_hh, s_xh, bias=0.1):
    """Dense random RNN params; W_hh = s_hh x an orthogonal matrix (its singular values all
    s_hh set how the inverse scales the displacements), W_xh of norm ~s_xh per unit."""
    q, _ = np.linalg.qr(rng.normal(size=(p, p)))
    return {"W_hh": s_hh * q,
            "W_xh": s_xh * rng.normal(size=(p, d)) / np.sqrt(d),
            "b_h": bias * rng.normal(size=p),
            "W_hy": rng.normal(size=(k, p)) / np.sqrt(p),
            "b_y": 0.1 * rng.normal(size=k)}


def _targets(rng, loss, B, k):
    if loss == "cross_entropy":
        return rng.integers(0, k, size=B)
    return rng.normal(size=(B, k))


def _rnn_case(name, seed, *, T, B, d, p, k, s_hh, s_xh, method="tp", loss="cross_entropy",
              gamma_h=0.1, reg=1.0, update="local", activation="tanh", branches=(),
              description=""):
    rng = np.random.default_rng(seed)
    params = _rnn_params(rng, d, p, k, s_hh=s_hh, s_xh=s_xh)
    x = rng.normal(size=(T, B, d))
    kwargs = dict(loss=loss, gamma_h=gamma_h, reg=reg, update=update, activation=activation,
                  clip_eps=CLIP_EPS, cell="rnn")
    return Case(name, method, params, x, _targets(rng, loss, B, k), kwargs, tuple(branches),
                description)


def _gru_case(name, seed, *, T, B, d, p, k, gate_bias=0.0, loss="cross_entropy", gamma_h=0.1,
              reg=1.0, update="local", gru_inverse="per_gate", branches=(), description=""):
    rng = np.random.default_rng(seed)
    params = init_gru(d, p, k, seed=seed)
    params = {n: a + 0.3 * rng.normal(size=a.shape) for n, a in params.items()}
    if gate_bias:
        sign = np.where(np.arange(p) % 2 == 0, 1.0, -1.0)          # half near 1, half near 0
        params["b_xz"] = params["b_xz"] + gate_bias * sign
        params["b_xr"] = params["b_xr"] - gate_bias * sign
    x = rng.normal(size=(T, B, d))
    kwargs = dict(loss=loss, gamma_h=gamma_h, reg=reg, update=update, activation="tanh",
                  clip_eps=CLIP_EPS, cell="gru", gru_inverse=gru_inverse)
    return Case(name, "tp", params, x, _targets(rng, loss, B, k), kwargs, tuple(branches),
                description)


def _rnn_cases():
    yield _rnn_case("rnn-saturated", 11, T=9, B=3, d=2, p=6, k=4, s_hh=1.2, s_xh=6.0,
                    branches=("clip",),
                    description="large input weights drive tanh units beyond 1 - clip_eps, "
                                "so pi clips before a^{-1}'s derivative")
    yield _rnn_case("rnn-reg-small-grow", 12, T=11, B=4, d=3, p=5, k=2, s_hh=0.5, s_xh=0.5,
                    reg=1e-3, gamma_h=0.01, branches=("reg-small", "grow"),
                    description="W_hh with singular values 0.5 and reg = 1e-3: the inverse "
                                "doubles the displacements at every step backwards")
    yield _rnn_case("rnn-reg-large-decay", 13, T=15, B=2, d=4, p=5, k=3, s_hh=1.0, s_xh=0.5,
                    reg=1e3, gamma_h=0.5, branches=("reg-large", "decay", "underflow"),
                    description="reg = 1e3: each step backwards scales the displacements by "
                                "~1e-3, down to float32's subnormal range at t = 0")
    yield _rnn_case("rnn-sigmoid-mse", 14, T=8, B=5, d=2, p=4, k=3, s_hh=1.0, s_xh=4.0,
                    loss="mse", activation="sigmoid", update="through_time", reg=0.1,
                    branches=("sigmoid", "mse", "through_time", "clip"),
                    description="sigmoid units (clipped to [eps, 1 - eps]), MSE loss over all "
                                "B*k outputs, the authors' through-time update")
    yield _rnn_case("rnn-dtp-saturated", 15, T=7, B=4, d=3, p=6, k=2, s_hh=1.1, s_xh=5.0,
                    method="dtp", reg=0.5, gamma_h=0.2, branches=("dtp", "clip"),
                    description="difference TP, f^{-1}(h + lam) - f^{-1}(h), with saturated "
                                "units")


def _gru_cases():
    yield _gru_case("gru-saturated-gates", 21, T=8, B=3, d=2, p=5, k=4, gate_bias=9.0,
                    branches=("gates-clip",),
                    description="update and reset gates biased to within 1e-4 of 0 and 1, "
                                "beyond the clip of the per-gate inverse")
    yield _gru_case("gru-mse-through-time", 22, T=7, B=4, d=3, p=6, k=2, loss="mse",
                    update="through_time", reg=0.3, branches=("mse", "through_time"),
                    description="GRU with MSE loss and the through-time update")
    yield _gru_case("gru-exact", 23, T=6, B=2, d=4, p=5, k=3, reg=1e-2, gru_inverse="exact",
                    branches=("exact", "reg-small"),
                    description="the exact linearized inverse (J^T J + reg I)^{-1} J^T")


def cases(cell="rnn"):
    """The hard cases of ``cell`` ("rnn", "gru", or "all"), in a fixed order.

    Yields
    ------
    Case
        ``.name``, ``.method``, ``.params``, ``.x``, ``.y``, ``.kwargs`` (for ``tpref.oracle``),
        ``.branches``, ``.description``; float64 (``case.astype(np.float32)`` for float32).
    """
    if cell not in ("rnn", "gru", "all"):
        raise ValueError(f"cell must be 'rnn', 'gru' or 'all', got {cell!r}")
    if cell in ("rnn", "all"):
        yield from _rnn_cases()
    if cell in ("gru", "all"):
        yield from _gru_cases()
