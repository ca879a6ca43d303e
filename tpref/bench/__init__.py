"""Benchmark of the oracle backends against PyTorch: validate first, then time (llm.c style).

``tpref bench``. For each configuration (:mod:`.configs`) it

1. checks every backend against the NumPy reference (``tpref.oracle(backend="numpy")``) on the
   same shapes with a shorter sequence (T_check = min(T, 48)): float64 with config's RTOL /
   ATOL_SCALE, the benchmark dtype with the float32 policy (config.F32_REF_FACTOR). PyTorch's
   BP gradients are compared with tpref's BP direction. A backend that fails is not timed.
2. times one oracle iteration (forward + backward + direction, the work of one SGD step) of
   every backend in one process, alternating between backends repetition by repetition, with
   BLAS, Numba and PyTorch all on the same number of threads; reports the median, the
   quartiles and the minimum of wall-clock time and of thread CPU time. "tpref numba tp+lam"
   is the numba TP call followed by reading ``result.displacements``, which that backend
   computes only when read (what a verification run pays; ``OracleResult``).
3. reports ratios (tpref / torch, TP / BP: of medians, and the median of the ratios of
   samples paired within a repetition, robust to the machine changing speed during the run)
   and the fraction of a roofline: the GEMM flops of one BP iteration,
   6 T B p^2 + 4 T B p d (forward, dL/dh recursion, parameter products), at
   the best rate of two GEMM probes (a square 512^3 product; 1000 per-step (B, p) x (p, p)
   products) timed in the same alternation as the backends, so that the roofline sees the same
   machine load (Sec. 3 of the paper: BP's cost is driven by these products, TP adds one p^3
   encoding of the inverse).

Nothing here is a test: numbers are reported, never asserted.
"""

from .cli import build_parser, main, run
from .configs import CONFIGS, SWEEP_P, SWEEP_T, bp_flops, make_problem
from .measure import bench_config, derived, sweep
from .peers import set_threads
from .report import markdown, plot_sweep
from .timing import gemm_rate, paired_ratio, summarize, time_alternating
from .validation import validate

__all__ = ["CONFIGS", "SWEEP_P", "SWEEP_T", "bench_config", "bp_flops", "build_parser",
           "derived", "gemm_rate", "main", "make_problem", "markdown", "paired_ratio",
           "plot_sweep", "run", "set_threads", "summarize", "sweep", "time_alternating",
           "validate"]
