"""Sweep throughput: cells per second on N Dask workers against the same cells one after the
other in one process, and the per-cell overhead of the sweep machinery.

    python scripts/bench_sweep.py --workers 2 --cells 16 --iterations 300

Five timings (six with ``--in-process``) of the same grid (each into a fresh directory, so
nothing is skipped; the warm variants repeated in turn, in an order that rotates each
repetition; medians reported, and each repetition's own serial/variant ratio, which a drift of
the machine's speed between repetitions does not move):

- ``serial``: :func:`tpref.sweeps.run_cell` on every cell, one after the other, in one warm
  plain process (a 1-process ``ProcessPoolExecutor``, BLAS on one thread; no Dask): the
  baseline, what running the cells one by one costs;
- ``sweep N workers, warm``: :func:`tpref.sweep` on an already started embedded cluster whose
  workers have each run a 2-iteration cell (imports, numba cache loaded: the steady state of a
  long sweep);
- ``sweep 1 worker, warm``: one warm worker; (its time - serial) / cells is the per-cell
  overhead of Dask (submit, schedule, serialize, gather) and of the cell's bookkeeping;
- ``N plain processes, warm``: the cells on a ``ProcessPoolExecutor`` of N warm processes, no
  Dask: what this machine gives N processes at all (the ceiling for the Dask sweep; on a
  shared machine, the other jobs' share shows here);
- ``serial in this benchmark's process`` (``--in-process``): the serial loop in the process
  that also holds the clusters' scheduler, nannies and clients (earlier versions of this
  script used it as the baseline; the plain process is the neutral one);
- ``sweep N workers, cluster start/stop included``: what one ``tpref sweep`` costs (once).

Besides wall seconds it reports CPU seconds, which the load of a shared machine disturbs much
less: the serial process's CPU against the sweep's total (every worker process plus this
process, where the scheduler, the nannies and the client run; this process's CPU is counted
for the plain-process variants too). Their difference per cell is the sweep's CPU overhead per
cell; its difference from the N plain processes' CPU is what Dask itself costs (N processes
running at once also slow each other: caches, memory).

For the warm sweeps it also reads Dask's own task stream (each cell's compute start and stop
on its worker) and splits the workers' time (workers x the sweep's wall) into: busy computing
cells; idle before the first cell starts (submission, scheduling); idle between two cells on
one worker (the per-cell dispatch gap: result sent, next cell scheduled, received, started);
idle at the end (a worker done while the other still computes its last cell, the imbalance
of a finite grid); and the client's return after the last cell. With the cell's time on a
worker against the serial cell's (how much a cell slows when N run at once), these explain
the speed-up: N x busy share x serial cell / worker cell.

Before the runs it measures how many cores N busy processes started from here get at all (a
shared machine's other jobs take the rest; see :func:`_cores_given`). Every cell must produce
the same numbers in every variant (checked), so the timings compare the same work. Prints
Markdown tables.
"""

import argparse
import concurrent.futures
import multiprocessing
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def _process_cpu():
    """CPU seconds of this process, every thread."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _warm_cell(cell, scratch):
    """Run a 2-iteration cell here (imports and the numba cache load, not timed)."""
    from tpref.sweeps import run_cell

    d = os.path.join(scratch, f"warmup-{os.getpid()}")
    run_cell(cell, d, "warmup")
    shutil.rmtree(d, ignore_errors=True)
    return os.getpid()


def _pool_cell(cell, run_dir, rel):
    from threadpoolctl import threadpool_limits

    from tpref.sweeps import run_cell

    with threadpool_limits(1):
        return run_cell(cell, run_dir, rel)


def _pool_warm(cell, scratch, tag):
    """A pool process's initializer: warm up, then say so (a file named by its pool and pid)."""
    _warm_cell(cell, scratch)
    open(os.path.join(scratch, f"{tag}-ready-{os.getpid()}"), "w").close()


def _pool_pids(scratch, tag, n, timeout=300):
    """The pids of pool ``tag``'s ``n`` processes, once each has warmed up."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        pids = [int(f.rsplit("-", 1)[1]) for f in os.listdir(scratch)
                if f.startswith(f"{tag}-ready-")]
        if len(pids) == n:
            return pids
        time.sleep(0.1)
    raise SystemExit(f"bench_sweep: {n} pool processes did not start in {timeout} s")


def _spin(seconds):
    """Busy-loop for ``seconds`` of wall time; return the CPU seconds this process got."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        pass
    return time.process_time()


def _cores_given(n, seconds=3.0):
    """CPU cores that ``n`` busy processes started from here get together (wall-clock share):
    what the machine's other jobs leave to this benchmark. Under Linux's autogroup scheduling
    (``/proc/sys/kernel/sched_autogroup_enabled``) a session's processes share one group's
    slice, so on a busy machine N processes may get no more than 1."""
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(n, mp_context=ctx) as pool:
        for f in [pool.submit(time.sleep, 0.2) for _ in range(n)]:   # start them first
            f.result()
        return sum(f.result() for f in [pool.submit(_spin, seconds) for _ in range(n)]) / seconds


def _autogroup():
    try:
        with open("/proc/sys/kernel/sched_autogroup_enabled") as f:
            return f.read().strip() == "1"
    except OSError:
        return None


def _workers_cpu(client):
    return client.run(_process_cpu)


def _timeline(records, t_call, t_return, workers):
    """Where a sweep's worker time went, from Dask's own task stream (each cell's compute
    start and stop on its worker, the worker's clock = this machine's): busy, idle before the
    first cell, idle between two cells on one worker (the per-cell dispatch gap: result sent,
    next cell scheduled, received, started), idle at the end (one worker done while another
    still computes) and the client's return after the last cell. Seconds of worker time;
    they add up to ``workers`` x the sweep's wall when every worker got a cell."""
    by = {}
    for rec in records:
        for ss in rec["startstops"]:
            if ss["action"] == "compute":
                by.setdefault(rec["worker"], []).append((ss["start"], ss["stop"]))
    spans = [s for v in by.values() for s in v]
    last = max(b for _, b in spans)
    gaps = [v[i + 1][0] - v[i][1] for v in map(sorted, by.values()) for i in range(len(v) - 1)]
    return {
        "busy": sum(b - a for a, b in spans),
        "cells": len(spans),
        "start": sum(min(a for a, _ in v) - t_call for v in by.values()),
        "between": sum(gaps),
        "gap": statistics.median(gaps) if gaps else 0.0,
        "end": sum(last - max(b for _, b in v) for v in by.values()),
        "return": workers * (t_return - last),
        "wall": t_return - t_call,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cells", type=int, default=16)
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--length", type=int, default=60)
    ap.add_argument("--hidden", type=int, default=100)
    ap.add_argument("--backend", default="numba")
    ap.add_argument("--repeats", type=int, default=3,
                    help="interleaved repetitions of the warm variants (medians reported)")
    ap.add_argument("--in-process", action="store_true",
                    help="also time the serial loop in this process (beside the clusters)")
    ap.add_argument("--no-cold", action="store_true",
                    help="skip the sweep that starts and stops its own cluster")
    ap.add_argument("--out", default=None, help="scratch directory (default: a temporary one)")
    args = ap.parse_args(argv)

    from threadpoolctl import threadpool_limits

    import tpref
    from tpref.sweeps import WORKER_ENV, dask_client, make_cells, require_dask, run_cell

    distributed = require_dask()

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

    def here_run():
        d = fresh("here")
        t0 = time.thread_time()
        with threadpool_limits(1):
            rows = [run_cell(c, os.path.join(d, "cells", c.name), os.path.join("cells", c.name))
                    for c in make_cells(grid, base)]
        return rows, time.thread_time() - t0

    def sweep_run(client, name):
        before = _workers_cpu(client)
        c0 = _process_cpu()
        with distributed.get_task_stream(client) as stream:
            t_call = time.time()
            rows = tpref.sweep(grid, fresh(name), base=base, client=client, progress=False,
                               plot=False)
            t_return = time.time()
        own = _process_cpu() - c0
        timelines[name].append(_timeline(stream.data, t_call, t_return,
                                         len(client.nthreads())))
        after = _workers_cpu(client)
        own_cpus[name].append(own)
        return rows, own + sum(after[w] - before[w] for w in after if w in before)

    def pool_run(pool, name):
        d = fresh(name)
        c0 = _process_cpu()
        futures = [pool.submit(_pool_cell, c, os.path.join(d, "cells", c.name),
                               os.path.join("cells", c.name)) for c in make_cells(grid, base)]
        rows = [f.result() for f in futures]
        # the pool's processes: their CPU is read from /proc below (children not yet waited)
        return rows, _process_cpu() - c0

    def timed(fn):
        t0 = time.perf_counter()
        rows, cpu = fn()
        return time.perf_counter() - t0, cpu, rows

    names = {"serial": "serial (one plain process, no Dask)",
             "warm": f"sweep, {args.workers} workers, warm cluster",
             "one": "sweep, 1 worker, warm cluster",
             "pool": f"{args.workers} plain processes, warm (no Dask)",
             "here": "serial in this benchmark's process (beside the clusters)"}
    if not args.in_process:
        del names["here"]
    walls = {k: [] for k in names}
    cpus = {k: [] for k in names}
    own_cpus = {"warm": [], "one": []}     # of the sweeps' CPU: this process's (client, ...)
    timelines = {"warm": [], "one": []}    # the sweeps' task streams (_timeline)
    load = [os.getloadavg()[0]]
    share = {k: _cores_given(k) for k in sorted({1, args.workers})}
    cold = None
    if not args.no_cold:
        t_cold, _, cold = timed(lambda: (tpref.sweep(
            grid, fresh("cold"), base=base, workers=args.workers, progress=False,
            plot=False), None))
    os.environ.update(WORKER_ENV)          # the pool's processes: BLAS on one thread, as Dask's
    ctx = multiprocessing.get_context("spawn")
    with dask_client(workers=args.workers) as many, dask_client(workers=1) as one, \
            concurrent.futures.ProcessPoolExecutor(args.workers, mp_context=ctx,
                                                   initializer=_pool_warm,
                                                   initargs=(cell0, scratch, "pool")) as pool, \
            concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx, initializer=_pool_warm,
                                                   initargs=(cell0, scratch, "serial")) as solo:
        many.run(_warm_cell, cell0, scratch)
        one.run(_warm_cell, cell0, scratch)
        # N tasks submitted at once start N processes (each warms up in its initializer)
        for ex, n in ((pool, args.workers), (solo, 1)):
            for f in [ex.submit(time.sleep, 0.1) for _ in range(n)]:
                f.result()
        import psutil

        procs = {tag: [psutil.Process(p) for p in _pool_pids(scratch, tag, n)]
                 for tag, n in (("pool", args.workers), ("serial", 1))}

        def pool_cpu_run(ex, tag):
            before = sum(sum(p.cpu_times()[:2]) for p in procs[tag])
            rows, own = pool_run(ex, tag)
            return rows, own + sum(sum(p.cpu_times()[:2]) for p in procs[tag]) - before

        # interleaved repetitions: the load of a shared machine drifts; each variant sees it
        for rep in range(args.repeats):
            runs = (("serial", lambda: pool_cpu_run(solo, "serial")),
                    ("warm", lambda: sweep_run(many, "warm")),
                    ("one", lambda: sweep_run(one, "one")),
                    ("pool", lambda: pool_cpu_run(pool, "pool")), ("here", here_run))
            runs = tuple(r for r in runs if r[0] in names)
            # the order rotates: no variant always runs first (or right after another)
            runs = runs[rep % len(runs):] + runs[:rep % len(runs)]
            got = {}
            for key, fn in runs:
                t, cpu, got[key] = timed(fn)
                walls[key].append(t)
                cpus[key].append(cpu)
            for key in [k for k in names if k != "serial"]:
                if numbers(got[key]) != numbers(got["serial"]):
                    raise SystemExit(f"bench_sweep: the {names[key]} numbers differ from the "
                                     "serial run")
            if cold is not None and numbers(cold) != numbers(got["serial"]):
                raise SystemExit("bench_sweep: the cold sweep's numbers differ from the serial run")
            load.append(os.getloadavg()[0])
    if not args.out:
        shutil.rmtree(scratch, ignore_errors=True)

    wall = {k: statistics.median(v) for k, v in walls.items()}
    cpu = {k: statistics.median(v) for k, v in cpus.items()}
    n = args.cells
    print(f"grid: {n} cells, temporal order T={args.length}, TP, hidden {args.hidden}, "
          f"{args.iterations} iterations, backend {args.backend}; {os.cpu_count()} CPUs, load "
          f"average (1 min) {min(load):.1f}-{max(load):.1f} during the run\n")
    print("cores given to busy processes started by this benchmark (before the runs): "
          + ", ".join(f"{k} process{'es' if k > 1 else ''} {v:.2f}" for k, v in share.items())
          + f"; Linux autogroup scheduling {'on' if _autogroup() else 'off or unknown'}\n")
    print(f"medians of {args.repeats} interleaved repetitions (the cold sweep: once)\n")
    print("| variant | wall s | cells / s | speed-up vs serial | CPU s | CPU vs serial |")
    print("|---|---|---|---|---|---|")
    for key, name in names.items():
        print(f"| {name} | {wall[key]:.2f} | {n / wall[key]:.3f} | "
              f"{wall['serial'] / wall[key]:.2f}x | {cpu[key]:.2f} | "
              f"{cpu[key] / cpu['serial']:.3f} |")
    if cold is not None:
        print(f"| sweep, {args.workers} workers, cluster start/stop included (once) | "
              f"{t_cold:.2f} | {n / t_cold:.3f} | {wall['serial'] / t_cold:.2f}x | | |")
    print(f"\nserial: {wall['serial'] / n:.2f} s per cell")
    print(f"per-cell overhead, wall (1 warm worker - serial) / cells: "
          f"{1e3 * (wall['one'] - wall['serial']) / n:.0f} ms")
    print(f"per-cell overhead, CPU ({args.workers} warm workers + scheduler/client - serial) / "
          f"cells: {1e3 * (cpu['warm'] - cpu['serial']) / n:.0f} ms")
    print(f"per-cell overhead, CPU, against {args.workers} plain processes (the same "
          f"concurrency, no Dask) / cells: {1e3 * (cpu['warm'] - cpu['pool']) / n:.0f} ms")
    print(f"of the {args.workers}-worker sweep's CPU, this process (scheduler, nannies, client, "
          f"and the idle 1-worker cluster): {statistics.median(own_cpus['warm']):.2f} s")
    print(f"Dask sweep vs {args.workers} plain processes (wall): "
          f"{wall['pool'] / wall['warm']:.2f}")
    # where the sweeps' worker time went, and how much slower a cell ran on a worker (beside
    # the others) than in the serial loop of the same repetition; in each repetition
    # serial wall / the sweep call's wall = workers x busy share / slowdown exactly (busy
    # share = busy / (workers x call wall), slowdown = (busy / cells) / (serial wall / cells));
    # the timed wall adds the CPU and task-stream reads around the call, a few ms
    print("\nwhere the warm sweeps' worker time went (Dask's task stream; shares of workers x "
          "wall, medians over the repetitions):\n")
    print("| sweep | workers busy | idle: before the first cell | between cells "
          "(median gap per cell) | at the end (imbalance) | client's return | "
          "slowdown: mean cell on a worker / serial cell |")
    print("|---|---|---|---|---|---|---|")
    gap_ms = {}
    for key, k in (("warm", args.workers), ("one", 1)):
        tl = timelines[key]
        share = {f: 100 * statistics.median(t[f] / (k * t["wall"]) for t in tl)
                 for f in ("busy", "start", "between", "end", "return")}
        gap_ms[key] = 1e3 * statistics.median(t["gap"] for t in tl)
        slow = statistics.median(t["busy"] / t["cells"] / (s / n)
                                 for t, s in zip(tl, walls["serial"]))
        print(f"| {names[key]} | {share['busy']:.1f}% | {share['start']:.2f}% | "
              f"{share['between']:.2f}% ({gap_ms[key]:.1f} ms) | {share['end']:.2f}% | "
              f"{share['return']:.2f}% | {slow:.3f} |")
    print(f"\nper-cell dispatch gap on a worker (result out, next cell in; median): "
          f"{gap_ms['warm']:.1f} ms ({args.workers} workers), {gap_ms['one']:.1f} ms (1 worker)")
    # each repetition's own ratios (the variants of one repetition ran back to back, so a
    # drift of the machine's speed between repetitions cancels in them)
    print("\npaired, each repetition's serial wall / the variant's wall: median (min - max)")
    for key in [k for k in names if k != "serial"]:
        r = [s / w for s, w in zip(walls["serial"], walls[key])]
        print(f"  {names[key]}: {statistics.median(r):.2f}x ({min(r):.2f} - {max(r):.2f}); "
              + " ".join(f"{x:.2f}" for x in r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
