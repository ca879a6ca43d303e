"""``RunConfig``: everything that defines one training run (saved as its config.json), with
its validation, the method's oracle options at an iteration, and the defaults a run takes
(evaluation cadence, backend). The loop that runs it is :mod:`tpref.train`."""

import dataclasses
from typing import Optional

import numpy as np

from .config import CELLS, DTYPES, GRU_INVERSES, METHODS, UPDATES
from .diagnostics import check_diagnostics
from .models.cells import INITS
from .oracle import BACKENDS, check_backend
from .tasks import make_task
from .validation import check_choice


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

