"""SGD with optional momentum, PyTorch's convention, and a one-line training step.

PyTorch's ``torch.optim.SGD`` (dampening 0, no weight decay), for each parameter theta with
direction g:
    buf <- g                      at the first step
    buf <- momentum * buf + g     afterwards
    theta <- theta - lr * (g + momentum * buf)   (nesterov=True)
    theta <- theta - lr * buf                    (nesterov=False, momentum > 0)
    theta <- theta - lr * g                      (momentum = 0)
"""

import numpy as np

from .validation import check_positive_scalar


class SGD:
    """Stochastic gradient descent on a dict of ndarrays, updated in place.

    Parameters
    ----------
    params : dict of str -> ndarray
        Updated in place by :meth:`step`.
    lr : float > 0
        Step size gamma_theta.
    momentum : float in [0, 1), default 0
    nesterov : bool, default False
        PyTorch's Nesterov convention; needs momentum > 0.
    """

    def __init__(self, params, lr, momentum=0.0, nesterov=False):
        self.params = params
        self.lr = check_positive_scalar("lr", lr)
        self.momentum = check_positive_scalar("momentum", momentum, allow_zero=True)
        if self.momentum >= 1:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum!r}")
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        self.nesterov = bool(nesterov)
        self.buffers = {}

    def step(self, direction):
        """theta <- theta - lr * (direction, with momentum): one update of every parameter.

        All or nothing: every entry of ``direction`` is checked first (the same names as the
        parameters, each a floating ndarray of its parameter's shape; no broadcasting), and
        the new values are computed before any parameter or buffer is written, so an error
        (including a FloatingPointError under ``np.errstate(over="raise")``) changes nothing.
        """
        self._check_direction(direction)
        new_params, new_buffers = {}, {}
        for name, theta in self.params.items():
            g = direction[name]
            if self.momentum:
                buf = self.buffers.get(name)
                if buf is None:
                    buf = np.array(g, dtype=theta.dtype, copy=True)
                else:
                    buf = self.momentum * buf + g
                new_buffers[name] = buf
                g = g + self.momentum * buf if self.nesterov else buf
            new_params[name] = theta - self.lr * g
        for name, theta in self.params.items():          # commit: nothing below can fail
            theta[...] = new_params[name]
        for name, buf in new_buffers.items():
            if name in self.buffers:
                self.buffers[name][...] = buf
            else:
                self.buffers[name] = buf

    def _check_direction(self, direction):
        """Raise TypeError/ValueError naming the first direction entry that does not fit."""
        if not isinstance(direction, dict):
            raise TypeError(f"direction must be a dict of parameter name -> ndarray, got "
                            f"{type(direction).__name__}")
        missing = sorted(set(self.params) - set(direction))
        extra = sorted(set(direction) - set(self.params))
        if missing or extra:
            raise ValueError(f"direction must have exactly the parameters' keys "
                             f"{tuple(self.params)}; missing {missing}, unexpected {extra}")
        for name, theta in self.params.items():
            g = direction[name]
            if not isinstance(g, np.ndarray) or isinstance(g, np.ma.MaskedArray):
                raise TypeError(f"direction[{name!r}] must be a plain numpy ndarray, got "
                                f"{type(g).__name__}")
            if g.dtype.kind != "f":
                raise TypeError(f"direction[{name!r}] must have a floating dtype, got {g.dtype}")
            if g.shape != theta.shape:
                raise ValueError(f"direction[{name!r}] must have the shape of params[{name!r}], "
                                 f"{theta.shape}, got {g.shape} (no broadcasting)")

    def state_dict(self):
        """Momentum buffers (copies), for checkpoints."""
        return {name: buf.copy() for name, buf in self.buffers.items()}

    def load_state_dict(self, state):
        """Restore momentum buffers saved by :meth:`state_dict`."""
        self.buffers = {name: np.array(buf, copy=True) for name, buf in state.items()}
