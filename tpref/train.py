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

The files are written by :mod:`tpref.run_io`; this module holds the configuration and the loop.
"""

import dataclasses
import json
import math
import time
import warnings
from typing import Optional

import numpy as np

from .config import CELLS, DTYPES, GRU_INVERSES, METHODS, REVERSE_PARAM_NAMES, UPDATES
from .losses import loss_and_grad, output_layer
from .models.cells import INITS, init_params, last_hidden
from .models.inverse import RegularizedInverseError
from .optim import SGD
from .oracle import BACKENDS, NonFiniteResultWarning, check_backend, oracle
from .diagnostics import Diagnostics, check_diagnostics
from .processes import RunLock, interrupt_on_sigterm
from .run_io import (Progress, check_checkpoint_params, check_output_dir, load_checkpoint,
                     read_metrics, resume_point, run_paths, save_checkpoint, write_json)
from .tasks import make_task
from .validation import check_choice

# the run files' helpers are also importable from here (tpref.train was their first home)
__all__ = ["RunConfig", "train", "evaluate", "default_backend", "Progress", "check_output_dir",
           "load_checkpoint", "read_metrics", "save_checkpoint"]


#: Evaluations a run gets by default: every ``iterations // DEFAULT_EVALUATIONS`` iterations,
#: at most every ``MAX_EVAL_EVERY`` (the paper's 40 000-iteration runs: every 200).
DEFAULT_EVALUATIONS = 10
MAX_EVAL_EVERY = 200


def default_eval_every(iterations):
    """Evaluation cadence of a run of ``iterations`` steps: about DEFAULT_EVALUATIONS
    evaluations, never rarer than every MAX_EVAL_EVERY iterations (a 400-step run: every 40)."""
    return max(1, min(MAX_EVAL_EVERY, iterations // DEFAULT_EVALUATIONS))


#: Stream label of dtp_learned's inverse-loss noise, next to the tasks' streams 0-2
#: (tpref.tasks.base): its draws at iteration i are default_rng((seed, 3, i)).
_NOISE_STREAM = 3


def default_backend():
    """"numba" when that backend is installed, else the NumPy reference."""
    return "numba" if "numba" in BACKENDS else "numpy"


@dataclasses.dataclass
class RunConfig:
    """Everything that defines one training run (saved as config.json).

    Step sizes follow the paper: ``lr`` is gamma_theta, ``gamma_h`` the target step of
    Eq. (1), ``reg`` the regularization r of the inverse (both unused by BP). ``cell`` is the
    recurrent cell ("rnn" or "gru", tpref.models.cells), ``gru_inverse`` the GRU's
    linearized inverse for TP (``tpref.oracle``), ``dtype`` the computation's float type and
    ``init`` the initialization (``tpref.models.cells.INITS``). Method
    "dtp_learned" (TPTT) has no ``reg``; ``reverse_lr`` is its reverse layer's step (plain
    SGD on V_hh, c_h, taken before the forward step, TPTT's schedule) and ``noise`` the std of
    its inverse loss's perturbation (drawn from (seed, iteration)); ``lr`` also steps W_hy, b_y.
    """

    task: str = "temporal-order"
    method: str = "tp"
    length: Optional[int] = None           # synthetic tasks (or image length 784/k)
    pixels_per_step: int = 1               # image tasks
    markers: str = "paper"                 # temporal order: "paper" or "code"
    criterion: str = "squared"             # adding: "squared" or "abs"
    permutation_seed: int = 0              # permuted MNIST
    data_dir: Optional[str] = None
    hidden: int = 100
    batch_size: int = 20
    iterations: int = 1000
    lr: float = 0.1
    momentum: float = 0.0
    nesterov: bool = False
    gamma_h: Optional[float] = None
    reg: Optional[float] = None
    reverse_lr: Optional[float] = None     # dtp_learned only
    noise: float = 0.0                     # dtp_learned only
    update: str = "local"
    backend: str = "numpy"
    seed: int = 0
    eval_every: int = 200
    eval_size: int = 1000                  # samples; 0 = the whole test set (images)
    checkpoint_every: int = 1000
    cell: str = "rnn"
    gru_inverse: str = "per_gate"          # GRU only
    dtype: str = "float64"
    init: str = "orthogonal"
    diagnostics: int = 0                   # every N iterations (0: off; tpref.diagnostics)

    def validate(self):
        """Raise ValueError naming the first bad field."""
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {METHODS}")
        if self.update not in UPDATES:
            raise ValueError(f"update must be one of {UPDATES}, got {self.update!r}")
        check_backend(self.backend)
        for name, choices in (("cell", CELLS), ("gru_inverse", GRU_INVERSES),
                              ("dtype", DTYPES), ("init", INITS)):
            check_choice(name, getattr(self, name), choices)
        if self.cell == "gru" and self.method not in ("bp", "tp"):
            raise ValueError(f"method {self.method!r} is not defined for cell 'gru' (the GRU "
                             f"has no closed-form inverse, docs/gru.md); use 'tp' or 'bp'")
        if self.cell != "gru" and self.gru_inverse != "per_gate":
            raise ValueError(f"gru_inverse={self.gru_inverse!r} applies to cell 'gru' only "
                             f"(this run's cell is {self.cell!r}); add --cell gru or leave it out")
        if self.cell == "gru" and self.backend == "cuda":
            raise ValueError("backend 'cuda' runs cell 'rnn' only; use 'numba' for cell 'gru'")
        for name, low in (("hidden", 1), ("batch_size", 1), ("iterations", 1), ("eval_every", 1),
                          ("checkpoint_every", 1), ("eval_size", 0), ("seed", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                need = "a positive integer" if low else "an integer >= 0"
                raise ValueError(f"{name} (--{name.replace('_', '-')}) must be {need}, got {v!r}")
        if self.eval_size == 0 and self.task in ("temporal-order", "adding"):
            raise ValueError(f"eval_size (--eval-size) 0 means the whole test set, which image "
                             f"tasks have; {self.task} draws fresh samples: give a count "
                             f"(default 1000)")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1), got {self.momentum!r}")
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov needs momentum > 0")
        check_diagnostics(self)
        if self.method == "dtp_learned":
            self._validate_dtp_learned()
        elif self.reverse_lr is not None or self.noise != 0:
            raise ValueError(f"reverse_lr and noise apply to method 'dtp_learned' only; got "
                             f"reverse_lr={self.reverse_lr!r}, noise={self.noise!r} for "
                             f"method {self.method!r}")
        if self.method != "bp":
            if self.gamma_h is None or not self.gamma_h > 0:
                raise ValueError(f"method {self.method!r} needs gamma_h > 0, got {self.gamma_h!r}")
            if self.method != "dtp_learned" and (self.reg is None or not self.reg >= 0):
                raise ValueError(f"method {self.method!r} needs reg >= 0, got {self.reg!r}")

    def _validate_dtp_learned(self):
        if self.reverse_lr is None or not self.reverse_lr > 0:
            raise ValueError(f"method 'dtp_learned' needs reverse_lr > 0 (the reverse layer's "
                             f"step, TPTT's alpha_g), got {self.reverse_lr!r}")
        if not self.noise >= 0:
            raise ValueError(f"noise must be >= 0, got {self.noise!r}")
        if self.reg is not None:
            raise ValueError(f"reg does not apply to method 'dtp_learned' (its inverse is "
                             f"learned), got reg={self.reg!r}")
        if self.update != "local":
            raise ValueError(f"method 'dtp_learned' has update 'local' only, got {self.update!r}")
        if self.diagnostics:
            raise ValueError("diagnostics (--diagnostics) compare BP and TP on the run's weights "
                             "and do not cover method 'dtp_learned'; run without --diagnostics")

    def oracle_options(self, iteration):
        """The method's keyword arguments of ``tpref.oracle`` at ``iteration``."""
        if self.method != "dtp_learned":
            return dict(gamma_h=self.gamma_h, reg=self.reg, update=self.update,
                        gru_inverse=self.gru_inverse)
        seed = (self.seed, _NOISE_STREAM, iteration) if self.noise > 0 else None
        return dict(gamma_h=self.gamma_h, noise=self.noise, seed=seed, reverse_lr=self.reverse_lr)

    def make_task(self):
        """The task this run trains on (loads image data)."""
        return make_task(self.task, length=self.length, data_dir=self.data_dir,
                         pixels_per_step=self.pixels_per_step, markers=self.markers,
                         criterion=self.criterion, permutation_seed=self.permutation_seed)


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
            with warnings.catch_warnings():     # a non-finite result is a divergence, below
                warnings.simplefilter("ignore", NonFiniteResultWarning)
                res = oracle(c.method, self.params, x, y, loss=self.task.loss, backend=c.backend,
                             cell=c.cell, **c.oracle_options(n.iteration))
        except (FloatingPointError, RegularizedInverseError) as err:
            return f"{type(err).__name__}: {err}"
        if not math.isfinite(res.loss):
            return f"training loss {res.loss} is not finite"
        if not all(np.isfinite(g).all() for g in res.direction.values()):
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
            with np.errstate(under="ignore", over="raise", invalid="raise", divide="raise"):
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
