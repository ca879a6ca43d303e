"""Training runs: SGD on any oracle method, evaluation, logging, checkpoints, resumption.

One run is described by a :class:`RunConfig` and writes into its own directory::

    config.json       the full configuration (and the task's description)
    metrics.jsonl     one JSON object per evaluation: iteration, train_loss, test_loss,
                      test_accuracy (and task extras), wall_seconds, written as they come
    checkpoint.npz    parameters, optimizer buffers and counters, replaced atomically
    summary.json      status ("finished", "diverged", "interrupted"), final numbers

The training batch of iteration i is ``task.train_batch(seed, i, batch_size)`` and the
initialization depends on the seed only, so a run resumed from its checkpoint is
bit-identical to an uninterrupted one.

Divergence (the authors' rule): the run stops when a training loss is NaN/inf, when the
training loss averaged over an evaluation window exceeds twice the initial test loss, or
when the regularized inverse cannot be factored. What was logged is kept.
"""

import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
from typing import Optional

import numpy as np

from .config import METHODS, UPDATES
from .losses import loss_and_grad, output_layer
from .methods.inverse import RegularizedInverseError
from .models.rnn import init_rnn, rnn_forward
from .optim import SGD
from .oracle import BACKENDS, check_backend, oracle
from .tasks import make_task


def default_backend():
    """"numba" when that backend is installed, else the NumPy reference."""
    return "numba" if "numba" in BACKENDS else "numpy"


@dataclasses.dataclass
class RunConfig:
    """Everything that defines one training run (saved as config.json).

    Step sizes follow the paper: ``lr`` is gamma_theta, ``gamma_h`` the target step of
    Eq. (1), ``reg`` the regularization r of the inverse (both unused by BP).
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
    update: str = "local"
    backend: str = "numpy"
    seed: int = 0
    eval_every: int = 200
    eval_size: int = 1000                  # samples; 0 = the whole test set (images)
    checkpoint_every: int = 1000

    def validate(self):
        """Raise ValueError naming the first bad field."""
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {METHODS}")
        if self.update not in UPDATES:
            raise ValueError(f"update must be one of {UPDATES}, got {self.update!r}")
        check_backend(self.backend)
        for name in ("hidden", "batch_size", "iterations", "eval_every", "checkpoint_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.eval_size < 0:
            raise ValueError(f"eval_size must be >= 0, got {self.eval_size!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1), got {self.momentum!r}")
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov needs momentum > 0")
        if self.method != "bp":
            if self.gamma_h is None or not self.gamma_h > 0:
                raise ValueError(f"method {self.method!r} needs gamma_h > 0, got {self.gamma_h!r}")
            if self.reg is None or not self.reg >= 0:
                raise ValueError(f"method {self.method!r} needs reg >= 0, got {self.reg!r}")

    def make_task(self):
        """The task this run trains on (loads image data)."""
        return make_task(self.task, length=self.length, data_dir=self.data_dir,
                         pixels_per_step=self.pixels_per_step, markers=self.markers,
                         criterion=self.criterion, permutation_seed=self.permutation_seed)


def check_output_dir(path):
    """Create ``path`` if needed and make sure it is writable, or raise a clear OSError."""
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".tpref-write-test-{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as err:
        raise OSError(f"output directory {path} is not writable: {err.strerror or err}") from err


# ----------------------------------------------------------------------------------------------
# files


def _atomic_write_bytes(path, writer):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        writer(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_json(path, obj):
    _atomic_write_bytes(path, lambda f: f.write((json.dumps(obj, indent=2) + "\n").encode()))


def save_checkpoint(path, params, optimizer, state):
    """Write params, momentum buffers and counters to ``path`` atomically (temp + os.replace)."""
    arrays = {f"param/{k}": v for k, v in params.items()}
    arrays.update({f"buffer/{k}": v for k, v in optimizer.state_dict().items()})
    arrays["state"] = np.array(json.dumps(state))
    _atomic_write_bytes(path, lambda f: np.savez(f, **arrays))


def load_checkpoint(path):
    """(params, buffers, state) saved by :func:`save_checkpoint`."""
    with np.load(path) as z:
        params = {k[6:]: z[k].copy() for k in z.files if k.startswith("param/")}
        buffers = {k[7:]: z[k].copy() for k in z.files if k.startswith("buffer/")}
        state = json.loads(str(z["state"]))
    return params, buffers, state


def read_metrics(path):
    """The rows of a metrics.jsonl file (a truncated last line is ignored)."""
    rows = []
    if not os.path.exists(path):
        return rows
    with open(path) as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return rows


# ----------------------------------------------------------------------------------------------
# progress


class Progress:
    """A one-line progress bar on stderr (a line per evaluation when not a terminal)."""

    def __init__(self, label, total, stream=None, enabled=True):
        self.label, self.total, self.enabled = label, total, enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.last = 0.0
        self.info = ""

    def update(self, it, elapsed, force=False):
        if not self.tty:
            return
        now = time.monotonic()
        if not force and now - self.last < 0.5:
            return
        self.last = now
        frac = it / self.total
        eta = elapsed / it * (self.total - it) if it else 0.0
        bar = "#" * int(24 * frac) + "-" * (24 - int(24 * frac))
        self.stream.write(f"\r{self.label} [{bar}] {it}/{self.total} {elapsed:6.0f}s "
                          f"eta {eta:6.0f}s {self.info}\x1b[K")
        self.stream.flush()

    def log(self, message):
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r\x1b[K")
        self.stream.write(f"{self.label} {message}\n")
        self.stream.flush()


# ----------------------------------------------------------------------------------------------
# evaluation


def evaluate(task, params, seed, size):
    """(test loss, metrics dict) of ``params`` on the task's held-out data."""
    n, loss_sum, metric_sums = 0, 0.0, {}
    with np.errstate(all="ignore"):     # a diverging model gives inf/NaN here, reported as such
        for x, y in task.eval_batches(seed, size):
            b, value, m = x.shape[1], *_eval_chunk(task, params, x, y)
            n += b
            loss_sum += value * b
            for key, v in m.items():
                metric_sums[key] = metric_sums.get(key, 0.0) + v * b
    return loss_sum / n, {k: v / n for k, v in metric_sums.items()}


def _eval_chunk(task, params, x, y):
    """(batch-mean loss, metrics) of one evaluation chunk, forward pass only."""
    h_T = rnn_forward(params, x)[-1]                                  # (B, p)
    out = output_layer(params, h_T)                                   # (B, k)
    value, _ = loss_and_grad(task.loss, out, y)
    return value, task.metrics(out, y)


# ----------------------------------------------------------------------------------------------
# the loop


def _finite_or_none(v):
    return v if v is not None and math.isfinite(v) else None


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt("SIGTERM")


def _raise_on_sigterm():
    """Make SIGTERM interrupt the run like Ctrl-C (main thread only); return the old handler."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _on_sigterm)


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
    task = task if task is not None else config.make_task()
    cfg = dataclasses.asdict(config)
    paths = {k: os.path.join(out_dir, f) for k, f in (
        ("config", "config.json"), ("metrics", "metrics.jsonl"),
        ("checkpoint", "checkpoint.npz"), ("summary", "summary.json"))}
    label = f"[{config.task} {config.method}]"
    prog = Progress(label, config.iterations, stream, progress)

    # ---- start or resume
    start, initial_loss, wall, window = 0, None, 0.0, []
    params = init_rnn(task.d, config.hidden, task.k, seed=config.seed)
    opt = SGD(params, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)
    if resume and os.path.exists(paths["checkpoint"]):
        saved = None
        if os.path.exists(paths["config"]):
            with open(paths["config"]) as f:
                saved = json.load(f)["run"]
        same = saved is not None and ({**saved, "iterations": 0} == {**cfg, "iterations": 0})
        if not same:
            raise ValueError(f"{out_dir} holds a checkpoint of a different configuration; "
                             f"use another output directory or remove it")
        ck_params, buffers, state = load_checkpoint(paths["checkpoint"])
        if state["iteration"] > config.iterations:
            raise ValueError(f"{out_dir} holds a checkpoint at iteration {state['iteration']}, "
                             f"beyond the {config.iterations} iterations asked for")
        for k in params:
            params[k][...] = ck_params[k]
        opt.load_state_dict(buffers)
        start, initial_loss, wall = state["iteration"], state["initial_loss"], state["wall_seconds"]
        window = state["window"]
        rows = [r for r in read_metrics(paths["metrics"]) if r["iteration"] <= start]
        _atomic_write_bytes(paths["metrics"], lambda f: f.write(
            "".join(json.dumps(r) + "\n" for r in rows).encode()))
        prog.log(f"resumed from {paths['checkpoint']} at iteration {start}")
    else:
        for p in paths.values():
            if os.path.exists(p):
                os.remove(p)
    _write_json(paths["config"], {"run": cfg, "task": task.describe()})

    metrics_file = open(paths["metrics"], "a")
    status, reason = "finished", None

    def log_eval(it):
        nonlocal initial_loss
        test_loss, metrics = evaluate(task, params, config.seed, config.eval_size)
        if initial_loss is None:
            initial_loss = test_loss
        row = {"iteration": it, "train_loss": float(np.mean(window)) if window else None,
               "test_loss": _finite_or_none(test_loss),
               "test_accuracy": metrics.pop("accuracy"), "wall_seconds": round(wall, 4)}
        row.update({f"test_{k}": v for k, v in metrics.items()})
        metrics_file.write(json.dumps(row) + "\n")
        metrics_file.flush()
        prog.info = f"loss {row['train_loss'] or test_loss:.4g} acc {row['test_accuracy']:.3f}"
        if not prog.tty:
            prog.log(f"it {it}/{config.iterations} train {row['train_loss'] or float('nan'):.4g} "
                     f"test {test_loss:.4g} acc {row['test_accuracy']:.4f} {wall:.0f}s")
        return row

    def checkpoint(it):
        save_checkpoint(paths["checkpoint"], params, opt,
                        {"iteration": it, "initial_loss": initial_loss, "wall_seconds": wall,
                         "window": window})

    it = start
    previous_sigterm = _raise_on_sigterm()
    try:
        if start == 0:
            log_eval(0)
        with np.errstate(under="ignore", over="raise", invalid="raise", divide="raise"):
            while it < config.iterations:
                if stop_after is not None and it >= stop_after:
                    status = "interrupted"
                    break
                x, y = task.train_batch(config.seed, it, config.batch_size)
                t0 = time.perf_counter()
                try:
                    res = oracle(config.method, params, x, y, loss=task.loss,
                                 gamma_h=config.gamma_h, reg=config.reg, update=config.update,
                                 backend=config.backend)
                    bad = not math.isfinite(res.loss)
                except (FloatingPointError, RegularizedInverseError) as err:
                    bad, res = True, None
                    reason = f"{type(err).__name__}: {err}"
                if bad:
                    status = "diverged"
                    reason = reason or f"training loss {res.loss} is not finite"
                    break
                try:
                    opt.step(res.direction)
                except FloatingPointError as err:
                    status, reason = "diverged", f"parameter update overflowed: {err}"
                    break
                wall += time.perf_counter() - t0
                window.append(res.loss)
                it += 1
                prog.update(it, wall)
                if it % config.eval_every == 0 or it == config.iterations:
                    row = log_eval(it)
                    mean_train = row["train_loss"]
                    window = []
                    if mean_train > 2 * initial_loss:
                        status = "diverged"
                        reason = (f"mean training loss {mean_train:.4g} exceeds twice the "
                                  f"initial loss {initial_loss:.4g}")
                        break
                    if any(not np.isfinite(v).all() for v in params.values()):
                        status, reason = "diverged", "parameters are not finite"
                        break
                if it % config.checkpoint_every == 0 or it == config.iterations:
                    checkpoint(it)
    except KeyboardInterrupt:
        status, reason = "interrupted", "interrupted (Ctrl-C or SIGTERM)"
    finally:
        metrics_file.close()
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)
    rows = read_metrics(paths["metrics"])
    first100 = next((r["iteration"] for r in rows if r["test_accuracy"] >= 1.0), None)
    last = rows[-1] if rows else {}
    summary = {
        "status": status, "reason": reason, "iterations_done": it,
        "iterations_planned": config.iterations, "method": config.method, "task": config.task,
        "final_test_accuracy": last.get("test_accuracy"), "final_test_loss": last.get("test_loss"),
        "best_test_accuracy": max((r["test_accuracy"] for r in rows), default=None),
        "first_iteration_at_100": first100,
        "wall_seconds": round(wall, 3),
        "seconds_per_iteration": round(wall / it, 6) if it else None,
        "paths": paths,
    }
    _write_json(paths["summary"], summary)
    if status == "diverged":
        prog.log(f"DIVERGED at iteration {it}: {reason}; metrics kept in {paths['metrics']}")
    elif status == "interrupted":
        prog.log(f"interrupted at iteration {it}; resume with the same command "
                 f"(last checkpoint {paths['checkpoint']})")
    else:
        prog.log(f"done: {it} iterations in {wall:.1f}s, test accuracy "
                 f"{summary['final_test_accuracy']:.4f}; results in {out_dir}")
    return summary
