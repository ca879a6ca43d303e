"""Fast twins of the NumPy reference (tpref.methods.reference), one file per family.

numba_math   vectorizable tanh for Numba kernels
numba_rnn    Numba CPU kernels of the simple-RNN oracles (``backend="numba"``)
numba_gru    Numba CPU kernels of the GRU oracles (``cell="gru", backend="numba"``)
cuda_rnn     numba.cuda twins of the per-step core (forward step, linearized TP step);
             usable where ``numba.cuda.is_available()`` (GPU or NUMBA_ENABLE_CUDASIM=1)

Every function here is tested by equality with the reference, never on its own.
"""
