"""The GRU of the FashionMNIST experiment: parameters, initialization, forward pass, torch mapping.

PyTorch's ``nn.GRU`` equations and gate order (r, z, n), both bias sets, written in the paper's
naming style (W_x* act on the input x_t, W_h* on the previous hidden state h_{t-1}):

    r_t = sigma(W_xr x_t + b_xr + W_hr h_{t-1} + b_hr)            reset gate
    z_t = sigma(W_xz x_t + b_xz + W_hz h_{t-1} + b_hz)            update gate
    g_t = W_hn h_{t-1} + b_hn                                     (kept: the reset gate scales it)
    n_t = tanh(W_xn x_t + b_xn + r_t * g_t)                       candidate
    h_t = f_t(h_{t-1}) = (1 - z_t) * n_t + z_t * h_{t-1}          (PyTorch's convention)
    out = W_hy h_T + b_y                                          (logits)

Shapes (time-major, batch of row vectors): x (T, B, d); hidden (T+1, B, p) with
hidden[0] = h_0 = 0; W_x* (p, d); W_h* (p, p); b_x*, b_h* (p,); W_hy (k, p); b_y (k,).

Mapping to ``torch.nn.GRU(d, p)`` (rows stacked r, z, n; see :func:`gru_params_to_torch`)::

    weight_ih_l0 = [W_xr; W_xz; W_xn]   (3p, d)      bias_ih_l0 = [b_xr; b_xz; b_xn]   (3p,)
    weight_hh_l0 = [W_hr; W_hz; W_hn]   (3p, p)      bias_hh_l0 = [b_hr; b_hz; b_hn]   (3p,)

and the output layer is ``torch.nn.Linear(p, k)`` with ``weight = W_hy``, ``bias = b_y``.
Note the convention h = (1 - z) n + z h_{t-1}: with W_h* = 0, dh_t/dh_{t-1} = diag(z_t)
(the authors' GRU code assumes (1 - z) h_{t-1} + z n; see docs/gru.md).
"""

import numpy as np

from ..config import GRU_PARAM_NAMES
from ..validation import check_float_dtype, check_gru_params
from .rnn import _orthonormal

#: Gate order of torch.nn.GRU's stacked weights (rows [0:p], [p:2p], [2p:3p]).
GRU_GATES = ("r", "z", "n")


def init_gru(d, p, k, *, seed, dtype=np.float64):
    """Initial parameters of a GRU, seeded explicitly, orthogonal blocks as for the simple RNN.

    Each recurrent block W_hr, W_hz, W_hn is a random orthogonal (p, p) matrix, each input block
    W_xr, W_xz, W_xn has orthonormal columns (a unit vector when d = 1), W_hy has orthonormal
    rows and all biases are zero. This is the scheme the authors intended for their GRU (it
    never took effect in their code, which kept PyTorch's uniform default); here it is applied,
    and the same seed gives bit-identical parameters.

    Parameters
    ----------
    d, p, k : int
        Input size, hidden size and output size.
    seed : int or numpy.random.Generator
    dtype : float32 or float64, default float64 (anything else: TypeError)

    Returns
    -------
    params : dict of str -> ndarray
        Keys ``config.GRU_PARAM_NAMES``; see the module docstring for shapes.
    """
    for name, value in (("d", d), ("p", p), ("k", k)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    dtype = check_float_dtype("dtype", dtype)
    rng = np.random.default_rng(seed)
    params = {}
    for gate in GRU_GATES:
        params["W_h" + gate] = _orthonormal(rng, p, p)
    for gate in GRU_GATES:
        params["W_x" + gate] = _orthonormal(rng, p, d)
    for gate in GRU_GATES:
        params["b_x" + gate] = np.zeros(p)
        params["b_h" + gate] = np.zeros(p)
    params["W_hy"] = _orthonormal(rng, k, p)
    params["b_y"] = np.zeros(k)
    return {name: params[name].astype(dtype) for name in GRU_PARAM_NAMES}


def gru_forward(params, x):
    """All hidden states of the GRU and the gate values the backward passes need.

    Parameters
    ----------
    params : dict
        See :func:`init_gru`.
    x : ndarray of shape (T, B, d)

    Returns
    -------
    hidden : ndarray of shape (T+1, B, p)
        hidden[t] = h_t, hidden[0] = 0.
    cache : dict of str -> ndarray of shape (T, B, p)
        ``r``, ``z``, ``n`` (gate values at step t = 1..T, stored at index t - 1) and ``g``
        (g_t = W_hn h_{t-1} + b_hn, the term the reset gate multiplies).
    """
    T, B, _ = x.shape
    p = params["W_hr"].shape[0]
    dt = params["W_hr"].dtype
    hidden = np.zeros((T + 1, B, p), dtype=dt)                    # (T+1, B, p)
    cache = {name: np.empty((T, B, p), dtype=dt) for name in ("r", "z", "n", "g")}
    for t in range(1, T + 1):
        hidden[t], gates = gru_step(params, x[t - 1], hidden[t - 1])
        for name, value in gates.items():
            cache[name][t - 1] = value
    return hidden, cache


def gru_step(params, x_t, h_prev):
    """One GRU transition h_t = f_t(h_{t-1}) (module docstring) and its gate values.

    x_t (B, d), h_prev (B, p) -> h_t (B, p) and a dict ``r``, ``z``, ``n``, ``g`` of (B, p)
    arrays; x_t is x[t - 1] in tpref's 0-based layout.
    """
    h = h_prev
    r = _sigmoid(x_t @ params["W_xr"].T + params["b_xr"] + h @ params["W_hr"].T + params["b_hr"])
    z = _sigmoid(x_t @ params["W_xz"].T + params["b_xz"] + h @ params["W_hz"].T + params["b_hz"])
    g = h @ params["W_hn"].T + params["b_hn"]                      # (B, p)
    n = np.tanh(x_t @ params["W_xn"].T + params["b_xn"] + r * g)
    h_t = (1.0 - z) * n + z * h                                   # (B, p) PyTorch's convention
    return h_t, {"r": r, "z": z, "n": n, "g": g}


def _sigmoid(u):
    """sigma(u) = (1 + tanh(u/2)) / 2, without overflow for large |u|."""
    return 0.5 * (1.0 + np.tanh(0.5 * u))


# ----------------------------------------------------------------------------------------------
# mapping to and from torch.nn.GRU + torch.nn.Linear (numpy arrays only; torch not imported)


def gru_params_to_torch(params):
    """The state dicts of ``torch.nn.GRU(d, p)`` and ``torch.nn.Linear(p, k)`` as numpy arrays.

    Parameters
    ----------
    params : dict
        tpref GRU parameters (keys ``config.GRU_PARAM_NAMES``).

    Returns
    -------
    dict
        ``{"gru": {"weight_ih_l0": (3p, d), "weight_hh_l0": (3p, p), "bias_ih_l0": (3p,),
        "bias_hh_l0": (3p,)}, "linear": {"weight": (k, p), "bias": (k,)}}``, rows stacked in
        torch's gate order r, z, n. Load with
        ``gru.load_state_dict({k: torch.from_numpy(v) for k, v in out["gru"].items()})``.
    """
    check_gru_params(params)
    stack = lambda prefix: np.concatenate([params[prefix + g] for g in GRU_GATES], axis=0)
    return {
        "gru": {"weight_ih_l0": stack("W_x"), "weight_hh_l0": stack("W_h"),
                "bias_ih_l0": stack("b_x"), "bias_hh_l0": stack("b_h")},
        "linear": {"weight": params["W_hy"].copy(), "bias": params["b_y"].copy()},
    }


def gru_params_from_torch(gru_state, linear_state):
    """tpref GRU parameters from the state dicts of ``torch.nn.GRU`` and ``torch.nn.Linear``.

    Parameters
    ----------
    gru_state : mapping
        ``weight_ih_l0`` (3p, d), ``weight_hh_l0`` (3p, p), ``bias_ih_l0`` (3p,),
        ``bias_hh_l0`` (3p,): numpy arrays, or torch tensors (converted with ``.numpy()`` after
        ``.detach().cpu()``). A single-layer, unidirectional GRU with biases.
    linear_state : mapping
        ``weight`` (k, p), ``bias`` (k,).

    Returns
    -------
    params : dict
        Keys ``config.GRU_PARAM_NAMES`` (copies; validated).
    """
    def as_numpy(name, value):
        if hasattr(value, "detach"):                              # a torch tensor
            value = value.detach().cpu().numpy()
        if not isinstance(value, np.ndarray):
            raise TypeError(f"{name} must be a numpy array or torch tensor, got {type(value).__name__}")
        return np.array(value, copy=True)

    need = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
    missing = [key for key in need if key not in gru_state]
    if missing:
        raise ValueError(f"gru_state misses {missing} (a one-layer unidirectional nn.GRU with "
                         f"bias=True has exactly {need})")
    for key in ("weight", "bias"):
        if key not in linear_state:
            raise ValueError(f"linear_state misses {key!r} (the state dict of nn.Linear(p, k))")
    w_hh = as_numpy("gru_state['weight_hh_l0']", gru_state["weight_hh_l0"])
    if w_hh.ndim != 2 or w_hh.shape[0] != 3 * w_hh.shape[1]:
        raise ValueError(f"gru_state['weight_hh_l0'] must have shape (3p, p), got {w_hh.shape}")
    p = w_hh.shape[1]
    params = {}
    for key, prefix in (("weight_ih_l0", "W_x"), ("weight_hh_l0", "W_h"),
                        ("bias_ih_l0", "b_x"), ("bias_hh_l0", "b_h")):
        value = as_numpy(f"gru_state[{key!r}]", gru_state[key])
        if value.shape[0] != 3 * p:
            raise ValueError(f"gru_state[{key!r}] must have 3p = {3 * p} rows, got {value.shape}")
        for i, gate in enumerate(GRU_GATES):
            params[prefix + gate] = value[i * p:(i + 1) * p].copy()
    params["W_hy"] = as_numpy("linear_state['weight']", linear_state["weight"])
    params["b_y"] = as_numpy("linear_state['bias']", linear_state["bias"])
    params = {name: params[name] for name in GRU_PARAM_NAMES}
    check_gru_params(params)
    return params
