"""Helpers of the command line: flag types that name the flag, default run directories, and
the clean-up of directories a failed command created.

Kept out of tpref/cli.py so that the command table stays short.
"""

import argparse
import os
import shutil

#: Files that do not make a directory worth keeping (a lock, a writability probe).
_SCAFFOLDING = (".tpref-lock", ".tpref-write-test-")


def positive_int(text):
    """argparse type: an integer >= 1 (argparse names the flag in its error)."""
    return _int_at_least(text, 1, "a positive integer")


def nonnegative_int(text):
    """argparse type: an integer >= 0."""
    return _int_at_least(text, 0, "an integer >= 0")


def _int_at_least(text, low, what):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
    return value


def update_list(choices):
    """argparse type: one update, or several separated by commas (a tuple, each once)."""
    def parse(text):
        values = tuple(v.strip() for v in text.split(","))
        for v in values:
            if v not in choices:
                raise argparse.ArgumentTypeError(
                    f"must be one of {', '.join(choices)} or a comma-separated list of them, "
                    f"got {v!r}")
        if len(set(values)) != len(values):
            raise argparse.ArgumentTypeError(f"lists an update twice: {text!r}")
        return values[0] if len(values) == 1 else values
    return parse


def default_run_dir(task, length, method, root="runs"):
    """``runs/<task>-<length>/<method>``: one directory per kind of run, so the next run of a
    different task, length or method does not collide with this one."""
    return os.path.join(root, f"{task}-{length}", method)


class CreatedDirs:
    """Remembers which directories of ``paths`` do not exist yet; :meth:`remove_empty` then
    removes those the command created and left empty (no file but scaffolding)."""

    def __init__(self, *paths):
        self.roots = []
        for path in paths:
            if not path:
                continue
            path = os.path.abspath(path)
            root = None
            while not os.path.exists(path):
                root, path = path, os.path.dirname(path)
                if path == root:
                    break
            if root is not None:
                self.roots.append(root)

    def remove_empty(self):
        for root in self.roots:
            if os.path.isdir(root) and _only_scaffolding(root):
                shutil.rmtree(root, ignore_errors=True)


def _only_scaffolding(directory):
    for _, _, files in os.walk(directory):
        if any(not f.startswith(_SCAFFOLDING) for f in files):
            return False
    return True
