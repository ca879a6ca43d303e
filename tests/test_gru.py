"""GRU reference: validation, init, mapping, BP by finite differences, TP structure, and the
regimes of docs/gru.md where the per-gate and the exact linearized inverse coincide."""

import numpy as np
import pytest

import tpref
from tpref.config import GRU_PARAM_NAMES
from tpref.methods.reference_gru import (exact_inverse_step, gru_factors, gru_jacobian,
                                         per_gate_inverse_step)
from tpref.models.gru import gru_forward, gru_params_from_torch, gru_params_to_torch

from _gru_util import assert_close, problem

TP = dict(gamma_h=0.1, reg=0.7)


def call(method, params, x, y, loss="cross_entropy", **kw):
    return tpref.oracle(method, params, x, y, loss=loss, cell="gru", **kw)


# ----------------------------------------------------------------------------------------------
# parameters, init, validation, mapping


def test_init_is_seeded_orthogonal_and_applied():
    a = tpref.init_gru(1, 8, 3, seed=5)
    b = tpref.init_gru(1, 8, 3, seed=5)
    c = tpref.init_gru(1, 8, 3, seed=6)
    assert tuple(a) == GRU_PARAM_NAMES
    for name in GRU_PARAM_NAMES:
        assert np.array_equal(a[name], b[name]), name
    assert not np.array_equal(a["W_hn"], c["W_hn"])
    for gate in "rzn":
        W = a["W_h" + gate]
        assert_close(W.T @ W, np.eye(8), f"W_h{gate} orthogonal")
        assert_close(np.linalg.norm(a["W_x" + gate]), 1.0, f"W_x{gate} unit column")
        assert not np.any(a["b_x" + gate]) and not np.any(a["b_h" + gate])
    assert not np.allclose(a["W_hr"], a["W_hz"])                   # independent blocks
    assert_close(a["W_hy"] @ a["W_hy"].T, np.eye(3), "W_hy orthonormal rows")
    assert tpref.init_gru(2, 4, 3, seed=0, dtype=np.float32)["W_hz"].dtype == np.float32


def test_torch_mapping_round_trip_and_layout():
    params, _, _ = problem()
    st = gru_params_to_torch(params)
    p = params["W_hr"].shape[0]
    assert st["gru"]["weight_hh_l0"].shape == (3 * p, p)
    assert np.array_equal(st["gru"]["weight_hh_l0"][p:2 * p], params["W_hz"])   # rows r, z, n
    assert np.array_equal(st["gru"]["bias_ih_l0"][2 * p:], params["b_xn"])
    back = gru_params_from_torch(st["gru"], st["linear"])
    for name in GRU_PARAM_NAMES:
        assert np.array_equal(back[name], params[name]), name


@pytest.mark.parametrize("mutate, match", [
    (lambda P: P.pop("W_hz"), "missing \\['W_hz'\\]"),
    (lambda P: P.update(W_hh=P["W_hr"]), "unexpected \\['W_hh'\\]"),
    (lambda P: P.update(W_hn=P["W_hn"][:, :-1]), "params\\['W_hn'\\] must have shape"),
    (lambda P: P.update(b_xz=np.zeros(7)), "params\\['b_xz'\\] must have shape"),
    (lambda P: P.update(W_xn=np.zeros((4, 2))), "params\\['W_xn'\\] must have shape"),
])
def test_bad_params_name_the_argument(mutate, match):
    params, x, y = problem()
    mutate(params)
    with pytest.raises(ValueError, match=match):
        call("bp", params, x, y)


def test_bad_options_name_the_argument():
    params, x, y = problem()
    with pytest.raises(ValueError, match="cell"):
        tpref.oracle("bp", params, x, y, loss="cross_entropy", cell="lstm")
    with pytest.raises(ValueError, match="gru_inverse"):
        call("tp", params, x, y, gru_inverse="fast", **TP)
    with pytest.raises(ValueError, match="dtp"):
        call("dtp", params, x, y, **TP)
    with pytest.raises(ValueError, match="activation"):
        call("bp", params, x, y, activation="sigmoid")
    with pytest.raises(ValueError, match="x must have shape"):
        call("bp", params, x[:, :, :2], y)
    rnn = tpref.init_rnn(3, 4, 3, seed=0)
    with pytest.raises(ValueError, match="GRU params"):
        call("bp", rnn, x, y)
    with pytest.raises(ValueError, match="gru_state misses"):
        gru_params_from_torch({}, {})


def test_forward_equations_one_step_by_hand():
    params, x, _ = problem(T=1, B=1)
    h, cache = gru_forward(params, x)
    s = lambda u: 1 / (1 + np.exp(-u))
    xv, P = x[0, 0], params
    r = s(P["W_xr"] @ xv + P["b_xr"] + P["b_hr"])
    z = s(P["W_xz"] @ xv + P["b_xz"] + P["b_hz"])
    n = np.tanh(P["W_xn"] @ xv + P["b_xn"] + r * P["b_hn"])
    assert_close(h[1, 0], (1 - z) * n, "h_1 = (1 - z) n + z h_0 with h_0 = 0")
    assert_close(cache["r"][0, 0], r, "r")


# ----------------------------------------------------------------------------------------------
# BP: central finite differences (independent of torch)


def _loss(params, x, y, loss):
    return call("bp", params, x, y, loss=loss).loss


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_bp_matches_central_differences(loss):
    params, x, y = problem(loss=loss, seed=3)
    res = call("bp", params, x, y, loss=loss)
    rng = np.random.default_rng(7)
    eps = 1e-6
    for name in GRU_PARAM_NAMES:                                  # one direction per parameter
        u = rng.normal(size=params[name].shape)
        plus = {**params, name: params[name] + eps * u}
        minus = {**params, name: params[name] - eps * u}
        fd = (_loss(plus, x, y, loss) - _loss(minus, x, y, loss)) / (2 * eps)
        exact = float(np.sum(res.direction[name] * u))
        assert abs(fd - exact) <= 1e-7 * max(1.0, abs(exact)), f"{name}: fd {fd} vs bp {exact}"


def test_jacobian_matches_central_differences():
    params, x, _ = problem(T=1, B=2, seed=4)
    h_prev = np.random.default_rng(0).normal(size=(2, 4)) * 0.5

    def step(h):
        P = params
        r = 1 / (1 + np.exp(-(x[0] @ P["W_xr"].T + P["b_xr"] + h @ P["W_hr"].T + P["b_hr"])))
        z = 1 / (1 + np.exp(-(x[0] @ P["W_xz"].T + P["b_xz"] + h @ P["W_hz"].T + P["b_hz"])))
        g = h @ P["W_hn"].T + P["b_hn"]
        n = np.tanh(x[0] @ P["W_xn"].T + P["b_xn"] + r * g)
        return (1 - z) * n + z * h, (r, z, n, g)

    _, (r, z, n, g) = step(h_prev)
    J = gru_jacobian(params, h_prev, r, z, n, g)
    eps = 1e-6
    for j in range(4):
        e = np.zeros(4)
        e[j] = eps
        col = (step(h_prev + e)[0] - step(h_prev - e)[0]) / (2 * eps)   # (B, p)
        assert_close(J[:, :, j], col, f"column {j} of dh_t/dh_(t-1)", rtol=1e-8)


# ----------------------------------------------------------------------------------------------
# TP: structure (Eq. 1-3)


@pytest.mark.parametrize("inverse", ["per_gate", "exact"])
def test_tp_first_target_and_output_layer(inverse):
    params, x, y = problem()
    tp = call("tp", params, x, y, gru_inverse=inverse, **TP)
    bp = call("bp", params, x, y)
    # Eq. (1): lam_T = -gamma_h dl/dh_T, and dl/dh_T = (dl/dout) W_hy
    from tpref.losses import loss_and_grad
    _, d_out = loss_and_grad("cross_entropy", tp.output, y)
    assert_close(tp.displacements[-1], -TP["gamma_h"] * d_out @ params["W_hy"], "lam_T")
    assert_close(tp.targets, tp.hidden + tp.displacements, "v = h + lam")
    for name in ("W_hy", "b_y"):
        assert_close(tp.direction[name], bp.direction[name], f"{name}: plain gradient")


@pytest.mark.parametrize("update", ["local", "through_time"])
def test_tp_update_is_gradient_of_target_loss(update):
    """Eq. (3): direction = d/dtheta sum_t ||f_t(h_{t-1}) - v_t||^2 / 2 with v fixed (and
    h_{t-1} fixed for "local"), checked by central differences."""
    params, x, y = problem(seed=5)
    res = call("tp", params, x, y, update=update, **TP)
    v = res.targets
    h_fixed = res.hidden

    def target_loss(P):
        if update == "through_time":
            h = gru_forward(P, x)[0]
            return 0.5 * np.sum((h[1:] - v[1:]) ** 2)
        total = 0.0
        for t in range(1, x.shape[0] + 1):                         # one step from fixed h_{t-1}
            total += 0.5 * np.sum((_one_step(P, x[t - 1], h_fixed[t - 1]) - v[t]) ** 2)
        return total

    rng = np.random.default_rng(8)
    eps = 1e-6
    for name in GRU_PARAM_NAMES[:-2]:
        u = rng.normal(size=params[name].shape)
        fd = (target_loss({**params, name: params[name] + eps * u})
              - target_loss({**params, name: params[name] - eps * u})) / (2 * eps)
        exact = float(np.sum(res.direction[name] * u))
        assert abs(fd - exact) <= 1e-7 * max(1e-3, abs(exact)), f"{name}: fd {fd} vs {exact}"


def _one_step(P, x_t, h):
    """h_t = f_t(h) for a batch of rows, written out once more (independent of gru_forward)."""
    s = lambda u: 0.5 * (1 + np.tanh(0.5 * u))
    r = s(x_t @ P["W_xr"].T + P["b_xr"] + h @ P["W_hr"].T + P["b_hr"])
    z = s(x_t @ P["W_xz"].T + P["b_xz"] + h @ P["W_hz"].T + P["b_hz"])
    n = np.tanh(x_t @ P["W_xn"].T + P["b_xn"] + r * (h @ P["W_hn"].T + P["b_hn"]))
    return (1 - z) * n + z * h


def test_exact_inverse_solves_the_regularized_least_squares():
    """lam_{t-1} minimizes ||J delta - lam_t||^2 + reg ||delta||^2: its gradient vanishes."""
    params, x, y = problem(seed=6)
    res = call("tp", params, x, y, gru_inverse="exact", **TP)
    hidden, cache = gru_forward(params, x)
    for t in range(x.shape[0], 0, -1):
        s = t - 1
        J = gru_jacobian(params, hidden[s], cache["r"][s], cache["z"][s], cache["n"][s], cache["g"][s])
        lam_prev, lam_t = res.displacements[s], res.displacements[t]
        resid = np.einsum("bij,bj->bi", J, lam_prev) - lam_t
        grad = np.einsum("bji,bj->bi", J, resid) + TP["reg"] * lam_prev
        assert np.max(np.abs(grad)) <= 1e-13 * np.max(np.abs(lam_t)), f"normal equations, t={t}"


# ----------------------------------------------------------------------------------------------
# per-gate vs exact: the regimes of docs/gru.md


def _gates(params, x):
    hidden, cache = gru_forward(params, x)
    s = x.shape[0] - 1
    return hidden[s], cache["r"][s], cache["z"][s], cache["n"][s], cache["g"][s]


def _both(params, x, lam, reg, eps=1e-3):
    gates = _gates(params, x)
    pg = per_gate_inverse_step(params, gru_factors(params, reg), *gates, lam, reg, eps)
    ex = exact_inverse_step(params, *gates, lam, reg)
    return pg, ex, gates


def test_regime_carry_only_coincide_and_use_z_not_one_minus_z():
    """R1: W_hr = W_hz = W_hn = 0 -> J = diag(z); both give z / (z^2 + reg) * lam."""
    params, x, _ = problem(T=3, B=4, seed=9, noise=1.0)
    for gate in "rzn":
        params["W_h" + gate] = np.zeros_like(params["W_h" + gate])
    lam = np.random.default_rng(1).normal(size=(4, 4))
    for reg in (1e-2, 1.0, 10.0):
        pg, ex, (_, _, z, _, _) = _both(params, x, lam, reg)
        assert_close(pg, ex, f"per_gate vs exact, reg={reg}")
        assert_close(ex, z / (z * z + reg) * lam, "carry of PyTorch's convention")
        assert np.max(np.abs(ex - (1 - z) / ((1 - z) ** 2 + reg) * lam)) > 1e-3   # not 1 - z


@pytest.mark.parametrize("reg", [1e-3, 0.5, 10.0])
def test_regime_linear_candidate_coincide(reg):
    """R2: W_hr = W_hz = 0, z -> 0, r -> 1, n -> 0 (the GRU is the linear RNN
    h_t = W_hn h_{t-1} + W_xn x_t): both give (W_hn^T W_hn + reg I)^{-1} W_hn^T lam."""
    params, x, _ = problem(T=4, B=3, seed=10, noise=1.0)
    params["W_hr"][:] = 0
    params["W_hz"][:] = 0
    params["b_xz"][:], params["b_hz"][:] = -40.0, 0.0                 # z ~ 4e-18
    params["b_xr"][:], params["b_hr"][:] = 40.0, 0.0                  # r = 1 in float64
    params["b_xn"][:], params["b_hn"][:] = 0.0, 0.0
    x = x * 1e-9                                                      # n, h ~ 1e-9: tanh' = 1
    lam = np.random.default_rng(2).normal(size=(3, 4))
    pg, ex, _ = _both(params, x, lam, reg)
    W = params["W_hn"]
    rnn_like = np.linalg.solve(W.T @ W + reg * np.eye(4), W.T @ lam.T).T
    assert_close(pg, rnn_like, "per_gate = simple-RNN regularized inverse")
    assert_close(ex, rnn_like, "exact = simple-RNN regularized inverse")


def test_regime_large_reg_first_order_agreement():
    """R3: W_hr = W_hz = 0, any gates: per_gate - exact = O(1/reg^2) while both are O(1/reg),
    so reg * (per_gate - exact) -> 0 like 1/reg."""
    params, x, _ = problem(T=3, B=4, seed=11, noise=1.0)
    params["W_hr"][:] = 0
    params["W_hz"][:] = 0
    lam = np.random.default_rng(3).normal(size=(4, 4))
    rel = []
    for reg in (1e3, 1e4, 1e5):
        pg, ex, _ = _both(params, x, lam, reg)
        rel.append(np.max(np.abs(pg - ex)) / np.max(np.abs(ex)))
    assert rel[0] < 1e-2
    assert 5 < rel[0] / rel[1] < 20 and 5 < rel[1] / rel[2] < 20, rel


def test_outside_the_regimes_they_differ():
    """With reset/update-gate paths (W_hz != 0) the per-gate scheme inverts sigma' where the
    exact inverse multiplies by it: they stay apart even for large reg."""
    params, x, _ = problem(T=3, B=4, seed=12, noise=1.0)
    lam = np.random.default_rng(4).normal(size=(4, 4))
    pg, ex, _ = _both(params, x, lam, 1e5)
    assert np.max(np.abs(pg - ex)) / np.max(np.abs(ex)) > 0.5


def test_exact_inverse_contracts_per_gate_can_amplify():
    """docs/gru.md 3.5: ||exact step|| <= ||lam_t|| / (2 sqrt(reg)) for any parameters; the
    per-gate step divides by sigma' of saturated gates and can amplify (here by > 10)."""
    params, x, _ = problem(T=3, B=4, seed=13, noise=1.0)
    params["b_xz"][:] = 8.0                                          # z ~ 1: sigma'(z) ~ 3e-4
    lam = np.random.default_rng(5).normal(size=(4, 4))
    for reg in (0.25, 1.0, 4.0):
        pg, ex, _ = _both(params, x, lam, reg)
        bound = np.linalg.norm(lam, axis=1) / (2 * np.sqrt(reg))
        assert np.all(np.linalg.norm(ex, axis=1) <= bound * (1 + 1e-12)), reg
    pg, _, _ = _both(params, x, lam, 1.0)
    assert np.max(np.linalg.norm(pg, axis=1) / np.linalg.norm(lam, axis=1)) > 10


# ----------------------------------------------------------------------------------------------
# gru_inverse="authors": the per-gate scheme as the authors' code computes it (docs/gru.md 3.3)


def _negate_update_gate(params):
    """The same GRU written in the other convention: z -> 1 - z by negating z's pre-activation."""
    return {k: (-v if k in ("W_xz", "W_hz", "b_xz", "b_hz") else v) for k, v in params.items()}


@pytest.mark.parametrize("reg", [0.3, 1.0, 10.0])
def test_authors_step_is_per_gate_with_negated_gate_and_plain_carry(reg):
    """The statement checked by running the authors' code on tpref's weights: with the update
    gate negated to match conventions and the carry made plain, their step is tpref's per-gate
    step. Here tpref's per_gate_inverse_step (unchanged) is the independent implementation."""
    from tpref.methods.reference_gru import authors_per_gate_inverse_step
    params, x, _ = problem(T=3, B=4, seed=14, noise=1.0)
    h_prev, r, z, n, g = _gates(params, x)
    lam = np.random.default_rng(6).normal(size=(4, 4))
    theirs = authors_per_gate_inverse_step(params, gru_factors(params, reg), h_prev, r, z, n, g,
                                           lam, reg, 1e-3)
    neg = _negate_update_gate(params)
    zn = 1.0 - z                                                   # their gate, our convention
    ours = per_gate_inverse_step(neg, gru_factors(neg, reg), h_prev, r, zn, n, g, lam, reg, 1e-3)
    ours_plain = ours - zn / (zn * zn + reg) * lam + zn * lam      # carry: plain coefficient
    assert_close(theirs, ours_plain, f"authors vs per_gate(negated z, plain carry), reg={reg}")
    assert np.max(np.abs(theirs - per_gate_inverse_step(
        params, gru_factors(params, reg), h_prev, r, z, n, g, lam, reg, 1e-3))) > 1e-2


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_authors_carry_only_by_hand(backend):
    """W_h* = 0: every P_* is 0 and their step is the plain carry of their convention,
    lam_{t-1} = (1 - z_t) lam_t (tpref's per_gate: z / (z^2 + reg) lam_t)."""
    params, x, y = problem(T=5, B=3, seed=15, noise=1.0)
    for gate in "rzn":
        params["W_h" + gate][:] = 0.0
    z = gru_forward(params, x)[1]["z"]                            # (T, B, p)
    res = call("tp", params, x, y, gru_inverse="authors", backend=backend, **TP)
    lam = res.displacements
    assert_close(lam[:-1], (1.0 - z) * lam[1:], f"{backend}: lam_(t-1) = (1 - z_t) lam_t")


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("path", ["n", "z", "r"])
def test_authors_one_gate_path_by_hand(backend, path):
    """Only W_h<path> nonzero: their step is the plain carry plus that path's regularized
    pseudo-inverse, written here with np.linalg.solve and their coefficients (z for 1 - z,
    n - h_{t-1} for h_{t-1} - n, sigma' of the clipped gate inverted)."""
    params, x, y = problem(T=4, B=3, seed=16, noise=1.0)
    for gate in "rzn":
        if gate != path:
            params["W_h" + gate][:] = 0.0
    reg = TP["reg"]
    res = call("tp", params, x, y, gru_inverse="authors", backend=backend, **TP)
    hidden, cache = gru_forward(params, x)
    W = params["W_h" + path]
    for t in range(x.shape[0], 0, -1):
        s = t - 1
        h, r, z, n, g = (hidden[s], cache["r"][s], cache["z"][s], cache["n"][s], cache["g"][s])
        lam_t = res.displacements[t]
        zc, rc = np.clip(z, 1e-3, 1 - 1e-3), np.clip(r, 1e-3, 1 - 1e-3)
        u = {"n": z * r * (1 - n ** 2) * lam_t,
             "z": (n - h) * lam_t / (zc * (1 - zc)),
             "r": z * (1 - n ** 2) * g * lam_t / (rc * (1 - rc))}[path]
        expected = (1 - z) * lam_t + np.linalg.solve(W.T @ W + reg * np.eye(4), W.T @ u.T).T
        assert_close(res.displacements[s], expected, f"{backend}, path {path}, t={t}")


def test_unknown_gru_inverse_lists_the_choices():
    params, x, y = problem()
    with pytest.raises(ValueError, match="gru_inverse.*authors"):
        call("tp", params, x, y, gru_inverse="author", **TP)
