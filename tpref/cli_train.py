"""``tpref train``: one training run, the paper's preset for its task and method by default.

Every hyperparameter flag left out takes the value of the task's preset (tpref.presets, the
nearest length for the synthetic tasks), so ``tpref train --task temporal-order --length 60
--iterations 2000`` trains with the paper's step sizes; each flag given overrides its value.
The run goes into its own directory, ``runs/<task>-<length>/<method>`` unless ``--out``.
"""

import argparse
import os

from .cli_support import CreatedDirs, default_run_dir, positive_int
from .config import METHODS

#: Hyperparameter flags a preset provides: RunConfig field -> flag.
PRESET_FLAGS = {"batch_size": "--batch-size", "iterations": "--iterations", "lr": "--lr",
                "momentum": "--momentum", "nesterov": "--nesterov", "gamma_h": "--gamma-h",
                "reg": "--reg", "hidden": "--hidden", "reverse_lr": "--reverse-lr",
                "noise": "--noise"}


def _presets_epilog():
    from .presets import PRESETS

    lines = ["defaults (the paper's presets; a flag overrides its value):"]
    for p in PRESETS.values():
        steps = "; ".join(f"{m} " + ", ".join(f"{k} {v:g}" if not isinstance(v, bool) else k
                                               for k, v in s.run_fields().items() if v)
                          for m, s in p.steps.items())
        length = f" T={p.length}" if p.length else ""
        cell = f" ({p.cell.upper()})" if p.cell != "rnn" else ""
        lines.append(f"  {p.name}{length}{cell}: {p.iterations} iterations, batch "
                     f"{p.batch_size}, hidden {p.hidden}; {steps}")
    lines.append("  (dtp takes tp's step sizes; a synthetic length without a preset takes the "
                 "nearest one's)")
    return "\n".join(lines)


def register(subparsers, add_common, common_fields):
    """Add the ``train`` command to the ``tpref`` parser (``add_common`` adds the flags it
    shares with compare/reproduce, ``common_fields`` turns them into RunConfig fields)."""
    tr = subparsers.add_parser(
        "train", help="one training run (the paper's preset by default; every flag overrides)",
        description=__doc__.split("\n\n")[0].split(": ", 1)[1], epilog=_presets_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common(tr)
    tr.add_argument("--method", default="tp", choices=METHODS, help="default tp")
    tr.add_argument("--batch-size", type=positive_int, default=None, help="default: preset")
    tr.add_argument("--lr", type=float, default=None, help="gamma_theta (default: preset)")
    tr.add_argument("--momentum", type=float, default=None, help="default: preset")
    tr.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None,
                    help="default: preset")
    tr.add_argument("--gamma-h", type=float, default=None,
                    help="target step gamma_h, TP/DTP (default: preset)")
    tr.add_argument("--reg", type=float, default=None,
                    help="regularization r, TP/DTP (default: preset)")
    tr.add_argument("--diagnostics", type=positive_int, default=None, metavar="N",
                    help="every N iterations record norms through time, TP/BP alignment, W_hh's "
                         "spectrum, Lemma 3.1 (tpref.diagnostics; tpref plot DIR --diagnostics)")
    tr.add_argument("--reverse-lr", type=float, default=None,
                    help="dtp_learned: step of the learned reverse layer, TPTT's alpha_g "
                         "(default: preset)")
    tr.add_argument("--noise", type=float, default=None,
                    help="dtp_learned: std of the inverse loss's perturbation (default: preset)")
    tr.set_defaults(func=run_train, common_fields=common_fields)


def run_length(task, length, pixels_per_step):
    """The sequence length a run will have, known before any data is loaded."""
    if length is not None:
        return length
    if task in ("temporal-order", "adding"):
        return {"temporal-order": 60, "adding": 30}[task]
    return (3072 if task == "cifar10" else 784) // pixels_per_step


def train_config(args, common_fields):
    """(RunConfig, preset name) of ``tpref train``'s arguments: preset, then the flags given."""
    from .experiments import panel_preset, preset_name
    from .train import RunConfig, default_eval_every

    name = preset_name(args.task, args.length)
    preset = panel_preset(name, args.cell)       # the paper's cell unless --cell says otherwise
    if args.method == "dtp_learned" and "dtp_learned" not in preset.steps:
        missing = [flag for flag, v in (("--lr", args.lr), ("--gamma-h", args.gamma_h),
                                        ("--reverse-lr", args.reverse_lr)) if v is None]
        if missing:
            raise ValueError(f"preset {name!r} has no dtp_learned step sizes; give "
                             f"{', '.join(missing)} (and --noise)")
        fields = dict(preset.run_fields("bp"), method="dtp_learned", momentum=0.0, nesterov=False)
    else:
        fields = preset.run_fields(args.method)
    fields.setdefault("gamma_h", None)
    fields.setdefault("reg", None)
    for field in PRESET_FLAGS:
        value = getattr(args, field, None)
        if value is not None:
            fields[field] = value
    fields.update({k: v for k, v in common_fields.items() if v is not None})
    if getattr(args, "diagnostics", None):
        fields["diagnostics"] = args.diagnostics
    if fields.get("eval_every") is None:
        fields["eval_every"] = default_eval_every(fields["iterations"])
    fields = {k: v for k, v in fields.items() if v is not None or k in ("gamma_h", "reg")}
    config = RunConfig(**fields)
    config.validate()
    return config, preset


def run_train(args):
    """The ``train`` command."""
    from .run_io import check_output_dir

    config, preset = train_config(args, args.common_fields(args))
    if preset.note:
        print(f"note: {preset.note}", flush=True)
    task = config.make_task()              # missing data fails before any directory exists
    out_dir = args.out or default_run_dir(config.task, task.length, config.method)
    created = CreatedDirs(out_dir)
    try:
        check_output_dir(out_dir)
        summary = _train_and_plot(config, task, out_dir, preset, args.restart)
    except (ValueError, OSError):
        created.remove_empty()             # e.g. another process holds the run's lock
        raise
    return 0 if summary["status"] != "interrupted" else 130


def _train_and_plot(config, task, out_dir, preset, restart):
    from .plotting import plot_comparison
    from .train import train

    hp = (f"lr {config.lr:g}" + (f", momentum {config.momentum:g}" if config.momentum else "")
          + (" Nesterov" if config.nesterov else "")
          + (f", gamma_h {config.gamma_h:g}, reg {config.reg:g}"
             if config.method not in ("bp", "dtp_learned") else "")
          + (f", gamma_h {config.gamma_h:g}, reverse lr {config.reverse_lr:g}, noise "
             f"{config.noise:g}" if config.method == "dtp_learned" else ""))
    print(f"tpref train: {config.method} on {config.task} (T={task.length}, {config.cell}), "
          f"{config.iterations} iterations, batch {config.batch_size}, {hp} (preset {preset.name}; "
          f"flags override), evaluated every {config.eval_every}, backend {config.backend}; "
          f"results in {out_dir}", flush=True)
    summary = train(config, out_dir, task=task, resume=not restart)
    out_abs = os.path.abspath(out_dir)
    png = plot_comparison(os.path.dirname(out_abs), [os.path.basename(out_abs)],
                          path=os.path.join(out_dir, "curves.png"))
    print(f"status {summary['status']}; metrics {summary['paths']['metrics']}; plot {png}")
    return summary
