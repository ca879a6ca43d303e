"""tpref.verify: check a framework implementation of BP/TP/DTP against tpref and localize bugs.

Public surface
--------------
compare(candidate, reference, *, dtype=None) -> Report
    Compare your outputs (loss, hidden, targets, displacements, direction) with an
    ``OracleResult`` or a golden case; per quantity and time step tolerances sized by what a
    correct implementation in your precision gets wrong (``tpref.verify.tolerance``).
assert_matches(candidate, reference, *, dtype=None)
    ``compare``, raising AssertionError with the report on a divergence.
Report, Divergence, Check
    What ``compare`` returns: ``ok``, ``first_divergence``, ``hints``, ``str()``, ``to_dict()``.
steps
    Single-step reference operations (forward step, first target, regularized inverse,
    linearized inverse step, difference step, one step's direction) to check one operation.
cases(cell="rnn") / Case
    Small hard cases exercising every branch (clip active, reg 1e-3..1e3, growing and
    decaying displacements, sigmoid, MSE, both updates, saturated GRU gates).
strategies
    Hypothesis strategies for property tests (needs ``hypothesis``; imported on first use).
write_golden / load_golden / verify_golden
    Golden files: the cases' inputs and outputs as .npz with a checksummed JSON manifest, and
    the check of a candidate .npz from files alone (``tpref golden``, ``tpref verify``).

Importing this package imports neither torch nor jax.
"""

from . import steps
from .casebook import Case, cases
from .compare import assert_matches, compare
from .report import Check, Divergence, Report
from .golden import GoldenFileError, load_golden, verify_golden, write_golden

__all__ = ["compare", "assert_matches", "Report", "Divergence", "Check", "steps", "cases", "Case",
           "strategies", "write_golden", "load_golden", "verify_golden", "GoldenFileError"]


def __getattr__(name):
    """``tpref.verify.strategies`` is imported on first use (it needs hypothesis)."""
    if name == "strategies":
        import importlib
        return importlib.import_module(".strategies", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
