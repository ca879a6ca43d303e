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

METHODS = ("bp", "tp", "dtp", "dtp_learned")

#: The learned reverse layer G(x_t, h) = a(W_xh x_t + V_hh h + c_h) of "dtp_learned"
#: (Manchev & Spratling's TPTT): V_hh (p, p), c_h (p,); G reuses the forward W_xh.
REVERSE_PARAM_NAMES = ("V_hh", "c_h")
#: Float types a training run computes in (float32, as the authors' PyTorch runs, is faster).
DTYPES = ("float64", "float32")
LOSSES = ("cross_entropy", "mse")
ACTIVATIONS = ("tanh", "sigmoid")
UPDATES = ("local", "through_time")

#: Relative tolerance with which two implementations of the same formula must agree, per
#: dtype. One policy, used by every comparison in tests and benchmarks (tpref.testing).
RTOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 2e-4}
#: Normwise floor: an entry may also differ by ATOL_SCALE * max|reference| (so entries that are
#: tiny compared with the rest of their array do not fail on rounding).
ATOL_SCALE = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}

# ----------------------------------------------------------------------------------------------
# fast backends (tpref.kernels)

#: Entries of the linear backward recursions (BP's dL/dh_t, TP's displacements lam_t, the
#: through-time derivatives of TP/DTP) are flushed to zero when their magnitude falls below
#: this, in units of the power of two nearest below the largest entry of the recursion's
#: starting vector: sqrt(smallest normal number). The Numba kernels therefore never create a
#: subnormal number in those loops (subnormal arithmetic is 10-100x slower on x86 unless the
#: process flushes to zero), whatever the flush-to-zero state of the process. What is lost is
#: below 1e-154 (float64) or 1e-19 (float32) of the recursion's scale: far under ATOL_SCALE.
FLUSH_TINY = {np.dtype(np.float64): float(np.sqrt(np.finfo(np.float64).tiny)),
              np.dtype(np.float32): float(np.sqrt(np.finfo(np.float32).tiny))}

#: Rows (time steps x batch) per block of the parameter products in the Numba backend: the
#: backward kernels turn the deltas of a block of steps into the directions while they are in
#: cache, instead of writing a (T, B, p) delta array and reading it back for one product over
#: all steps. A block has at most PRODUCT_BLOCK_ROWS rows (512 rows of p = 100: 200-400 KB,
#: L2-resident) and, where that still leaves PRODUCT_SMALL_MIN_ROWS rows or more, at most
#: SMALL_GEMM_MNK // p^2: OpenBLAS's small-matrix GEMM kernels (SkylakeX and later) take
#: products with M N K <= 1e6 without packing their operands, measured 1.3-1.5x the rate of
#: the packed path at p = 100 (docs/benchmarks.md, fourth round).
PRODUCT_BLOCK_ROWS = 512
SMALL_GEMM_MNK = 10**6
PRODUCT_SMALL_MIN_ROWS = 32

#: Output buffers of the Numba oracles (tpref.kernels.workspace): arrays of at least
#: WORKSPACE_MIN_BYTES are kept after a call and handed out again once no result refers to
#: them, WORKSPACE_KEEP per (shape, dtype), for the WORKSPACE_SHAPES most recent shapes and
#: at most WORKSPACE_MAX_BYTES in all (what a long-running process keeps after its last call).
#: Freed and reallocated instead, arrays above glibc's mmap threshold (<= 32 MiB) were
#: page-faulted in at every call (~8 ms per 39 MB array; float64 TP/BP 1.18 at T = 3072), and
#: smaller ones freed together were trimmed from the heap and faulted in the same way
#: (~800 faults per TP call at the pixel-MNIST shapes). Measured in docs/benchmarks.md.
WORKSPACE_MIN_BYTES = 2**20
WORKSPACE_KEEP = 2
WORKSPACE_SHAPES = 4
WORKSPACE_MAX_BYTES = 512 * 2**20

#: BLAS threads used inside a ``backend="numba"`` oracle call (threadpoolctl limits NumPy's
#: and SciPy's OpenBLAS, which Numba's products use). Its products are small (B rows per time
#: step), where extra threads cost more than they give; two OpenBLAS pools spinning on the same
#: cores made a 0.2 ms Cholesky take 8 ms. None leaves BLAS as the process configured it.
BLAS_THREADS = 1

#: A float32 fast path is compared with the float64 reference. float32's rounding can be
#: amplified by ill-conditioned steps (difference TP's a^{-1} near pi's clip multiplies errors
#: by up to 1 / (2 clip_eps) per step), beyond what RTOL/ATOL_SCALE[float32] allow even for the
#: float32 reference itself. The comparison then also allows this many times the float32
#: reference's own max error against float64: the fast path is no worse than the reference.
F32_REF_FACTOR = 4.0

# ----------------------------------------------------------------------------------------------
# GRU (docs/gru.md)

#: Cells of ``tpref.oracle``: the simple RNN of Sec. 2 and the GRU of the FashionMNIST run.
CELLS = ("rnn", "gru")

#: Names of the GRU's parameters (PyTorch's equations, gate order r, z, n), in a fixed order.
GRU_PARAM_NAMES = ("W_xr", "W_xz", "W_xn", "W_hr", "W_hz", "W_hn",
                   "b_xr", "b_xz", "b_xn", "b_hr", "b_hz", "b_hn", "W_hy", "b_y")

#: Parameters of the GRU transition f_t (updated with targets by TP, Eq. 3).
GRU_TRANSITION_NAMES = GRU_PARAM_NAMES[:-2]

#: Linearized inverses of the GRU transition for TP: the per-gate scheme (one regularized
#: pseudo-inverse per recurrent block, fast), the exact regularized inverse of the full
#: Jacobian dh_t/dh_{t-1} (one p x p solve per step and sample, slow reference), and the
#: per-gate scheme as the authors' code computes it (their gate convention and plain carry,
#: for comparing with their results; docs/gru.md).
GRU_INVERSES = ("per_gate", "exact", "authors")
