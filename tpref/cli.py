"""Command line: ``tpref <command>`` or ``python -m tpref <command>``.

Commands
--------
demo   train a tiny RNN with BP, TP and DTP on one synthetic batch and print the loss curves
bench  validate then time the oracle backends against PyTorch (tpref.bench, docs/benchmarks.md)
"""

import argparse
import sys

import numpy as np


def _demo(args):
    from .demo import run_demo

    run_demo(iterations=args.iterations, seed=args.seed, out=sys.stdout)
    return 0


def _bench(args):
    from .bench import main as bench_main   # lazy: imports numba, matplotlib, torch

    return bench_main(args.bench_args)


def build_parser():
    """The argparse parser of the ``tpref`` command."""
    parser = argparse.ArgumentParser(
        prog="tpref", description="Reference engine for BP / TP / DTP training of RNNs.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="train a tiny RNN with BP, TP and DTP on a synthetic batch")
    demo.add_argument("--iterations", type=int, default=200, help="SGD steps per method (default 200)")
    demo.add_argument("--seed", type=int, default=0, help="seed of data and initialization")
    demo.set_defaults(func=_demo)
    bench = sub.add_parser("bench", help="validate then time the oracle backends against PyTorch",
                           add_help=False)
    bench.set_defaults(func=_bench)
    return parser


def main(argv=None):
    """Entry point of the console script; returns the exit status."""
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "bench":
        args.bench_args = rest                  # tpref.bench parses its own options
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command is None:
        parser.print_help()
        return 2
    np.seterr(all="raise")
    return args.func(args)
