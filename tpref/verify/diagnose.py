"""What ``compare`` says about a divergence: the faulty operation, and known bug signatures.

- :func:`~tpref.verify.fault_location.locate` reruns the single operation that produced the
  first divergent value (``tpref.verify.steps``) on the candidate's *own* inputs of that step.
  If it reproduces the candidate's value, the operation is right and the fault is upstream; if
  not, the fault is in that operation, and a few known variants of it (a transposed W_hh, the
  clip left out, reg squared, an input or derivative taken one step off, the other update
  mode) are tried to say which.
- :func:`~tpref.verify.bug_signatures.signatures` fits candidate = c x reference and names
  known ratios c (B or 1/B: a sum versus a mean; gamma_h; -1: a sign flip), and checks a
  transposed weight and the other ``update`` mode.
"""

import numpy as np

from .bug_signatures import signatures
from .fault_location import locate


def diagnose(first, cand, ref, tols, dtype):
    """(operation sentence or None, list of hints) for the first divergence."""
    try:
        operation = locate(first, cand, ref, tols, dtype)
    except (ValueError, np.linalg.LinAlgError, KeyError):
        operation = None
    hints = signatures(first, cand, ref, tols, dtype)
    return operation, hints
