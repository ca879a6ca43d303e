"""Per-iteration time of tpref's Numba GRU oracles (BP, TP) vs torch.nn.GRU autograd, 1 thread.

Configuration of the FashionMNIST run: B = 16, d = 1, p = 100, k = 10, T = 784. One
"iteration" is one oracle call (forward, loss, backward / target propagation, direction) for
tpref and forward + loss + backward for torch (optimizer steps excluded on both sides).
Validate first, then time: the Numba kernels are compared with the NumPy reference and the
torch model with tpref's BP (float64) before anything is timed. All contenders run in the same
process, alternating one iteration each per round, and the median over rounds is reported.

Usage::

    python scripts/bench_gru.py --rounds 15
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"                                       # before numpy/torch load BLAS

import argparse  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

import tpref  # noqa: E402
from tpref.config import ATOL_SCALE, RTOL  # noqa: E402


def _check(name, actual, reference, dtype=np.float64):
    scale = np.max(np.abs(reference))
    err = np.max(np.abs(actual - reference))
    tol = RTOL[np.dtype(dtype)] * scale + ATOL_SCALE[np.dtype(dtype)]
    if not err <= tol:
        raise SystemExit(f"validation failed: {name}: max error {err:.3e} > {tol:.3e}")


def validate(torch):
    """Numba = reference (float64, TP per-gate and BP) and torch autograd = tpref BP."""
    rng = np.random.default_rng(0)
    params = tpref.init_gru(1, 12, 10, seed=0)
    x = rng.normal(size=(50, 4, 1))
    y = rng.integers(0, 10, size=4)
    for method in ("bp", "tp"):
        kw = dict(loss="cross_entropy", cell="gru", gamma_h=1e-2, reg=1.0)
        ref = tpref.oracle(method, params, x, y, backend="numpy", **kw)
        comp = tpref.oracle(method, params, x, y, backend="numba", **kw)
        for name in params:
            _check(f"numba {method} {name}", comp.direction[name], ref.direction[name])
    gru, lin, loss_fn = torch_model(torch, params, torch.float64)
    xt = torch.from_numpy(x)
    loss_fn(lin(gru(xt)[0][-1]), torch.from_numpy(y)).backward()
    grads = tpref.gru_params_from_torch({n: q.grad for n, q in gru.named_parameters()},
                                        {n: q.grad for n, q in lin.named_parameters()})
    for name in params:
        _check(f"torch bp {name}", ref_bp(params, x, y).direction[name], grads[name])
    print("validation passed: numba = reference (float64), torch autograd = tpref BP (float64)")


def ref_bp(params, x, y):
    return tpref.oracle("bp", params, x, y, loss="cross_entropy", cell="gru", backend="numpy")


def torch_model(torch, params, dtype):
    st = tpref.gru_params_to_torch(params)
    d, p, k = params["W_xr"].shape[1], params["W_hr"].shape[0], params["W_hy"].shape[0]
    gru = torch.nn.GRU(d, p).to(dtype)
    lin = torch.nn.Linear(p, k).to(dtype)
    gru.load_state_dict({n: torch.from_numpy(v).to(dtype) for n, v in st["gru"].items()})
    lin.load_state_dict({n: torch.from_numpy(v).to(dtype) for n, v in st["linear"].items()})
    return gru, lin, torch.nn.functional.cross_entropy


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--T", type=int, default=784)
    ap.add_argument("--B", type=int, default=16)
    ap.add_argument("--p", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    args = ap.parse_args(argv)

    import torch
    torch.set_num_threads(1)
    validate(torch)

    rng = np.random.default_rng(1)
    x64 = rng.normal(size=(args.T, args.B, 1))
    y = rng.integers(0, 10, size=args.B)
    contenders = {}
    for dt in args.dtypes:
        dtype = np.dtype(dt)
        params = tpref.init_gru(1, args.p, 10, seed=0, dtype=dtype)
        x = x64.astype(dtype)
        for method in ("bp", "tp"):
            kw = dict(loss="cross_entropy", cell="gru", backend="numba", gamma_h=1e-2, reg=1.0)
            contenders[f"tpref numba {method.upper()} {dt}"] = (
                lambda m=method, P=params, X=x, K=kw: tpref.oracle(m, P, X, y, **K))
        tdt = getattr(torch, dt)
        gru, lin, loss_fn = torch_model(torch, params, tdt)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)

        def torch_iteration(gru=gru, lin=lin, xt=xt, ftz=False):
            if ftz:                                               # FTZ/DAZ for this call only
                torch.set_flush_denormal(True)
            try:
                gru.zero_grad(set_to_none=True)
                lin.zero_grad(set_to_none=True)
                loss_fn(lin(gru(xt)[0][-1]), yt).backward()
            finally:
                if ftz:
                    torch.set_flush_denormal(False)
        contenders[f"torch.nn.GRU autograd {dt}"] = torch_iteration
        contenders[f"torch.nn.GRU autograd {dt}, flush_denormal"] = (
            lambda f=torch_iteration: f(ftz=True))

    for fn in contenders.values():                               # warm-up (JIT, allocations)
        fn()
    times = {name: [] for name in contenders}
    cpu = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, fn in contenders.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)

    load = os.getloadavg() if hasattr(os, "getloadavg") else ("n/a",)
    print(f"\nB={args.B} d=1 p={args.p} T={args.T}, {args.rounds} rounds, 1 thread, "
          f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"load average {load[0]:.2f} (shared machine)")
    print("\nWall time is what a user waits; CPU time (process_time, this process only) is less "
          "affected by other processes sharing the cores.")
    print("\n| contender | median wall ms/iteration | min wall | median CPU ms/iteration | "
          "torch f32 / this (wall) | torch f32 flush_denormal / this (wall) |")
    print("|---|---|---|---|---|---|")
    ref = np.median(times.get("torch.nn.GRU autograd float32", [np.nan]))
    ref_ftz = np.median(times.get("torch.nn.GRU autograd float32, flush_denormal", [np.nan]))
    for name, ts in times.items():
        ms = 1e3 * np.array(ts)
        print(f"| {name} | {np.median(ms):.1f} | {ms.min():.1f} | {1e3 * np.median(cpu[name]):.1f} | "
              f"{1e3 * ref / np.median(ms):.2f}x | {1e3 * ref_ftz / np.median(ms):.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
