"""tpref: a float64 reference engine for training RNNs with BP, TP and DTP.

Target propagation via regularized inversion (Sec. 2-3 of the paper), written as explicit
NumPy loops (the reference), with faster twins tested by equality with it.

Public surface
--------------
oracle            one oracle call: loss, hidden states, targets, direction
OracleResult      what oracle returns
init_rnn          seeded initialization of the simple RNN (the authors' scheme)
rnn_forward       hidden states of the simple RNN
rnn_params_to_torch / rnn_params_from_torch   weights in torch.nn.RNN's layout and back
rnn_grads_from_torch   torch gradients -> tpref's names (one b_h direction, not the sum)
init_gru          seeded initialization of the GRU (orthogonal blocks; cell="gru")
gru_forward       hidden states and gates of the GRU (PyTorch's equations)
gru_params_to_torch / gru_params_from_torch   the documented mapping to torch.nn.GRU + Linear
SGD               SGD with PyTorch's momentum/Nesterov convention
sweep             a grid of training runs on Dask (tpref.sweeps; needs the [sweep] extra)
RegularizedInverseError   raised when W_hh^T W_hh + reg I cannot be factored
"""

from .models.inverse import RegularizedInverseError
from .models.gru import gru_forward, gru_params_from_torch, gru_params_to_torch, init_gru
from .models.rnn import (init_rnn, rnn_forward, rnn_grads_from_torch, rnn_params_from_torch,
                         rnn_params_to_torch)
from .optim import SGD
from .oracle import BACKENDS, OracleResult, oracle
from .sweeps import sweep

__version__ = "0.1.0"

__all__ = ["oracle", "OracleResult", "BACKENDS", "init_rnn", "rnn_forward", "SGD",
           "rnn_params_to_torch", "rnn_params_from_torch", "rnn_grads_from_torch",
           "init_gru", "gru_forward", "gru_params_to_torch", "gru_params_from_torch",
           "RegularizedInverseError", "sweep", "__version__"]
