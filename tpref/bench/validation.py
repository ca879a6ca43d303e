"""Validation before timing: every backend against the NumPy reference (float64 and float32)."""

import numpy as np

from ..config import ATOL_SCALE, F32_REF_FACTOR, RTOL
from ..oracle import oracle
from .configs import DTP_LEARNED_OPTIONS, make_problem, with_reverse
from .peers import TorchModel, torch_or_none


def _max_err(comp, ref):
    comp, ref = np.asarray(comp, np.float64), np.asarray(ref, np.float64)
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    return float(np.max(np.abs(comp - ref))) / scale if scale > 0 else float(np.max(np.abs(comp)))


def validate(cfg, dtype, backends, seed=0, t_check=48, update="local"):
    """Max relative (to max|ref|) error of each backend against the reference; ok flags.

    TP and DTP run with ``update`` (the oracle's parameter update: "local" or "through_time").

    float64: ok when within config's RTOL + ATOL_SCALE (normwise). Other dtypes: ok when within
    the same policy plus F32_REF_FACTOR x the float32 reference's own error against float64.
    """
    c = dict(cfg, T=min(cfg["T"], t_check))
    params, x, y = make_problem(c, dtype, seed)
    p64 = {n: a.astype(np.float64) for n, a in params.items()}
    x64 = x.astype(np.float64)
    y64 = y if y.dtype.kind in "iu" else y.astype(np.float64)
    dt = np.dtype(dtype)
    report = {}
    for name in backends:
        method = name.split()[-1] if name.startswith("tpref") else "bp"
        with_lam = method == "tp+lam"                    # directions and displacements
        method = "tp" if with_lam else method
        kw = dict(loss=c["loss"])
        run_params, ref_params = params, p64
        if method == "dtp_learned":
            kw.update(gamma_h=c["gamma_h"], **DTP_LEARNED_OPTIONS)
            run_params, ref_params = with_reverse(params), with_reverse(p64)
        elif method != "bp":
            kw.update(gamma_h=c["gamma_h"], reg=c["reg"], update=update)
        ref = oracle(method, ref_params, x64, y64, backend="numpy", **kw)
        ref_dir = ref.direction
        if name.startswith("torch"):
            _, grads = TorchModel(params, cell="cell" in name).step(
                torch_or_none().from_numpy(x), torch_or_none().from_numpy(y), c["loss"])
            comp_dir = {n: g.detach().numpy() for n, g in grads.items()}
            own = oracle("bp", params, x, y, backend="numpy", **kw).direction
        else:
            backend = name.split()[1]
            comp = oracle(method, run_params, x, y, backend=backend, **kw)
            own_res = oracle(method, run_params, x, y, backend="numpy", **kw)
            comp_dir, own = dict(comp.direction), dict(own_res.direction)
            if with_lam:
                comp_dir["lam"], own["lam"] = comp.displacements, own_res.displacements
                ref_dir = dict(ref_dir, lam=ref.displacements)
        err = max(_max_err(comp_dir[n], ref_dir[n]) for n in ref_dir)
        allowed = RTOL[dt] + ATOL_SCALE[dt]
        if method == "dtp":
            # the reference's f^{-1}(v) - f^{-1}(h) cancels: its displacements carry
            # ~eps |f^{-1}(h)| of noise, relative to |lam| ~ gamma_h |dl/dh_T| (numba_rnn, point 2)
            f_inv = np.max(np.abs(np.arctanh(np.clip(ref.hidden, -1 + 1e-3, 1 - 1e-3))))
            allowed += 1e3 * np.finfo(np.float64).eps * (1.0 + f_inv) / np.max(np.abs(ref.displacements[-1]))
        if dt != np.float64:
            allowed += F32_REF_FACTOR * max(_max_err(own[n], ref_dir[n]) for n in ref_dir)
        report[name] = {"max_rel_err": err, "allowed": allowed, "ok": bool(err <= allowed)}
    return report
