"""The recurrent cells a training run can use, behind one small interface.

    cell "rnn"   the simple RNN of Sec. 2 (tpref.models.rnn)
    cell "gru"   PyTorch's GRU (tpref.models.gru), the model of the paper's Fashion-MNIST run

:func:`init_params` draws a cell's initial parameters, :func:`last_hidden` runs its forward
pass to h_T (evaluation). Training itself goes through ``tpref.oracle(..., cell=...)``.
"""

import numpy as np

from ..config import CELLS, GRU_PARAM_NAMES, REVERSE_PARAM_NAMES, RNN_PARAM_NAMES
from ..validation import check_choice
from .gru import gru_forward, init_gru
from .rnn import init_rnn, rnn_forward

#: Initializations of a training run. "orthogonal": the authors' scheme (init_rnn, init_gru:
#: orthogonal W_hh blocks, orthonormal input and output weights, zero biases). "torch":
#: PyTorch's default for nn.RNN / nn.GRU and nn.Linear(p, k), every parameter drawn from
#: U(-1/sqrt(p), 1/sqrt(p)); what the authors' GRU actually ran with (docs/gru.md, Sec. 1).
INITS = ("orthogonal", "torch")


def init_params(cell, d, p, k, *, seed, dtype=np.float64, init="orthogonal", reverse=False):
    """Initial parameters of ``cell`` ("rnn" or "gru"), seeded: the same seed, the same bits.

    Parameters
    ----------
    cell : {"rnn", "gru"}
    d, p, k : int
        Input size, hidden size and output size.
    seed : int
    dtype : numpy float dtype, default float64
    init : {"orthogonal", "torch"}
        See :data:`INITS`.
    reverse : bool
        Cell "rnn" only: add the reverse layer V_hh, c_h of method "dtp_learned"
        (``init_rnn(..., reverse=True)``; uniform like the rest with init "torch").

    Returns
    -------
    params : dict of str -> ndarray
        ``config.RNN_PARAM_NAMES`` or ``config.GRU_PARAM_NAMES``, shapes as in init_rnn/init_gru.
    """
    check_choice("cell", cell, CELLS)
    check_choice("init", init, INITS)
    if reverse and cell != "rnn":
        raise ValueError(f"reverse=True (the reverse layer of 'dtp_learned') needs cell 'rnn', "
                         f"got {cell!r}")
    if cell == "rnn":
        params = init_rnn(d, p, k, seed=seed, dtype=dtype, reverse=reverse)   # validates d, p, k
    else:
        params = init_gru(d, p, k, seed=seed, dtype=dtype)
    if init == "torch":
        rng = np.random.default_rng(seed)
        bound = 1.0 / np.sqrt(p)
        names = RNN_PARAM_NAMES if cell == "rnn" else GRU_PARAM_NAMES
        names = names + (REVERSE_PARAM_NAMES if reverse else ())
        params = {name: rng.uniform(-bound, bound, size=params[name].shape).astype(dtype)
                  for name in names}
    return params


#: Samples per GRU forward pass in :func:`last_hidden`. The forward keeps every state and
#: gate, 5 (T, B, p) arrays: 1.5 GB for B = 500 at T = 784, p = 100, whose allocation and
#: zeroing cost 2-15x the arithmetic in system time (measured on a loaded 2-core machine);
#: 32 samples at a time keep them near 50 MB.
GRU_EVAL_CHUNK = 32


def last_hidden(cell, params, x, backend="numpy"):
    """h_T of ``cell`` for inputs x (T, B, d): (B, p), in the parameters' dtype.

    ``backend="numba"`` runs the forward with the Numba kernels (equal to the reference to
    rounding: tests/test_gru_numba.py, tests/test_numba_backend.py): the simple RNN's keeping
    only its last state (``numba_rnn.rnn_last_hidden``), the GRU's ``GRU_EVAL_CHUNK`` samples
    at a time; otherwise the reference.
    """
    check_choice("cell", cell, CELLS)
    x = np.asarray(x, dtype=params["W_hy"].dtype)                 # (T, B, d)
    if cell == "rnn":
        if backend == "numba":
            from ..kernels.numba_rnn import rnn_last_hidden
            return rnn_last_hidden(params, x)
        return rnn_forward(params, x)[-1]
    if backend == "numba":
        from ..kernels.numba_gru import gru_forward_numba as forward
    else:
        forward = gru_forward
    B = x.shape[1]
    return np.concatenate([forward(params, x[:, i:i + GRU_EVAL_CHUNK])[0][-1]
                           for i in range(0, B, GRU_EVAL_CHUNK)])  # (B, p)
