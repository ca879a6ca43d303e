"""The code blocks of the user docs run and their assertions hold."""

import pathlib
import re

import pytest

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"


def python_blocks(path):
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def test_verifying_guide_runs():
    pytest.importorskip("torch")
    blocks = python_blocks(DOCS / "verifying.md")
    assert blocks, "docs/verifying.md has no python block"
    for block in blocks:
        exec(compile(block, "docs/verifying.md", "exec"), {})


def test_readme_example_runs():
    blocks = python_blocks(DOCS.parent / "README.md")
    assert blocks, "README.md has no python block"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
