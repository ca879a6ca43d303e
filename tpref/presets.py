"""Presets: the hyperparameters of the paper's experiments, in one place, with named fields.

A :class:`Preset` is one task as the paper runs it (hidden size 100, one seed): batch size,
iteration count, and for each method its step sizes (:class:`Steps`). The values are the
ones in the authors' public code (docs/peers.md). Everything that runs a paper experiment
reads them from here: ``tpref compare`` / ``tpref reproduce`` (tpref.experiments),
``tpref bench`` (:data:`BENCH_PROBLEMS`) and ``tpref sweep``.

Adding a preset is one entry in :data:`PRESETS`::

    PRESETS["adding-60"] = Preset(
        "adding-60", task="adding", length=60, batch_size=20, iterations=24000,
        steps={"bp": Steps(lr=1e-3, momentum=0.9, nesterov=True),
               "tp": Steps(lr=0.1, gamma_h=0.1, reg=1.0)})

Other :class:`tpref.train.RunConfig` fields a preset fixes (``pixels_per_step``, ``update``,
...) go in ``options``. A figure is a tuple of preset names in :data:`FIGURES`.
"""

import dataclasses
import types
from typing import Mapping, Optional


@dataclasses.dataclass(frozen=True)
class Steps:
    """Step sizes of one method (paper's names).

    ``lr`` is gamma_theta, the step of the parameter update; ``momentum`` and ``nesterov``
    configure SGD; ``gamma_h`` is the target step of Eq. (1) and ``reg`` the regularization r
    of the inverse (TP and DTP only, None for BP). "dtp_learned" (TPTT) has no ``reg`` but
    ``reverse_lr``, the step of its learned reverse layer, and ``noise``, the std of its
    inverse loss's perturbation.
    """

    lr: float
    momentum: float = 0.0
    nesterov: bool = False
    gamma_h: Optional[float] = None
    reg: Optional[float] = None
    reverse_lr: Optional[float] = None
    noise: Optional[float] = None

    def run_fields(self):
        """These step sizes as RunConfig fields (gamma_h/reg omitted when None)."""
        fields = dataclasses.asdict(self)
        return {k: v for k, v in fields.items() if v is not None}


@dataclasses.dataclass(frozen=True)
class Preset:
    """One task with the paper's hyperparameters for every method it is run with.

    ``steps`` maps a method ("bp", "tp", ...) to its :class:`Steps`; a target-propagation
    method without its own entry (DTP in the paper's figures) runs with TP's step sizes.
    ``length`` is the sequence length of synthetic tasks (None: the task's own, 784 or 3072
    pixels for images); ``options`` holds any other RunConfig fields the preset fixes.
    """

    name: str
    task: str
    batch_size: int
    iterations: int
    steps: Mapping[str, Steps]
    length: Optional[int] = None
    hidden: int = 100
    options: Mapping[str, object] = dataclasses.field(default_factory=dict)
    note: str = ""

    def __post_init__(self):
        # read-only views: a preset is shared by every caller and must not change under them
        object.__setattr__(self, "steps", types.MappingProxyType(dict(self.steps)))
        object.__setattr__(self, "options", types.MappingProxyType(dict(self.options)))

    def __getstate__(self):                  # pickle (process pools): plain dicts inside
        return {**self.__dict__, "steps": dict(self.steps), "options": dict(self.options)}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.__post_init__()

    def steps_for(self, method):
        """The :class:`Steps` of ``method`` (TP's for a TP-family method without its own)."""
        if method in self.steps:
            return self.steps[method]
        if method not in ("bp", "dtp_learned") and "tp" in self.steps:
            return self.steps["tp"]
        raise ValueError(f"preset {self.name!r} has no step sizes for method {method!r}; "
                         f"it has {sorted(self.steps)}")

    @property
    def cell(self):
        """The recurrent cell the paper runs this task with: ``options["cell"]``, else "rnn"."""
        return self.options.get("cell", "rnn")

    def with_cell(self, cell):
        """This preset run with ``cell`` ("rnn" or "gru"): itself when that is its cell.

        Otherwise the paper has no run of this task with that cell, and the preset keeps its
        task, length, batch size and iteration count but takes the step sizes of the paper's
        run with that cell on an image task of the same shape (:data:`CELL_STEPS`: the GRU's
        from "fashion-mnist", the simple RNN's from "mnist"); ``note`` says so.
        """
        if cell == self.cell:
            return self
        if cell not in CELL_STEPS:
            raise ValueError(f"cell must be one of {tuple(CELL_STEPS)}, got {cell!r}")
        source = PRESETS[CELL_STEPS[cell]]
        return dataclasses.replace(
            self, steps=dict(source.steps), options={**self.options, "cell": cell},
            note=f"the paper runs {self.name} with the {_CELL_NAMES[self.cell]}; the "
                 f"{_CELL_NAMES[cell]} takes the step sizes of preset {source.name!r}")

    def run_fields(self, method):
        """The RunConfig fields of ``method`` under this preset (a new dict)."""
        fields = dict(task=self.task, method=method, length=self.length,
                      batch_size=self.batch_size, iterations=self.iterations, hidden=self.hidden)
        fields.update(self.steps_for(method).run_fields())
        fields.update(self.options)
        return fields


def _presets(*presets):
    return {p.name: p for p in presets}


_BP_SYNTHETIC = Steps(lr=1e-5, momentum=0.9, nesterov=True)

#: "dtp_learned" = Manchev & Spratling's TPTT, with their published step sizes (docs/peers.md):
#: MNIST alpha_f 1e-2 (forward and output layer), alpha_i = gamma_h 1e-7, alpha_g = reverse
#: lr 1e-8, noise 0.1, plain SGD (also the paper's Appendix D); synthetic tasks alpha_i 0.1,
#: alpha_f 0.01, alpha_g 0.001, noise 0, Nesterov 0.9 (tpref steps the reverse layer with
#: plain SGD, TPTT with Nesterov too).
_TPTT_MNIST = Steps(lr=1e-2, gamma_h=1e-7, reverse_lr=1e-8, noise=0.1)
_TPTT_SYNTHETIC = Steps(lr=1e-2, momentum=0.9, nesterov=True, gamma_h=0.1, reverse_lr=1e-3,
                        noise=0.0)

#: The paper's figures, from the authors' code (docs/peers.md): hidden size 100, one seed.
PRESETS = _presets(
    Preset("temporal-order-60", task="temporal-order", length=60, batch_size=20,
           iterations=40000, steps={"bp": _BP_SYNTHETIC,
                                    "tp": Steps(lr=0.1, gamma_h=1e-2, reg=10.0),
                                    "dtp_learned": _TPTT_SYNTHETIC}),
    Preset("temporal-order-120", task="temporal-order", length=120, batch_size=20,
           iterations=48000, steps={"bp": _BP_SYNTHETIC,
                                    "tp": Steps(lr=1e-2, gamma_h=1e-2, reg=1.0)}),
    Preset("adding-30", task="adding", length=30, batch_size=20, iterations=24000,
           steps={"bp": Steps(lr=1e-3, momentum=0.9, nesterov=True),
                  "tp": Steps(lr=0.1, gamma_h=0.1, reg=1.0)}),
    Preset("mnist", task="mnist", batch_size=16, iterations=40000,
           steps={"bp": Steps(lr=1e-5), "tp": Steps(lr=0.1, gamma_h=1e-4, reg=1.0),
                  "dtp_learned": _TPTT_MNIST}),
    Preset("pmnist", task="pmnist", batch_size=16, iterations=40000,
           steps={"bp": Steps(lr=1e-4), "tp": Steps(lr=0.1, gamma_h=1e-4, reg=1.0)}),
    Preset("cifar10", task="cifar10", batch_size=16, iterations=8000,
           steps={"bp": Steps(lr=1e-3), "tp": Steps(lr=1e-2, gamma_h=1e-2, reg=10.0)}),
    Preset("fashion-mnist", task="fashion-mnist", batch_size=16, iterations=8000,
           steps={"bp": Steps(lr=1e-2), "tp": Steps(lr=0.1, gamma_h=1e-2, reg=1.0)},
           options={"cell": "gru"}),
)

#: Where a task run with another cell than the paper's takes its step sizes
#: (:meth:`Preset.with_cell`): the paper's only GRU run, and its RNN run of the same shape.
CELL_STEPS = {"rnn": "mnist", "gru": "fashion-mnist"}
_CELL_NAMES = {"rnn": "simple RNN", "gru": "GRU"}

#: The paper's figures as tuples of preset names (one panel each).
FIGURES = {
    "fig3": ("temporal-order-60", "temporal-order-120", "adding-30"),
    "fig4": ("mnist", "pmnist", "cifar10", "fashion-mnist"),
}


@dataclasses.dataclass(frozen=True)
class BenchProblem:
    """A benchmark problem of ``tpref bench``: a preset's shapes and TP step sizes.

    The preset gives B (batch size), p (hidden size), T (its length, unless ``T`` is given)
    and gamma_h, reg (its TP steps); ``d``, ``k`` and ``loss`` are its task's input size,
    output size and loss.
    """

    preset: str
    d: int
    k: int
    loss: str
    T: Optional[int] = None

    def as_dict(self):
        """The problem as the dict tpref.bench works with: T, B, d, p, k, loss, gamma_h, reg."""
        preset = PRESETS[self.preset]
        tp = preset.steps_for("tp")
        return dict(T=self.T or preset.length, B=preset.batch_size, d=self.d, p=preset.hidden,
                    k=self.k, loss=self.loss, gamma_h=tp.gamma_h, reg=tp.reg)


#: Problems timed by ``tpref bench`` (names as in docs/benchmarks.md).
BENCH_PROBLEMS = {
    "mnist": BenchProblem("mnist", d=1, k=10, loss="cross_entropy", T=784),
    "temporal60": BenchProblem("temporal-order-60", d=6, k=4, loss="cross_entropy"),
    "temporal120": BenchProblem("temporal-order-120", d=6, k=4, loss="cross_entropy"),
    "adding30": BenchProblem("adding-30", d=2, k=1, loss="mse"),
}


# ----------------------------------------------------------------------------------------------
# grid studies of Fig. 6 (run by tpref.studies on the sweep engine, tpref.sweeps)


@dataclasses.dataclass(frozen=True)
class Study:
    """A grid study: the RunConfig fields every cell shares (``base``), the figure's axes
    (``grid``), and the fields chosen per point of the figure from a grid of their own by the
    smallest area under the training-loss curve (``select``; Fig. 6b's step sizes)."""

    name: str
    base: Mapping[str, object]
    grid: Mapping[str, tuple]
    select: Mapping[str, tuple] = dataclasses.field(default_factory=dict)
    note: str = ""

    def __post_init__(self):
        for f in ("base", "grid", "select"):
            object.__setattr__(self, f, types.MappingProxyType(dict(getattr(self, f))))

    def __getstate__(self):
        return {k: dict(v) if isinstance(v, types.MappingProxyType) else v
                for k, v in self.__dict__.items()}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.__post_init__()


def log10_grid(lo, hi):
    """10**lo, 10**(lo+1), ..., 10**hi as floats."""
    return tuple(float(10.0 ** e) for e in range(lo, hi + 1))


_FIG6_MNIST = dict(task="mnist", batch_size=16, hidden=100, iterations=400, eval_every=100,
                   eval_size=1000, checkpoint_every=100)

#: Fig. 6a (step size x regularization, TP on MNIST, gamma_h = 1e-3 as in the paper's text;
#: the authors' later code used 1e-4) and Fig. 6b (width x length, BP vs TP, each method's
#: step size chosen per point by the smallest area under its training loss); the "-quick"
#: variants are smaller grids on shorter sequences that finish in minutes on 2 cores.
STUDIES = {s.name: s for s in (
    Study("fig6a", base=dict(_FIG6_MNIST, method="tp", gamma_h=1e-3),
          grid={"lr": log10_grid(-4, 0), "reg": (0.0,) + log10_grid(-4, 2)},
          note="the paper's grid: 400 iterations, one pixel per step (T = 784)"),
    Study("fig6a-quick", base=dict(_FIG6_MNIST, method="tp", gamma_h=1e-3, pixels_per_step=16,
                                   iterations=200, eval_size=500),
          grid={"lr": log10_grid(-3, 0), "reg": (0.0, 1e-2, 1.0, 1e2)},
          note="quick: 16 pixels per step (T = 49), 200 iterations, 4 x 4 grid"),
    Study("fig6b", base=dict(_FIG6_MNIST, gamma_h=1e-4, reg=1.0),
          grid={"pixels_per_step": (1, 2, 4, 16, 56, 196),
                "hidden": (16, 32, 64, 128, 256, 512), "method": ("bp", "tp")},
          select={"lr": log10_grid(-5, 0)},
          note="the paper's grid: 400 iterations; TP's gamma_h and r are the MNIST preset's"),
    Study("fig6b-quick", base=dict(_FIG6_MNIST, gamma_h=1e-4, reg=1.0, iterations=100,
                                   eval_size=500),
          grid={"pixels_per_step": (4, 16, 196), "hidden": (16, 64), "method": ("bp", "tp")},
          select={"lr": log10_grid(-3, 0)},
          note="quick: lengths 196, 49, 4 (no 784 or 392), widths 16 and 64, 100 iterations, "
               "step sizes 1e-3 ... 1"),
)}
