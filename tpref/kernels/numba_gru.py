"""Numba twins of the GRU oracles in ``tpref.methods.reference_gru`` (backend="numba").

Same formulas, same loops over time, arranged for speed on one core:

- the three gates are stacked in torch's order (r, z, n), so each time step does one
  (B, p) x (p, 3p) product forward and one (B, 3p) x (3p, p) product backward (BLAS via
  ``np.dot`` inside the jitted loops), and the elementwise work is a fused loop;
- the forward (:func:`gru_forward_kernel_vec`) is one fused loop per step: the input term
  x_t W_x^T + b_x as a loop over d (small), one product with Wh^T, and the elementwise gates
  with ``numba_math.vtanh`` (vectorizable, < 2 ulp; its accuracy assumes the kernel's
  ``fastmath=CONTRACT``); its disk cache entry is invalidated by a change to vtanh
  (``jit_cache``);
- the weight gradients sum_t delta_t^T h_{t-1} are one GEMM after the backward loop, over all
  T * B rows;
- the per-gate inverse uses the explicit p x p matrices P_* = (W_h*^T W_h* + r I)^{-1} W_h*^T,
  obtained once per call (``core.regularized_pinv_map``, the simple RNN's encoding of the
  inverse, from the same Cholesky factors as the reference), stacked so that one
  (B, 3p) x (3p, p) product applies all three per step.

Subnormal numbers: back-propagated gradients and TP displacements shrink geometrically over
long sequences (with reg = 1 the per-gate inverse contracts by about 1/2 per step) and reach
the subnormal range (below ``finfo.tiny``: after ~130 steps in float32), where every
arithmetic operation, BLAS included, is 10-100x slower. The kernels flush values below
``core.gate_flush_threshold`` (tiny / eps) to zero (:func:`_ftz`), as CPU frameworks do with
FTZ/DAZ; the absolute change is below 1e-31 (float32), far inside the tolerance policy.

They are tested only by equality with the reference (float64, config.RTOL), see
tests/test_gru_numba.py. Summation orders differ from the reference, so results agree to
rounding, not bit for bit.
"""

import numba
import numpy as np

from ..losses import output_backward
from ..models.inverse import RegularizedInverseError
from .core import gate_flush_threshold, regularized_pinv_map
from .jit_cache import CACHE
from .numba_math import CONTRACT, vtanh, wide_vectors

# ----------------------------------------------------------------------------------------------
# stacking: torch's layout, rows r, z, n


def stack_gru(params):
    """(Wx (3p, d), Wh (3p, p), bx (3p,), bh (3p,)) stacked r, z, n; contiguous."""
    cat = lambda prefix: np.ascontiguousarray(np.concatenate([params[prefix + g] for g in "rzn"]))
    return cat("W_x"), cat("W_h"), cat("b_x"), cat("b_h")


def unstack_gru(grads, dWx, dWh, dbx, dbh):
    """Write stacked gradients back into ``grads`` under the tpref names."""
    p = dWh.shape[1]
    for i, g in enumerate("rzn"):
        rows = slice(i * p, (i + 1) * p)
        grads["W_x" + g] = dWx[rows].copy()
        grads["W_h" + g] = dWh[rows].copy()
        grads["b_x" + g] = dbx[rows].copy()
        grads["b_h" + g] = dbh[rows].copy()
    return grads


# ----------------------------------------------------------------------------------------------
# kernels


@numba.njit(cache=CACHE, error_model="numpy")
def _ftz(v, tiny, zero):
    """v, or zero if |v| < tiny (flush subnormals to zero); a select, so loops vectorize."""
    return v if abs(v) >= tiny else zero


@numba.njit(cache=CACHE, error_model="numpy")
def _sigmoid(u):
    """sigma(u) = (1 + tanh(u/2)) / 2, the reference's overflow-free form."""
    return 0.5 * (1.0 + np.tanh(0.5 * u))


@numba.njit(cache=CACHE, error_model="numpy", fastmath=CONTRACT)
def gru_forward_kernel_vec(x, WxT, bx, WhT, bh, hidden, R, Z, N, G, one):
    """Vectorized GRU forward loop: fills hidden (T+1, B, p) and the gates R, Z, N, G (T, B, p),
    the formulas of :func:`gru_forward_kernel`.

    x (T, B, d); WxT (d, 3p) = Wx^T; bx (3p,); WhT (p, 3p) = Wh^T; bh (3p,); ``one`` a scalar
    of the arrays' dtype (float32 stays float32). tanh is ``numba_math.vtanh`` (< 2 ulp,
    branch-free), so the fused elementwise loop compiles to SIMD code in both dtypes, on
    512-bit registers where the CPU has them (``wide_vectors``); compiled with
    ``fastmath=CONTRACT`` (fused multiply-adds), which vtanh's accuracy assumes. The input
    term x_t Wx^T + bx is made per step as a loop over d (small: 1 on FashionMNIST), not one
    (T B, d) x (d, 3p) NumPy product before the loop, which cost more than this whole kernel.
    """
    wide_vectors()
    T, B, d = x.shape
    p = WhT.shape[0]
    half = one / (one + one)
    b_r, b_z, b_n = bh[:p], bh[p:2 * p], bh[2 * p:]
    xs = np.empty((B, 3 * p), dtype=hidden.dtype)                 # x_t Wx^T + bx
    for t in range(1, T + 1):
        s = t - 1
        for b in range(B):
            row = xs[b]
            x0 = x[s, b, 0]
            w0 = WxT[0]
            for j in range(3 * p):
                row[j] = x0 * w0[j]
            for k in range(1, d):
                xk = x[s, b, k]
                wk = WxT[k]
                for j in range(3 * p):
                    row[j] += xk * wk[j]
            for j in range(3 * p):
                row[j] += bx[j]
        hp = np.dot(hidden[s], WhT)                               # (B, 3p)
        for b in range(B):
            x_r, x_z, x_n = xs[b, :p], xs[b, p:2 * p], xs[b, 2 * p:]
            h_r, h_z, h_n = hp[b, :p], hp[b, p:2 * p], hp[b, 2 * p:]
            r_row, z_row, n_row, g_row = R[s, b], Z[s, b], N[s, b], G[s, b]
            prev, h_row = hidden[s, b], hidden[t, b]
            for i in range(p):
                r = half * (one + vtanh(half * (x_r[i] + (h_r[i] + b_r[i]))))
                z = half * (one + vtanh(half * (x_z[i] + (h_z[i] + b_z[i]))))
                g = h_n[i] + b_n[i]
                n = vtanh(x_n[i] + r * g)
                h_row[i] = n + z * (prev[i] - n)                  # (1 - z) n + z h_{t-1}
                r_row[i] = r
                z_row[i] = z
                n_row[i] = n
                g_row[i] = g


@numba.njit(cache=CACHE, error_model="numpy")
def gru_forward_kernel(xproj, WhT, bh, hidden, R, Z, N, G):
    """GRU forward loop: fills hidden (T+1, B, p) and the gates R, Z, N, G (T, B, p).

    xproj (T, B, 3p) = x_t W_x^T + b_x (all steps, precomputed); WhT (p, 3p) = Wh^T; bh (3p,).
    Per step: hp = h_{t-1} WhT (B, 3p); r = sigma(xr + hp_r + b_hr); z likewise;
    g = hp_n + b_hn; n = tanh(xn + r g); h_t = (1 - z) n + z h_{t-1}.
    """
    T, B, _ = xproj.shape
    p = WhT.shape[0]
    for t in range(1, T + 1):
        s = t - 1
        hp = np.dot(hidden[s], WhT)                               # (B, 3p)
        for b in range(B):
            for i in range(p):
                r = _sigmoid(xproj[s, b, i] + (hp[b, i] + bh[i]))
                z = _sigmoid(xproj[s, b, p + i] + (hp[b, p + i] + bh[p + i]))
                g = hp[b, 2 * p + i] + bh[2 * p + i]
                n = np.tanh(xproj[s, b, 2 * p + i] + r * g)
                hidden[t, b, i] = (1.0 - z) * n + z * hidden[s, b, i]
                R[s, b, i] = r
                Z[s, b, i] = z
                N[s, b, i] = n
                G[s, b, i] = g


@numba.njit(cache=CACHE, error_model="numpy")
def gru_backward_kernel(Wh, hidden, R, Z, N, G, grad_h, carry, Dh, DN, one, tiny):
    """Backward loop: fills the deltas Dh = [da_r, da_z, dg] (T, B, 3p) and DN = da_n (T, B, p),
    from which the weight gradients are single GEMMs (W_x* use [da_r, da_z, da_n]).

    grad_h (T+1, B, p) explicit dL/dh_t. ``carry`` = 1 (through time): the total derivative
    gh_{t-1} = gh_t z + Dh_t Wh (Wh (3p, p)) is carried back (BPTT); ``carry`` = 0: h_{t-1} is
    held fixed. ``one``, ``tiny``, ``carry`` are scalars of the arrays' dtype, so float32 stays
    float32. The inner loop is branch-free and works on 1-D row views (one per gate block) so
    that LLVM vectorizes it.
    """
    T = R.shape[0]
    B = R.shape[1]
    p = R.shape[2]
    zero = one - one
    gh = np.zeros((B, p), dtype=hidden.dtype)
    for t in range(T, 0, -1):
        s = t - 1
        for b in range(B):
            d_r, d_z, d_g = Dh[s, b, :p], Dh[s, b, p:2 * p], Dh[s, b, 2 * p:]
            d_n, g_row, gh_row, h_row = DN[s, b], grad_h[t, b], gh[b], hidden[s, b]
            r_row, z_row, n_row, gg_row = R[s, b], Z[s, b], N[s, b], G[s, b]
            for i in range(p):
                ghi = _ftz(g_row[i] + carry * gh_row[i], tiny, zero)
                r = r_row[i]
                z = z_row[i]
                n = n_row[i]
                da_n = _ftz(ghi * (one - z) * (one - n * n), tiny, zero)
                d_r[i] = _ftz(da_n * gg_row[i] * r * (one - r), tiny, zero)
                d_z[i] = _ftz(ghi * (h_row[i] - n) * z * (one - z), tiny, zero)
                d_g[i] = _ftz(da_n * r, tiny, zero)
                d_n[i] = da_n
                gh_row[i] = ghi * z                               # carry term of gh_{t-1}
        if carry != zero:
            gh += np.dot(Dh[s], Wh)                               # (B, p)


@numba.njit(cache=CACHE, error_model="numpy")
def per_gate_kernel(Pstack, hidden, R, Z, N, G, lam, reg, eps, one, tiny, authors):
    """Per-gate linearized inverse, lam[t] -> lam[t-1] for t = T..1 (lam (T+1, B, p), lam[T] set).

    Pstack (3p, p) = [P_r^T; P_z^T; P_n^T]. Per step: U = [u_r, u_z, u_n] (B, 3p) with
    u_n = (1-z) r n' lam, u_z = (h_{t-1} - n) lam / (z~(1-z~)), u_r = (1-z) n' g lam / (r~(1-r~));
    lam_{t-1} = z / (z^2 + reg) lam + U Pstack. ``authors`` (bool): the authors' code instead
    (``reference_gru.authors_per_gate_inverse_step``): z for 1 - z in u_n, u_r, n - h_{t-1}
    in u_z, and the plain carry (1 - z) lam. ``reg``, ``eps``, ``one``, ``tiny``: scalars of
    the arrays' dtype.
    """
    T = R.shape[0]
    B = R.shape[1]
    p = R.shape[2]
    zero = one - one
    U = np.empty((B, 3 * p), dtype=lam.dtype)
    for t in range(T, 0, -1):
        s = t - 1
        for b in range(B):
            r_row, z_row, n_row, gg_row = R[s, b], Z[s, b], N[s, b], G[s, b]
            h_row, l_row = hidden[s, b], lam[t, b]
            u_r, u_z, u_n = U[b, :p], U[b, p:2 * p], U[b, 2 * p:]
            for i in range(p):
                r = r_row[i]
                z = z_row[i]
                n = n_row[i]
                lt = l_row[i]
                zc = min(max(z, eps), one - eps)
                rc = min(max(r, eps), one - eps)
                if authors:                                       # their convention
                    dn = z * (one - n * n)
                    dh = n - h_row[i]
                else:                                             # PyTorch's
                    dn = (one - z) * (one - n * n)
                    dh = h_row[i] - n
                u_r[i] = _ftz(dn * gg_row[i] * lt / (rc * (one - rc)), tiny, zero)
                u_z[i] = _ftz(dh * lt / (zc * (one - zc)), tiny, zero)
                u_n[i] = _ftz(dn * r * lt, tiny, zero)
        out = np.dot(U, Pstack)                                   # (B, p)
        for b in range(B):
            z_row, l_row, o_row, prev = Z[s, b], lam[t, b], out[b], lam[s, b]
            for i in range(p):
                z = z_row[i]
                carry = (one - z) if authors else z / (z * z + reg)
                prev[i] = _ftz(carry * l_row[i] + o_row[i], tiny, zero)


@numba.njit(cache=CACHE, error_model="numpy")
def exact_kernel(Wh, hidden, R, Z, N, G, lam, reg):
    """Exact linearized regularized inverse, lam_{t-1} = (J^T J + reg I)^{-1} J^T lam_t per step
    and sample (J = dh_t/dh_{t-1}, formed explicitly). Returns False if J^T J + reg I is not
    positive definite at some step (the caller raises), True otherwise.
    """
    T = R.shape[0]
    B = R.shape[1]
    p = R.shape[2]
    J = np.empty((p, p), dtype=lam.dtype)
    for t in range(T, 0, -1):
        s = t - 1
        for b in range(B):
            for i in range(p):
                r = R[s, b, i]
                z = Z[s, b, i]
                n = N[s, b, i]
                dn = (1.0 - z) * (1.0 - n * n)
                c_r = dn * G[s, b, i] * r * (1.0 - r)
                c_z = (hidden[s, b, i] - n) * z * (1.0 - z)
                c_n = dn * r
                for j in range(p):
                    J[i, j] = c_r * Wh[i, j] + c_z * Wh[p + i, j] + c_n * Wh[2 * p + i, j]
                J[i, i] += z
            M = np.dot(J.T, J)
            for i in range(p):
                M[i, i] += reg
            rhs = np.dot(J.T, lam[t, b])
            # Cholesky by hand (M = L L^T), to report failure instead of raising in nopython
            L = np.zeros((p, p), dtype=lam.dtype)
            for j in range(p):
                acc = M[j, j]
                for q in range(j):
                    acc -= L[j, q] * L[j, q]
                if not acc > 0.0:
                    return False
                L[j, j] = np.sqrt(acc)
                for i in range(j + 1, p):
                    acc = M[i, j]
                    for q in range(j):
                        acc -= L[i, q] * L[j, q]
                    L[i, j] = acc / L[j, j]
            y = np.empty(p, dtype=lam.dtype)
            for i in range(p):
                acc = rhs[i]
                for q in range(i):
                    acc -= L[i, q] * y[q]
                y[i] = acc / L[i, i]
            for i in range(p - 1, -1, -1):
                acc = y[i]
                for q in range(i + 1, p):
                    acc -= L[q, i] * lam[s, b, q]
                lam[s, b, i] = acc / L[i, i]
    return True


# ----------------------------------------------------------------------------------------------
# drivers: same contract as reference_gru


def gru_forward_numba(params, x, simd=True):
    """Fast twin of ``tpref.models.gru.gru_forward``: (hidden, cache).

    ``simd=True`` (default) runs the fused jitted loop :func:`gru_forward_kernel_vec` (tanh by
    ``numba_math.vtanh``, < 2 ulp, vectorized) in the arrays' dtype. ``simd=False`` runs the
    plain jitted loop :func:`gru_forward_kernel` with libm's scalar tanh (this numba build has
    no SVML), the straightforward twin. Both give the reference's values to rounding
    (tests/test_gru_numba.py).
    """
    Wx, Wh, bx, bh = stack_gru(params)
    T, B, d = x.shape
    p = Wh.shape[1]
    dt = Wh.dtype
    hidden = np.zeros((T + 1, B, p), dtype=dt)
    WhT = np.ascontiguousarray(Wh.T)                                  # (p, 3p)
    cache = {name: np.empty((T, B, p), dtype=dt) for name in ("r", "z", "n", "g")}
    gates = (cache["r"], cache["z"], cache["n"], cache["g"])
    if simd:
        gru_forward_kernel_vec(np.ascontiguousarray(x, dtype=dt), np.ascontiguousarray(Wx.T),
                               bx, WhT, bh, hidden, *gates, dt.type(1))
    else:
        xproj = (x.reshape(T * B, d) @ Wx.T + bx).reshape(T, B, 3 * p)    # (T, B, 3p)
        gru_forward_kernel(xproj, WhT, bh, hidden, *gates)
    return hidden, cache


def _transition_grads(params, x, hidden, cache, grad_h, through_time):
    """Numba twin of ``reference_gru.gru_transition_backward``."""
    _, Wh, _, _ = stack_gru(params)
    T, B, d = x.shape
    p = Wh.shape[1]
    Dh = np.empty((T, B, 3 * p), dtype=Wh.dtype)                  # [da_r, da_z, dg]
    DN = np.empty((T, B, p), dtype=Wh.dtype)                      # da_n
    one = Wh.dtype.type(1)
    gru_backward_kernel(Wh, hidden, cache["r"], cache["z"], cache["n"], cache["g"],
                        np.ascontiguousarray(grad_h), one if through_time else one - one, Dh, DN,
                        one, gate_flush_threshold(Wh.dtype))
    Dh2 = Dh.reshape(T * B, 3 * p)
    DN2 = DN.reshape(T * B, p)
    x2 = x.reshape(T * B, d)
    dWh = Dh2.T @ hidden[:-1].reshape(T * B, p)                   # (3p, p) one GEMM
    dbh = Dh2.sum(axis=0)
    dWx = (x2.T @ Dh2).T                                          # (3p, d); rows n fixed below
    dbx = dbh.copy()
    dWx[2 * p:] = (x2.T @ DN2).T                                  # W_xn uses da_n, not dg
    dbx[2 * p:] = DN2.sum(axis=0)
    return unstack_gru({}, dWx, dWh, dbx, dbh)


def _propagate(params, hidden, cache, lam_T, reg, eps, inverse):
    """Numba twin of ``reference_gru.gru_propagate_displacements``."""
    lam = np.empty_like(hidden)
    lam[-1] = lam_T
    gates = (cache["r"], cache["z"], cache["n"], cache["g"])
    if inverse in ("per_gate", "authors"):
        Pstack = np.concatenate([regularized_pinv_map(params["W_h" + g], reg)
                                 for g in "rzn"])                 # (3p, p) rows P_*^T
        dt = hidden.dtype.type
        per_gate_kernel(np.ascontiguousarray(Pstack, dtype=hidden.dtype), hidden, *gates, lam,
                        dt(reg), dt(eps), dt(1), gate_flush_threshold(hidden.dtype),
                        inverse == "authors")
    else:
        _, Wh, _, _ = stack_gru(params)
        if not exact_kernel(Wh, hidden, *gates, lam, reg):
            raise RegularizedInverseError(
                f"J_t^T J_t + reg*I is not positive definite with reg={reg!r}: the GRU "
                f"Jacobian is singular; use reg > 0")
    return lam


def gru_oracle(method, params, x, y, *, loss, gamma_h, reg, update, eps, inverse):
    """Numba twin of ``reference_gru.gru_oracle`` (same arguments, same returned dict)."""
    hidden, cache = gru_forward_numba(params, x)
    value, out, direction, g_T = output_backward(params, hidden[-1], y, loss)
    if method == "bp":
        grad_h = np.zeros_like(hidden)
        grad_h[-1] = g_T
        direction.update(_transition_grads(params, x, hidden, cache, grad_h, True))
        lam = None
    else:
        lam = _propagate(params, hidden, cache, -gamma_h * g_T, reg, eps, inverse)   # Eq. (1)-(2)
        direction.update(_transition_grads(params, x, hidden, cache, -lam,
                                           update == "through_time"))
    direction = {name: direction[name] for name in params}
    return {"loss": value, "output": out, "hidden": hidden, "displacements": lam,
            "direction": direction}
