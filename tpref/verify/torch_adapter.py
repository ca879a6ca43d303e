"""PyTorch <-> tpref: an ``nn.RNN`` / ``nn.GRU`` (+ ``nn.Linear`` head) model, both ways.

:class:`TorchAdapter` reads a model (or its ``state_dict``, prefixed names such as
``rnn.weight_hh_l0`` accepted) into tpref's parameters, your batch-first or time-major tensors
into tpref's layout, your gradients or TP directions (the model's ``.grad`` or a dict) into
tpref's names, and hands tpref's results back as tensors in your layout and under your names.

    ad = TorchAdapter(model)                      # batch_first read from the nn.RNN / nn.GRU
    x, y = ad.inputs(x_t, y_t)                    # numpy, time-major, checked against y
    ref = tpref.oracle("tp", ad.params, x, y, loss="cross_entropy", gamma_h=1e-2, reg=1.0,
                       cell=ad.cell)
    report = tpref.verify.compare(ad.candidate(loss=L, hidden=H, displacements=lam,
                                               direction=model), ref)
    back = ad.to_torch(ref)                       # tensors: back["hidden"], back["direction"][...]

The bias rule (``nn.RNN`` only; ``nn.GRU``'s six biases are six tpref parameters):
values: b_h = bias_ih_l0 + bias_hh_l0 (they enter u_t only through their sum); gradients and
directions: one direction shared by both (autograd gives both the same value; the sum would
double it). So :meth:`TorchAdapter.direction` takes one of the two and refuses two that
differ, and :meth:`TorchAdapter.to_torch` gives both torch biases tpref's b_h direction.

torch is imported by the functions that make tensors; reading a state_dict of numpy arrays
needs no torch. ``import tpref.verify`` does not import this module.
"""

import numpy as np

from ..config import GRU_PARAM_NAMES
from ..models.gru import GRU_GATES, gru_params_from_torch, gru_params_to_torch
from ..models.rnn import rnn_grads_from_torch, rnn_params_from_torch
from .adapter import ArrayAdapter

RNN_KEYS = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
HEAD_KEYS = ("weight", "bias")


def _numpy(name, value):
    """numpy copy of a tensor / Parameter / array (None stays None)."""
    if value is None:
        return None
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.array(value, copy=True)


def _is_module(obj):
    return hasattr(obj, "named_parameters") and hasattr(obj, "state_dict")


def _flat(source, what):
    """name -> tensor/array of a module (its Parameters, so .grad is reachable) or a mapping."""
    if _is_module(source):
        return dict(source.state_dict(keep_vars=True))
    if hasattr(source, "items"):
        return dict(source.items())
    raise TypeError(f"{what} must be an nn.Module or its state_dict (a mapping of names to "
                    f"tensors or arrays), got {type(source).__name__}")


def _check_modules(model):
    """Refuse recurrent modules tpref has no counterpart for (relu RNN, LSTM, stacked...)."""
    for name, m in model.named_modules():
        mode = getattr(m, "mode", None)
        if mode is None or not hasattr(m, "num_layers"):
            continue
        where = f"model.{name}" if name else "model"
        if mode not in ("RNN_TANH", "GRU"):
            raise ValueError(f"{where} is a {type(m).__name__} in mode {mode!r}: tpref checks "
                             f"nn.RNN(nonlinearity='tanh') and nn.GRU only")
        if m.num_layers != 1 or m.bidirectional or getattr(m, "proj_size", 0):
            raise ValueError(f"{where} must be one layer, unidirectional, without proj_size "
                             f"(tpref's RNN/GRU), got num_layers={m.num_layers}, "
                             f"bidirectional={m.bidirectional}")


def _recurrent_batch_first(model):
    found = [m.batch_first for _, m in model.named_modules()
             if getattr(m, "mode", None) in ("RNN_TANH", "GRU") and hasattr(m, "batch_first")]
    return found[0] if len(found) == 1 else None


class TorchAdapter(ArrayAdapter):
    """One torch model's view of tpref: parameters, inputs, directions and results.

    Parameters
    ----------
    model : nn.Module or mapping
        A module holding exactly one one-layer ``nn.RNN`` (tanh) or ``nn.GRU`` and, unless
        ``head`` is given, one ``nn.Linear(p, k)``; or the recurrent module itself; or a
        state_dict of either (names may carry a prefix: ``rnn.weight_hh_l0``, ``head.weight``).
        Hand-written models work too, as long as their parameters carry nn.RNN's names.
    head : nn.Linear or mapping, optional
        The output layer, when ``model`` does not hold it (e.g. ``model`` is the bare nn.RNN).
    batch_first : bool, optional
        Layout of your inputs and outputs. Default: the recurrent module's own
        ``batch_first``; required when ``model`` is a state_dict.

    Attributes
    ----------
    cell : {"rnn", "gru"}
        Pass it to ``tpref.oracle(..., cell=ad.cell)``.
    names : dict
        tpref's direction keys are mapped to these torch names (full, prefixed).
    """

    def __init__(self, model, head=None, *, batch_first=None):
        self.module = model if _is_module(model) else None
        self.head_module = head if _is_module(head) else None
        if self.module is not None:
            _check_modules(self.module)
            if batch_first is None:
                batch_first = _recurrent_batch_first(self.module)
        if batch_first is None:
            raise ValueError("batch_first must be given (True: your tensors are (B, T, ...), "
                             "False: (T, B, ...)) when the model is a state_dict or holds no "
                             "single nn.RNN / nn.GRU to read it from")
        super().__init__(batch_first=batch_first)
        state = _flat(model, "model")
        head_state = None if head is None else _flat(head, "head")
        self._state, self._head_state = state, head_state
        self._locate(state, head_state)
        self.dtype = np.dtype(_numpy("weight_hh_l0", self._get(state, head_state)[0]).dtype)

    # ------------------------------------------------------------------------------------------
    # names

    def _locate(self, state, head_state):
        """Find the recurrent layer's and the head's names in the flat mappings."""
        hh = [key for key in state if key.endswith("weight_hh_l0")]
        if len(hh) != 1:
            raise ValueError(
                f"model must hold exactly one recurrent layer (a name ending in 'weight_hh_l0', "
                f"as in nn.RNN / nn.GRU's state_dict); found {hh or 'none'} among {sorted(state)}")
        prefix = hh[0][:-len("weight_hh_l0")]
        extra = [key for key in state if key.startswith(prefix) and
                 key[len(prefix):].startswith(("weight_", "bias_")) and
                 key[len(prefix):] not in RNN_KEYS]
        if extra:
            raise ValueError(f"model's recurrent layer has {extra}: tpref has one layer, "
                             f"unidirectional, without projection (keys {RNN_KEYS})")
        if prefix + "weight_ih_l0" not in state:
            raise ValueError(f"model has {prefix}weight_hh_l0 but no {prefix}weight_ih_l0")
        w_hh = np.shape(_numpy("w", state[hh[0]]))
        p = w_hh[1]
        if w_hh[0] == p:
            self.cell = "rnn"
        elif w_hh[0] == 3 * p:
            self.cell = "gru"
        else:
            raise ValueError(f"{hh[0]} has shape {w_hh}: expected (p, p) (nn.RNN) or (3p, p) "
                             f"(nn.GRU); an LSTM (4p, p) has no tpref counterpart")
        self.p = p
        source = state if head_state is None else head_state
        where = "model" if head_state is None else "head"
        heads = [key[:-len("weight")] for key in source
                 if key.endswith("weight") and not key.startswith(prefix + "weight_")
                 and key[:-len("weight")] + "bias" in source
                 and np.ndim(_numpy(key, source[key])) == 2
                 and np.shape(_numpy(key, source[key]))[1] == p]
        if len(heads) != 1:
            raise ValueError(
                f"{where} must hold exactly one output layer nn.Linear({p}, k) (names "
                f"'<prefix>weight' (k, {p}) and '<prefix>bias'); found "
                f"{[h + 'weight' for h in heads] or 'none'}" +
                ("; pass head=your_linear" if head_state is None else ""))
        self._prefix, self._head_prefix = prefix, heads[0]
        self.names = {key: prefix + key for key in RNN_KEYS}
        self.names.update({key: heads[0] + key for key in HEAD_KEYS})

    def _get(self, state, head_state):
        """(weight_hh, {torch short name: value}) from the mappings, absent biases as None."""
        head_state = state if head_state is None else head_state
        out = {key: state.get(self._prefix + key) for key in RNN_KEYS}
        out.update({key: head_state.get(self._head_prefix + key) for key in HEAD_KEYS})
        return out["weight_hh_l0"], out

    def _current(self):
        state = _flat(self.module, "model") if self.module is not None else self._state
        head = (_flat(self.head_module, "head") if self.head_module is not None
                else self._head_state)
        return state, head

    # ------------------------------------------------------------------------------------------
    # parameters and directions in

    @property
    def params(self):
        """tpref's parameters from the model as it is now (numpy copies, the model's dtype).

        nn.RNN: b_h = bias_ih_l0 + bias_hh_l0 (the bias rule for values). A layer built with
        bias=False reads as zero biases.
        """
        _, raw = self._get(*self._current())
        values = {key: _numpy(key, v) for key, v in raw.items()}
        return self._to_tpref(values, gradients=False)

    def _to_tpref(self, values, *, gradients):
        p = self.p
        rows = p if self.cell == "rnn" else 3 * p
        for key in ("bias_ih_l0", "bias_hh_l0"):
            if values[key] is None and not gradients:
                values[key] = np.zeros(rows, dtype=values["weight_hh_l0"].dtype)
        if self.cell == "gru":
            missing = [self.names[k] for k, v in values.items() if v is None]
            if missing:
                raise ValueError(f"no value for {missing}")
            if gradients:          # split by gate, unvalidated: a NaN direction is compare's to flag
                out = {"W_hy": values["weight"], "b_y": values["bias"]}
                for key, prefix in (("weight_ih_l0", "W_x"), ("weight_hh_l0", "W_h"),
                                    ("bias_ih_l0", "b_x"), ("bias_hh_l0", "b_h")):
                    for i, gate in enumerate(GRU_GATES):
                        out[prefix + gate] = values[key][i * p:(i + 1) * p]
                return {name: out[name] for name in GRU_PARAM_NAMES}
            return gru_params_from_torch({k: values[k] for k in RNN_KEYS},
                                         {k: values[k] for k in HEAD_KEYS})
        if gradients:
            return rnn_grads_from_torch(values)
        return rnn_params_from_torch(values)

    def direction(self, grads=None):
        """Your gradient or TP direction under tpref's names (numpy).

        Parameters
        ----------
        grads : None, nn.Module or mapping
            None or the model itself: the ``.grad`` of the model's parameters (after
            ``loss.backward()``, or after you stored a TP direction there). A mapping: torch
            names (prefixed or not) -> tensors/arrays.

        Gradient-like, as tpref's ``direction``: theta <- theta - step * direction. nn.RNN's
        two bias gradients are one b_h direction (the bias rule): one of them is taken, and
        two that differ are refused.
        """
        if grads is None or grads is self.module:
            if self.module is None:
                raise ValueError("this adapter was built from a state_dict: pass the gradients "
                                 "as a mapping of torch names to tensors")
            state, head = self._current()
            _, raw = self._get(state, head)
            values = {key: _numpy(key, getattr(v, "grad", None)) for key, v in raw.items()}
            missing = [self.names[k] for k, v in values.items()
                       if v is None and raw[k] is not None and k not in ("bias_ih_l0", "bias_hh_l0")]
            if missing:
                raise ValueError(f"{missing} have no .grad: run backward (or store your "
                                 f"direction in .grad) first")
        else:
            flat = _flat(grads, "grads")
            values = {key: None for key in RNN_KEYS + HEAD_KEYS}
            for key in flat:
                short = self._short(key)
                if short is None:
                    raise ValueError(f"grads[{key!r}] is not a parameter of this model "
                                     f"(expected names among {sorted(self.names.values())})")
                values[short] = _numpy(key, flat[key])
        return self._to_tpref(values, gradients=True)

    def _short(self, key):
        """torch short name for a full or short key, or None."""
        for short, full in self.names.items():
            if key in (full, short):
                return short
        return None

    def candidate(self, *, loss=None, hidden=None, targets=None, displacements=None,
                  direction=None):
        """The candidate dict of ``tpref.verify.compare`` from your tensors.

        As :meth:`ArrayAdapter.candidate`, except that ``direction`` may be the model (its
        ``.grad``), a mapping under torch names (converted by :meth:`direction`, bias rule
        included) or a mapping under tpref's names (taken as is).
        """
        if direction is not None and (_is_module(direction) or (
                hasattr(direction, "keys") and any(self._short(k) for k in direction))):
            direction = self.direction(direction)
        return super().candidate(loss=loss, hidden=hidden, targets=targets,
                                 displacements=displacements, direction=direction)

    # ------------------------------------------------------------------------------------------
    # out: tpref -> torch

    def state_dict(self, params):
        """tpref params as this model's state_dict entries (full names, tensors, model's dtype).

        nn.RNN: bias_hh_l0 keeps the model's current value (zero for a state_dict-built
        adapter without one) and bias_ih_l0 = b_h - bias_hh_l0, so that their sum is b_h.
        """
        import torch
        if self.cell == "gru":
            st = gru_params_to_torch(params)
            short = dict(st["gru"], **st["linear"])
        else:
            _, raw = self._get(*self._current())
            b_hh = _numpy("bias_hh_l0", raw["bias_hh_l0"])
            b_hh = np.zeros_like(params["b_h"]) if b_hh is None else b_hh.astype(params["b_h"].dtype)
            short = {"weight_ih_l0": params["W_xh"], "weight_hh_l0": params["W_hh"],
                     "bias_ih_l0": params["b_h"] - b_hh, "bias_hh_l0": b_hh,
                     "weight": params["W_hy"], "bias": params["b_y"]}
        return {self.names[k]: torch.tensor(np.asarray(v), dtype=self._torch_dtype())
                for k, v in short.items()}

    def load(self, params):
        """Copy tpref params into the model (in place, under ``torch.no_grad``)."""
        import torch
        if self.module is None:
            raise ValueError("this adapter was built from a state_dict: use state_dict(params)")
        state, head = self._current()
        targets = dict(state) if head is None else dict(state, **head)
        with torch.no_grad():
            for name, value in self.state_dict(params).items():
                if name in targets and targets[name] is not None:
                    targets[name].copy_(value)

    def _torch_dtype(self, dtype=None):
        import torch
        dtype = np.dtype(self.dtype if dtype is None else dtype)
        return {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[dtype]

    def direction_to_torch(self, direction, dtype=None):
        """tpref's direction under this model's torch names, as tensors.

        nn.RNN: bias_ih_l0 and bias_hh_l0 both get b_h's direction (a torch SGD step on both
        then moves their sum by twice the step, as torch's own gradients would).
        """
        import torch
        if self.cell == "gru":
            st = gru_params_to_torch(direction)
            short = dict(st["gru"], **st["linear"])
        else:
            short = {"weight_ih_l0": direction["W_xh"], "weight_hh_l0": direction["W_hh"],
                     "bias_ih_l0": direction["b_h"], "bias_hh_l0": direction["b_h"],
                     "weight": direction["W_hy"], "bias": direction["b_y"]}
        return {self.names[k]: torch.tensor(np.asarray(v), dtype=self._torch_dtype(dtype))
                for k, v in short.items()}

    def to_torch(self, result, dtype=None):
        """tpref's results as tensors in your layout (dtype: the model's unless given).

        Returns a dict: ``loss`` (0-d), ``output`` (B, k), ``hidden``, ``targets``,
        ``displacements`` ((B, T+1, p) if batch_first else (T+1, B, p); None for "bp") and
        ``direction`` (torch names -> tensors, see :meth:`direction_to_torch`).
        """
        import torch
        arrays = self.to_arrays(result)
        tdt = self._torch_dtype(dtype)
        out = {key: (None if arrays[key] is None else torch.tensor(arrays[key], dtype=tdt))
               for key in ("loss", "output", "hidden", "targets", "displacements")}
        out["direction"] = self.direction_to_torch(result.direction, dtype)
        return out
