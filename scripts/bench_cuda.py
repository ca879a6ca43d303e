#!/usr/bin/env python
"""The numba.cuda path (tpref/kernels/cuda_rnn.py) on a GPU: check, then time, against the CPU.

    python scripts/bench_cuda.py --out bench_cuda          # needs a CUDA GPU

For the pixel-MNIST shapes (T = 784, d = 1, p = 100, gamma_h = 1e-4, r = 1) at several batch
sizes and both dtypes, it

1. checks the CUDA forward pass and linearized TP displacements against the Numba CPU backend
   (float64 also against the NumPy reference) with tpref's tolerance policy;
2. times, alternating in one process (median and quartiles of wall time):
   - ``cuda forward`` / ``cuda tp``: the public host-to-host functions (copies included);
   - ``cuda forward kernel`` / ``cuda tp kernel``: the single launch on device-resident arrays,
     synchronized (what a GPU training loop would pay);
   - ``numba forward`` / ``numba tp``: the CPU twins (``numba_rnn.rnn_forward``,
     ``numba_rnn.propagate_displacements``) on one thread;
   - ``cuda oracle bp`` / ``cuda oracle tp``: ``tpref.oracle(backend="cuda")``, a whole
     iteration (forward, output layer on the host, backward, directions, copies back);
   - ``numba oracle bp`` / ``numba oracle tp``: ``tpref.oracle(backend="numba")`` on one thread;
   - ``torch cuda RNN forward``: ``torch.nn.RNN`` on the GPU under ``no_grad`` (cuDNN), and
     ``torch cuda RNN bp``: forward, linear head, cross-entropy and ``backward()`` (autograd),
     where torch sees a GPU;
3. writes ``bench_cuda.json`` and prints a table. Nothing is asserted.
"""

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import tpref  # noqa: E402
from tpref.bench import make_problem, set_threads, summarize  # noqa: E402
from tpref.kernels import core, cuda_rnn, numba_rnn  # noqa: E402
from tpref.methods import reference  # noqa: E402
from tpref.testing import assert_close  # noqa: E402


def time_alternating(runners, repeats, warmup=2):
    names = list(runners)
    for name in names:
        for _ in range(warmup):
            runners[name]()
    out = {n: [] for n in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            runners[name]()
            out[name].append(1e3 * (time.perf_counter() - t0))
    return {n: summarize(v) for n, v in out.items()}


def check(params, x, y, lam_T, cfg, dtype):
    """Equality of the CUDA functions with the CPU ones (raises AssertionError otherwise)."""
    h_gpu = cuda_rnn.rnn_forward(params, x)
    h_cpu = numba_rnn.rnn_forward(params, x)
    args = (params, x, h_cpu, lam_T, cfg["reg"], "tanh", 1e-3, False)
    lam_gpu = cuda_rnn.propagate_displacements(*args)
    lam_cpu = numba_rnn.propagate_displacements(*args)
    if dtype == np.float64:
        h_ref = reference.rnn_forward(params, x)
        assert_close(h_gpu, h_ref, name="hidden vs reference")
        lam_ref = reference.propagate_displacements(params, x, h_cpu, lam_T, cfg["reg"], "tanh",
                                                    1e-3, False)
        assert_close(lam_gpu, lam_ref, name="lam vs reference")
    rel = lambda a, b: float(np.max(np.abs(a.astype(np.float64) - b)) / np.max(np.abs(b)))
    errs = {"hidden_rel_err_vs_numba": rel(h_gpu, h_cpu.astype(np.float64)),
            "lam_rel_err_vs_numba": rel(lam_gpu, lam_cpu.astype(np.float64))}
    for method in ("bp", "tp"):
        kw = oracle_kw(method, cfg)
        got = tpref.oracle(method, params, x, y, backend="cuda", **kw).direction
        ref = tpref.oracle(method, params, x, y, backend="numba", **kw).direction
        errs[f"{method}_direction_rel_err_vs_numba"] = max(
            rel(got[n], ref[n].astype(np.float64)) for n in ref)
    return errs


def oracle_kw(method, cfg):
    kw = dict(loss=cfg["loss"])
    if method != "bp":
        kw.update(gamma_h=cfg["gamma_h"], reg=cfg["reg"])
    return kw


def runners_for(params, x, y, lam_T, cfg, with_torch):
    from numba import cuda

    T, B, d = x.shape
    p = params["W_hh"].shape[0]
    dtype = x.dtype
    h = numba_rnn.rnn_forward(params, x)
    tp_args = (params, x, h, lam_T, cfg["reg"], "tanh", 1e-3, False)

    # device-resident operands for the kernel-only timings
    forward_loop, tp_loop = cuda_rnn._forward_loop, cuda_rnn._tp_loop
    d_x = cuda.to_device(x)
    d_Wxh_T = cuda.to_device(np.ascontiguousarray(params["W_xh"].T))
    d_Whh_T = cuda.to_device(np.ascontiguousarray(params["W_hh"].T))
    d_bh = cuda.to_device(params["b_h"])
    d_hidden = cuda.device_array((T + 1, B, p), dtype)
    P = core.regularized_pinv_map(params["W_hh"], cfg["reg"])
    lo, hi = core.clip_bounds("tanh", 1e-3, dtype)
    d_lam, d_lamT = cuda.device_array((T + 1, B, p), dtype), cuda.to_device(lam_T)
    d_P, d_hid, d_z = cuda.to_device(P), cuda.to_device(h), cuda.device_array((B, p), dtype)
    flush = dtype.type(0.0)
    threads = cuda_rnn._threads(p)
    one, half = dtype.type(1.0), dtype.type(0.5)

    def fwd_kernel():
        forward_loop[B, threads](d_x, d_Wxh_T, d_Whh_T, d_bh, False, half, one, d_hidden)
        cuda.synchronize()

    def tp_kernel():
        tp_loop[B, threads](d_hid, d_lamT, d_P, lo, hi, False, one, flush, d_z, d_lam)
        cuda.synchronize()

    runners = {
        "cuda forward": lambda: cuda_rnn.rnn_forward(params, x),
        "cuda forward kernel": fwd_kernel,
        "numba forward": lambda: numba_rnn.rnn_forward(params, x),
        "cuda tp": lambda: cuda_rnn.propagate_displacements(*tp_args),
        "cuda tp kernel": tp_kernel,
        "numba tp": lambda: numba_rnn.propagate_displacements(*tp_args),
    }
    for method in ("bp", "tp"):
        for backend in ("cuda", "numba"):
            runners[f"{backend} oracle {method}"] = (
                lambda m=method, b=backend: tpref.oracle(m, params, x, y, backend=b,
                                                         **oracle_kw(m, cfg)))
    if with_torch:
        import torch
        tdt = torch.float64 if dtype == np.float64 else torch.float32
        rnn = torch.nn.RNN(d, p, nonlinearity="tanh").to("cuda", tdt)
        with torch.no_grad():
            rnn.weight_hh_l0.copy_(torch.from_numpy(params["W_hh"]))
            rnn.weight_ih_l0.copy_(torch.from_numpy(params["W_xh"]))
            rnn.bias_ih_l0.copy_(torch.from_numpy(params["b_h"]))
            rnn.bias_hh_l0.zero_()
        head = torch.nn.Linear(p, params["W_hy"].shape[0]).to("cuda", tdt)
        tx = torch.from_numpy(x).to("cuda")
        ty = torch.from_numpy(y).to("cuda")

        def torch_fwd():
            with torch.no_grad():
                rnn(tx)
            torch.cuda.synchronize()

        def torch_bp():
            for prm in list(rnn.parameters()) + list(head.parameters()):
                prm.grad = None
            out = head(rnn(tx)[1][0])
            torch.nn.functional.cross_entropy(out, ty).backward()
            torch.cuda.synchronize()
        runners["torch cuda RNN forward"] = torch_fwd
        runners["torch cuda RNN bp"] = torch_bp
    return runners


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="16,256", help="comma-separated batch sizes")
    ap.add_argument("--T", type=int, default=784)
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--out", default="bench_cuda")
    ap.add_argument("--simulator", action="store_true",
                    help="allow numba's simulator (a smoke test of this script; times mean nothing)")
    args = ap.parse_args(argv)
    from numba import cuda
    simulated = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
    if not cuda.is_available() or (simulated and not args.simulator):
        print("no CUDA GPU: nothing to time (the simulator is for tests only)")
        return 2
    set_threads(1)
    try:
        import torch
        with_torch = torch.cuda.is_available()
    except ImportError:
        with_torch = False
    import numba
    name = "simulator" if simulated else cuda.get_current_device().name
    meta = {"gpu": name.decode() if isinstance(name, bytes) else str(name),
            "cpu": platform.processor(), "python": platform.python_version(),
            "numpy": np.__version__, "numba": numba.__version__,
            "torch": __import__("torch").__version__ if with_torch else None, "threads": 1}
    print(meta)
    results = []
    for dtype in (np.float32, np.float64):
        for B in (int(b) for b in args.batches.split(",")):
            cfg = dict(T=args.T, B=B, d=1, p=100, k=10, loss="cross_entropy", gamma_h=1e-4, reg=1.0)
            params, x, y = make_problem(cfg, dtype)
            lam_T = (np.random.default_rng(1).normal(size=(B, 100)) * cfg["gamma_h"]).astype(dtype)
            errs = check(params, x, y, lam_T, cfg, dtype)
            times = time_alternating(runners_for(params, x, y, lam_T, cfg, with_torch), args.repeats)
            row = {"dtype": np.dtype(dtype).name, "T": args.T, "B": B, "p": 100, **errs,
                   "ms": times}
            results.append(row)
            print(f"[{row['dtype']} T={args.T} B={B} p=100] checks ok; max error relative to "
                  "max|numba|: " + ", ".join(f"{k[:-len('_rel_err_vs_numba')]} {v:.1e}"
                                            for k, v in errs.items()))
            for name, s in times.items():
                print(f"  {name:24s} median {s['median']:9.3f} ms [{s['q25']:.3f}, {s['q75']:.3f}]")
            sys.stdout.flush()
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "bench_cuda.json"), "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=1)
    print("wrote", os.path.join(args.out, "bench_cuda.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
