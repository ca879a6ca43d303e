"""Per-iteration CPU time of tpref's Numba GRU oracles (BP, TP) vs torch.nn.GRU autograd, 1 thread.

Configuration of the Fashion-MNIST run (preset "fashion-mnist"): B = 16, d = 1, p = 100,
k = 10, T = 784. One "iteration" is one oracle call (forward, loss, backward / target
propagation, direction) for tpref and forward + loss + backward for torch (no optimizer step
on either side). Validate first, then time: the Numba kernels are compared with the NumPy
reference and the torch model with tpref's BP (float64) before anything is timed. All
contenders run in the same process, in an order rotated every repetition
(``tpref.bench.timing.time_alternating``), on thread CPU time; every ratio is the median over
repetitions of the ratio of the two samples of that repetition
(``tpref.bench.timing.paired_ratio``, issue 17's statistic).

``--profile`` also times the parts of the Numba calls in the same alternation: the forward
pass, the backward pass of BP and of TP (each on a fixed forward), TP's encoding of the
inverse (three ``regularized_pinv_map``), and GEMM probes of exactly the products those
passes make (Numba loops of T per-step products, the parameter products by blocks): the
floor each part would have if its element loops were free.

``--openblas-coretype NAME`` sets OPENBLAS_CORETYPE (which kernels OpenBLAS runs) before
NumPy loads OpenBLAS; ``auto`` removes it, so that OpenBLAS picks the kernels for the CPU
itself (an environment that sets OPENBLAS_CORETYPE=Haswell runs an AVX-512 CPU with AVX2
kernels, 2-3x slower on these small products). The OpenBLAS libraries and the kernels they
run are printed.

Usage::

    python scripts/bench_gru.py --repeats 21 --profile
"""

import os
import sys


def _early_env(argv):
    """Environment that must be set before NumPy/torch load their libraries."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = "1"
    for i, arg in enumerate(argv):
        name = argv[i + 1] if arg == "--openblas-coretype" and i + 1 < len(argv) else (
            arg.split("=", 1)[1] if arg.startswith("--openblas-coretype=") else None)
        if name == "auto":
            os.environ.pop("OPENBLAS_CORETYPE", None)             # OpenBLAS detects the CPU
        elif name is not None:
            os.environ["OPENBLAS_CORETYPE"] = name


_early_env(sys.argv[1:])

import argparse  # noqa: E402
import platform  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

import tpref  # noqa: E402
from tpref.bench.timing import paired_ratio, time_alternating  # noqa: E402
from tpref.config import ATOL_SCALE, PRODUCT_BLOCK_ROWS, RTOL  # noqa: E402


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
    for method, update in (("bp", "local"), ("tp", "local"), ("tp", "through_time")):
        kw = dict(loss="cross_entropy", cell="gru", gamma_h=1e-2, reg=1.0, update=update)
        ref = tpref.oracle(method, params, x, y, backend="numpy", **kw)
        comp = tpref.oracle(method, params, x, y, backend="numba", **kw)
        for name in params:
            _check(f"numba {method} {update} {name}", comp.direction[name], ref.direction[name])
    gru, lin, loss_fn = torch_model(torch, params, torch.float64)
    loss_fn(lin(gru(torch.from_numpy(x))[0][-1]), torch.from_numpy(y)).backward()
    grads = tpref.gru_params_from_torch({n: q.grad for n, q in gru.named_parameters()},
                                        {n: q.grad for n, q in lin.named_parameters()})
    ref = tpref.oracle("bp", params, x, y, loss="cross_entropy", cell="gru", backend="numpy")
    for name in params:
        _check(f"torch bp {name}", ref.direction[name], grads[name])
    print("validation passed: numba = reference (float64), torch autograd = tpref BP (float64)")


def torch_model(torch, params, dtype):
    st = tpref.gru_params_to_torch(params)
    d, p, k = params["W_xr"].shape[1], params["W_hr"].shape[0], params["W_hy"].shape[0]
    gru = torch.nn.GRU(d, p).to(dtype)
    lin = torch.nn.Linear(p, k).to(dtype)
    gru.load_state_dict({n: torch.from_numpy(v).to(dtype) for n, v in st["gru"].items()})
    lin.load_state_dict({n: torch.from_numpy(v).to(dtype) for n, v in st["linear"].items()})
    return gru, lin, torch.nn.functional.cross_entropy


def torch_runner(torch, params, x, y, ftz):
    gru, lin, loss_fn = torch_model(torch, params, getattr(torch, str(x.dtype)))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def run():
        if ftz:                                                   # FTZ/DAZ for this call only
            torch.set_flush_denormal(True)
        try:
            gru.zero_grad(set_to_none=True)
            lin.zero_grad(set_to_none=True)
            loss_fn(lin(gru(xt)[0][-1]), yt).backward()
        finally:
            if ftz:
                torch.set_flush_denormal(False)
    return run


def _probe_kernels():
    """Numba loops of the products the GRU kernels make, nothing else."""
    from numba import njit

    from tpref.kernels.numba_blas import add_tn_product

    @njit(cache=True)
    def steps(h, W, out, n):
        for _ in range(n):
            np.dot(h, W, out)

    @njit(cache=True)
    def blocks(D, H, acc, rows):
        for lo in range(0, D.shape[0], rows):
            hi = min(D.shape[0], lo + rows)
            add_tn_product(D[lo:hi], H[lo:hi], acc)
    return steps, blocks


def profile_runners(params, x, y, gamma_h, reg):
    """name -> (callable, GEMM flops or None): the parts of one Numba BP / TP call."""
    from tpref.kernels import numba_gru, workspace
    from tpref.kernels.core import regularized_pinv_map
    from tpref.losses import output_backward

    T, B, _ = x.shape
    p = params["W_hr"].shape[0]
    dt = x.dtype
    hidden, cache = numba_gru.gru_forward_numba(params, x)
    cache = {g: a.copy() for g, a in cache.items()}               # not the forward's scratch
    g_T = output_backward(params, hidden[-1], y, "cross_entropy")[3]
    Pstack = np.concatenate([regularized_pinv_map(params["W_h" + g], reg) for g in "rzn"])
    lam = np.empty_like(hidden)
    out = np.empty_like(hidden)

    def backward_tp():
        lam[T] = -gamma_h * g_T
        numba_gru._backward(params, x, hidden, cache, lam=lam, through_time=False,
                            Pstack=Pstack, reg=reg, eps=1e-3)

    steps, blocks = _probe_kernels()
    rng = np.random.default_rng(2)
    h = rng.standard_normal((B, p)).astype(dt)
    d3 = rng.standard_normal((B, 3 * p)).astype(dt)
    WhT = workspace.aligned(rng.standard_normal((p, 3 * p)).astype(dt))
    Wh = workspace.aligned(rng.standard_normal((3 * p, p)).astype(dt))
    o3, o1 = np.empty((B, 3 * p), dt), np.empty((B, p), dt)
    D = rng.standard_normal((T * B, 3 * p)).astype(dt)
    H = rng.standard_normal((T * B, p)).astype(dt)
    acc = np.zeros((3 * p, p), dt)
    step_flops = 2.0 * T * B * p * 3 * p
    return {
        "forward": (lambda: numba_gru.gru_forward_numba(params, x, out=out), None),
        "backward BP": (lambda: numba_gru._backward(params, x, hidden, cache, g_T=g_T), None),
        "backward TP": (backward_tp, None),
        "encoding (3 P_*)": (lambda: [regularized_pinv_map(params["W_h" + g], reg)
                                      for g in "rzn"], None),
        f"probe: T x ({B},{p})x({p},{3 * p})": (lambda: steps(h, WhT, o3, T), step_flops),
        f"probe: T x ({B},{3 * p})x({3 * p},{p})": (lambda: steps(d3, Wh, o1, T), step_flops),
        f"probe: parameter blocks of {PRODUCT_BLOCK_ROWS} rows":
            (lambda: blocks(D, H, acc, PRODUCT_BLOCK_ROWS), step_flops),
    }


def openblas_info():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    libs = [f"{os.path.basename(i['filepath'])} {i.get('version')} ({i.get('architecture')} kernels)"
            for i in threadpool_info() if i.get("internal_api") == "openblas"]
    coretype = os.environ.get("OPENBLAS_CORETYPE")
    return "; ".join(libs) + (f"; OPENBLAS_CORETYPE={coretype}" if coretype else "")


def _fmt(s):
    return f"{s['median']:.3f} [{s['q25']:.3f}, {s['q75']:.3f}]"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--T", type=int, default=784)
    ap.add_argument("--B", type=int, default=16)
    ap.add_argument("--p", type=int, default=100)
    ap.add_argument("--repeats", "--rounds", type=int, default=21, dest="repeats")
    ap.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    ap.add_argument("--profile", action="store_true",
                    help="also time the parts of the Numba calls and GEMM probes")
    ap.add_argument("--openblas-coretype", metavar="NAME",
                    help="OPENBLAS_CORETYPE for this process (set before NumPy loads); auto: unset")
    args = ap.parse_args(argv)

    import torch
    torch.set_num_threads(1)
    validate(torch)
    gamma_h, reg = 1e-2, 1.0

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nB={args.B} d=1 p={args.p} T={args.T}, {args.repeats} repetitions, 1 thread, "
          f"{platform.processor() or platform.machine()}, torch {torch.__version__}, numba "
          f"{__import__('numba').__version__}, load average {load:.2f} at the start")
    print(f"OpenBLAS: {openblas_info()}")
    rng = np.random.default_rng(1)
    x64 = rng.normal(size=(args.T, args.B, 1))
    y = rng.integers(0, 10, size=args.B)
    for dt in args.dtypes:
        params = tpref.init_gru(1, args.p, 10, seed=0, dtype=np.dtype(dt))
        x = x64.astype(dt)
        kw = dict(loss="cross_entropy", cell="gru", backend="numba", gamma_h=gamma_h, reg=reg)
        runners = {
            "numba BP": lambda P=params, X=x, K=kw: tpref.oracle("bp", P, X, y, **K),
            "numba TP": lambda P=params, X=x, K=kw: tpref.oracle("tp", P, X, y, **K),
            "numba TP through_time": lambda P=params, X=x, K=kw: tpref.oracle(
                "tp", P, X, y, update="through_time", **K),
            "torch.nn.GRU": torch_runner(torch, params, x, y, ftz=False),
            "torch.nn.GRU flush_denormal": torch_runner(torch, params, x, y, ftz=True),
        }
        flops = {}
        if args.profile:
            for name, (fn, fl) in profile_runners(params, x, y, gamma_h, reg).items():
                runners[name], flops[name] = fn, fl
        res = time_alternating(runners, args.repeats)
        cpu = {name: np.array(r["cpu_ms"]) for name, r in res.items()}
        bp = cpu["numba BP"]
        print(f"\n{dt}: CPU ms per call (median [q25, q75] of {args.repeats}), and paired ratios")
        print("\n| contender | CPU ms | this / numba BP | numba BP / this |")
        print("|---|---|---|---|")
        for name, c in cpu.items():
            med, q25, q75 = np.percentile(c, [50, 25, 75])
            rate = (f" ({flops[name] / (med * 1e-3) / 1e9:.0f} GFLOP/s)"
                    if flops.get(name) else "")
            print(f"| {name}{rate} | {med:.2f} [{q25:.2f}, {q75:.2f}] | "
                  f"{_fmt(paired_ratio(c, bp))} | {_fmt(paired_ratio(bp, c))} |")
        print(f"\n{dt} targets: torch.nn.GRU / numba BP = "
              f"{paired_ratio(cpu['torch.nn.GRU'], bp)['median']:.2f} (>= 4.5), "
              f"flush_denormal {paired_ratio(cpu['torch.nn.GRU flush_denormal'], bp)['median']:.2f}; "
              f"TP / BP = {paired_ratio(cpu['numba TP'], bp)['median']:.3f} (<= 1.10), "
              f"through_time {paired_ratio(cpu['numba TP through_time'], bp)['median']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
