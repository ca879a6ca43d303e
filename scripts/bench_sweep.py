"""Sweep throughput: cells per second on N Dask workers against the same cells one after the
other in one process, and the per-cell overhead of the sweep machinery.

    python scripts/bench_sweep.py --workers 2 --cells 8 --iterations 300

Four timings of the same grid (each into a fresh directory, so nothing is skipped; the
serial and warm variants repeated in turn, medians reported):

- ``serial``: :func:`tpref.sweeps.run_cell` on every cell in this process, one after the other
  (no Dask), the baseline;
- ``sweep N workers``: :func:`tpref.sweep` with its embedded LocalCluster, start and shutdown
  of the cluster included (what ``tpref sweep`` costs);
- ``sweep N workers, warm``: the same on an already started cluster whose workers have each
  run a 2-iteration cell (imports, numba cache loaded: the steady state of a long sweep);
- ``sweep 1 worker, warm``: one warm worker; (its time - serial) / cells is the per-cell
  overhead of Dask (submit, schedule, serialize, gather) and of the cell's bookkeeping.

Every cell must produce the same numbers in every variant (checked), so the timings compare
the same work. Prints a Markdown table.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def _warm(client, cell, scratch):
    """Every worker runs a 2-iteration cell: imports and the numba cache load, not timed."""
    from tpref.sweeps import run_cell

    def warm():
        d = os.path.join(scratch, f"warmup-{os.getpid()}")
        run_cell(cell, d, "warmup")
        shutil.rmtree(d, ignore_errors=True)
        return os.getpid()

    client.run(warm)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cells", type=int, default=8)
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--length", type=int, default=60)
    ap.add_argument("--hidden", type=int, default=100)
    ap.add_argument("--backend", default="numba")
    ap.add_argument("--repeats", type=int, default=3,
                    help="interleaved repetitions of the warm variants (medians reported)")
    ap.add_argument("--out", default=None, help="scratch directory (default: a temporary one)")
    args = ap.parse_args(argv)

    from threadpoolctl import threadpool_limits

    import tpref
    from tpref.sweeps import dask_client, make_cells, run_cell

    base = dict(task="temporal-order", length=args.length, method="tp", hidden=args.hidden,
                batch_size=20, iterations=args.iterations, lr=0.1, gamma_h=1e-2, reg=10.0,
                eval_every=args.iterations, eval_size=200, checkpoint_every=args.iterations,
                backend=args.backend)
    grid = {"seed": list(range(args.cells))}
    scratch = args.out or tempfile.mkdtemp(prefix="tpref-bench-sweep-")
    os.makedirs(scratch, exist_ok=True)
    volatile = ("wall_seconds",)

    def fresh(name):
        d = os.path.join(scratch, name)
        shutil.rmtree(d, ignore_errors=True)
        return d

    def numbers(rows):
        return [{k: v for k, v in r.items() if k not in volatile} for r in rows]

    # warm-up of this process (imports, numba cache load), not timed
    cell0 = make_cells({"seed": [0]}, {**base, "iterations": 2})[0]
    run_cell(cell0, fresh("warmup"), "warmup")

    def serial_run():
        d = fresh("serial")
        with threadpool_limits(1):
            return [run_cell(c, os.path.join(d, "cells", c.name), os.path.join("cells", c.name))
                    for c in make_cells(grid, base)]

    def timed(fn):
        t0 = time.perf_counter()
        rows = fn()
        return time.perf_counter() - t0, rows

    names = {"serial": "serial (one process, no Dask)",
             "warm": f"sweep, {args.workers} workers, warm cluster",
             "one": "sweep, 1 worker, warm cluster"}
    times = {k: [] for k in names}
    t_cold, cold = timed(lambda: tpref.sweep(grid, fresh("cold"), base=base, workers=args.workers,
                                             progress=False, plot=False))
    with dask_client(workers=args.workers) as many, dask_client(workers=1) as one:
        _warm(many, cell0, scratch)
        _warm(one, cell0, scratch)
        # interleaved repetitions: the load of a shared machine drifts; each variant sees it
        for _ in range(args.repeats):
            t, serial = timed(serial_run)
            times["serial"].append(t)
            t, warm = timed(lambda: tpref.sweep(grid, fresh("warm"), base=base, client=many,
                                                progress=False, plot=False))
            times["warm"].append(t)
            t, single = timed(lambda: tpref.sweep(grid, fresh("one"), base=base, client=one,
                                                  progress=False, plot=False))
            times["one"].append(t)
            for name, rows in (("cold", cold), ("warm", warm), ("one", single)):
                if numbers(rows) != numbers(serial):
                    raise SystemExit(f"bench_sweep: the {name} sweep's numbers differ from the "
                                     "serial run")
    if not args.out:
        shutil.rmtree(scratch, ignore_errors=True)
    results = {names[k]: statistics.median(v) for k, v in times.items()}
    results[f"sweep, {args.workers} workers (cluster start/stop included; once)"] = t_cold

    serial_s = results["serial (one process, no Dask)"]
    print(f"grid: {args.cells} cells, temporal order T={args.length}, TP, hidden {args.hidden}, "
          f"{args.iterations} iterations, backend {args.backend}; load average "
          f"{os.getloadavg()[0]:.1f} at the end on {os.cpu_count()} CPUs\n")
    print(f"medians of {args.repeats} interleaved repetitions (the cold sweep: once)\n")
    print("| variant | wall s | cells / s | speed-up vs serial |")
    print("|---|---|---|---|")
    for name, s in results.items():
        print(f"| {name} | {s:.2f} | {args.cells / s:.3f} | {serial_s / s:.2f}x |")
    overhead = (results["sweep, 1 worker, warm cluster"] - serial_s) / args.cells
    print(f"\nper-cell overhead (1 warm worker - serial) / cells: {1e3 * overhead:.0f} ms; "
          f"serial seconds per cell: {serial_s / args.cells:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
