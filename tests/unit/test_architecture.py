"""The house rules of ``prism/``: dependencies between its packages point one way, no module
imports another in a cycle, and ``prism`` never imports ``runner``, ``dashboards``, ``research``
(the researchers' folder) or the notebooks.

Imports are read from the source with :mod:`ast`, function-local ones included, so a rule
cannot be dodged by importing inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PRISM = Path(__file__).resolve().parents[2] / "prism"

ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "db": {"core"},
    "data": {"core", "db"},
    "features": {"core", "db", "data"},
    "strategies": {"core", "data", "features"},
    "backtest": {"core", "data", "features", "strategies"},
    # RL agents train on the backtester's rules; registered through entry points, so no other
    # package imports them.
    "agents": {"core", "data", "features", "strategies", "backtest"},
    "research": {"core", "db", "data", "features", "strategies", "backtest"},
    "registry": {"core", "db", "data", "features", "strategies", "backtest", "research"},
    "ledger": {"core", "db"},
    "brokers": {"core", "db", "data", "ledger", "backtest"},
    "live": {
        "core",
        "db",
        "data",
        "features",
        "strategies",
        "backtest",
        "research",
        "registry",
        "ledger",
        "brokers",
    },
    "monitoring": {
        "core",
        "db",
        "data",
        "features",
        "strategies",
        "backtest",
        "research",
        "registry",
        "ledger",
        "brokers",
        "live",
    },
    "api": {
        "core",
        "db",
        "data",
        "features",
        "strategies",
        "backtest",
        "research",
        "registry",
        "ledger",
        "brokers",
        "live",
        "monitoring",
    },
    "cli": {
        "api",
        "core",
        "db",
        "data",
        "features",
        "strategies",
        "backtest",
        "research",
        "registry",
        "ledger",
        "brokers",
        "live",
        "monitoring",
    },
}
"""Which packages each package of ``prism`` may import (itself always)."""

FORBIDDEN_ROOTS = {"runner", "dashboards", "research", "notebooks", "tests"}
"""Top-level folders of the project that ``prism`` must never import."""


def module_name(path: Path) -> str:
    parts = path.relative_to(PRISM.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, candidates: set[str] | None = None) -> set[str]:
    """Return what ``path`` imports, at any depth of its code: the module of each ``import`` or
    ``from … import`` statement, and for ``from prism import x`` the module ``prism.x``. With
    ``candidates`` (the modules of the import graph), ``from package import module`` counts
    that module too, and only candidates are returned."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            named = {f"{node.module}.{alias.name}" for alias in node.names}
            if node.module == "prism":
                found.update(named)
            else:
                found.add(node.module)
                if candidates is not None:
                    found.update(named)
    return found if candidates is None else found & candidates


def prism_modules() -> dict[str, Path]:
    return {module_name(p): p for p in PRISM.rglob("*.py") if "migrations" not in p.parts}


def package_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "prism" and len(parts) > 1 else None


def violations(modules: dict[str, Path]) -> list[str]:
    """Return one line per import that breaks :data:`ALLOWED` or :data:`FORBIDDEN_ROOTS`."""
    found = []
    for name, path in sorted(modules.items()):
        own = package_of(name)
        for target in sorted(imported_modules(path)):
            root = target.split(".")[0]
            if root in FORBIDDEN_ROOTS:
                found.append(f"{name} imports {target}: prism never imports {root}/")
                continue
            other = package_of(target)
            if own is None or other is None or other == own or other not in ALLOWED:
                continue
            if other not in ALLOWED[own]:
                found.append(f"{name} imports {target}: {own} may not import {other}")
    return found


def cycles(modules: dict[str, Path]) -> list[list[str]]:
    """Return the import cycles between modules of ``prism`` (each as a list of names)."""
    graph = {name: imported_modules(path, set(modules)) - {name} for name, path in modules.items()}
    found: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                found.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_every_package_of_prism_has_a_rule():
    packages = {p.name for p in PRISM.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(ALLOWED)


def test_dependencies_between_packages_point_one_way():
    assert violations(prism_modules()) == []


def test_no_module_of_prism_imports_another_in_a_cycle():
    modules = {
        name: path
        for name, path in prism_modules().items()
        if not name.endswith("__init__") and name.count(".") > 1
    }
    assert cycles(modules) == []


def test_the_rule_catches_data_importing_live(tmp_path):
    fake = tmp_path / "prism" / "data"
    fake.mkdir(parents=True)
    offender = fake / "leak.py"
    offender.write_text("def f():\n    from prism.live.cycle import run_cycle\n")
    found = violations({"prism.data.leak": offender})
    assert found == ["prism.data.leak imports prism.live.cycle: data may not import live"]


@pytest.mark.parametrize("root", sorted(FORBIDDEN_ROOTS))
def test_the_rule_catches_prism_importing_a_project_folder(tmp_path, root):
    offender = tmp_path / "mod.py"
    offender.write_text(f"import {root}.x\n")
    assert violations({"prism.core.mod": offender}) == [
        f"prism.core.mod imports {root}.x: prism never imports {root}/"
    ]
