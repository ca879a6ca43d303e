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
- the backward (:func:`_backward_pass`) is one pass over t = T..1 for BP and TP: each step's
  deltas, then (TP, per-gate inverse) lam_{t-1} from lam_t, while step t's gates are in cache;
  the parameter directions sum_t delta_t^T [h_{t-1} | x_t | 1] are made by blocks of
  config.PRODUCT_BLOCK_ROWS rows (time steps x batch) while the block's deltas are in cache,
  one GEMM each added into the accumulators by BLAS (``numba_blas.add_tn_product``, beta = 1):
  no (T, B, 3p) delta array, and TP's local update (h_{t-1} held fixed) does one per-step
  product (its inverse), as BP does (its recursion);
- the per-gate inverse uses the explicit p x p matrices P_* = (W_h*^T W_h* + r I)^{-1} W_h*^T,
  obtained once per call (``core.regularized_pinv_map``, the simple RNN's encoding of the
  inverse, from the same Cholesky factors as the reference), stacked so that one
  (B, 3p) x (3p, p) product applies all three per step;
- no per-step allocation (every product writes into a buffer made before the loop); the
  hidden states and displacements are ``workspace`` buffers (reused by a later call once the
  caller has dropped the result, never while it holds it), the gates one scratch buffer; the
  (p, 3p) matrices multiplied at every step start on 64-byte boundaries; BLAS runs with
  config.BLAS_THREADS threads (``core.blas_threads``).

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

from ..config import PRODUCT_BLOCK_ROWS
from ..losses import output_backward
from ..models.inverse import RegularizedInverseError
from . import workspace
from .core import blas_threads, gate_flush_threshold, regularized_pinv_map
from .jit_cache import CACHE
from .numba_blas import add_tn_product
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
    hp = np.empty((B, 3 * p), dtype=hidden.dtype)                 # h_{t-1} Wh^T
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
        np.dot(hidden[s], WhT, hp)                                # (B, 3p)
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
    hp = np.empty((B, 3 * p), dtype=hidden.dtype)                 # h_{t-1} Wh^T
    for t in range(1, T + 1):
        s = t - 1
        np.dot(hidden[s], WhT, hp)                                # (B, 3p)
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
def _deltas_step(E, esign, gh, rec, carry, H, R, Z, N, G, D, DN, one, tiny):
    """One backward step's element loops, all B samples: the deltas D = [da_r, da_z, dg]
    (B, 3p) and DN = da_n (B, p) from the total derivative ghi = esign E + carry (gh + rec)
    (flushed), and gh <- ghi z (the carry term of gh_{t-1}; rec = delta_t W_h is added at the
    next step). E, gh, rec, H (= h_{t-1}), R, Z, N, G: (B, p). Branch-free loops over one
    sample's row views, so LLVM vectorizes them; one call per step (a call per row cost
    more than the row's arithmetic at p = 100)."""
    B, p = R.shape
    zero = one - one
    for b in range(B):
        e_row, gh_row, rec_row, h_row = E[b], gh[b], rec[b], H[b]
        r_row, z_row, n_row, gg_row = R[b], Z[b], N[b], G[b]
        d_r, d_z, d_g, d_n = D[b, :p], D[b, p:2 * p], D[b, 2 * p:], DN[b]
        for i in range(p):
            ghi = _ftz(esign * e_row[i] + carry * (gh_row[i] + rec_row[i]), tiny, zero)
            r = r_row[i]
            z = z_row[i]
            n = n_row[i]
            da_n = _ftz(ghi * (one - z) * (one - n * n), tiny, zero)
            d_r[i] = _ftz(da_n * gg_row[i] * r * (one - r), tiny, zero)
            d_z[i] = _ftz(ghi * (h_row[i] - n) * z * (one - z), tiny, zero)
            d_g[i] = _ftz(da_n * r, tiny, zero)
            d_n[i] = da_n
            gh_row[i] = ghi * z


@numba.njit(cache=CACHE, error_model="numpy")
def _per_gate_step(L, H, R, Z, N, G, U, C, reg, eps, one, tiny, authors):
    """One per-gate inverse step's element loops (Eq. 2, docs/gru.md), all B samples:
    U = [u_r, u_z, u_n] (B, 3p) and the carry coefficients C (B, p), z / (z^2 + reg) or the
    authors' 1 - z, from L = lam_t (B, p); H = h_{t-1}, R, Z, N, G (B, p)."""
    B, p = R.shape
    zero = one - one
    for b in range(B):
        l_row, h_row, r_row, z_row, n_row, gg_row = L[b], H[b], R[b], Z[b], N[b], G[b]
        u_r, u_z, u_n, c_row = U[b, :p], U[b, p:2 * p], U[b, 2 * p:], C[b]
        for i in range(p):
            r = r_row[i]
            z = z_row[i]
            n = n_row[i]
            lt = l_row[i]
            zc = min(max(z, eps), one - eps)
            rc = min(max(r, eps), one - eps)
            if authors:                                           # their convention
                dn = z * (one - n * n)
                dh = n - h_row[i]
                c_row[i] = one - z
            else:                                                 # PyTorch's
                dn = (one - z) * (one - n * n)
                dh = h_row[i] - n
                c_row[i] = z / (z * z + reg)
            u_r[i] = _ftz(dn * gg_row[i] * lt / (rc * (one - rc)), tiny, zero)
            u_z[i] = _ftz(dh * lt / (zc * (one - zc)), tiny, zero)
            u_n[i] = _ftz(dn * r * lt, tiny, zero)


@numba.njit(cache=CACHE, error_model="numpy")
def _block_products(D, DN, steps, hidden, x, t_lo, dWh, dWxT, dWxT_n, dbh, dbn):
    """Add one block's directions (steps t_lo..t_lo + steps - 1, rows = steps * B):
    dWh += D^T H_prev, dWx^T += X^T D (rows r, z; n from DN), biases by row sums, each product
    one GEMM added by BLAS with beta = 1 (``numba_blas.add_tn_product``) while the block's
    deltas are in cache."""
    B, p3 = D.shape[1], D.shape[2]
    p = DN.shape[2]
    d = x.shape[2]
    rows = steps * B
    Dr = D[:steps].reshape(rows, p3)                              # (rows, 3p) [da_r, da_z, dg]
    DNr = DN[:steps].reshape(rows, p)                             # (rows, p) da_n
    X = x[t_lo - 1:t_lo - 1 + steps].reshape(rows, d)             # (rows, d) x_t
    add_tn_product(Dr, hidden[t_lo - 1:t_lo - 1 + steps].reshape(rows, p), dWh)  # h_{t-1}
    add_tn_product(X, Dr, dWxT)                                   # (d, 3p); its dg part unused
    add_tn_product(X, DNr, dWxT_n)                                # (d, p)
    for q in range(rows):
        row, nrow = Dr[q], DNr[q]
        for j in range(p3):
            dbh[j] += row[j]
        for j in range(p):
            dbn[j] += nrow[j]


@numba.njit(cache=CACHE, error_model="numpy")
def _backward_pass(Wh, Pstack, hidden, x, R, Z, N, G, lam, gh, carry, explicit, per_gate,
                   authors, reg, eps, one, tiny, chunk, dWh, dWxT, dWxT_n, dbh, dbn):
    """Backward through time in one pass, t = T..1: deltas, parameter directions by block, and
    (``per_gate``) the per-gate inverse's displacements lam_{t-1} from lam_t.

    Wh (3p, p); Pstack (3p, p) = [P_r^T; P_z^T; P_n^T] (``per_gate``); hidden (T+1, B, p);
    x (T, B, d); R, Z, N, G (T, B, p) the forward's gates.

    - The explicit partial of step t is -lam[t] if ``explicit`` (TP, Eq. 3: grad_h = -lam),
      else none (BP: ``gh`` (B, p) holds dl/dh_T on entry).
    - ``carry`` = 1 (through time): the total derivative gh_{t-1} = gh_t z + delta_t W_h is
      carried back (BPTT); 0: h_{t-1} held fixed (TP's local update).
    - ``per_gate``: lam (T+1, B, p), lam[T] set on entry, is filled down to lam[0] as in
      :func:`tpref.methods.reference_gru.gru_propagate_displacements` (``authors``: their
      variant), step t's lam_{t-1} = c lam_t + U Pstack made right after step t's deltas,
      which read lam_t; else lam is read only.

    The deltas of ``chunk`` steps, [da_r, da_z, dg] (chunk, B, 3p) and da_n (chunk, B, p), are
    turned into directions (:func:`_block_products`) while in cache: dWh (3p, p), dWx^T
    (d, 3p) (rows r, z) and (d, p) (row n), dbh (3p,) and dbn (p,), accumulated in place. No
    (T, B, 3p) delta array; one (B, 3p) x (3p, p) product per step for each recursion.
    """
    wide_vectors()
    T, B, p = R.shape
    dt = hidden.dtype
    zero = one - one
    esign = -one if explicit else one
    rec = np.zeros((B, p), dtype=dt)                              # delta_{t+1} W_h
    none = np.zeros((B, p), dtype=dt)                             # "no explicit term"
    D = np.empty((chunk, B, 3 * p), dtype=dt)                     # [da_r, da_z, dg] of a block
    DN = np.empty((chunk, B, p), dtype=dt)                        # da_n of a block
    U = np.empty((B, 3 * p), dtype=dt)                            # [u_r, u_z, u_n]
    C = np.empty((B, p), dtype=dt)                                # carry coefficients
    out = np.empty((B, p), dtype=dt)                              # U Pstack
    t_hi = T
    while t_hi >= 1:                                              # block of steps t_lo..t_hi
        t_lo = max(1, t_hi - chunk + 1)
        for t in range(t_hi, t_lo - 1, -1):
            s = t - 1
            k = t - t_lo
            _deltas_step(lam[t] if explicit else none, esign, gh, rec, carry, hidden[s], R[s],
                         Z[s], N[s], G[s], D[k], DN[k], one, tiny)
            if per_gate:
                _per_gate_step(lam[t], hidden[s], R[s], Z[s], N[s], G[s], U, C, reg, eps, one,
                               tiny, authors)
                np.dot(U, Pstack, out)                            # (B, p)
                for b in range(B):
                    c_row, l_row, o_row, prev = C[b], lam[t, b], out[b], lam[s, b]
                    for i in range(p):
                        prev[i] = _ftz(c_row[i] * l_row[i] + o_row[i], tiny, zero)
            if carry != zero and t > 1:
                np.dot(D[k], Wh, rec)                             # (B, p) delta_t W_h
        _block_products(D, DN, t_hi - t_lo + 1, hidden, x, t_lo, dWh, dWxT, dWxT_n, dbh, dbn)
        t_hi = t_lo - 1


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


def gru_forward_numba(params, x, simd=True, out=None):
    """Fast twin of ``tpref.models.gru.gru_forward``: (hidden, cache).

    ``simd=True`` (default) runs the fused jitted loop :func:`gru_forward_kernel_vec` (tanh by
    ``numba_math.vtanh``, < 2 ulp, vectorized) in the arrays' dtype. ``simd=False`` runs the
    plain jitted loop :func:`gru_forward_kernel` with libm's scalar tanh (this numba build has
    no SVML), the straightforward twin. Both give the reference's values to rounding
    (tests/test_gru_numba.py). ``out`` (T+1, B, p), C-contiguous, params' dtype: written and
    returned as ``hidden`` instead of a new array. The gates r, z, n, g of ``cache`` are four
    views of one (4, T, B, p) ``workspace`` buffer (reused by a later call once dropped).
    """
    Wx, Wh, bx, bh = stack_gru(params)
    T, B, d = x.shape
    p = Wh.shape[1]
    dt = Wh.dtype
    hidden = np.empty((T + 1, B, p), dtype=dt) if out is None else out
    hidden[0] = 0.0                                                   # h_0
    WhT = workspace.aligned(Wh.T)                                     # (p, 3p)
    gates = tuple(workspace.empty((4, T, B, p), dt))                  # r, z, n, g
    cache = dict(zip("rzng", gates))
    if simd:
        gru_forward_kernel_vec(np.ascontiguousarray(x, dtype=dt), np.ascontiguousarray(Wx.T),
                               bx, WhT, bh, hidden, *gates, dt.type(1))
    else:
        xproj = (x.reshape(T * B, d) @ Wx.T + bx).reshape(T, B, 3 * p)    # (T, B, 3p)
        gru_forward_kernel(xproj, WhT, bh, hidden, *gates)
    return hidden, cache


def _chunk(T, B):
    """Time steps per block of parameter products: config.PRODUCT_BLOCK_ROWS // B, in [1, T]."""
    return max(1, min(T, PRODUCT_BLOCK_ROWS // B))


def _backward(params, x, hidden, cache, *, g_T=None, lam=None, through_time=True, Pstack=None,
              reg=1.0, eps=0.0, authors=False):
    """Run :func:`_backward_pass`: the 12 transition directions (tpref names), and for
    ``Pstack`` the per-gate displacements written into ``lam`` (lam[T] set on entry).

    BP: ``g_T`` = dl/dh_T, no explicit terms. TP: ``lam`` (T+1, B, p), explicit terms
    -lam_t (Eq. 3), with ``Pstack`` filled by the per-gate inverse during the pass, else
    read (the exact inverse's). Twin of ``reference_gru.gru_transition_backward`` (and of
    ``gru_propagate_displacements`` for the per-gate inverses).
    """
    _, Wh, _, _ = stack_gru(params)
    T, B, d = x.shape
    p = Wh.shape[1]
    dt = Wh.dtype
    one = dt.type(1)
    explicit = lam is not None
    gh = np.zeros((B, p), dt) if g_T is None else np.array(g_T, dtype=dt)   # (B, p)
    lam_in = lam if explicit else np.empty((0, B, p), dt)
    per_gate = Pstack is not None
    P = workspace.aligned(np.asarray(Pstack, dtype=dt)) if per_gate else np.empty((0, p), dt)
    dWh = np.zeros((3 * p, p), dt)
    dWxT = np.zeros((d, 3 * p), dt)
    dWxT_n = np.zeros((d, p), dt)
    dbh = np.zeros(3 * p, dt)
    dbn = np.zeros(p, dt)
    _backward_pass(workspace.aligned(Wh), P, hidden, np.ascontiguousarray(x, dtype=dt),
                   cache["r"], cache["z"], cache["n"], cache["g"], lam_in, gh,
                   one if through_time else one - one, explicit, per_gate, authors, dt.type(reg),
                   dt.type(eps), one, gate_flush_threshold(dt), _chunk(T, B), dWh, dWxT, dWxT_n,
                   dbh, dbn)
    dWx = np.ascontiguousarray(dWxT.T)                            # (3p, d)
    dWx[2 * p:] = dWxT_n.T                                        # W_xn uses da_n, not dg
    dbx = dbh.copy()
    dbx[2 * p:] = dbn                                             # b_xn likewise
    return unstack_gru({}, dWx, dWh, dbx, dbh)


def gru_oracle(method, params, x, y, *, loss, gamma_h, reg, update, eps, inverse):
    """Numba twin of ``reference_gru.gru_oracle`` (same arguments, same returned dict).

    Hidden states and displacements are written into ``workspace`` buffers (reused by a
    later call once the caller has dropped the result, never while it is held).
    """
    T, B, _ = x.shape
    p = params["W_hr"].shape[0]
    dt = params["W_hr"].dtype
    # TP: hidden states and displacements as two views of one (2, T+1, B, p) buffer, so that
    # a loop holding the previous result alternates between two buffers of one shape
    if method == "bp":
        hidden_out, lam = workspace.empty((T + 1, B, p), dt), None
    else:
        hidden_out, lam = workspace.empty((2, T + 1, B, p), dt)
    with blas_threads():
        hidden, cache = gru_forward_numba(params, x, out=hidden_out)
        value, out, direction, g_T = output_backward(params, hidden[-1], y, loss)
        if method == "bp":
            direction.update(_backward(params, x, hidden, cache, g_T=g_T))
        else:
            lam[T] = -gamma_h * g_T                               # Eq. (1)
            through_time = update == "through_time"
            if inverse in ("per_gate", "authors"):
                Pstack = np.concatenate([regularized_pinv_map(params["W_h" + g], reg)
                                         for g in "rzn"])         # (3p, p) rows P_*^T
                direction.update(_backward(params, x, hidden, cache, lam=lam,
                                           through_time=through_time, Pstack=Pstack, reg=reg,
                                           eps=eps, authors=inverse == "authors"))
            else:
                _, Wh, _, _ = stack_gru(params)
                if not exact_kernel(Wh, hidden, *(cache[g] for g in "rzng"), lam, reg):
                    raise RegularizedInverseError(
                        f"J_t^T J_t + reg*I is not positive definite with reg={reg!r}: the GRU "
                        f"Jacobian is singular; use reg > 0")
                direction.update(_backward(params, x, hidden, cache, lam=lam,
                                           through_time=through_time))
    direction = {name: direction[name] for name in params}
    return {"loss": value, "output": out, "hidden": hidden, "displacements": lam,
            "direction": direction}
