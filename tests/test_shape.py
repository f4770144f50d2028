"""The code's shape, read from its source (ast): what docs/architecture.md promises about it."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import typer

from finder.show.cli import app

FINDER = Path(__file__).resolve().parents[1] / "finder"
SHOW = FINDER / "show"

# Issue 23 rewrites finder/learn/ (feedback.py among it) at the same time; the lead removes this
# once it has landed: its `--shown` check then words the error with an Arg like the rest.
KNOWN_FLAG_WORDING = {("learn/feedback.py", "--shown")}


def _modules(under: Path = FINDER) -> list[Path]:
    return sorted(under.rglob("*.py"))


def _strings(tree: ast.Module) -> Iterator[ast.Constant]:
    """Every string constant of a module that is not a docstring (what it may say to someone)."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in docstrings:
                yield node


def _flags() -> set[str]:
    """Every flag of every ``finder`` command."""
    group = typer.main.get_command(app)
    return {
        opt
        for cmd in group.commands.values()
        for param in cmd.params
        for opt in getattr(param, "opts", [])
        if opt.startswith("--")
    }


def test_no_message_outside_show_names_a_flag() -> None:
    flags = _flags()
    assert {"--top", "--min-prob", "--not", "--ray"} <= flags
    found = []
    for path in _modules():
        if SHOW in path.parents:
            continue
        where = str(path.relative_to(FINDER))
        for node in _strings(ast.parse(path.read_text(encoding="utf-8"))):
            for token in re.findall(r"--[a-z][a-z0-9-]*", node.value):
                if token in flags and (where, token) not in KNOWN_FLAG_WORDING:
                    found.append(f"{where}:{node.lineno}: {token} in {node.value!r}")
    assert not found, "\n".join(found)
