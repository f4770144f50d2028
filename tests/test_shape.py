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
                if token in flags:
                    found.append(f"{where}:{node.lineno}: {token} in {node.value!r}")
    assert not found, "\n".join(found)


def _rewrites(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """Where a module rewrites what Python or click built: a ``__signature__`` or ``__class__``
    assigned, ``sys.argv`` changed, a command's ``parse_args`` overridden."""
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            while isinstance(target, ast.Subscript):
                target = target.value
            if isinstance(target, ast.Attribute) and target.attr in ("__signature__", "__class__"):
                yield node.lineno, f"assigns {target.attr}"
            if ast.unparse(target) == "sys.argv":
                yield node.lineno, "assigns sys.argv"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if ast.unparse(node.func.value) == "sys.argv":
                yield node.lineno, f"calls sys.argv.{node.func.attr}"
        if isinstance(node, ast.Call) and ast.unparse(node.func) in (
            "setattr",
            "object.__setattr__",
        ):
            name = node.args[1] if len(node.args) > 1 else None
            if isinstance(name, ast.Constant) and name.value in ("__signature__", "__class__"):
                yield node.lineno, f"sets {name.value}"
        if isinstance(node, ast.FunctionDef) and node.name == "parse_args":
            yield node.lineno, "overrides parse_args (rewrites a command's arguments)"


def test_the_cli_is_declared_not_rewritten() -> None:
    found = [
        f"{path.relative_to(FINDER)}:{line}: {what}"
        for path in _modules()
        for line, what in _rewrites(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert not found, "\n".join(found)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(FINDER.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The finder modules ``path`` imports, wherever the import stands (inside functions too),
    except under ``if TYPE_CHECKING:``."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def add(target: str) -> None:
        while target not in modules and "." in target:
            target = target.rpartition(".")[0]
        if target in modules and target != name:
            found.add(target)

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    add(alias.name)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    up = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(up + ([base] if base else []))
                for alias in child.names:  # a module imported from its package, or a name
                    add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(component)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return out


def _graph(root: Path = FINDER) -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in _modules(root)}
    return {name: _imports(path, set(paths)) for name, path in paths.items()}


def test_the_import_reader_sees_imports_inside_functions_not_type_checking_ones() -> None:
    graph = _graph()
    assert "finder.embed.pipeline" in graph["finder.embedder"]  # inside a function
    assert "finder.store.vectors" in graph["finder.folder"]  # inside a function
    assert "finder.embed.registry" not in graph["finder.embed.base"]  # for type checkers only


def test_no_import_cycles() -> None:
    cycles = _cycles(_graph())
    assert not cycles, "\n".join(" <-> ".join(sorted(c)) for c in cycles)


# What show/ may import of finder besides the façade (finder.library), the errors and itself:
# helpers with no state of the library, each named in docs/architecture.md ("show/").
SHOW_MAY_IMPORT = {
    "finder.act.export",  # copying or linking the found photos' files
    "finder.act.xmp",  # writing a class into their XMP sidecars
    "finder.learn.evaluate",  # finder eval's measures
    "finder.learn.feedback",  # finder eval --feedback's simulated clicks
    "finder.embed.registry",  # the table of backbones (finder backbones)
    "finder.embed.cluster_ray",  # which words --ray takes as its address
}


def test_show_calls_nothing_but_the_facade() -> None:
    graph = _graph()
    beyond = {
        f"{name} imports {target}"
        for name, targets in graph.items()
        if name.startswith("finder.show")
        for target in targets
        if not target.startswith("finder.show")
        and target not in ("finder.library", "finder.errors")
        and target not in SHOW_MAY_IMPORT
    }
    assert not beyond, "\n".join(sorted(beyond))
