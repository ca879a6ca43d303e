"""The simple RNN of Sec. 2: parameters, initialization and the forward pass (NumPy reference).

    h_t = f_t(h_{t-1}) = a(W_xh x_t + W_hh h_{t-1} + b_h),   t = 1..T,   h_0 = 0
    out = W_hy h_T + b_y                                        (logits; s = softmax or identity)

Shapes (time-major, batch of row vectors, PyTorch's ``nn.RNN`` layout):
x (T, B, d); hidden (T+1, B, p) with hidden[0] = h_0 = 0; W_hh (p, p); W_xh (p, d); b_h (p,);
W_hy (k, p); b_y (k,). A PyTorch ``nn.RNN(d, p, nonlinearity="tanh")`` with
``weight_ih_l0 = W_xh``, ``weight_hh_l0 = W_hh``, ``bias_ih_l0 = b_h``, ``bias_hh_l0 = 0``
computes the same hidden states.
"""

import numpy as np

from ..config import REVERSE_PARAM_NAMES, RNN_PARAM_NAMES, RTOL
from ..validation import check_float_dtype
from .activations import activate


def _orthonormal(rng, rows, cols):
    """A (rows, cols) matrix with orthonormal columns (rows >= cols) or rows (rows < cols).

    U V^T from the SVD of a uniform random matrix, as in the authors' code (Sec. 4, App. D).
    """
    u, _, vt = np.linalg.svd(rng.uniform(-1.0, 1.0, size=(rows, cols)), full_matrices=False)
    return u @ vt


def init_rnn(d, p, k, *, seed, dtype=np.float64, reverse=False):
    """Initial parameters of a simple RNN, seeded explicitly.

    W_hh is a random orthogonal matrix, W_xh has orthonormal columns (a unit vector when
    d = 1), W_hy has orthonormal rows, and the biases are zero: the authors' initialization.

    With ``reverse=True`` the reverse layer of method "dtp_learned" is added as TPTT
    initializes it for tanh ("tanh-randorth" in Manchev & Spratling's code): V_hh a random
    orthogonal matrix drawn independently of W_hh (the same SVD construction), c_h = 0. It is
    drawn after the forward weights, so those are the same bits with or without ``reverse``.

    Parameters
    ----------
    d, p, k : int
        Input size, hidden size and output size.
    seed : int or numpy.random.Generator
        Source of randomness; the same seed gives bit-identical parameters.
    dtype : float32 or float64, default float64 (anything else: TypeError)
    reverse : bool, default False
        Also return ``V_hh`` (p, p) and ``c_h`` (p,), the reverse layer of "dtp_learned".

    Returns
    -------
    params : dict of str -> ndarray
        Keys ``W_hh`` (p, p), ``W_xh`` (p, d), ``b_h`` (p,), ``W_hy`` (k, p), ``b_y`` (k,)
        (and ``V_hh``, ``c_h`` with ``reverse``).
    """
    for name, value in (("d", d), ("p", p), ("k", k)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    dtype = check_float_dtype("dtype", dtype)
    rng = np.random.default_rng(seed)
    params = {
        "W_hh": _orthonormal(rng, p, p),
        "W_xh": _orthonormal(rng, p, d),
        "b_h": np.zeros(p),
        "W_hy": _orthonormal(rng, k, p),
        "b_y": np.zeros(k),
    }
    names = RNN_PARAM_NAMES
    if reverse:
        params.update(V_hh=_orthonormal(rng, p, p), c_h=np.zeros(p))
        names = RNN_PARAM_NAMES + REVERSE_PARAM_NAMES
    return {name: params[name].astype(dtype) for name in names}


def rnn_forward(params, x, activation="tanh"):
    """All hidden states h_0..h_T of the simple RNN (the transition of Sec. 2), by a loop over t.

    Parameters
    ----------
    params : dict
        See :func:`init_rnn`.
    x : ndarray of shape (T, B, d)
    activation : {"tanh", "sigmoid"}

    Returns
    -------
    hidden : ndarray of shape (T+1, B, p)
        hidden[t] = h_t, hidden[0] = 0.
    """
    T, B, _ = x.shape
    p = params["W_hh"].shape[0]
    hidden = np.zeros((T + 1, B, p), dtype=params["W_hh"].dtype)    # (T+1, B, p)
    for t in range(1, T + 1):
        hidden[t] = rnn_step(params, x[t - 1], hidden[t - 1], activation)
    return hidden


def rnn_step(params, x_t, h_prev, activation="tanh"):
    """One transition h_t = f_t(h_{t-1}) = a(W_xh x_t + W_hh h_{t-1} + b_h) (Sec. 2).

    x_t (B, d), h_prev (B, p) -> h_t (B, p); x_t is x[t - 1] in tpref's 0-based layout.
    """
    u_t = x_t @ params["W_xh"].T + h_prev @ params["W_hh"].T + params["b_h"]   # (B, p) u_t
    return activate(activation, u_t)                                          # h_t = a(u_t)


def rnn_params_to_torch(params):
    """Map tpref RNN params to the state-dict names of ``torch.nn.RNN`` + ``torch.nn.Linear``.

    Returns a dict of NumPy arrays: ``weight_ih_l0`` = W_xh, ``weight_hh_l0`` = W_hh,
    ``bias_ih_l0`` = b_h, ``bias_hh_l0`` = 0 (tpref has one bias; torch adds two),
    ``weight`` = W_hy, ``bias`` = b_y (the output ``nn.Linear(p, k)``). Load them with
    ``torch.from_numpy``; see docs/verifying.md.
    """
    return {
        "weight_ih_l0": params["W_xh"].copy(),
        "weight_hh_l0": params["W_hh"].copy(),
        "bias_ih_l0": params["b_h"].copy(),
        "bias_hh_l0": np.zeros_like(params["b_h"]),
        "weight": params["W_hy"].copy(),
        "bias": params["b_y"].copy(),
    }


def rnn_params_from_torch(state):
    """Inverse of :func:`rnn_params_to_torch`: torch names (NumPy arrays) -> tpref params.

    For parameter *values* only. torch's two hidden biases are summed into b_h (they enter u_t
    only through their sum). Gradients and directions follow the other half of the bias rule
    (one direction shared by both biases, not their sum): convert them with
    :func:`rnn_grads_from_torch`, which would otherwise come out with b_h's direction doubled.
    """
    return {
        "W_hh": np.array(state["weight_hh_l0"], copy=True),
        "W_xh": np.array(state["weight_ih_l0"], copy=True),
        "b_h": np.asarray(state["bias_ih_l0"]) + np.asarray(state["bias_hh_l0"]),
        "W_hy": np.array(state["weight"], copy=True),
        "b_y": np.array(state["bias"], copy=True),
    }


def rnn_grads_from_torch(grads):
    """Gradients (or TP directions) under torch's names -> tpref's names, by the bias rule.

    ``b_h = bias_ih_l0 + bias_hh_l0``, so a gradient with respect to b_h is the gradient with
    respect to either torch bias: autograd gives both the same value. This returns that one
    value as the b_h direction (adding the two, as :func:`rnn_params_from_torch` does for
    values, would double it). Either bias gradient may be absent or None; when both are given
    they must agree to the dtype's tolerance (``config.RTOL``), or the two differ because they
    were computed apart, which this refuses with a ValueError naming the difference.

    Parameters
    ----------
    grads : mapping
        ``weight_ih_l0`` (p, d), ``weight_hh_l0`` (p, p), ``bias_ih_l0`` and/or ``bias_hh_l0``
        (p,), ``weight`` (k, p), ``bias`` (k,): NumPy arrays.

    Returns
    -------
    dict with keys ``W_hh, W_xh, b_h, W_hy, b_y`` (copies)
    """
    names = {"W_hh": "weight_hh_l0", "W_xh": "weight_ih_l0", "W_hy": "weight", "b_y": "bias"}
    missing = [key for key in names.values() if grads.get(key) is None]
    b_ih, b_hh = grads.get("bias_ih_l0"), grads.get("bias_hh_l0")
    if b_ih is None and b_hh is None:
        missing.append("bias_ih_l0 or bias_hh_l0")
    if missing:
        raise ValueError(f"grads misses {missing} (torch names of nn.RNN + nn.Linear)")
    out = {name: np.array(grads[key], copy=True) for name, key in names.items()}
    if b_ih is not None and b_hh is not None:
        b_ih, b_hh = np.asarray(b_ih), np.asarray(b_hh)
        if b_ih.shape != b_hh.shape:
            raise ValueError(f"grads['bias_ih_l0'] and grads['bias_hh_l0'] must have one shape "
                             f"(p,), got {b_ih.shape} and {b_hh.shape}")
        dtype = np.result_type(b_ih, b_hh)
        rtol = RTOL.get(np.dtype(dtype), RTOL[np.dtype(np.float64)])
        same = (b_ih == b_hh) | (np.isnan(b_ih) & np.isnan(b_hh))   # a NaN in both agrees
        with np.errstate(invalid="ignore"):
            gap = float(np.max(np.where(same, 0.0, np.abs(b_ih - b_hh)), initial=0.0))
        scale = float(np.max(np.abs(b_ih[np.isfinite(b_ih)]), initial=0.0))
        if not gap <= rtol * scale:
            raise ValueError(
                f"grads['bias_ih_l0'] and grads['bias_hh_l0'] differ (max gap {gap:.3g}): nn.RNN's "
                f"two biases enter only through their sum b_h, so every gradient or direction "
                f"gives both the same value. Pass the b_h direction as both (or one of them); "
                f"never their sum")
    out["b_h"] = np.array(b_ih if b_ih is not None else b_hh, copy=True)
    return {name: out[name] for name in RNN_PARAM_NAMES}
