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
#: Absolute floor added to RTOL * max|reference| (so exact zeros compare sensibly).
ATOL_SCALE = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}

# ----------------------------------------------------------------------------------------------
# GRU (docs/gru.md)

#: Cells of ``tpref.oracle``: the simple RNN of Sec. 2 and the GRU of the FashionMNIST run.
CELLS = ("rnn", "gru")

#: Names of the GRU's parameters (PyTorch's equations, gate order r, z, n), in a fixed order.
GRU_PARAM_NAMES = ("W_xr", "W_xz", "W_xn", "W_hr", "W_hz", "W_hn",
                   "b_xr", "b_xz", "b_xn", "b_hr", "b_hz", "b_hn", "W_hy", "b_y")

#: Parameters of the GRU transition f_t (updated with targets by TP, Eq. 3).
GRU_TRANSITION_NAMES = GRU_PARAM_NAMES[:-2]

#: Linearized inverses of the GRU transition for TP: the authors' per-gate scheme (one
#: regularized pseudo-inverse per recurrent block, fast) and the exact regularized inverse of
#: the full Jacobian dh_t/dh_{t-1} (one p x p solve per step and sample, slow reference).
GRU_INVERSES = ("per_gate", "exact")
