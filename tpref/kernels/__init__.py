"""Fast twins of the NumPy reference (tpref.methods.reference), one file per family.

numba_math   vectorizable tanh for Numba kernels
numba_rnn    Numba CPU kernels of the simple-RNN oracles (``backend="numba"``)

Every function here is tested by equality with the reference, never on its own.
"""
