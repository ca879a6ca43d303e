"""The plain-array path into ``tpref.verify.compare``: any framework's arrays, either layout.

A JAX, NumPy or C++ implementation (through files) keeps its own layout; :class:`ArrayAdapter`
turns its inputs and outputs into tpref's (time-major, index t as in ``OracleResult``) and back,
and refuses, with an error that names the array, what it can tell is in the wrong layout.

    ad = ArrayAdapter(batch_first=True)         # your arrays are (B, T, ...)
    x, y = ad.inputs(x_bf, y)                   # numpy, (T, B, d) and (B,) / (B, k); checked
    ref = tpref.oracle("tp", params, x, y, loss="mse", gamma_h=1e-2, reg=1.0)
    cand = ad.candidate(loss=L, hidden=H, displacements=lam, direction=grads)
    report = tpref.verify.compare(cand, ref)
    mine = ad.to_arrays(ref)                    # tpref's results in your layout

Anything ``numpy.asarray`` reads is accepted (jax.Array, numpy, a CPU torch tensor without
grad); :mod:`tpref.verify.torch_adapter` adds torch's parameter names and the bias rule.
No framework is imported here.
"""

import numpy as np

#: Quantities of a candidate indexed by time, each (T+1, B, p) in tpref's layout.
TIME_QUANTITIES = ("hidden", "targets", "displacements")


def as_array(name, value):
    """A float numpy copy of ``value`` (numpy, jax.Array, torch tensor: detached, to CPU)."""
    if hasattr(value, "detach"):                               # a torch tensor
        value = value.detach().cpu().numpy()
    try:
        a = np.array(value, copy=True)
    except Exception as err:                                   # noqa: BLE001 (say which array)
        raise TypeError(f"{name} must be an array (numpy, jax, torch), got "
                        f"{type(value).__name__}: {err}") from err
    if a.dtype.kind != "f":
        raise TypeError(f"{name} must hold floats, got dtype {a.dtype}")
    return a


def _check_batch_first(batch_first):
    if not isinstance(batch_first, bool):
        raise TypeError("batch_first must be True (your arrays are (B, T, ...)) or False "
                        f"((T, B, ...), tpref's and nn.RNN's default), got {batch_first!r}")


class ArrayAdapter:
    """Converts one implementation's arrays to tpref's layout and back.

    Parameters
    ----------
    batch_first : bool
        True if your arrays are (B, T, ...) (``nn.RNN(batch_first=True)``, the usual JAX
        ``vmap`` layout), False if (T, B, ...). Required: when B equals T (or T + 1) no shape
        can tell the two apart.

    Attributes
    ----------
    T, B : int or None
        Sequence length and batch size, known once :meth:`inputs` has run (or given with
        :meth:`set_shape`); :meth:`candidate` checks every array against them.
    """

    def __init__(self, *, batch_first):
        _check_batch_first(batch_first)
        self.batch_first = batch_first
        self.T = None
        self.B = None

    # ------------------------------------------------------------------------------------------
    # in: your inputs and outputs -> tpref's layout

    def set_shape(self, T, B):
        """Declare T and B without calling :meth:`inputs`."""
        for name, v in (("T", T), ("B", B)):
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        self.T, self.B = int(T), int(B)

    def inputs(self, x, y):
        """(x, y) in tpref's layout: x (T, B, d) float, y (B,) int labels or (B, k) floats.

        ``x`` is read in this adapter's layout; B is taken from ``y``. If x's batch axis does
        not have B entries but its other axis does, the error says x looks transposed.
        """
        y = np.array(y.detach().cpu().numpy() if hasattr(y, "detach") else y, copy=True)
        x = as_array("x", x)
        if y.ndim not in (1, 2) or y.shape[0] == 0:
            raise ValueError(f"y must have shape (B,) (labels) or (B, k) (MSE targets), got {y.shape}")
        if x.ndim != 3:
            raise ValueError(f"x must have 3 axes, {'(B, T, d)' if self.batch_first else '(T, B, d)'}"
                             f", got shape {x.shape}")
        B = y.shape[0]
        b_axis, t_axis = (0, 1) if self.batch_first else (1, 0)
        if x.shape[b_axis] != B:
            if x.shape[t_axis] == B:
                raise ValueError(
                    f"x has shape {x.shape}, but with batch_first={self.batch_first} its batch axis "
                    f"{b_axis} should have B = {B} entries (y's first axis) and it is axis "
                    f"{t_axis} that does: x looks {'time-major' if self.batch_first else 'batch-first'}"
                    f"; pass batch_first={not self.batch_first} or transpose x")
            raise ValueError(f"x has shape {x.shape}: its batch axis {b_axis} should have B = {B} "
                             f"entries (y's first axis), with batch_first={self.batch_first}")
        if self.batch_first:
            x = np.ascontiguousarray(np.swapaxes(x, 0, 1))
        self.T, self.B = int(x.shape[0]), int(B)
        return x, y

    def time_major(self, name, value, *, allow_T=False):
        """One (T+1, B, ...) array of tpref's layout from yours.

        ``allow_T``: a time axis of length T is also taken and read as steps 1..T (for
        ``hidden``: the output sequence of ``nn.RNN`` / ``lax.scan``; h_0 = 0 is prepended).
        """
        a = as_array(name, value)
        if self.T is None:
            raise ValueError(f"the adapter does not know T and B yet: call inputs(x, y) (or "
                             f"set_shape(T, B)) before converting {name}")
        T, B = self.T, self.B
        lengths = (T + 1, T) if allow_T else (T + 1,)
        want = " or ".join(f"({L}, {B}, ...)" if not self.batch_first else f"({B}, {L}, ...)"
                           for L in lengths)
        b_axis, t_axis = (0, 1) if self.batch_first else (1, 0)
        if a.ndim < 2:
            raise ValueError(f"{name} must have a batch and a time axis, {want}; got shape {a.shape}")
        if a.shape[b_axis] != B or a.shape[t_axis] not in lengths:
            other = a.shape[t_axis] == B and a.shape[b_axis] in lengths
            hint = (f"; it looks {'time-major' if self.batch_first else 'batch-first'}: pass "
                    f"batch_first={not self.batch_first} or transpose it" if other else "")
            raise ValueError(f"{name} has shape {a.shape}, expected {want} with "
                             f"batch_first={self.batch_first} (T = {T}, B = {B}){hint}")
        if self.batch_first:
            a = np.swapaxes(a, 0, 1)
        if a.shape[0] == T:                                     # steps 1..T: prepend h_0 = 0
            a = np.concatenate([np.zeros((1,) + a.shape[1:], dtype=a.dtype), a], axis=0)
        return np.ascontiguousarray(a)

    def candidate(self, *, loss=None, hidden=None, targets=None, displacements=None,
                  direction=None):
        """The candidate dict of ``tpref.verify.compare`` from your arrays.

        Parameters
        ----------
        loss : float or 0-d array, optional
        hidden : (T+1, B, p) or (T, B, p) in your layout, optional
            h_0..h_T, or h_1..h_T (then h_0 = 0 is prepended).
        targets, displacements : (T+1, B, p) in your layout, optional
            v_t and lam_t = v_t - h_t for t = 0..T (v_0 included: tpref computes it).
        direction : dict of tpref's parameter names -> arrays, optional
            Gradient-like (theta <- theta - step * direction); the paper's d_theta of Sec. 3
            is minus this for the transition parameters.

        Returns
        -------
        dict with the quantities given, as numpy arrays in tpref's layout.
        """
        out = {}
        if loss is not None:
            value = as_array("loss", loss)
            if value.size != 1:
                raise ValueError(f"loss must be one number, got shape {value.shape}")
            out["loss"] = float(value.reshape(()))
        for name, value in (("hidden", hidden), ("targets", targets),
                            ("displacements", displacements)):
            if value is not None:
                out[name] = self.time_major(name, value, allow_T=(name == "hidden"))
        if direction is not None:
            if not hasattr(direction, "items"):
                raise TypeError(f"direction must be a dict of parameter name -> array, got "
                                f"{type(direction).__name__}")
            out["direction"] = {str(k): as_array(f"direction[{k!r}]", v)
                                for k, v in direction.items()}
        if not out:
            raise ValueError("candidate needs at least one of loss, hidden, targets, "
                             "displacements, direction")
        return out

    # ------------------------------------------------------------------------------------------
    # out: tpref's results -> your layout

    def from_time_major(self, a):
        """A (T+1, B, ...) array of tpref's in your layout (a copy)."""
        a = np.asarray(a)
        return np.ascontiguousarray(np.swapaxes(a, 0, 1) if self.batch_first else a)

    def to_arrays(self, result):
        """tpref's results (an ``OracleResult``) as numpy arrays in your layout.

        Returns a dict: ``loss`` (float), ``output`` (B, k), ``hidden``, ``targets``,
        ``displacements`` ((B, T+1, p) if batch_first else (T+1, B, p); None for "bp") and
        ``direction`` (tpref's names).
        """
        lam = result.displacements
        return {
            "loss": float(result.loss),
            "output": np.array(result.output, copy=True),
            "hidden": self.from_time_major(result.hidden),
            "targets": None if lam is None else self.from_time_major(result.targets),
            "displacements": None if lam is None else self.from_time_major(lam),
            "direction": {k: np.array(v, copy=True) for k, v in result.direction.items()},
        }
