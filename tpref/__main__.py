"""``python -m tpref``: the command line of :mod:`tpref.cli`."""

import sys

from .cli import main

sys.exit(main())
