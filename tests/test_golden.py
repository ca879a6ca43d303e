"""A pinned loss trajectory of a tiny seeded run of each method: any drift in any formula shows.

The numbers were produced by ``python tests/golden.py`` with the NumPy reference. They are a
regression pin, not a proof of correctness (the other test modules are that): if a deliberate
change moves them, regenerate and say why in the commit message.
"""

import pytest

from golden import RUNS, golden_trajectory

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
