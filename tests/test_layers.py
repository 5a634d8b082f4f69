"""The package layout as a checked rule (docs/architecture.md, "Layout").

Imports flow ``delivery -> consumers -> api``: ``consumers`` and ``api`` may import
``delivery``, ``api`` may import ``consumers``; never the other way. No module of the
product imports another in a circle. The product never imports the benchmarks
(``bench``), the clients or the tests.

Every import statement counts, also those inside functions (a lazy import is still a
dependency); only those under ``if TYPE_CHECKING:`` (annotations) do not.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("delivery", "consumers", "api")
LAYER = {"delivery": 0, "consumers": 1, "api": 2}
OUTSIDE = ("bench", "clients", "console", "tests", "examples", "scripts")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PRODUCT:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            out[_module_name(path)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node except the bodies of ``if TYPE_CHECKING:`` blocks."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules (of ``known``, or top-level names) that module ``name`` imports."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _runtime_nodes(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts)
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            targets = [mod]
            # `from pkg import module` imports that module
            targets += [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in known]
        for t in targets:
            # the deepest known module the import names, else its top-level package
            parts = t.split(".")
            while parts and ".".join(parts) not in known:
                parts.pop()
            found.add(".".join(parts) if parts else t.split(".")[0])
    found.discard(name)
    return found


def graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    """One import cycle among the product's modules, or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(g.get(n, ())):
            if m not in g:
                continue
            if state.get(m) == 1:
                return [*stack[stack.index(m) :], m]
            if m not in state and (c := visit(m)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(g):
        if n not in state and (c := visit(n)):
            return c
    return None


def upward(g: dict[str, set[str]]) -> list[str]:
    """Imports against delivery -> consumers -> api, and of what lives outside."""
    bad = []
    for mod, deps in sorted(g.items()):
        here = LAYER[mod.split(".")[0]]
        for dep in sorted(deps):
            top = dep.split(".")[0]
            if top in LAYER and LAYER[top] > here:
                bad.append(f"{mod} imports {dep}")
            if top in OUTSIDE:
                bad.append(f"{mod} imports {dep} (outside the product)")
    return bad


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle, one per group of modules that import each other."""
    out = []
    g = {n: {m for m in deps if m in g} for n, deps in g.items()}
    while (c := find_cycle(g)) is not None:
        out.append(c)
        g = {n: deps - {c[1]} if n == c[0] else deps for n, deps in g.items()}
    return out


def test_no_import_cycles() -> None:
    assert [" -> ".join(c) for c in cycles(graph())] == []


def test_imports_flow_delivery_consumers_api() -> None:
    assert upward(graph()) == []


@pytest.mark.parametrize(
    ("source", "expect_cycle"),
    [
        ({"a": {"b"}, "b": {"a"}}, ["a", "b", "a"]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
        ({"a": {"b"}, "b": {"c"}, "c": {"b"}}, ["b", "c", "b"]),
    ],
)
def test_find_cycle(source: dict[str, set[str]], expect_cycle: list[str] | None) -> None:
    assert find_cycle(source) == expect_cycle


def test_function_level_imports_count_and_type_checking_ones_do_not(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from api.hub import Hub\n"
        "def f():\n    from consumers.worker import Worker\n"
    )
    known = {"api.hub", "consumers.worker", "delivery.m"}
    assert imports_of("delivery.m", path, known) == {"typing", "consumers.worker"}
    assert upward({"delivery.m": {"consumers.worker"}}) == ["delivery.m imports consumers.worker"]
