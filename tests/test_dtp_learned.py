"""Method "dtp_learned" (TPTT's learned inverse): finite differences of each loss, the Numba
twin against the reference, reproducible noise, the reduction to DTP with the regularized
inverse, bad input. The torch gold model is in test_dtp_learned_torch.py."""

import numpy as np
import pytest

import tpref
from tpref import testing
from tpref.config import F32_REF_FACTOR
from tpref.losses import loss_and_grad, output_layer
from tpref.methods import dtp_learned
from tpref.models.activations import activate

from cases import random_case, random_targets

ACTIVATIONS = ("tanh", "sigmoid")
FORWARD = ("W_hh", "W_xh", "b_h")


def learned_case(seed, *, T=6, B=3, d=2, p=5, k=3, loss="cross_entropy", scale=1.2,
                 dtype=np.float64):
    params, x, y = random_case(seed, T=T, B=B, d=d, p=p, k=k, loss=loss, scale=scale)
    rng = np.random.default_rng(seed + 1000)
    params["V_hh"] = scale * rng.normal(size=(p, p)) / np.sqrt(p)
    params["c_h"] = 0.1 * rng.normal(size=p)
    params = {name: a.astype(dtype) for name, a in params.items()}
    return params, x.astype(dtype), y if loss == "cross_entropy" else y.astype(dtype)


def F_step(params, x_t, h, activation):
    return activate(activation, x_t @ params["W_xh"].T + h @ params["W_hh"].T + params["b_h"])


# ----------------------------------------------------------------------------------------------
# finite differences of each loss


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_forward_direction_is_gradient_of_the_forward_loss(activation):
    """(W_hh, W_xh, b_h): gradient of sum_t mean_{b,i} (F(x_t, h_{t-1}) - v_t)^2 with h_{t-1}
    and v_t frozen (TPTT's local forward loss, its reduction)."""
    params, x, y = learned_case(1)
    res = tpref.oracle("dtp_learned", params, x, y, loss="cross_entropy", gamma_h=0.4,
                       activation=activation, backend="numpy")
    h, v = res.hidden, res.targets

    def forward_loss(th):
        full = dict(params, **th)
        return sum(np.mean((F_step(full, x[t - 1], h[t - 1], activation) - v[t]) ** 2)
                   for t in range(1, x.shape[0] + 1))

    testing.check_grad(forward_loss, {k: params[k] for k in FORWARD},
                       {k: res.direction[k] for k in FORWARD}, seed=2, step=1e-5, rtol=1e-7)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("noise", [0.0, 0.2])
def test_reverse_direction_is_gradient_of_the_inverse_loss(activation, noise):
    """(V_hh, c_h): gradient of sum_t mean (G(x_t, F(x_t, h~_{t-1})) - h~_{t-1})^2 with
    h~ = h + noise eps, eps = default_rng(seed).standard_normal((T, B, p)); the value is
    ``reconstruction_loss``."""
    params, x, y = learned_case(2)
    seed = 11 if noise else None
    res = tpref.oracle("dtp_learned", params, x, y, loss="cross_entropy", gamma_h=0.4,
                       noise=noise, seed=seed, activation=activation, backend="numpy")
    T, B, _ = x.shape
    eps = np.random.default_rng(seed).standard_normal((T, B, 5)) if noise else 0.0
    h_tilde = res.hidden[:-1] + noise * eps

    def inverse_loss(th):
        full = dict(params, **th)
        total = 0.0
        for t in range(1, T + 1):
            f_t = F_step(full, x[t - 1], h_tilde[t - 1], activation)
            g_t = activate(activation, x[t - 1] @ full["W_xh"].T + f_t @ full["V_hh"].T + full["c_h"])
            total += np.mean((g_t - h_tilde[t - 1]) ** 2)
        return total

    assert abs(inverse_loss({}) - res.reconstruction_loss) <= 1e-13 * inverse_loss({})
    names = ("V_hh", "c_h")
    testing.check_grad(inverse_loss, {k: params[k] for k in names},
                       {k: res.direction[k] for k in names}, seed=3, step=1e-5, rtol=1e-7)


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_output_direction_and_first_target_are_loss_gradients(loss):
    """(W_hy, b_y): the plain loss gradient; lam_T = -gamma_h dl/dh_T (Eq. 1), by differences."""
    params, x, y = learned_case(3, loss=loss)
    gamma_h = 0.3
    res = tpref.oracle("dtp_learned", params, x, y, loss=loss, gamma_h=gamma_h, backend="numpy")

    def loss_of(th):
        return loss_and_grad(loss, output_layer(dict(params, **th), res.hidden[-1]), y)[0]

    names = ("W_hy", "b_y")
    testing.check_grad(loss_of, {k: params[k] for k in names},
                       {k: res.direction[k] for k in names}, seed=4, step=1e-5, rtol=1e-7)
    testing.check_grad(lambda th: loss_and_grad(loss, output_layer(params, th["h"]), y)[0],
                       {"h": res.hidden[-1]}, {"h": -res.displacements[-1] / gamma_h},
                       seed=5, step=1e-5, rtol=1e-7)


def test_targets_follow_the_difference_recursion_through_G():
    """v_{t-1} = h_{t-1} - G(x_t, h_t) + G(x_t, v_t), evaluated as written, at T = 6."""
    params, x, y = learned_case(4)
    res = tpref.oracle("dtp_learned", params, x, y, loss="cross_entropy", gamma_h=0.5,
                       backend="numpy")
    h, v = res.hidden, res.targets
    for t in range(x.shape[0], 0, -1):
        expected = (h[t - 1] - dtp_learned.reverse_layer(params, x[t - 1], h[t], "tanh")
                    + dtp_learned.reverse_layer(params, x[t - 1], v[t], "tanh"))
        # the plain difference of two O(1) values of G carries ~1e-16 absolute rounding
        testing.assert_close(v[t - 1], expected, name=f"v_{t - 1}", noise=1e-14)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activation_difference_has_no_cancellation(activation):
    """a(u + d) - a(u) by the identity has an absolute error of a few eps |d| (1 + |u|)
    against the exact difference (mpmath, 40 digits), for |d| from 1e-12 to 1e-2; the plain
    float64 difference errs by ~eps, i.e. keeps only ~|d| / eps of the result's digits.
    (Relative to the result the bound grows like 1 / a'(u) on saturated units, whose
    displacements are correspondingly small.)"""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    rng = np.random.default_rng(0)
    u = rng.normal(scale=2.0, size=300)
    d = rng.normal(size=300) * 10.0 ** rng.uniform(-12, -2, size=300)
    comp = dtp_learned.activation_difference(activation, u, d)

    def a(v):
        return mpmath.tanh(v) if activation == "tanh" else (1 + mpmath.tanh(v / 2)) / 2

    exact = np.array([float(a(mpmath.mpf(ui) + mpmath.mpf(di)) - a(mpmath.mpf(ui)))
                      for ui, di in zip(u, d)])
    bound = 4 * np.finfo(np.float64).eps * np.abs(d) * (1 + np.abs(u))
    assert np.all(np.abs(comp - exact) <= bound), float(np.max(np.abs(comp - exact) / bound))
    if activation == "tanh":   # the identity is what makes the difference: plain loses digits
        plain = np.tanh(u + d) - np.tanh(u)
        assert np.mean(np.abs(plain - exact) > bound) > 0.5


# ----------------------------------------------------------------------------------------------
# numba twin = reference


def _compare_backends(params, x, y, dtype, **kw):
    comp = tpref.oracle("dtp_learned", params, x, y, backend="numba", **kw)
    as64 = {k: v.astype(np.float64) for k, v in params.items()}
    y64 = y if y.dtype.kind in "iu" else y.astype(np.float64)
    ref = tpref.oracle("dtp_learned", as64, x.astype(np.float64), y64, backend="numpy", **kw)
    ref32 = (tpref.oracle("dtp_learned", params, x, y, backend="numpy", **kw)
             if np.dtype(dtype) == np.float32 else None)

    def check(name, get):
        c, r = get(comp), get(ref)
        floor = 0.0 if ref32 is None else F32_REF_FACTOR * float(np.max(np.abs(get(ref32) - r)))
        assert c.dtype == np.dtype(dtype), name
        testing.assert_close(c, r, name=name, dtype=dtype, noise=floor)

    rtol = testing.tolerance(dtype)[0]
    assert abs(comp.loss - ref.loss) <= rtol * max(1.0, ref.loss)
    assert abs(comp.reconstruction_loss - ref.reconstruction_loss) <= rtol * ref.reconstruction_loss
    check("hidden", lambda r: r.hidden)
    check("displacements", lambda r: r.displacements)
    check("targets", lambda r: r.targets)
    assert set(comp.direction) == set(ref.direction)
    for name in ref.direction:
        check(f"direction[{name}]", lambda r: r.direction[name])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
@pytest.mark.parametrize("gamma_h", [0.5, 1e-7])
def test_numba_equals_reference(dtype, activation, loss, gamma_h):
    """Every output of backend "numba" equals the reference (float64 within config.RTOL; the
    measured gap is ~1e-15 normwise, docs/equations.md), with noise and TPTT's schedule, down
    to the MNIST gamma_h = 1e-7 (displacements ~1e-9, kept exact by the cancellation-free
    difference), over more time steps and rows than one block of the inverse-loss kernel."""
    rng = np.random.default_rng(7)
    T, B, d, p, k = 40, 16, 3, 12, 4
    params = tpref.init_rnn(d, p, k, seed=rng, reverse=True)
    params["b_h"] = 0.3 * rng.normal(size=p)
    params["c_h"] = 0.3 * rng.normal(size=p)
    params = {name: a.astype(dtype) for name, a in params.items()}
    x = rng.normal(size=(T, B, d)).astype(dtype)
    y = random_targets(rng, B, k, loss, dtype)
    _compare_backends(params, x, y, dtype, loss=loss, gamma_h=gamma_h, noise=0.1, seed=5,
                      activation=activation, reverse_lr=1e-2)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_same_seed_same_bits(backend):
    """The same seed gives bit-identical results; another seed another inverse direction;
    noise = 0 ignores the seed."""
    params, x, y = learned_case(6)
    kw = dict(loss="cross_entropy", gamma_h=0.3, noise=0.1, backend=backend)
    a = tpref.oracle("dtp_learned", params, x, y, seed=42, **kw)
    b = tpref.oracle("dtp_learned", params, x, y, seed=42, **kw)
    c = tpref.oracle("dtp_learned", params, x, y, seed=43, **kw)
    for name in a.direction:
        assert np.array_equal(a.direction[name], b.direction[name]), name
    assert np.array_equal(a.targets, b.targets)
    assert a.reconstruction_loss == b.reconstruction_loss
    assert not np.array_equal(a.direction["V_hh"], c.direction["V_hh"])
    kw["noise"] = 0.0
    d0 = tpref.oracle("dtp_learned", params, x, y, seed=1, **kw)
    d1 = tpref.oracle("dtp_learned", params, x, y, **kw)
    assert np.array_equal(d0.direction["V_hh"], d1.direction["V_hh"])


def test_reverse_lr_uses_the_updated_reverse_layer():
    """reverse_lr: the targets are those of a call at V_hh - lr dV_hh, c_h - lr dc_h (TPTT's
    inverse step first); the (V_hh, c_h) direction stays the one at the weights given."""
    params, x, y = learned_case(8)
    kw = dict(loss="cross_entropy", gamma_h=0.5, backend="numpy")
    plain = tpref.oracle("dtp_learned", params, x, y, **kw)
    lr = 0.3
    stepped = dict(params, V_hh=params["V_hh"] - lr * plain.direction["V_hh"],
                   c_h=params["c_h"] - lr * plain.direction["c_h"])
    after = tpref.oracle("dtp_learned", stepped, x, y, **kw)
    sched = tpref.oracle("dtp_learned", params, x, y, reverse_lr=lr, **kw)
    assert np.array_equal(sched.targets, after.targets)
    for name in FORWARD:
        assert np.array_equal(sched.direction[name], after.direction[name])
    assert np.array_equal(sched.direction["V_hh"], plain.direction["V_hh"])
    assert np.max(np.abs(sched.targets - plain.targets)) > 1e-6


# ----------------------------------------------------------------------------------------------
# the reduction to DTP with the regularized inverse


def test_reduces_to_dtp_with_the_regularized_inverse_in_the_linear_regime():
    """With V_hh = (W_hh^T W_hh + r I)^{-1} W_hh^T (the regularized inverse's linear map) and
    c_h = 0, "dtp_learned" is "dtp" (reg r) to first order in the pre-activations.

    What is compared: tanh; inputs scaled by eps (W_xh -> eps W_xh, b_h = c_h = 0), so every
    pre-activation is O(eps). Both difference maps tend to lam -> V_hh lam as tanh -> id
    (G(h + lam) - G(h) = diag(1 - G^2) V lam + ..., f^{-1}(h + lam) - f^{-1}(h) =
    V diag(1 / (1 - h^2)) lam + ...), so (a) the displacements lam_t, t = 1..T-1, and (b) the
    (W_hh, W_xh, b_h) directions, dtp_learned's against 2 / (B p) times dtp's (the mse
    reduction), differ by O(eps^2) relative: halving eps divides both by ~4 (measured 3.66,
    3.91, 3.98 for eps = 0.1 -> 0.0125), independently of gamma_h (1e-3 and 1e-6 agree).
    """
    T, B, d, p, k, reg = 8, 4, 3, 6, 3, 0.1
    rng = np.random.default_rng(0)
    base = tpref.init_rnn(d, p, k, seed=2)
    W = 0.9 * base["W_hh"]
    V = np.linalg.solve(W.T @ W + reg * np.eye(p), W.T)
    x = rng.normal(size=(T, B, d))
    y = rng.integers(0, k, size=B)

    def rel(a, b):
        return float(np.linalg.norm(a - b) / np.linalg.norm(b))

    for gamma_h in (1e-3, 1e-6):
        errors = []
        for eps in (0.05, 0.025, 0.0125):
            params = dict(base, W_hh=W, W_xh=eps * base["W_xh"])
            dtp = tpref.oracle("dtp", params, x, y, loss="cross_entropy", gamma_h=gamma_h,
                               reg=reg, backend="numpy")
            learned = tpref.oracle("dtp_learned", dict(params, V_hh=V, c_h=np.zeros(p)), x, y,
                                   loss="cross_entropy", gamma_h=gamma_h, backend="numpy")
            lam_err = rel(learned.displacements[1:], dtp.displacements[1:])
            dir_err = max(rel(learned.direction[n], 2.0 / (B * p) * dtp.direction[n])
                          for n in FORWARD)
            errors.append((lam_err, dir_err))
        assert errors[-1][0] < 5e-3 and errors[-1][1] < 5e-3, errors
        for (l0, d0), (l1, d1) in zip(errors, errors[1:]):
            assert 3.5 < l0 / l1 < 4.5 and 3.5 < d0 / d1 < 4.5, errors   # O(eps^2)


# ----------------------------------------------------------------------------------------------
# initialization and bad input


def test_init_rnn_reverse_adds_an_orthogonal_reverse_layer():
    plain = tpref.init_rnn(2, 7, 3, seed=4)
    both = tpref.init_rnn(2, 7, 3, seed=4, reverse=True)
    assert list(both) == ["W_hh", "W_xh", "b_h", "W_hy", "b_y", "V_hh", "c_h"]
    for name in plain:
        assert np.array_equal(plain[name], both[name]), name
    np.testing.assert_allclose(both["V_hh"] @ both["V_hh"].T, np.eye(7), atol=1e-12)
    assert not np.allclose(both["V_hh"], both["W_hh"])
    assert np.array_equal(both["c_h"], np.zeros(7))
    assert tpref.init_rnn(2, 7, 3, seed=4, reverse=True, dtype=np.float32)["V_hh"].dtype == np.float32


def _bad(match, params=None, **kw):
    p0, x, y = learned_case(9)
    args = dict(loss="cross_entropy", gamma_h=0.1, backend="numpy")
    args.update(kw)
    with pytest.raises((ValueError, TypeError), match=match):
        tpref.oracle("dtp_learned", p0 if params is None else params(p0), x, y, **args)


def test_bad_input_names_the_argument():
    _bad(r"V_hh.*c_h.*missing \['V_hh'\].*reverse=True",
         params=lambda p: {k: v for k, v in p.items() if k != "V_hh"})
    _bad(r"missing \['c_h'\]", params=lambda p: {k: v for k, v in p.items() if k != "c_h"})
    _bad(r"params\['V_hh'\] must have shape \(5, 5\)",
         params=lambda p: dict(p, V_hh=np.zeros((5, 4))))
    _bad(r"params\['c_h'\] must have shape \(5,\)", params=lambda p: dict(p, c_h=np.zeros(4)))
    _bad(r"params\['c_h'\].*float32", params=lambda p: dict(p, c_h=p["c_h"].astype(np.float32)))
    _bad(r"params\['V_hh'\] must be finite", params=lambda p: dict(p, V_hh=np.full((5, 5), np.nan)))
    _bad(r"params\['W_hh'\] must have shape", params=lambda p: dict(p, W_hh=np.zeros((5, 4))))
    _bad(r"noise must be a finite number >= 0", noise=-0.1, seed=1)
    _bad(r"noise=0.1 > 0 needs a seed", noise=0.1)
    _bad(r"seed must be an int >= 0", noise=0.1, seed=-1)
    _bad(r"reverse_lr must be a finite number > 0", reverse_lr=0.0)
    _bad(r"gamma_h", gamma_h=None)
    _bad(r"reg does not apply", reg=1.0)
    _bad(r"update must be 'local'", update="through_time")
    _bad(r"cell='rnn' only", cell="gru")
    params, x, y = random_case(0)
    with pytest.raises(ValueError, match="apply to method=.dtp_learned. only"):
        tpref.oracle("tp", params, x, y, loss="cross_entropy", gamma_h=0.1, reg=1.0, noise=0.1,
                     seed=1, backend="numpy")
    with pytest.raises(ValueError, match="unexpected \\['V_hh'"):
        tpref.oracle("tp", learned_case(0)[0], x, y, loss="cross_entropy", gamma_h=0.1,
                     reg=1.0, backend="numpy")
