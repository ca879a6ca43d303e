"""The public oracle: one function, one contract, every method and backend.

``tpref.oracle(method, params, x, y, ...)`` is what framework implementations are checked
against. It validates its input, dispatches to a backend (the NumPy reference loops in
``tpref.methods.reference``; faster twins in ``tpref.kernels``) and returns an
:class:`OracleResult`.
"""

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Optional, Union

import numpy as np

from .config import CELLS, CLIP_EPS, GRU_INVERSES
from .deferred import Deferred, freeze
from .validation import (all_finite, check_choice, check_dtp_learned_options,
                         check_dtp_learned_params, check_gru_params, check_inputs,
                         check_options_fit_dtype, check_oracle_options, check_rnn_params,
                         check_targets, check_time_major)


class NonFiniteResultWarning(RuntimeWarning):
    """An oracle call on finite input produced a NaN/inf loss or direction (an overflow)."""

#: Backends of ``tpref.oracle``: "numpy" is the reference, the others are tested against it
#: ("numba": tpref.kernels.numba_rnn, fused Numba CPU kernels; "cuda": tpref.kernels.cuda_rnn,
#: numba.cuda kernels for the simple RNN's "bp" and "tp", usable where a GPU is found).
BACKENDS = ("numpy", "numba", "cuda")


def check_backend(backend):
    """Raise ValueError unless ``backend`` is one of BACKENDS and usable on this machine.

    "cuda" needs ``numba.cuda.is_available()``: a CUDA GPU, or numba's simulator
    (NUMBA_ENABLE_CUDASIM=1 set before numba is imported; slow, for tests).
    """
    check_choice("backend", backend, BACKENDS)
    if backend == "cuda":
        from .kernels import cuda_rnn
        if not cuda_rnn.AVAILABLE:
            raise ValueError("backend 'cuda' is not available: numba.cuda finds no GPU (set "
                             "NUMBA_ENABLE_CUDASIM=1 before importing numba for its simulator); "
                             "use 'numba'")


@dataclass(frozen=True)
class OracleCall:
    """What produced an :class:`OracleResult`: enough to run the same call again.

    ``tpref.verify.compare`` reruns it in a candidate's dtype to size its tolerances.
    ``params``, ``x`` and ``y`` are read-only copies taken when the oracle was called (a
    later in-place update of the caller's arrays, e.g. by ``SGD.step``, does not reach them).

    Attributes
    ----------
    method : str
    params : dict of str -> ndarray
    x : ndarray of shape (T, B, d)
    y : ndarray
    options : dict
        The keyword arguments of ``oracle`` (loss, gamma_h, reg, update, activation, backend,
        clip_eps, cell, gru_inverse), validated; ``oracle(method, params, x, y, **options)``
        repeats the call.
    """

    method: str
    params: dict
    x: np.ndarray
    y: np.ndarray
    options: dict

    def __setstate__(self, state):
        """Unpickled (or deep-copied) arrays come back writeable: freeze them again."""
        state = dict(state, x=freeze(state["x"]), y=freeze(state["y"]),
                     params={n: freeze(a) for n, a in state["params"].items()})
        self.__dict__.update(state)


def _frozen_copy(a):
    """A read-only copy of ``a`` (an OracleCall holds what the caller may later change)."""
    return freeze(np.array(a, copy=True))


@dataclass(frozen=True)
class OracleResult:
    """What one oracle call computes; safe to hold.

    Every array of a result is read-only (``tpref.deferred.freeze``: writing into it, or
    turning its ``writeable`` flag back on, raises ValueError), and none is a view of the
    params, x or y passed to the call; copy an array to edit it. So a result read later, or
    read again after the caller edited its own inputs, gives the numbers the call computed.
    The ``direction`` dict itself is the caller's (replacing an entry changes nothing else).

    ``targets`` is not stored: it is ``hidden + displacements``, formed on first access and
    then cached (``functools.cached_property``, which a frozen dataclass allows: it writes the
    instance ``__dict__`` directly). The backends therefore never write a second (T+1, B, p)
    array that most callers do not read.

    ``displacements`` is an attribute of the same kind: ``displacements_source`` is what the
    backend returned, the array itself, or a ``tpref.deferred.Deferred`` computed on first
    read from inputs it holds frozen. The "numba" backend's "tp" carries its displacements
    through the fused backward pass without writing them (a training step does not read
    them) and defers them: the first read runs Eq. (2) again, the same bits, from the
    result's own (read-only) hidden states, P and lam_T (about a third of a BP iteration's
    time; ``tpref.kernels.numba_rnn.linearized_displacements``).

    Attributes
    ----------
    method : str
    loss : float
        Batch-mean loss at the current parameters (PyTorch's ``reduction="mean"``).
    output : ndarray of shape (B, k)
        Logits W_hy h_T + b_y.
    hidden : ndarray of shape (T+1, B, p)
        hidden[t] = h_t, hidden[0] = h_0 = 0.
    targets : ndarray of shape (T+1, B, p) or None
        targets[t] = v_t (Eq. 1-2, or the difference formula for "dtp"); None for "bp".
        targets[0] = v_0 is computed but not used by the update. Computed on first access
        as hidden + displacements, then cached.
    displacements : ndarray of shape (T+1, B, p) or None
        lam_t = v_t - h_t (Sec. 3), computed directly (more accurate than targets - hidden);
        None for "bp". Computed on first access where the backend deferred it (see above).
    direction : dict of str -> ndarray
        Same keys and shapes as params; gradient-like: theta <- theta - gamma_theta * direction.
    displacements_source : ndarray, Deferred or None
        The displacements as the backend returned them (read ``displacements`` instead).
    call : OracleCall
        The method, params, x, y and options that produced this result.
    reconstruction_loss : float or None
        "dtp_learned": the inverse loss sum_t mse(G(x_t, f_t(h~_{t-1})), h~_{t-1}) at the
        reverse weights given; None for the other methods.
    """

    method: str
    loss: float
    output: np.ndarray
    hidden: np.ndarray
    direction: dict
    reconstruction_loss: Optional[float] = None
    displacements_source: Union[np.ndarray, Deferred, None] = field(
        default=None, repr=False, compare=False)
    call: Optional[OracleCall] = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        # read-only views of the backend's arrays (a Deferred froze its inputs already)
        for name in ("output", "hidden", "displacements_source"):
            object.__setattr__(self, name, freeze(getattr(self, name)))
        for name, a in self.direction.items():
            self.direction[name] = freeze(a)

    def __setstate__(self, state):
        """Unpickled (or deep-copied) arrays come back writeable: freeze them again."""
        state = dict(state)
        for name in ("displacements", "targets"):        # cached already, if read
            if name in state:
                state[name] = freeze(state[name])
        self.__dict__.update(state)
        self.__post_init__()

    @cached_property
    def displacements(self) -> Optional[np.ndarray]:
        """lam_t = v_t - h_t, (T+1, B, p); None for "bp"."""
        source = self.displacements_source
        return source.evaluate() if isinstance(source, Deferred) else source

    @cached_property
    def targets(self) -> Optional[np.ndarray]:
        """v_t = h_t + lam_t, (T+1, B, p); None for "bp" (no displacements)."""
        if self.displacements is None:
            return None
        return freeze(self.hidden + self.displacements)          # (T+1, B, p)


def oracle(method, params, x, y, *, loss, gamma_h=None, reg=None, update="local",
           activation="tanh", backend="numba", clip_eps=CLIP_EPS, cell="rnn",
           gru_inverse="per_gate", noise=0.0, seed=None, reverse_lr=None):
    r"""Loss, hidden states, targets and descent direction of one RNN oracle call.

    Parameters
    ----------
    method : {"bp", "tp", "dtp", "dtp_learned"}
        "bp": gradient back-propagation through time. "tp": target propagation with
        linearized regularized inverses, Eq. (1)-(3). "dtp": difference target propagation
        with the same regularized inverse, v_{t-1} = h_{t-1} + f^{-1}(v_t) - f^{-1}(h_t).
        "dtp_learned": difference TP with a learned reverse layer
        G(x_t, h) = a(W_xh x_t + V_hh h + c_h), v_{t-1} = h_{t-1} - G(x_t, h_t) + G(x_t, v_t)
        (Manchev & Spratling's TPTT, the paper's Appendix D; ``tpref.methods.dtp_learned``).
        Its direction for (W_hh, W_xh, b_h) is the gradient of sum_t mse(f_t(h_{t-1}), v_t)
        (h_{t-1}, v_t fixed), for (V_hh, c_h) the gradient of the inverse loss
        sum_t mse(G(x_t, f_t(h~_{t-1})), h~_{t-1}), h~ = h + noise * eps; "mse" is the mean
        over the B * p entries of a step (TPTT's reductions). Simple RNN only; ``reg``,
        ``clip_eps`` and ``update`` do not apply (update must stay "local").
    params : dict
        Exactly the keys ``W_hh`` (p, p), ``W_xh`` (p, d), ``b_h`` (p,), ``W_hy`` (k, p),
        ``b_y`` (k,); one float dtype (float32 or float64); computation runs in that dtype.
        "dtp_learned" also needs ``V_hh`` (p, p) and ``c_h`` (p,)
        (``tpref.init_rnn(..., reverse=True)``).
    x : ndarray of shape (T, B, d)
        Inputs, time-major (PyTorch's ``batch_first=False``); cast to the params' dtype.
    y : ndarray
        (B,) integer labels for ``loss="cross_entropy"``, (B, k) floats for ``loss="mse"``.
    loss : {"cross_entropy", "mse"}
        Batch-mean loss with PyTorch's default reduction.
    gamma_h : float > 0
        Target step size of Eq. (1), v_T = h_T - gamma_h dl/dh_T (required for tp/dtp).
    reg : float >= 0
        Regularization r of the inverse (W_hh^T W_hh + r I)^{-1} W_hh^T (required for tp/dtp).
    update : {"local", "through_time"}
        How TP/DTP differentiate sum_t ||f_t(h_{t-1}) - v_t||^2 / 2: with h_{t-1} fixed
        (Eq. 3) or through the recursion (the authors' code). Ignored for "bp".
    activation : {"tanh", "sigmoid"}
    backend : str
        One of ``tpref.oracle.BACKENDS``. "numba" (default): fused Numba kernels
        (tpref.kernels.numba_rnn), tested equal to "numpy", the readable reference loops.
        Its large outputs live in buffers reused by later calls once you drop the result
        (tpref.kernels.workspace); a result you hold, or any view of it, is never
        overwritten. "cuda": numba.cuda kernels (tpref.kernels.cuda_rnn) for cell "rnn" and
        methods "bp" and "tp", where a GPU is available; equal to "numpy" up to rounding.
    clip_eps : float in (0, 0.5)
        Tolerance of the projection pi onto the activation's image (for the GRU: the clip of
        the gates whose sigmoid derivative the per-gate inverse divides by).
    cell : {"rnn", "gru"}
        "rnn": the simple RNN of Sec. 2 (params as above). "gru": PyTorch's GRU with params
        ``W_xr, W_xz, W_xn`` (p, d), ``W_hr, W_hz, W_hn`` (p, p), ``b_xr, b_xz, b_xn, b_hr,
        b_hz, b_hn`` (p,), ``W_hy`` (k, p), ``b_y`` (k,) (see ``tpref.models.gru``); methods
        "bp" and "tp" only, ``activation`` must stay "tanh". docs/gru.md.
    gru_inverse : {"per_gate", "exact", "authors"}
        GRU only: the linearized inverse of TP's Eq. (2). "per_gate": one regularized
        pseudo-inverse per recurrent block and of the carry (the authors' per-gate scheme in
        PyTorch's convention);
        "exact": (J_t^T J_t + reg I)^{-1} J_t^T with J_t = dh_t/dh_{t-1}, per step and sample
        (slow reference); "authors": the per-gate scheme as the authors' code computes it
        (their update-gate convention h = (1 - z) h_{t-1} + z n and a plain carry term), to
        compare with their results. Ignored for the simple RNN and for "bp". docs/gru.md.
    noise : float >= 0
        "dtp_learned" only: std of the Gaussian perturbation h~ = h + noise * eps of the
        inverse loss (TPTT: 0.1 on MNIST, 0 on synthetic tasks).
    seed : int >= 0 or tuple of them, optional
        "dtp_learned" only: eps (T, B, p) = ``numpy.random.default_rng(seed).standard_normal``
        in float64; required when noise > 0. The same seed gives the same bits.
    reverse_lr : float > 0, optional
        "dtp_learned" only: TPTT's schedule (the inverse step before the forward step) in one
        call: the targets and the forward direction use the reverse weights after one plain
        SGD step, V_hh - reverse_lr * direction["V_hh"] (and c_h alike). The returned
        (V_hh, c_h) direction is always the gradient at the weights given. None: the targets
        use the weights given.

    Returns
    -------
    OracleResult

    Notes
    -----
    The direction for (W_hy, b_y) is always the gradient of the loss. For (W_hh, W_xh, b_h):
    BP gives the gradient; TP/DTP give
    :math:`\sum_t \partial_\theta f_t(h_{t-1}) (h_t - v_t)` (Eq. 3), i.e. gamma_h times a
    gradient-like direction. See docs/equations.md.
    """
    check_backend(backend)
    check_choice("cell", cell, CELLS)
    if method == "dtp_learned":
        return _dtp_learned_oracle(params, x, y, loss=loss, gamma_h=gamma_h, reg=reg,
                                   update=update, activation=activation, backend=backend,
                                   clip_eps=clip_eps, cell=cell, noise=noise, seed=seed,
                                   reverse_lr=reverse_lr)
    if not (noise == 0 and seed is None and reverse_lr is None):
        raise ValueError(f"noise, seed and reverse_lr apply to method='dtp_learned' only; got "
                         f"noise={noise!r}, seed={seed!r}, reverse_lr={reverse_lr!r} for "
                         f"method={method!r}")
    gamma_h, reg, clip_eps = check_oracle_options(method, loss, activation, update, gamma_h, reg,
                                                  clip_eps)
    if backend == "cuda" and (cell != "rnn" or method == "dtp"):
        raise ValueError(f"backend 'cuda' has cell 'rnn' with methods 'bp' and 'tp' only, got "
                         f"cell={cell!r}, method={method!r}; use backend 'numba'")
    call = dict(loss=loss, gamma_h=gamma_h, reg=reg, update=update, activation=activation,
                backend=backend, clip_eps=clip_eps, cell=cell, gru_inverse=gru_inverse)
    if cell == "gru":
        return _gru_oracle(call, method, params, x, y, loss=loss, gamma_h=gamma_h, reg=reg,
                           update=update, activation=activation, backend=backend,
                           eps=clip_eps, gru_inverse=gru_inverse)
    dtype, d, p, k = check_rnn_params(params)
    check_options_fit_dtype(dtype, gamma_h, reg, clip_eps)
    x, y = _check_data(x, y, loss, d, k, dtype)
    if backend == "numpy":
        from .methods.reference import rnn_oracle
    elif backend == "numba":
        from .kernels.numba_rnn import rnn_oracle
    else:
        from .kernels.cuda_rnn import rnn_oracle
    out = rnn_oracle(method, params, x, y, loss=loss, gamma_h=gamma_h, reg=reg, update=update,
                     activation=activation, eps=clip_eps)
    return _result(method, out, _call(method, params, x, y, call))


def _dtp_learned_oracle(params, x, y, *, loss, gamma_h, reg, update, activation, backend,
                       clip_eps, cell, noise, seed, reverse_lr):
    """The "dtp_learned" branch of :func:`oracle`: checks, then the backend's call."""
    if cell != "rnn":
        raise ValueError(f"method='dtp_learned' is defined for cell='rnn' only (TPTT's reverse "
                         f"layer inverts the simple RNN's step), got cell={cell!r}")
    if backend == "cuda":
        raise ValueError("backend 'cuda' does not have method 'dtp_learned'; use 'numba' or "
                         "'numpy'")
    gamma_h, reg, _ = check_oracle_options("dtp_learned", loss, activation, update, gamma_h, reg,
                                           clip_eps)
    noise, seed, reverse_lr = check_dtp_learned_options(update, reg, noise, seed, reverse_lr)
    dtype, d, p, k = check_dtp_learned_params(params)
    check_options_fit_dtype(dtype, gamma_h, None, clip_eps)
    x, y = _check_data(x, y, loss, d, k, dtype)
    from .methods.dtp_learned import REFERENCE, run          # the flow both backends share
    if backend == "numpy":
        kernels = REFERENCE
    else:
        from .kernels.numba_dtp_learned import NUMBA as kernels
    out = run(kernels, params, x, y, loss=loss, gamma_h=gamma_h, noise=noise, seed=seed,
              activation=activation, reverse_lr=reverse_lr)
    call = dict(loss=loss, gamma_h=gamma_h, reg=reg, update=update, activation=activation,
                backend=backend, clip_eps=clip_eps, cell=cell, noise=noise, seed=seed,
                reverse_lr=reverse_lr)
    return _result("dtp_learned", out, _call("dtp_learned", params, x, y, call))


def _gru_oracle(call, method, params, x, y, *, loss, gamma_h, reg, update, activation, backend,
                eps, gru_inverse):
    """The GRU branch of :func:`oracle` (options already checked except the GRU-specific ones)."""
    check_choice("gru_inverse", gru_inverse, GRU_INVERSES)
    if method == "dtp":
        raise ValueError("method='dtp' is not defined for cell='gru': the GRU transition has "
                         "no closed-form regularized inverse f_t^{-1} (docs/gru.md); use 'tp'")
    if activation != "tanh":
        raise ValueError(f"activation must be 'tanh' for cell='gru' (the GRU's candidate is "
                         f"tanh, its gates sigmoid), got {activation!r}")
    dtype, d, p, k = check_gru_params(params)
    check_options_fit_dtype(dtype, gamma_h, reg, eps)
    x, y = _check_data(x, y, loss, d, k, dtype)
    if backend == "numpy":
        from .methods.reference_gru import gru_oracle
    else:
        from .kernels.numba_gru import gru_oracle
    out = gru_oracle(method, params, x, y, loss=loss, gamma_h=gamma_h, reg=reg, update=update,
                     eps=eps, inverse=gru_inverse)
    return _result(method, out, _call(method, params, x, y, call))


def _call(method, params, x, y, options):
    """The OracleCall of validated inputs (read-only copies)."""
    return OracleCall(method=method, params={n: _frozen_copy(a) for n, a in params.items()},
                      x=_frozen_copy(x), y=_frozen_copy(y), options=dict(options))


def _result(method, out, call):
    """OracleResult from a backend's dict (its "displacements": array, Deferred or None).

    Warns (NonFiniteResultWarning) when the loss or a direction is not finite: the input was
    checked finite, so an intermediate overflowed (e.g. a huge gamma_h in float32, or the
    inverse of targets clipped near the activation's bounds).
    """
    bad = [name for name, g in out["direction"].items() if not all_finite(g)]
    if bad or not math.isfinite(out["loss"]):
        import warnings
        what = f"direction {bad}" if bad else f"loss {out['loss']}"
        warnings.warn(f"tpref.oracle({method!r}): the {what} is not finite although the input "
                      f"is: an intermediate overflowed. Use float64 params, a smaller gamma_h, "
                      f"or a larger clip_eps", NonFiniteResultWarning, stacklevel=3)
    return OracleResult(method=method, loss=out["loss"], output=out["output"],
                        hidden=out["hidden"], direction=out["direction"],
                        displacements_source=out["displacements"], call=call,
                        reconstruction_loss=out.get("reconstruction_loss"))


def _check_data(x, y, loss, d, k, dtype):
    """x (T, B, d) time-major in the params' dtype, and y for ``loss``: checked, converted."""
    x = check_inputs(x, d, dtype)
    check_time_major(x, y)
    return x, check_targets(y, loss, x.shape[1], k, dtype)
