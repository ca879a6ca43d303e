"""Training runs: SGD on any oracle method, evaluation, logging, checkpoints, resumption.

One run is described by a :class:`RunConfig` and writes into its own directory::

    config.json       the full configuration (and the task's description)
    metrics.jsonl     one JSON object per evaluation: iteration, train_loss, test_loss,
                      test_accuracy (and task extras), wall_seconds (training steps only),
                      elapsed_seconds (wall clock, evaluation included), written as they come
    checkpoint.npz    parameters, optimizer buffers and counters, replaced atomically
    summary.json      status ("finished", "diverged", "interrupted"), final numbers

The training batch of iteration i is ``task.train_batch(seed, i, batch_size)`` and the
initialization depends on the seed only, so a run resumed from its checkpoint is
bit-identical to an uninterrupted one.

Divergence (the authors' rule): the run stops when a training loss is NaN/inf, when the
training loss averaged over an evaluation window exceeds twice the initial test loss, or
when the regularized inverse cannot be factored. What was logged is kept.

The configuration is :class:`tpref.run_config.RunConfig`, the files are written by
:mod:`tpref.run_io`; this module holds evaluation and the loop.
"""

import dataclasses
import json
import math
import time
import warnings
from typing import Optional

import numpy as np

from .config import REVERSE_PARAM_NAMES
from .diagnostics import Diagnostics
from .losses import loss_and_grad, output_layer
from .models.cells import init_params, last_hidden
from .models.inverse import RegularizedInverseError
from .optim import SGD
from .oracle import NonFiniteResultWarning, oracle
from .processes import RunLock, interrupt_on_sigterm
from .run_config import (DEFAULT_EVALUATIONS, MAX_EVAL_EVERY, RunConfig, default_backend,
                         default_eval_every)
from .run_io import (Progress, check_checkpoint_params, check_output_dir, load_checkpoint,
                     read_metrics, resume_point, run_paths, save_checkpoint, write_json)
from .validation import all_finite

# RunConfig and its defaults (tpref.run_config) and the run files' helpers (tpref.run_io) are
# also importable from here: tpref.train was their first home
__all__ = ["RunConfig", "train", "evaluate", "default_backend", "default_eval_every",
           "DEFAULT_EVALUATIONS", "MAX_EVAL_EVERY", "Progress", "check_output_dir",
           "load_checkpoint", "read_metrics", "save_checkpoint"]


# ----------------------------------------------------------------------------------------------
# evaluation


def evaluate(task, params, seed, size, cell="rnn", backend="numpy"):
    """(test loss, metrics dict) of ``params`` (a ``cell``) on the task's held-out data."""
    n, loss_sum, metric_sums = 0, 0.0, {}
    with np.errstate(all="ignore"):     # a diverging model gives inf/NaN here, reported as such
        for x, y in task.eval_batches(seed, size):
            b, value, m = x.shape[1], *_eval_chunk(task, params, x, y, cell, backend)
            n += b
            loss_sum += value * b
            for key, v in m.items():
                metric_sums[key] = metric_sums.get(key, 0.0) + v * b
    return loss_sum / n, {k: v / n for k, v in metric_sums.items()}


def _eval_chunk(task, params, x, y, cell, backend):
    """(batch-mean loss, metrics) of one evaluation chunk, forward pass only."""
    h_T = last_hidden(cell, params, x, backend)                       # (B, p)
    out = output_layer(params, h_T)                                   # (B, k)
    value, _ = loss_and_grad(task.loss, out, y)
    return value, task.metrics(out, y)


# ----------------------------------------------------------------------------------------------
# the loop


def _finite_or_none(v):
    return v if v is not None and math.isfinite(v) else None


@dataclasses.dataclass
class _Counters:
    """What a checkpoint holds besides parameters and optimizer buffers."""

    iteration: int = 0                     # SGD steps done
    initial_loss: Optional[float] = None   # test loss at iteration 0 (divergence rule)
    wall_seconds: float = 0.0              # training steps only, evaluations excluded
    elapsed_seconds: float = 0.0           # wall clock of the run: evaluations, checkpoints too
    window: list = dataclasses.field(default_factory=list)   # training losses since last eval


class _Run:
    """One run in progress: parameters, optimizer, counters, its files and progress line."""

    def __init__(self, config, task, out_dir, prog):
        self.config, self.task, self.out_dir, self.prog = config, task, out_dir, prog
        self.paths = run_paths(out_dir)
        learned = config.method == "dtp_learned"
        self.params = init_params(config.cell, task.d, config.hidden, task.k,
                                  seed=config.seed, dtype=np.dtype(config.dtype),
                                  init=config.init, reverse=learned)
        forward = {k: v for k, v in self.params.items() if k not in REVERSE_PARAM_NAMES}
        self.opt = SGD(forward, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)
        # dtp_learned: plain SGD on (V_hh, c_h) at reverse_lr lands exactly on the reverse
        # weights the oracle's targets used (its reverse_lr option, TPTT's schedule)
        self.reverse_opt = (SGD({k: self.params[k] for k in REVERSE_PARAM_NAMES},
                                lr=config.reverse_lr) if learned else None)
        self.n = _Counters()
        self.metrics_file = None
        self.diagnostics = Diagnostics.of(config, task, out_dir)
        self.warm_up_seconds = 0.0

    def warm_up(self):
        """One oracle call and one evaluation forward on two steps of the first batch, so that
        compiling the kernels or loading them from numba's cache happens before the clock
        starts; returns its seconds. Nothing the run computes depends on it (the oracle does
        not change the parameters)."""
        c = self.config
        t0 = time.perf_counter()
        x, y = self.task.train_batch(c.seed, 0, c.batch_size)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", NonFiniteResultWarning)
            try:
                oracle(c.method, self.params, x[:2], y, loss=self.task.loss, backend=c.backend,
                       cell=c.cell, **c.oracle_options(0))
            except RegularizedInverseError:
                pass                            # the first step reports it (a divergence)
            last_hidden(c.cell, self.params, x[:2], c.backend)
        self.warm_up_seconds = time.perf_counter() - t0
        self.prog.log(f"kernels ready in {self.warm_up_seconds:.1f}s (compiled or loaded from "
                      f"cache; not counted in the run's times)")
        return self.warm_up_seconds

    def start(self, resume):
        """Continue from the directory's checkpoint (``resume``) or start afresh; write config.json."""
        cfg = dataclasses.asdict(self.config)
        # a field missing from an older config.json had its present default then
        saved = resume_point(self.out_dir, cfg, resume,
                             defaults=dataclasses.asdict(RunConfig()))
        if saved is not None:
            params, buffers, state = saved
            check_checkpoint_params(self.paths["checkpoint"], params, self.params)
            for k in self.params:
                self.params[k][...] = params[k]
            self.opt.load_state_dict(buffers)
            self.n = _Counters(**state)
            self.prog.log(f"resumed from {self.paths['checkpoint']} at iteration {self.n.iteration}")
        self._clock = (time.perf_counter(), self.n.elapsed_seconds)
        self.diagnostics.start(self.n.iteration)
        write_json(self.paths["config"], {"run": cfg, "task": self.task.describe()})

    def tick(self):
        """Bring ``elapsed_seconds`` up to now (the clock runs from start() on)."""
        t0, before = self._clock
        self.n.elapsed_seconds = before + time.perf_counter() - t0

    def due(self, every):
        """Whether the iteration just done is a multiple of ``every`` or the last one."""
        return self.n.iteration % every == 0 or self.n.iteration == self.config.iterations

    def step(self):
        """One SGD step on this iteration's batch; None, or why the run diverged."""
        c, n = self.config, self.n
        x, y = self.task.train_batch(c.seed, n.iteration, c.batch_size)
        self.diagnostics.record(n.iteration, self.params, x, y)
        t0 = time.perf_counter()
        try:
            # a non-finite result is a divergence, below (_train ignores the oracle's
            # NonFiniteResultWarning around the whole loop: entering the filter at every
            # step cost more than the step's other bookkeeping together)
            res = oracle(c.method, self.params, x, y, loss=self.task.loss, backend=c.backend,
                         cell=c.cell, **c.oracle_options(n.iteration))
        except (FloatingPointError, RegularizedInverseError) as err:
            return f"{type(err).__name__}: {err}"
        if not math.isfinite(res.loss):
            return f"training loss {res.loss} is not finite"
        if not all(all_finite(g) for g in res.direction.values()):
            return "the descent direction is not finite (an overflow)"
        try:
            direction = res.direction
            if self.reverse_opt is not None:                  # the inverse step first (TPTT)
                self.reverse_opt.step({k: direction[k] for k in self.reverse_opt.params})
                direction = {k: direction[k] for k in self.opt.params}
            self.opt.step(direction)
        except FloatingPointError as err:
            return f"parameter update overflowed: {err}"
        n.wall_seconds += time.perf_counter() - t0
        n.window.append(res.loss)
        n.iteration += 1
        self.tick()
        self.prog.update(n.iteration, n.elapsed_seconds)
        return None

    def log_eval(self):
        """Evaluate on held-out data and append the metrics row; return the row."""
        c, n = self.config, self.n
        test_loss, metrics = evaluate(self.task, self.params, c.seed, c.eval_size, c.cell,
                                      c.backend)
        self.tick()
        if n.initial_loss is None:
            n.initial_loss = test_loss
        row = {"iteration": n.iteration,
               "train_loss": float(np.mean(n.window)) if n.window else None,
               "test_loss": _finite_or_none(test_loss),
               "test_accuracy": metrics.pop("accuracy"), "wall_seconds": round(n.wall_seconds, 4),
               "elapsed_seconds": round(n.elapsed_seconds, 4)}
        row.update({f"test_{k}": v for k, v in metrics.items()})
        self.metrics_file.write(json.dumps(row) + "\n")
        self.metrics_file.flush()
        self.prog.info = f"loss {row['train_loss'] or test_loss:.4g} acc {row['test_accuracy']:.3f}"
        if not self.prog.tty:
            train = "" if row["train_loss"] is None else f"train {row['train_loss']:.4g} "
            self.prog.log(f"it {n.iteration}/{c.iterations} {train}test {test_loss:.4g} "
                          f"acc {row['test_accuracy']:.4f} elapsed {n.elapsed_seconds:.0f}s")
        return row

    def end_window(self):
        """Evaluate, start a new window; None, or why the run diverged (authors' rule)."""
        mean_train = self.log_eval()["train_loss"]
        self.n.window = []
        if mean_train > 2 * self.n.initial_loss:
            return (f"mean training loss {mean_train:.4g} exceeds twice the "
                    f"initial loss {self.n.initial_loss:.4g}")
        if any(not np.isfinite(v).all() for v in self.params.values()):
            return "parameters are not finite"
        return None

    def checkpoint(self):
        self.tick()
        save_checkpoint(self.paths["checkpoint"], self.params, self.opt,
                        dataclasses.asdict(self.n))

    def finish(self, status, reason):
        """Write summary.json, say how the run ended; return the summary."""
        n, paths = self.n, self.paths
        self.tick()
        rows = read_metrics(paths["metrics"])
        last = rows[-1] if rows else {}
        summary = {
            "status": status, "reason": reason, "iterations_done": n.iteration,
            "iterations_planned": self.config.iterations, "method": self.config.method,
            "task": self.config.task, "final_test_accuracy": last.get("test_accuracy"),
            "final_test_loss": last.get("test_loss"),
            "best_test_accuracy": max((r["test_accuracy"] for r in rows), default=None),
            "first_iteration_at_100": next(
                (r["iteration"] for r in rows if r["test_accuracy"] >= 1.0), None),
            "wall_seconds": round(n.wall_seconds, 3),
            "elapsed_seconds": round(n.elapsed_seconds, 3),
            "seconds_per_iteration": round(n.wall_seconds / n.iteration, 6) if n.iteration else None,
            "warm_up_seconds": round(self.warm_up_seconds, 3),   # before the clock: not counted
            "paths": paths,
        }
        write_json(paths["summary"], summary)
        if status == "diverged":
            self.prog.log(f"DIVERGED at iteration {n.iteration}: {reason}; metrics kept in "
                          f"{paths['metrics']}")
        elif status == "interrupted":
            self.prog.log(f"interrupted at iteration {n.iteration}; resume with the same command "
                          f"(last checkpoint {paths['checkpoint']})")
        else:
            self.prog.log(f"done: {n.iteration} iterations, {n.elapsed_seconds:.1f}s elapsed "
                          f"(evaluation included; training steps {n.wall_seconds:.1f}s), test "
                          f"accuracy {summary['final_test_accuracy']:.4f}; results in "
                          f"{self.out_dir}")
        return summary


def train(config, out_dir, *, resume=True, progress=True, stream=None, task=None, stop_after=None):
    """Run (or resume) one training run; return its summary dict.

    Parameters
    ----------
    config : RunConfig
    out_dir : path
        The run's directory (created; must be writable).
    resume : bool
        Continue from ``out_dir/checkpoint.npz`` when it exists and its config matches
        (a larger ``iterations`` extends a finished run).
    progress : bool
        Progress bar / lines on ``stream`` (stderr by default).
    task : Task, optional
        An already built task (else built from the config).
    stop_after : int, optional
        Stop (as if interrupted) once this iteration count is reached; for tests.

    Returns
    -------
    dict
        status, iterations_done, final test numbers, wall_seconds, seconds_per_iteration,
        first_iteration_at_100 (first evaluation with accuracy 1.0, or None), paths.
    """
    config.validate()
    check_output_dir(out_dir)
    with RunLock(out_dir):             # one writer per run directory (tpref.processes)
        return _train(config, out_dir, resume=resume, progress=progress, stream=stream,
                      task=task, stop_after=stop_after)


def _train(config, out_dir, *, resume, progress, stream, task, stop_after):
    task = task if task is not None else config.make_task()
    run = _Run(config, task, out_dir,
               Progress(f"[{config.task} {config.method}]", config.iterations, stream, progress))
    run.warm_up()                      # compilation / cache loading outside the timed part
    run.start(resume)
    n = run.n
    status, reason = "finished", None
    try:
        with interrupt_on_sigterm(), open(run.paths["metrics"], "a") as run.metrics_file:
            if n.iteration == 0:
                run.log_eval()
            with np.errstate(under="ignore", over="raise", invalid="raise", divide="raise"), \
                    warnings.catch_warnings():
                warnings.simplefilter("ignore", NonFiniteResultWarning)   # run.step() decides
                while n.iteration < config.iterations:
                    if stop_after is not None and n.iteration >= stop_after:
                        status = "interrupted"
                        break
                    reason = run.step()
                    if reason is None and run.due(config.eval_every):
                        reason = run.end_window()
                    if reason is not None:
                        status = "diverged"
                        break
                    if run.due(config.checkpoint_every):
                        run.checkpoint()
    except KeyboardInterrupt:
        status, reason = "interrupted", "interrupted (Ctrl-C or SIGTERM)"
    return run.finish(status, reason)
