"""Seeing inside a run: norms through time, TP/BP alignment, W_hh's spectrum, Lemma 3.1.

``RunConfig(diagnostics=N)`` (``tpref train --diagnostics N``) makes a run diagnose itself
every N iterations (iterations 0, N, 2N, ...), at its current parameters and on the batch it
is about to train on, before the update. A diagnosis reads the parameters and the batch and
writes only its own files: the run's parameters are the same bits with or without it (the
batches depend on (seed, iteration) only; nothing here draws random numbers). Whatever method
trains, it computes, for the simple RNN (cell "rnn"):

- per time step t = 0..T, the Frobenius norm over the batch of BP's g_t = dloss/dh_t and of
  TP's displacement lam_t = v_t - h_t (Eq. 2, ``update="local"``); lam_T = -gamma_h g_T, so
  the plots show ||lam_t|| / gamma_h next to ||g_t||;
- per parameter block (W_hh, W_xh, b_h) and for both TP updates ("local", Eq. 3, and
  "through_time", the authors' code): the cosine between the TP direction and the BP gradient
  and the norm ratio ||TP / gamma_h|| / ||BP||;
- the spectral radius and the extreme singular values of W_hh, and the condition number of
  W_hh^T W_hh + r I, (s_max^2 + r) / (s_min^2 + r);
- Lemma 3.1's first inequality as corrected in docs/lemma31.md (spectral norm), summed over
  the batch, and the actual ||BP - TP/gamma_h|| it bounds (local update). The bound takes
  upper bounds of the lemma's sup_t ||J_t^T||, sup_t ||K_t|| and sup_t ||J_t^T - K_t|| that
  cost O(T B p) from one SVD of W_hh (see :func:`lemma_bound`) instead of T SVDs per sample
  (``tpref.analysis.lemma31``, O(T p^3) per sample): it is larger than or equal to the lemma's
  own right side, so it still holds.

A run with a BP method has no gamma_h or r: the diagnosis takes the run's own when given,
else its task's preset TP values (tpref.presets), and records which it used.

Files, beside metrics.jsonl (:data:`FILES`)::

    diagnostics.jsonl   one compact JSON object per diagnosis (:data:`RECORD_KEYS`)
    diagnostics.npz     iterations (n,), bp_norms (n, T+1), tp_norms (n, T+1), replaced
                        atomically at each diagnosis

A resumed run drops the diagnoses at or after its checkpoint's iteration and computes them
again (the same numbers): no duplicates. ``tpref plot DIR --diagnostics`` draws them.
"""

import json
import os
import time
import warnings

import numpy as np

from .config import CLIP_EPS, RNN_TRANSITION_NAMES
from .losses import output_backward
from .models.activations import derivative_from_output, inverse_derivative, project
from .oracle import NonFiniteResultWarning, oracle
from .run_io import atomic_write_bytes, read_metrics

#: key -> file name of the diagnostics files in a run directory
FILES = {"records": "diagnostics.jsonl", "norms": "diagnostics.npz"}
#: The TP parameter updates compared with BP
UPDATES = ("local", "through_time")
#: Keys of one diagnostics.jsonl record, besides cos_<update>_<block> and
#: ratio_<update>_<block> for every update and block of RNN_TRANSITION_NAMES.
RECORD_KEYS = ("iteration", "loss", "gamma_h", "reg", "bp_decay", "tp_decay",
               "spectral_radius", "sigma_max", "sigma_min", "gram_condition",
               "lemma_bound", "lemma_actual", "lemma_a", "lemma_b", "lemma_delta", "seconds")


def check_diagnostics(config):
    """ValueError unless ``config.diagnostics`` is an integer >= 0 usable with the run."""
    v = config.diagnostics
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
        raise ValueError(f"diagnostics (--diagnostics) must be an integer >= 0 (diagnose every "
                         f"N iterations; 0 = off), got {v!r}")
    if v and config.cell != "rnn":
        raise ValueError(f"diagnostics (--diagnostics) are implemented for cell 'rnn' only, got "
                         f"cell {config.cell!r}; run without --diagnostics")
    if v and config.method == "bp":
        for name, ok in (("gamma_h", lambda g: g > 0), ("reg", lambda r: r >= 0)):
            value = getattr(config, name)
            if value is not None and not ok(value):
                raise ValueError(f"{name} of the diagnostics' TP side must be "
                                 f"{'> 0' if name == 'gamma_h' else '>= 0'}, got {value!r}")


def tp_steps(config):
    """(gamma_h, reg) of the diagnostics' TP side: the run's, else its task's preset TP values."""
    gamma_h, reg = config.gamma_h, config.reg
    if gamma_h is None or reg is None:
        from .experiments import preset_name
        from .presets import PRESETS

        steps = PRESETS[preset_name(config.task, config.length)].steps_for("tp")
        gamma_h = steps.gamma_h if gamma_h is None else gamma_h
        reg = steps.reg if reg is None else reg
    return float(gamma_h), float(reg)


# ----------------------------------------------------------------------------------------------
# the computations


def hidden_gradients(params, hidden, g_T):
    """BP's g_t = dloss/dh_t for t = 0..T, (T+1, B, p), tanh RNN:
    g_{t-1} = (g_t * (1 - h_t^2)) W_hh (the transposed Jacobian J_t^T applied to g_t)."""
    T = hidden.shape[0] - 1
    g = np.empty(hidden.shape, dtype=np.float64)               # (T+1, B, p)
    g[T] = g_T
    W_hh = np.asarray(params["W_hh"], dtype=np.float64)
    D = derivative_from_output("tanh", np.asarray(hidden, dtype=np.float64))   # (T+1, B, p)
    for t in range(T, 0, -1):
        np.dot(g[t] * D[t], W_hh, out=g[t - 1])
    return g


def bp_gradient(x, hidden, g):
    """BP's gradient of (W_hh, W_xh, b_h) from the g_t of :func:`hidden_gradients`:
    sum_t (g_t * a'(u_t)) [h_{t-1}; x_t; 1]^T (what ``tpref.oracle("bp")`` returns)."""
    h = np.asarray(hidden, dtype=np.float64)
    T, B, p = h.shape[0] - 1, h.shape[1], h.shape[2]
    delta = (g[1:] * derivative_from_output("tanh", h[1:])).reshape(T * B, p)   # dloss/du_t
    return {"W_hh": delta.T @ h[:-1].reshape(T * B, p),
            "W_xh": delta.T @ np.asarray(x, dtype=np.float64).reshape(T * B, -1),
            "b_h": delta.sum(axis=0)}


def step_norms(a):
    """Frobenius norm over the batch at every time step of a (T+1, B, p) array -> (T+1,)."""
    a = np.asarray(a, dtype=np.float64)
    return np.sqrt(np.einsum("tbp,tbp->t", a, a))


def alignment(bp_direction, tp_direction, gamma_h):
    """{block: (cosine, ||tp / gamma_h|| / ||bp||)} for the transition blocks (None if a norm is 0)."""
    out = {}
    for name in RNN_TRANSITION_NAMES:
        bp = np.asarray(bp_direction[name], dtype=np.float64).ravel()
        tp = np.asarray(tp_direction[name], dtype=np.float64).ravel() / gamma_h
        nb, nt = float(np.linalg.norm(bp)), float(np.linalg.norm(tp))
        cos = float(bp @ tp) / (nb * nt) if nb > 0 and nt > 0 else None
        out[name] = (cos, nt / nb if nb > 0 else None)
    return out


def spectrum(W_hh, reg):
    """Spectral radius, largest and smallest singular values of W_hh, and the condition number
    (s_max^2 + r) / (s_min^2 + r) of W_hh^T W_hh + r I; also the singular values."""
    W = np.asarray(W_hh, dtype=np.float64)
    s = np.linalg.svd(W, compute_uv=False)                      # descending
    rho = float(np.max(np.abs(np.linalg.eigvals(W))))
    return {"spectral_radius": rho, "sigma_max": float(s[0]), "sigma_min": float(s[-1]),
            "gram_condition": float((s[0] ** 2 + reg) / (s[-1] ** 2 + reg))}, s


def first_bound(g_norm, delta, a, b, D_max, z_norm):
    """Right side of Lemma 3.1's first inequality as corrected (docs/lemma31.md), per sample:
    ||g|| delta sum_{t=1}^T ||D_t|| ||z_t|| sum_{s=0}^{T-t-1} a^s b^{T-t-1-s}.

    g_norm, delta, a, b : (B,); D_max, z_norm : (T, B) with D_max[t-1] = ||D_t||_2 = max|a'(u_t)|.
    """
    T = D_max.shape[0]
    geo = np.zeros((T,) + np.shape(a))                          # geo[n] = sum_{s<n} a^s b^{n-1-s}
    for n in range(T - 1):
        geo[n + 1] = b * geo[n] + a ** n
    terms = D_max * z_norm * geo[::-1]                           # t = 1..T uses geo[T - t]
    return g_norm * delta * terms.sum(axis=0)


def lemma_bound(params, x, hidden, g_T, reg, sigma, eps=CLIP_EPS):
    """The corrected first inequality of Lemma 3.1 (spectral norm) for every sample of a batch.

    With s_i the singular values of W_hh, P = (W_hh^T W_hh + r I)^{-1} W_hh^T, D_t and E_t as in
    docs/lemma31.md, the lemma's sup_t norms are bounded without a p x p SVD per step:

        ||J_t^T|| = ||W_hh^T D_t|| <= s_max ||D_t||                      -> a
        ||K_t||   = ||P E_t||      <= max_i s_i / (s_i^2 + r) ||E_t||    -> b
        J_t^T - K_t = (W_hh^T - P) D_t + P (D_t - E_t), ||W_hh^T - P|| = max_i |s_i - s_i/(s_i^2+r)|
                                                                          -> delta

    (W_hh = U S V^T gives W_hh^T - P = V diag(s - s/(s^2 + r)) U^T.) The bound increases with
    a, b and delta, so it stays a bound. Returns (bound (B,), a (B,), b (B,), delta (B,)).
    """
    h = np.asarray(hidden, dtype=np.float64)                    # (T+1, B, p)
    xs = np.asarray(x, dtype=np.float64)                        # (T, B, d)
    D = derivative_from_output("tanh", h[1:])                   # (T, B, p)
    E = inverse_derivative("tanh", project("tanh", h[1:], eps))
    D_max = np.abs(D).max(axis=2)                               # (T, B)
    p_norm = float(np.max(sigma / (sigma ** 2 + reg)))
    wp_norm = float(np.max(np.abs(sigma - sigma / (sigma ** 2 + reg))))
    a = float(sigma[0]) * D_max.max(axis=0)
    b = p_norm * np.abs(E).max(axis=2).max(axis=0)
    delta = (wp_norm * D_max + p_norm * np.abs(D - E).max(axis=2)).max(axis=0)
    z_norm = np.sqrt((h[:-1] ** 2).sum(axis=2) + (xs ** 2).sum(axis=2) + 1.0)   # (T, B)
    g_norm = np.linalg.norm(np.asarray(g_T, dtype=np.float64), axis=1)
    return first_bound(g_norm, delta, a, b, D_max, z_norm), a, b, delta


def _finite(v):
    return float(v) if v is not None and np.isfinite(v) else None


def diagnose(params, x, y, *, loss, gamma_h, reg, backend="numpy"):
    """One diagnosis of an RNN at ``params`` on the batch (x, y).

    Returns
    -------
    record : dict
        The scalars of :data:`RECORD_KEYS` (without iteration and seconds) and
        cos_<update>_<block>, ratio_<update>_<block>; a non-finite value is None.
    bp_norms, tp_norms : ndarray (T+1,)
        ||g_t|| and ||lam_t|| (TP, local update) over the batch, t = 0..T.
    """
    from .kernels.numba_rnn import blas_threads   # one BLAS thread, as the oracles' kernels

    opts = dict(loss=loss, gamma_h=gamma_h, reg=reg, backend=backend)
    with np.errstate(all="ignore"), warnings.catch_warnings(), blas_threads():
        warnings.simplefilter("ignore", NonFiniteResultWarning)
        tp = {u: oracle("tp", params, x, y, update=u, **opts) for u in UPDATES}
        call = tp["local"].call
        hidden = np.asarray(tp["local"].hidden, dtype=np.float64)
        value, _, _, g_T = output_backward({k: np.asarray(v, np.float64)
                                            for k, v in call.params.items()},
                                           hidden[-1], call.y, loss)
        g = hidden_gradients(call.params, hidden, g_T)         # BP's backward pass
        bp = bp_gradient(call.x, hidden, g)
        bp_norms = step_norms(g)
        tp_norms = step_norms(tp["local"].displacements)
        spec, sigma = spectrum(call.params["W_hh"], reg)
        bound, a, b, delta = lemma_bound(call.params, call.x, hidden, g_T, reg, sigma)
        diff = np.concatenate([np.ravel(bp[k]) - np.asarray(tp["local"].direction[k],
                                                             dtype=np.float64).ravel() / gamma_h
                               for k in RNN_TRANSITION_NAMES])
        record = {"loss": float(value), "gamma_h": gamma_h, "reg": reg,
                  "bp_decay": bp_norms[1] / bp_norms[-1], "tp_decay": tp_norms[1] / tp_norms[-1],
                  **spec, "lemma_bound": float(bound.sum()),
                  "lemma_actual": float(np.linalg.norm(diff)), "lemma_a": float(a.max()),
                  "lemma_b": float(b.max()), "lemma_delta": float(delta.max())}
        for u in UPDATES:
            for block, (cos, ratio) in alignment(bp, tp[u].direction, gamma_h).items():
                record[f"cos_{u}_{block}"] = cos
                record[f"ratio_{u}_{block}"] = ratio
    return {k: v if isinstance(v, str) else _finite(v) for k, v in record.items()}, \
        bp_norms, tp_norms


# ----------------------------------------------------------------------------------------------
# the files of a run


def paths(run_dir):
    """The diagnostics files of ``run_dir``, keyed as :data:`FILES`."""
    return {k: os.path.join(run_dir, v) for k, v in FILES.items()}


def _read_norms(path):
    if not os.path.exists(path):
        return np.zeros(0, np.int64), None, None
    try:
        with np.load(path, allow_pickle=False) as z:
            return z["iterations"].copy(), z["bp_norms"].copy(), z["tp_norms"].copy()
    except Exception as err:
        raise ValueError(f"{path} is damaged or not a tpref diagnostics file "
                         f"({type(err).__name__}: {err}); rerun with --restart") from err


def read_diagnostics(run_dir):
    """(records, iterations, bp_norms, tp_norms) of a run directory, restricted to the
    iterations present in both files (a run killed between the two writes of a diagnosis
    holds one more in one of them). ValueError if the run has no diagnostics."""
    p = paths(run_dir)
    if not os.path.exists(p["records"]) or not os.path.exists(p["norms"]):
        raise ValueError(f"{run_dir} holds no diagnostics ({FILES['records']}, {FILES['norms']});"
                         f" train it with --diagnostics N")
    its, bp, tp = _read_norms(p["norms"])
    records = {r["iteration"]: r for r in read_metrics(p["records"])}
    keep = [i for i, it in enumerate(its) if int(it) in records]
    return ([records[int(its[i])] for i in keep], its[keep], bp[keep], tp[keep])


class _Off:
    """The diagnostics of a run without them: nothing to do."""

    def start(self, iteration):
        pass

    def record(self, iteration, params, x, y):
        pass


class Diagnostics:
    """The diagnostics of one run in progress (``tpref.train`` calls start, then record
    before every step)."""

    def __init__(self, config, task, out_dir):
        self.every, self.loss, self.backend = config.diagnostics, task.loss, config.backend
        self.gamma_h, self.reg = tp_steps(config)
        self.paths = paths(out_dir)

    @classmethod
    def of(cls, config, task, out_dir):
        """The run's diagnostics, or a do-nothing stand-in when ``config.diagnostics`` is 0."""
        return cls(config, task, out_dir) if config.diagnostics else _Off()

    def start(self, iteration):
        """A fresh run (``iteration`` 0) removes old files; a resumed one keeps the diagnoses
        before ``iteration`` and drops the others (they are computed again)."""
        its, bp, tp = _read_norms(self.paths["norms"]) if iteration else (None, None, None)
        if not iteration or bp is None:
            for path in self.paths.values():
                if os.path.exists(path):
                    os.remove(path)
            self.its, self.bp, self.tp = [], [], []
        else:
            keep = its < iteration
            self.its, self.bp, self.tp = list(its[keep]), list(bp[keep]), list(tp[keep])
        rows = [r for r in read_metrics(self.paths["records"]) if r["iteration"] < iteration]
        if iteration:
            atomic_write_bytes(self.paths["records"], lambda f: f.write(
                "".join(json.dumps(r) + "\n" for r in rows).encode()))
            self._write_norms()

    def _write_norms(self):
        arrays = dict(iterations=np.array(self.its, dtype=np.int64),
                      bp_norms=np.array(self.bp, dtype=np.float64),
                      tp_norms=np.array(self.tp, dtype=np.float64))
        # temporary file + os.replace: a killed run leaves the old file or the new one (no
        # fsync, which cost a quarter of a diagnosis on a busy disk; run_io's files keep theirs)
        tmp = f"{self.paths['norms']}.tmp-{os.getpid()}"
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, self.paths["norms"])

    def record(self, iteration, params, x, y):
        """Diagnose at ``params`` on (x, y) when ``iteration`` is a multiple of N."""
        if iteration % self.every:
            return
        t0 = time.perf_counter()
        record, bp, tp = diagnose(params, x, y, loss=self.loss, gamma_h=self.gamma_h,
                                  reg=self.reg, backend=self.backend)
        self.its.append(iteration)
        self.bp.append(bp)
        self.tp.append(tp)
        self._write_norms()
        record = {"iteration": iteration, **record,
                  "seconds": round(time.perf_counter() - t0, 4)}
        with open(self.paths["records"], "a") as f:
            f.write(json.dumps(record, separators=(",", ":")) + "\n")
