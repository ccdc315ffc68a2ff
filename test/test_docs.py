"""The README's layout and tool tables name every part of the package and every console script."""

from __future__ import annotations

import re
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _section(start: str, end: str) -> str:
    return README[README.index(start):README.index(end, README.index(start))]


def _named(text: str) -> list[str]:
    """Every name in backticks, split at commas and slashes-at-end (``node_*.py``, ``bags/``)."""
    return [name.strip().rstrip("/").rsplit("/", 1)[-1] for name in re.findall(r"`([^`]+)`", text)]


def test_layout_table_names_every_folder_and_module_of_the_package():
    names = _named(_section("| path | what it holds |", "\n\n"))
    parts = [p.name for p in (ROOT / "bialign_ros").iterdir()
             if p.name != "__init__.py" and (p.suffix == ".py" or (p / "__init__.py").exists())]
    missing = [part for part in parts if not any(fnmatch(part, name) for name in names)]
    assert not missing, f"README's layout table does not name {missing}"


def test_tool_table_lists_every_console_script():
    table = _section("| command | what it does |", "\n\n")
    listed = set(re.findall(r"^\| `(bialign_\w+)", table, re.MULTILINE))
    declared = set(re.findall(r'"(bialign_\w+) = bialign_ros[\w.]*:main"', (ROOT / "setup.py").read_text()))
    assert len(declared) >= 14
    assert declared == listed, f"missing from README: {declared - listed}; not console scripts: {listed - declared}"


def test_training_readme_names_every_module_and_config():
    text = (ROOT / "training" / "README.md").read_text()
    table = text[text.index("| module | what it holds |"):text.index("\n\n", text.index("| module | what it holds |"))]
    names = set(_named(table))
    modules = {p.name for p in (ROOT / "training").glob("*.py") if p.name != "__init__.py"}
    configs = {p.name for p in (ROOT / "training" / "configs").glob("*.yaml")}
    assert modules | configs <= names, f"training/README.md does not name {sorted((modules | configs) - names)}"
