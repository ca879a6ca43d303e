"""A pinned loss trajectory of a tiny seeded run of each method: any drift in any formula shows.

The numbers were produced by ``python tests/golden.py`` with the NumPy reference. They are a
regression pin, not a proof of correctness (the other test modules are that): if a deliberate
change moves them, regenerate and say why in the commit message.

The "dtp-local" pin is of a run that ascends (loss 0.89 -> 1.90 in six steps), on purpose:
it pins DTP's numbers where the difference formula is far from its linearization. At
gamma_h = 0.3 on this batch the targets reach pi's clip, where atanh is steep, and DTP's first
direction points uphill (cosine with the BP gradient about -0.25, ten times TP's norm); at
gamma_h = 0.003 it is TP's direction to first order (cosine +0.28, as TP at any gamma_h).
``test_the_dtp_pin_ascends_and_why`` checks exactly that, so the pin says what it is.
"""

import numpy as np

import pytest

import tpref
from golden import RUNS, golden_batch, golden_trajectory

PINNED = {
    'bp': [0.8899527404710916, 0.503687945161332, 0.3118739804202989, 0.13454593657518538, 0.05602818898863973, 0.045693146583081996],
    'tp-local': [0.8899527404710916, 0.8707991836633844, 0.8534960897690949, 0.8383622760532472, 0.8259347761035607, 0.8171413802759633],
    'tp-through_time': [0.8899527404710916, 0.8636964008415963, 0.8461009545750258, 0.8370473726868229, 0.838846806102135, 0.8649807190667578],
    'dtp-local': [0.8899527404710916, 1.0176811175367435, 1.297030173754917, 1.6451988924722147, 1.4353772132507485, 1.903413201476246],
}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_golden_loss_trajectory(name):
    got = golden_trajectory(name)
    for i, (a, b) in enumerate(zip(got, PINNED[name])):
        assert abs(a - b) <= 1e-11 * abs(b), f"{name}: step {i} loss {a!r} != pinned {b!r}"


def test_the_dtp_pin_ascends_and_why():
    """The DTP run pinned above ascends because its first direction is not a descent direction
    at gamma_h = 0.3 (the difference formula far from its linearization), while at a small
    gamma_h DTP's direction is TP's to first order, which descends."""
    loss = PINNED["dtp-local"]
    assert loss[-1] > loss[0] and max(PINNED["tp-local"]) == PINNED["tp-local"][0]
    params, x, y = golden_batch()
    kw = dict(loss="cross_entropy", backend="numpy", reg=0.5)
    grad = tpref.oracle("bp", params, x, y, loss="cross_entropy", backend="numpy").direction
    names = ("W_hh", "W_xh", "b_h")
    flat = lambda d: np.concatenate([d[n].ravel() for n in names])
    cosine = lambda d: flat(d) @ flat(grad) / np.linalg.norm(flat(d)) / np.linalg.norm(flat(grad))
    assert cosine(tpref.oracle("dtp", params, x, y, gamma_h=0.3, **kw).direction) < -0.1
    small = cosine(tpref.oracle("dtp", params, x, y, gamma_h=0.003, **kw).direction)
    tp = cosine(tpref.oracle("tp", params, x, y, gamma_h=0.3, **kw).direction)
    assert small > 0.1 and abs(small - tp) < 0.01
