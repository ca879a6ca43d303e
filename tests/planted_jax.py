"""A user's jax.numpy TP for the simple RNN (plain arrays, time-major), with one plantable bug.

Written from the paper's Eq. (1)-(3) in their displacement form (Sec. 3), apart from tpref:
``jax.grad`` for dl/dh_T and for Eq. (3), ``jnp.linalg.solve`` for the regularized inverse.
Parameters are a dict of arrays under tpref's names (the plain-array path needs no adapter for
names); x (T, B, d). Import only where JAX is installed; float64 needs ``jax_enable_x64``.
"""

from functools import partial

import jax
import jax.numpy as jnp

BUGS = {"no_clip": "(a^-1)' taken at h_t instead of pi(h_t)"}


def _act(activation, u):
    return jnp.tanh(u) if activation == "tanh" else jax.nn.sigmoid(u)


def tp(params, x, y, *, loss, gamma_h, reg, update="local", activation="tanh", clip_eps=1e-3,
       bugs=()):
    """Loss, hidden (T+1, B, p), displacements (T+1, B, p), direction (tpref's names).

    Compiled with ``jax.jit`` (the options are static; one compilation per shape and options;
    the planted bug is a traced flag, so it reuses the correct run's compilation).
    """
    assert not set(bugs) - set(BUGS), bugs
    return _tp(params, jnp.asarray(x), jnp.asarray(y), loss=loss, gamma_h=float(gamma_h),
               reg=float(reg), update=update, activation=activation, clip_eps=float(clip_eps),
               no_clip=jnp.asarray("no_clip" in bugs))


@partial(jax.jit, static_argnames=("loss", "gamma_h", "reg", "update", "activation", "clip_eps"))
def _tp(params, x, y, no_clip, *, loss, gamma_h, reg, update, activation, clip_eps):
    params = {k: jnp.asarray(v) for k, v in params.items()}
    x = jnp.asarray(x)
    T, B, _ = x.shape
    p = params["W_hh"].shape[0]

    def step(th, x_t, h):
        return _act(activation, x_t @ th["W_xh"].T + h @ th["W_hh"].T + th["b_h"])

    def forward(th):
        hs = [jnp.zeros((B, p), x.dtype)]
        for t in range(T):
            hs.append(step(th, x[t], hs[-1]))
        return hs

    def loss_of(head, h_T):
        out = h_T @ head["W_hy"].T + head["b_y"]
        if loss == "cross_entropy":
            logp = jax.nn.log_softmax(out, axis=1)
            return -jnp.mean(logp[jnp.arange(B), y])
        return jnp.mean((out - y) ** 2)

    hs = forward(params)
    head = {"W_hy": params["W_hy"], "b_y": params["b_y"]}
    L, (g_head, g_T) = jax.value_and_grad(loss_of, argnums=(0, 1))(head, hs[-1])
    lam = [None] * (T + 1)
    lam[T] = -gamma_h * g_T                                          # Eq. (1)
    W = params["W_hh"]
    M = W.T @ W + reg * jnp.eye(p, dtype=W.dtype)
    lo, hi = (-1 + clip_eps, 1 - clip_eps) if activation == "tanh" else (clip_eps, 1 - clip_eps)
    for t in range(T, 0, -1):                                        # Eq. (2)
        a = jnp.where(no_clip, hs[t], jnp.clip(hs[t], lo, hi))      # the bug: a traced flag
        z = lam[t] / (1 - a * a) if activation == "tanh" else lam[t] / (a * (1 - a))
        lam[t - 1] = jnp.linalg.solve(M, (z @ W).T).T

    def surrogate(th):                                               # Eq. (3), displacements
        full = forward(th) if update == "through_time" else None
        s = 0.0
        for t in range(1, T + 1):
            f_t = full[t] if full is not None else step(th, x[t - 1], hs[t - 1])
            s = s + jnp.sum(f_t * -lam[t])
        return s

    trans = {k: params[k] for k in ("W_hh", "W_xh", "b_h")}
    direction = dict(jax.grad(lambda th: surrogate(dict(params, **th)))(trans), **g_head)
    return {"loss": L, "hidden": jnp.stack(hs), "displacements": jnp.stack(lam),
            "direction": direction}
