"""The files of a training run and its progress line: what survives an interruption.

A run directory holds ``config.json``, ``metrics.jsonl``, ``checkpoint.npz`` and
``summary.json`` (:data:`RUN_FILES`, described in :mod:`tpref.train`). JSON files and
checkpoints are replaced atomically (written to a temporary file, then ``os.replace``), so a
run killed at any moment leaves either the old file or the new one; metrics are appended a
line at a time and a truncated last line is ignored when read.
"""

import json
import os
import sys
import time

import numpy as np

#: key -> file name of the files in a run directory
RUN_FILES = {"config": "config.json", "metrics": "metrics.jsonl",
             "checkpoint": "checkpoint.npz", "summary": "summary.json"}


def run_paths(out_dir):
    """The paths of a run directory's files, keyed as :data:`RUN_FILES`."""
    return {key: os.path.join(out_dir, name) for key, name in RUN_FILES.items()}


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
# atomic files


def atomic_write_bytes(path, writer):
    """Call ``writer(f)`` on a temporary binary file, sync it, then move it onto ``path``."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        writer(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path, obj):
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_bytes(path, lambda f: f.write((json.dumps(obj, indent=2) + "\n").encode()))


def save_checkpoint(path, params, optimizer, state):
    """Write params, momentum buffers and counters to ``path`` atomically (temp + os.replace)."""
    arrays = {f"param/{k}": v for k, v in params.items()}
    arrays.update({f"buffer/{k}": v for k, v in optimizer.state_dict().items()})
    arrays["state"] = np.array(json.dumps(state))
    atomic_write_bytes(path, lambda f: np.savez(f, **arrays))


class RunFileError(ValueError):
    """A run directory's checkpoint or config.json is damaged; the message says the way on."""


_WAY_ON = ("rerun with --restart to start this run afresh (its files are then replaced), or "
           "use another output directory")


def load_checkpoint(path):
    """(params, buffers, state) saved by :func:`save_checkpoint`.

    Never unpickles (``allow_pickle=False``): a checkpoint holds arrays and one JSON string.
    A damaged, truncated or foreign file raises RunFileError naming it and the way on.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            params = {k[6:]: z[k].copy() for k in z.files if k.startswith("param/")}
            buffers = {k[7:]: z[k].copy() for k in z.files if k.startswith("buffer/")}
            state = json.loads(str(z["state"]))
        for key in ("iteration", "initial_loss", "wall_seconds", "window"):
            state[key]                                   # noqa: B018 (KeyError if missing)
    except Exception as err:   # zipfile.BadZipFile, EOFError, pickled data, missing keys, ...
        detail = (f"{type(err).__name__}: {err}" if "pickle" not in str(err) else
                  "not a .npz archive; NumPy would read it as a pickle, which tpref never loads")
        raise RunFileError(f"checkpoint {path} is damaged or not a tpref checkpoint "
                           f"({detail}); {_WAY_ON}") from err
    return params, buffers, state


def check_checkpoint_params(path, saved, params):
    """RunFileError unless ``saved`` (a checkpoint's params) has the names and shapes of
    ``params``: assigning a (1,) array into a (p,) parameter would broadcast silently."""
    if set(saved) != set(params):
        raise RunFileError(f"checkpoint {path} holds parameters {sorted(saved)}, expected "
                           f"{sorted(params)}; {_WAY_ON}")
    for name, value in params.items():
        if saved[name].shape != value.shape:
            raise RunFileError(f"checkpoint {path}: param/{name} has shape {saved[name].shape}, "
                               f"expected {value.shape}; {_WAY_ON}")


def read_json(path, key=None):
    """The JSON object in ``path`` (its ``key`` entry if given); RunFileError naming the file
    when it is truncated or not what a run writes."""
    try:
        with open(path) as f:
            obj = json.load(f)
        return obj if key is None else obj[key]
    except (ValueError, KeyError, TypeError) as err:
        raise RunFileError(f"{path} is not valid JSON of a tpref run ({err}); {_WAY_ON}") from err


def _read_saved_config(path):
    return read_json(path, "run")


#: RunConfig fields a resumed run may change: they set how often it logs (or diagnoses), not
#: what it computes.
RESUMABLE_CHANGES = ("iterations", "eval_every", "checkpoint_every", "diagnostics")


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


def resume_point(out_dir, run, resume, defaults=None):
    """The checkpoint a run continues from, as (params, buffers, state), or None.

    With ``resume`` and a checkpoint in ``out_dir``: the checkpoint must belong to the same
    configuration (``run``, the RunConfig as a dict; only RESUMABLE_CHANGES may differ) and not
    lie beyond ``run["iterations"]`` (else ValueError); metrics rows logged after it are
    dropped. Otherwise the files of an earlier run are removed and None is returned.
    ``defaults`` (a dict) fills the fields an older config.json lacks.
    """
    paths = run_paths(out_dir)
    if not (resume and os.path.exists(paths["checkpoint"])):
        for p in paths.values():
            if os.path.exists(p):
                os.remove(p)
        return None
    saved = _read_saved_config(paths["config"]) if os.path.exists(paths["config"]) else None
    same = {k: None for k in RESUMABLE_CHANGES}
    if saved is None or {**(defaults or {}), **saved, **same} != {**run, **same}:
        raise ValueError(f"{out_dir} holds a checkpoint of a different configuration; "
                         f"use another output directory, or --restart to replace it")
    params, buffers, state = load_checkpoint(paths["checkpoint"])
    if state["iteration"] > run["iterations"]:
        raise ValueError(f"{out_dir} holds a checkpoint at iteration {state['iteration']}, "
                         f"beyond the {run['iterations']} iterations asked for")
    rows = [r for r in read_metrics(paths["metrics"]) if r["iteration"] <= state["iteration"]]
    atomic_write_bytes(paths["metrics"], lambda f: f.write(
        "".join(json.dumps(r) + "\n" for r in rows).encode()))
    return params, buffers, state


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
        """Redraw the bar (terminals only); ``elapsed``: seconds so far, evaluation included."""
        if not self.tty:
            return
        now = time.monotonic()
        if not force and now - self.last < 0.5:
            return
        self.last = now
        frac = it / self.total
        eta = elapsed / it * (self.total - it) if it else 0.0
        bar = "#" * int(24 * frac) + "-" * (24 - int(24 * frac))
        self.stream.write(f"\r{self.label} [{bar}] {it}/{self.total} elapsed {elapsed:6.0f}s "
                          f"eta {eta:6.0f}s {self.info}\x1b[K")
        self.stream.flush()

    def log(self, message):
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r\x1b[K")
        self.stream.write(f"{self.label} {message}\n")
        self.stream.flush()
