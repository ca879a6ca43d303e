"""``tpref bench --train-overhead``: what a training run costs per iteration beyond its oracle
calls and SGD steps (issue 17: ``tpref train`` within 1.10x of the bare loop).

Two loops of the same preset, method and iteration count, alternated repetition by
repetition in one process on one thread:

- ``train``: :func:`tpref.train.train` into a fresh directory, as ``tpref train`` runs it
  (evaluations at the preset's cadence, checkpoints, metrics file); its per-iteration time is
  the run's ``elapsed_seconds`` (evaluations included; the warm-up, i.e. compiling or loading
  the kernels, is outside the clock and reported apart);
- ``bare``: the same batches (``task.train_batch``), oracle calls and SGD steps, nothing else.

The ratio is the median of per-repetition ratios (``timing.paired_ratio``), wall clock and the
thread's CPU time. One ``train`` run is profiled (cProfile) and its time split into the oracle,
the SGD step, the evaluations, the batches and the rest: where the overhead goes.
"""

import cProfile
import json
import os
import pstats
import shutil
import tempfile
import time

import numpy as np

from ..oracle import oracle
from ..optim import SGD
from .timing import paired_ratio, summarize

#: What the profile splits a run into: label -> (file suffix, function name) of cProfile's keys.
PROFILE_PARTS = {"oracle": ("tpref/oracle.py", "oracle"), "sgd step": ("tpref/optim.py", "step"),
                 "evaluation": ("tpref/train.py", "evaluate"),
                 "batches": ("tpref/tasks/base.py", "train_batch"),
                 "checkpoints": ("tpref/train.py", "checkpoint")}


def run_config(preset="temporal-order-60", method="tp", iterations=1000, backend="numba",
               data_dir=None):
    """The RunConfig ``tpref train --task ... --iterations N`` would run: the preset's fields
    and its evaluation cadence for its full length (not for N); image presets read their data
    from ``data_dir``."""
    from ..presets import PRESETS
    from ..train import RunConfig, default_eval_every

    p = PRESETS[preset]
    fields = p.run_fields(method)
    return RunConfig(**dict(fields, iterations=iterations, backend=backend, data_dir=data_dir,
                            eval_every=default_eval_every(p.iterations)))


def bare_loop(config, task):
    """The oracle + SGD loop alone, on the run's batches; returns the final parameters
    (methods "bp", "tp", "dtp": one optimizer over every parameter, as ``train`` has)."""
    from ..models.cells import init_params

    params = init_params(config.cell, task.d, config.hidden, task.k, seed=config.seed,
                         dtype=np.dtype(config.dtype), init=config.init)
    opt = SGD(params, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)
    for it in range(config.iterations):
        x, y = task.train_batch(config.seed, it, config.batch_size)
        res = oracle(config.method, params, x, y, loss=task.loss, backend=config.backend,
                     cell=config.cell, **config.oracle_options(it))
        opt.step(res.direction)
    return params


def _train_once(config, task, root):
    from ..train import train

    out = tempfile.mkdtemp(dir=root)
    try:
        summary = train(config, out, resume=False, progress=False, task=task)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    if summary["status"] == "interrupted":     # train() turned Ctrl-C / SIGTERM into a status
        raise KeyboardInterrupt(summary["reason"])
    return summary


def profile_split(config, task, root):
    """Seconds of one ``train`` run by part (PROFILE_PARTS, cumulative; "total" the call)."""
    prof = cProfile.Profile()
    prof.enable()
    t0 = time.perf_counter()
    _train_once(config, task, root)
    total = time.perf_counter() - t0
    prof.disable()
    stats = pstats.Stats(prof).stats
    split = {"total": total}
    for label, (suffix, name) in PROFILE_PARTS.items():
        split[label] = sum(v[3] for (path, _, fn), v in stats.items()
                           if fn == name and path.replace(os.sep, "/").endswith(suffix))
    return split


def train_overhead(config, repeats, log=print):
    """Paired per-iteration ratios train / bare (wall and CPU) and a profile of one run."""
    task = config.make_task()
    root = tempfile.mkdtemp(prefix="tpref-train-overhead-")
    try:
        first = _train_once(config, task, root)             # warms every kernel and cache
        log(f"  warm-up of the first run: {first['warm_up_seconds']:.2f} s (outside its clock)")
        bare_loop(config, task)
        s = {k: {"wall": [], "cpu": []} for k in ("train", "bare")}
        for r in range(repeats):
            for name in (("train", "bare") if r % 2 == 0 else ("bare", "train")):
                c0, t0 = time.thread_time(), time.perf_counter()
                summary = _train_once(config, task, root) if name == "train" else None
                if name == "bare":
                    bare_loop(config, task)
                c1, t1 = time.thread_time(), time.perf_counter()
                wall = summary["elapsed_seconds"] if summary else t1 - t0
                s[name]["wall"].append(1e3 * wall / config.iterations)
                s[name]["cpu"].append(1e3 * (c1 - c0) / config.iterations)
        split = profile_split(config, task, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out = {"config": {k: getattr(config, k) for k in ("task", "method", "length", "iterations",
                                                       "eval_every", "eval_size", "batch_size",
                                                       "backend", "dtype")},
           "ms_per_iteration": {n: {c: summarize(v) for c, v in d.items()} for n, d in s.items()},
           "train_over_bare": {c: paired_ratio(s["train"][c], s["bare"][c]) for c in ("wall", "cpu")},
           "profile_seconds": split}
    log(f"  train / bare per iteration, paired: wall {out['train_over_bare']['wall']['median']:.3f}"
        f", cpu {out['train_over_bare']['cpu']['median']:.3f}; profile of one run (s): "
        + ", ".join(f"{k} {v:.3f}" for k, v in split.items()))
    return out


def run_train_overhead(repeats, out_dir, presets=("temporal-order-60",), method="tp",
                       iterations=1000, data_dir=None, meta=None, log=print):
    """``train_overhead`` for each preset; writes train_overhead.json in ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    rows = []
    for name in presets:
        config = run_config(name, method, iterations, data_dir=data_dir)
        log(f"[train overhead {name} {method}] {iterations} iterations, evaluation every "
            f"{config.eval_every} ({config.eval_size} samples), {repeats} repetitions")
        rows.append(dict(train_overhead(config, repeats, log=log), preset=name))
    results = {"meta": dict(meta or {}, load_average_end=os.getloadavg()), "runs": rows}
    path = os.path.join(out_dir, "train_overhead.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    log(f"wrote {path}")
    return results
