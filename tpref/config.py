"""Settings shared by every part of tpref: defaults, names and the tolerance policy.

Nothing here is computed; everything here is a number or a name that more than one module
needs. Kernels take these values as arguments rather than reading globals, so that the NumPy
reference and its Numba/CUDA twins see the same numbers.
"""

import numpy as np

#: Names of the simple RNN's parameters (Sec. 2 of the paper), in a fixed order.
RNN_PARAM_NAMES = ("W_hh", "W_xh", "b_h", "W_hy", "b_y")

#: Parameters of the transition operations f_t (updated with targets by TP/DTP, Eq. 3).
RNN_TRANSITION_NAMES = ("W_hh", "W_xh", "b_h")

#: Tolerance of the projection pi onto the activation's image: tanh targets are clipped to
#: [-1 + eps, 1 - eps], sigmoid targets to [eps, 1 - eps] (authors' code, see docs/equations.md).
CLIP_EPS = 1e-3

METHODS = ("bp", "tp", "dtp")
LOSSES = ("cross_entropy", "mse")
ACTIVATIONS = ("tanh", "sigmoid")
UPDATES = ("local", "through_time")

#: Relative tolerance with which two implementations of the same formula must agree, per
#: dtype. One policy, used by every comparison in tests and benchmarks (tpref.testing).
RTOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 2e-4}
#: Absolute floor added to RTOL * max|reference|: only so that all-zero references compare;
#: tiny on purpose, since TP displacements scale with gamma_h and may be ~1e-10 or less.
ATOL = {np.dtype(np.float64): 1e-300, np.dtype(np.float32): 1e-37}
