"""Elementwise activations a, their derivatives, their inverses and the projection pi.

Every function works elementwise on arrays of any shape and returns the input's dtype.
The derivative is written in terms of the *output* h = a(u), since that is what the
forward pass stores: tanh'(u) = 1 - h**2, sigmoid'(u) = h * (1 - h).

Notes
-----
Sec. 2.1 of the paper: the regularized inverse needs a^{-1} on the image a(R^p), and a
projection pi onto that image for targets that fall outside it. Here pi is the clip onto
[-1 + eps, 1 - eps] (tanh) or [eps, 1 - eps] (sigmoid), as in the authors' code.
"""

import numpy as np

from ..config import ACTIVATIONS


def check_activation(activation):
    """Raise ValueError unless ``activation`` is one of ``config.ACTIVATIONS``."""
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"activation must be one of {ACTIVATIONS}, got {activation!r}")


def activate(activation, u):
    """a(u): the transition's nonlinearity, elementwise."""
    if activation == "tanh":
        return np.tanh(u)
    # sigmoid, written to avoid overflow of exp for large |u|
    return 0.5 * (1.0 + np.tanh(0.5 * u))


def derivative_from_output(activation, h):
    """a'(u) expressed through h = a(u): tanh -> 1 - h^2, sigmoid -> h (1 - h)."""
    if activation == "tanh":
        return 1.0 - h * h
    return h * (1.0 - h)


def project(activation, v, eps):
    """pi(v): clip v onto the image of a, shrunk by eps (Sec. 2.1)."""
    if activation == "tanh":
        return np.clip(v, -1.0 + eps, 1.0 - eps)
    return np.clip(v, eps, 1.0 - eps)


def inverse(activation, v):
    """a^{-1}(v) for v strictly inside a's image: atanh, or logit for the sigmoid."""
    if activation == "tanh":
        return np.arctanh(v)
    return np.log(v) - np.log1p(-v)


def inverse_derivative(activation, v):
    """(a^{-1})'(v) = 1 / a'(a^{-1}(v)): 1 / (1 - v^2) for tanh, 1 / (v (1 - v)) for sigmoid."""
    return 1.0 / derivative_from_output(activation, v)
