"""Output layer c_theta(h_T) = s(W_hy h_T + b_y) and the batch-mean losses, with gradients.

Conventions are PyTorch's defaults so that hyperparameters transfer:
``cross_entropy`` is ``torch.nn.functional.cross_entropy(out, y)`` (mean over the batch of
-log softmax(out)[y]) and ``mse`` is ``torch.nn.functional.mse_loss(out, y)`` (mean over all
B * k elements of (out - y)^2).
"""

import numpy as np


def loss_and_grad(loss, out, y):
    """Batch-mean loss and its gradient with respect to the output logits.

    Parameters
    ----------
    loss : {"cross_entropy", "mse"}
    out : ndarray of shape (B, k)
        W_hy h_T + b_y.
    y : ndarray of shape (B,) (int labels) or (B, k) (float targets)

    Returns
    -------
    value : float
        The loss, accumulated in float64.
    grad : ndarray of shape (B, k), dtype of ``out``
        d value / d out.
    """
    B, k = out.shape
    if loss == "cross_entropy":
        z = out - out.max(axis=1, keepdims=True)          # (B, k) shifted logits
        logsumexp = np.log(np.exp(z).sum(axis=1))         # (B,)
        logp_y = z[np.arange(B), y] - logsumexp           # (B,)
        value = -float(np.mean(logp_y, dtype=np.float64))
        grad = np.exp(z - logsumexp[:, None])             # (B, k) softmax
        grad[np.arange(B), y] -= 1.0
        grad /= B
        return value, grad.astype(out.dtype, copy=False)
    diff = out - y                                        # (B, k)
    value = float(np.mean(np.square(diff, dtype=np.float64)))
    grad = (2.0 / (B * k)) * diff
    return value, grad.astype(out.dtype, copy=False)


def output_layer(params, h_T):
    """out = W_hy h_T + b_y for a batch of row vectors: (B, p) -> (B, k)."""
    return h_T @ params["W_hy"].T + params["b_y"]


def output_backward(params, h_T, y, loss):
    """Loss, logits, gradients of (W_hy, b_y) and dl/dh_T for the batch-mean loss.

    The output layer's backward, the same for every cell, method and backend (the reference
    and every kernel twin call this one function).

    Returns
    -------
    value : float
    out : ndarray (B, k)
    grads : dict with ``W_hy`` (k, p) and ``b_y`` (k,)
    g_T : ndarray (B, p)
        d loss / d h_T, one row per sample (each carries the 1/B of the batch mean).
    """
    out = output_layer(params, h_T)                    # (B, k)
    value, d_out = loss_and_grad(loss, out, y)         # float, (B, k)
    grads = {"W_hy": d_out.T @ h_T, "b_y": d_out.sum(axis=0)}
    g_T = d_out @ params["W_hy"]                       # (B, p)
    return value, out, grads, g_T
