"""Hypothesis strategies for property tests of your own implementation against tpref.

Needs ``hypothesis`` (tpref's test extra); ``tpref.verify`` imports this module only when
``tpref.verify.strategies`` is first used. Example::

    from hypothesis import given, settings
    from tpref.verify import compare, strategies

    @given(strategies.problems(cell="rnn", methods=("tp",)))
    @settings(max_examples=50, deadline=None)
    def test_my_tp(case):
        ref = case.oracle()                           # float64 reference, with its call
        mine = my_tp(case.params, case.x, case.y, **case.kwargs)   # your implementation
        assert compare(mine, ref).ok

Every drawn problem is a :class:`tpref.verify.Case` (``.name``, ``.method``, ``.params``,
``.x``, ``.y``, ``.kwargs``), drawn from a seed and a few knobs, so Hypothesis shrinks it
toward small shapes, moderate scales and reg near 1.
"""

import numpy as np

try:
    from hypothesis import strategies as st
except ImportError as err:                               # pragma: no cover - needs the extra
    raise ImportError("tpref.verify.strategies needs hypothesis (pip install hypothesis, or "
                      "tpref's [test] extra)") from err

from .casebook import Case, _gru_case, _rnn_case

__all__ = ["shapes", "regs", "problems"]


def shapes(max_T=12, max_B=5, max_d=4, max_p=8, max_k=5):
    """Dicts of T, B, d, p, k (each >= 1)."""
    return st.fixed_dictionaries({"T": st.integers(1, max_T), "B": st.integers(1, max_B),
                                  "d": st.integers(1, max_d), "p": st.integers(1, max_p),
                                  "k": st.integers(2, max_k)})


def regs(low=1e-3, high=1e3):
    """Regularizations r, log-uniform in [low, high] (shrinking toward 1)."""
    return st.floats(np.log10(low), np.log10(high)).map(lambda e: float(10.0 ** e))


@st.composite
def problems(draw, cell="rnn", methods=("bp", "tp", "dtp"), losses=("cross_entropy", "mse"),
             max_T=12, max_B=5, max_p=8):
    """Random :class:`tpref.verify.Case` s: shapes, seed, weight scales (up to saturation),
    reg in [1e-3, 1e3], gamma_h, loss, update, activation (RNN) or gate saturation (GRU)."""
    sh = draw(shapes(max_T=max_T, max_B=max_B, max_p=max_p))
    seed = draw(st.integers(0, 2**31 - 1))
    loss = draw(st.sampled_from(losses))
    reg = draw(regs())
    gamma_h = draw(st.sampled_from((1e-3, 1e-2, 0.1, 0.5)))
    update = draw(st.sampled_from(("local", "through_time")))
    if cell == "gru":
        method = draw(st.sampled_from([m for m in methods if m != "dtp"] or ["tp"]))
        case = _gru_case("hypothesis-gru", seed, **sh, loss=loss, gamma_h=gamma_h, reg=reg,
                         update=update, gate_bias=draw(st.sampled_from((0.0, 4.0, 9.0))))
    else:
        method = draw(st.sampled_from(methods))
        case = _rnn_case("hypothesis-rnn", seed, **sh, method=method, loss=loss,
                         gamma_h=gamma_h, reg=reg, update=update,
                         activation=draw(st.sampled_from(("tanh", "sigmoid"))),
                         s_hh=draw(st.sampled_from((0.5, 1.0, 1.5))),
                         s_xh=draw(st.sampled_from((0.5, 1.0, 5.0))))
    return Case(f"{case.name}-{seed}", method, case.params, case.x, case.y, case.kwargs,
                case.branches, case.description)
