#!/usr/bin/env python
"""Benchmark tpref's backends against PyTorch (thin wrapper of ``tpref.bench``; same as ``tpref bench``).

    python scripts/bench.py --quick            # a few minutes on 2 cores
    python scripts/bench.py --out bench_results

Validates every backend against the NumPy reference, then times them alternately in one
process on one thread. See docs/benchmarks.md.
"""

import sys

from tpref.bench import main

if __name__ == "__main__":
    sys.exit(main())
