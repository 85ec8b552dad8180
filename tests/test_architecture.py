"""The layers: ``ui`` -> ``feedback`` -> ``modeling`` -> ``db``, with ``shoelabel`` (leaf pieces) below
all. Every import is read from the source, including imports inside functions, and none may point
up a layer or close a circle."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGES = ("shoelabel", "db", "modeling", "feedback", "ui")
LAYER = {name: i for i, name in enumerate(PACKAGES)}  # a package may import its own layer and those below
APP = "streamlit_app"


def modules() -> dict[str, Path]:
    found = {APP: REPO / "streamlit_app.py"}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules ``path`` imports, anywhere in the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # "from pkg import module" imports the module
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in known else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name in known}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(path, known) - {name} for name, path in known.items()}


def test_no_package_imports_a_layer_above_it() -> None:
    wrong = []
    for module, targets in graph().items():
        if module == APP:
            continue
        layer = LAYER[module.split(".")[0]]
        wrong += [f"{module} -> {t}" for t in sorted(targets) if t != APP and LAYER[t.split(".")[0]] > layer]
    assert wrong == []


def test_modeling_never_imports_feedback_and_pages_hold_no_sql() -> None:
    edges = graph()
    assert not [t for m, ts in edges.items() if m.startswith("modeling") for t in ts if t.startswith("feedback")]
    pages = [p for p in modules().values() if "ui" in p.parts]
    assert pages
    for page in pages:
        tree = ast.parse(page.read_text())
        names = {
            (node.module, alias.name)
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
            for alias in node.names
        }
        sql = {(m, n) for m, n in names if m and m.startswith("sqlalchemy") and n != "Engine"}  # Engine: a type
        sql |= {(m, n) for m, n in names if n in ("session_scope", "Session")}
        assert sql == set(), page


def test_no_import_circle() -> None:
    """Tarjan's strongly connected components over the module graph: each must be a single module."""
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    assert circles == []


def test_the_walk_sees_imports_inside_functions(tmp_path: Path) -> None:
    """The checks above would miss a circle hidden in a function if the walk did."""
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from feedback.labels import x\n    import modeling.rounds\n")
    known = {"feedback.labels": source, "modeling.rounds": source, "feedback": source}
    assert imports(source, known) == {"feedback.labels", "modeling.rounds"}
