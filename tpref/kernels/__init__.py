"""Fast twins of the NumPy reference (tpref.methods.reference), one file per family.

core         what every twin must compute the same way (host side): the units and flush
             thresholds of the backward recursions, pi's clip bounds, the regularized
             pseudo-inverse map P = W (W^T W + r I)^{-1}
jit_cache    the kernels' disk cache, stamped with the sources they compile in (numba_math,
             numba_blas), so editing those recompiles every kernel that inlines them
numba_math   vectorizable tanh, atanh, logit for Numba kernels; wide_vectors (512-bit
             loops on AVX-512)
numba_blas   c += a.T @ b as one BLAS call (beta = 1) inside Numba kernels
workspace    output buffers of the Numba oracles (64-byte aligned), reused once the caller
             drops a result; ``aligned`` copies
numba_rnn    Numba CPU kernels of the simple-RNN oracles (``backend="numba"``)
numba_gru    Numba CPU kernels of the GRU oracles (``cell="gru", backend="numba"``)
cuda_rnn     numba.cuda kernels of the simple-RNN "bp" and "tp" oracles (``backend="cuda"``):
             one launch per time loop; usable where ``numba.cuda.is_available()`` (a GPU,
             or NUMBA_ENABLE_CUDASIM=1 for the simulator)

Every kernel here is tested by equality with the reference, never on its own; the
vector math of numba_math also against high-precision references (mpmath, long double).
"""
