"""``tpref bench``: options, the run over configurations and dtypes, the files it writes."""

import argparse
import json
import os
import platform
import sys

import numpy as np

from ..cli_support import positive_int
from .configs import CONFIGS
from .grid import run_grid
from .train_overhead import run_train_overhead
from .measure import bench_config, derived, sweep
from .peers import set_threads, torch_or_none
from .report import markdown, plot_sweep
from .timing import gemm_rate

DESCRIPTION = "Benchmark of the oracle backends against PyTorch: validate first, then time."


def build_parser(parser=None):
    """The options of ``tpref bench`` (added to ``parser`` if given)."""
    parser = parser or argparse.ArgumentParser(prog="tpref bench", description=DESCRIPTION)
    parser.add_argument("--quick", action="store_true",
                        help="few repeats, float32 sweep only, no numpy reference on long T "
                             "(with --grid: 3 repeats, float32 only)")
    parser.add_argument("--grid", action="store_true",
                        help="the grid of issue 17 instead (tpref.bench.grid): torch/BP and "
                             "TP, DTP over BP along T, p and B, each point with its roofline; "
                             "writes grid.json, grid.md, grid.png")
    parser.add_argument("--train-overhead", action="store_true",
                        help="instead: tpref train's time per iteration against the bare "
                             "oracle + SGD loop on the temporal-order-60 preset, paired, with a "
                             "profile (tpref.bench.train_overhead); writes train_overhead.json")
    parser.add_argument("--data-dir", default=None,
                        help="with --train-overhead: the MNIST files; pixel MNIST is measured "
                             "too when given")
    parser.add_argument("--configs", default=",".join(CONFIGS), type=_config_list,
                        help=f"comma-separated subset of {','.join(CONFIGS)}")
    parser.add_argument("--dtypes", default="float32,float64", type=_dtype_list,
                        help="comma-separated subset of float32,float64")
    parser.add_argument("--repeats", type=positive_int, default=None,
                        help="timed repetitions per backend")
    parser.add_argument("--threads", type=positive_int, default=1)
    parser.add_argument("--no-sweep", action="store_true")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--out", default="bench_results", help="folder for JSON and the plot")
    return parser


def _names(text, allowed, what):
    """argparse type: a comma-separated subset of ``allowed``, checked before any timing."""
    names = [s for s in text.split(",") if s]
    bad = [s for s in names if s not in allowed]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown {what} {bad or text!r}; choose a "
                                         f"comma-separated subset of {','.join(allowed)}")
    return ",".join(names)


def _config_list(text):
    return _names(text, tuple(CONFIGS), "configuration(s)")


def _dtype_list(text):
    # the oracles compute in float32 or float64 (numba has no float16 kernels)
    return _names(text, ("float32", "float64"), "dtype(s)")


def run(args, log=print):
    """Validate and time every configuration and dtype; write bench.json, bench.md and the plot."""
    set_threads(args.threads)
    repeats = args.repeats or (5 if args.quick else 15)
    dtypes = [np.dtype(s) for s in args.dtypes.split(",") if s]
    os.makedirs(args.out, exist_ok=True)
    torch = torch_or_none()
    meta = {"python": sys.version.split()[0], "numpy": np.__version__,
            "platform": platform.platform(), "processor": platform.processor(),
            "threads": args.threads, "cpu_count": os.cpu_count(),
            "torch": torch.__version__ if torch is not None else None,
            "command": " ".join(["tpref"] + sys.argv[1:]), "quick": bool(args.quick),
            "load_average_start": os.getloadavg()}
    import numba
    import scipy
    meta.update(numba=numba.__version__, scipy=scipy.__version__, blas=_blas_kernels())
    if args.train_overhead:
        presets = ("temporal-order-60",) + (("mnist",) if args.data_dir else ())
        return run_train_overhead(args.repeats or (2 if args.quick else 5), args.out,
                                  presets=presets, iterations=200 if args.quick else 1000,
                                  data_dir=args.data_dir, meta=meta, log=log)
    if args.grid:
        if args.quick:
            dtypes, repeats = dtypes[:1], args.repeats or 3
        return run_grid(dtypes, repeats, args.out, with_torch=not args.no_torch, meta=meta,
                        log=log)
    results = {"meta": meta, "gemm_gflops": {}, "configs": [], "sweep": []}
    for dt in dtypes:
        rates = gemm_rate(dt)
        results["gemm_gflops"][dt.name] = rates
        log(f"GEMM rate {dt.name}: " + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in rates.items()))
    for name in args.configs.split(","):
        cfg = CONFIGS[name]
        for dt in dtypes:
            log(f"[{name} {dt.name}] T={cfg['T']} B={cfg['B']} d={cfg['d']} p={cfg['p']}")
            with_numpy = not (args.quick and cfg["T"] > 200)
            res = bench_config(name, cfg, dt, repeats, with_numpy, not args.no_torch,
                               ftz=(name == "mnist"), log=log)
            res["derived"] = derived(res)
            results["configs"].append(res)
            for b, v in res["times"].items():
                w, c = v["wall"], v["cpu"]
                log(f"  {b:26s} wall median {w['median']:9.2f} ms [{w['q25']:.2f}, {w['q75']:.2f}]"
                    f"  cpu median {c['median']:9.2f} ms  (n={w['n']})")
            dv = res["derived"]
            for clock in ("wall", "cpu"):
                log(f"  {clock}: " + ", ".join(f"{k} {v:.3f}" for k, v in dv[clock].items()))
    if not args.no_sweep:
        for dt in (dtypes[:1] if args.quick else dtypes):
            results["sweep"] += sweep(dt, max(5, repeats // 2), log=log)
        plot_sweep(results["sweep"], os.path.join(args.out, "tp_over_bp.png"))
    meta["load_average_end"] = os.getloadavg()
    with open(os.path.join(args.out, "bench.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(args.out, "bench.md"), "w") as f:
        f.write(markdown(results) + "\n")
    log(f"wrote {os.path.join(args.out, 'bench.json')}"
        + ("" if args.no_sweep else f" and {os.path.join(args.out, 'tp_over_bp.png')}"))
    return results


def main(argv=None):
    """Console entry: parse arguments and run the benchmark; returns 0."""
    args = build_parser().parse_args(argv)
    with np.errstate(under="ignore"):        # the reference underflows by design on long T
        run(args)
    return 0


def _blas_kernels():
    """Which OpenBLAS kernels NumPy and SciPy (Numba's products) run: OPENBLAS_CORETYPE, if the
    environment forces them (an AVX-512 CPU run with AVX2 "Haswell" kernels computes the
    per-step products at a fraction of the rate), and threadpoolctl's view of each library."""
    from threadpoolctl import threadpool_info
    return {"OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
            "libraries": [{k: lib.get(k) for k in ("internal_api", "prefix", "version",
                                                   "architecture")}
                          for lib in threadpool_info() if lib.get("user_api") == "blas"]}

