"""The code blocks of the user docs run and their assertions hold."""

import os
import pathlib
import re
import sys

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


# ----------------------------------------------------------------------------------------------
# the documentation's map of the tree, and its references to files

ROOT = DOCS.parent
#: folders whose every file has a row in docs/architecture.md
MAPPED = ("tpref", "scripts", "tools", "docs")


def files_in_tree():
    """Repository-relative paths of the files under MAPPED (no hidden files, no caches)."""
    found = set()
    for top in MAPPED:
        for dirpath, dirnames, filenames in os.walk(ROOT / top):
            dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != "__pycache__"
                           and not d.endswith(".egg-info")]
            for name in filenames:
                if not name.startswith(".") and not name.endswith((".pyc", ".nbi", ".nbc")):
                    found.add((pathlib.Path(dirpath) / name).relative_to(ROOT).as_posix())
    return found


def architecture_rows():
    """The file column of docs/architecture.md's table (backticked paths)."""
    return re.findall(r"^\| `([^`]+)` \|", (DOCS / "architecture.md").read_text(), flags=re.M)


def test_architecture_table_lists_exactly_the_files_in_the_tree():
    rows = architecture_rows()
    repeated = sorted({r for r in rows if rows.count(r) > 1})
    missing = sorted(files_in_tree() - set(rows))
    extra = sorted(set(rows) - files_in_tree())
    assert not (missing or extra or repeated), (
        "docs/architecture.md's table does not match the tree:\n"
        + "".join(f"  no row for {p} (add '| `{p}` | what it is for |')\n" for p in missing)
        + "".join(f"  row for {p}, which does not exist (remove or rename it)\n" for p in extra)
        + "".join(f"  row for {p} appears more than once\n" for p in repeated))


def test_architecture_test_sees_a_missing_row(tmp_path, monkeypatch):
    """The check above fails, naming the file, when a file has no row."""
    assert "tpref/oracle.py" in architecture_rows() and "tpref/oracle.py" in files_in_tree()
    table = (DOCS / "architecture.md").read_text().replace("| `tpref/oracle.py` |", "| x |")
    (tmp_path / "architecture.md").write_text(table)
    monkeypatch.setattr(sys.modules[__name__], "DOCS", tmp_path)
    with pytest.raises(AssertionError, match="no row for tpref/oracle.py"):
        test_architecture_table_lists_exactly_the_files_in_the_tree()


#: paths written in the docs' prose or code spans: a top-level folder, then a file name
PATH = re.compile(r"(?<![\w/.~-])((?:tpref|scripts|tools|tests|docs)/[\w./*{}<>,-]*[\w*}>])")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def broken_references(md, root=ROOT):
    """References in a Markdown file to repository files that do not exist.

    Links resolve from the file's folder; paths in the text (``tpref/...``, ``docs/...``,
    ``tests/...``: the form the docs use) from the repository root. Links to web pages and
    anchors, and templates (``<...>``, ``*``, ``{...}``), are not files.
    """
    text = md.read_text()
    name = md.relative_to(root) if md.is_relative_to(root) else md.name
    broken = []
    for target in LINK.findall(text):
        target = target.split("#")[0]
        if not target or re.match(r"[a-z]+:", target):
            continue
        if not (md.parent / target).exists():
            broken.append(f"{name}: link ({target})")
    for path in PATH.findall(re.sub(r"https?://\S+", "", text)):
        if any(c in path for c in "<>*{}") or path.endswith("/"):
            continue
        if not (root / path).exists():
            broken.append(f"{name}: {path}")
    return broken


def user_docs():
    return [ROOT / "README.md", ROOT / "tools" / "README.md"] + sorted(DOCS.glob("*.md"))


def test_docs_refer_only_to_files_that_exist():
    broken = [b for md in user_docs() for b in broken_references(md)]
    assert not broken, "references to files the repository lacks:\n  " + "\n  ".join(broken)


def test_code_refers_only_to_files_that_exist():
    """Docstrings and comments of the package, scripts, tools and tests name existing files
    (records of past runs, docs/bench/ and docs/results/, are left as they were written)."""
    sources = [ROOT / p for p in files_in_tree() if p.endswith(".py")]
    sources += [p for p in (ROOT / "tests").glob("*.py") if p.name != "test_docs.py"]
    broken = [b for src in sources for b in broken_references(src) if ": link (" not in b]
    assert not broken, "references to files the repository lacks:\n  " + "\n  ".join(broken)


def test_reference_check_sees_a_broken_link_and_path(tmp_path):
    md = tmp_path / "x.md"
    md.write_text("See [here](missing.md), [web](https://example.org/a.md), [top](#x), "
                  "`tpref/no_such_module.py`, tpref/oracle.py and `<out>/<panel>/`.\n")
    assert broken_references(md) == ["x.md: link (missing.md)", "x.md: tpref/no_such_module.py"]


def test_no_machine_path_in_the_repository():
    """Nothing outside tests/ names a path of one machine (/work, /root, /tmp, /home)."""
    pattern = re.compile(r"(?<![\w.~])/(?:work|root|tmp|home)/")
    files = [ROOT / "README.md", ROOT / "setup.cfg"] + [ROOT / p for p in files_in_tree()]
    hits = []
    for path in files:
        if path.suffix in (".png", ".npz", ".gz"):
            continue
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if pattern.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:100]}")
    assert not hits, "machine paths in the repository:\n  " + "\n  ".join(hits)
