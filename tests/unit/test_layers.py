"""The package's architecture, checked from its imports (docs/ARCHITECTURE.md draws the same rules).

Every import counts, the ones inside functions too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "moka_images"

# What each room may import from the package (besides itself). The bottom (models, errors, log, metrics,
# findings) may be imported by anyone.
BOTTOM = {"models", "errors", "log", "metrics", "findings"}
MAY_IMPORT: dict[str, set[str]] = {
    "moka_images": set(),  # the package's face: its version
    "cli": {"commands", "adapters"},  # the composition root: it hands the telemetry sender to metrics
    "commands": {"stages", "smoke", "plan", "config", "trivydb"},  # devstack: only dev and doctor, below
    "devstack": {"stages", "adapters", "plan", "config"},
    "stages": {"smoke", "plan", "config", "adapters", "trivydb", "recipes"},
    "smoke": {"adapters", "config", "recipes"},
    "plan": {"config"},
    "config": set(),
    "adapters": {"trivydb"},
    "trivydb": {"config"},
    "recipes": set(),
    "models": {"errors"},
    "errors": set(),
    "log": {"metrics"},
    "metrics": set(),
    "findings": {"models"},
}
COMMANDS_OF_THE_STACK = {"moka_images.commands.dev", "moka_images.commands.doctor"}
IO_LAYER = {"adapters", "devstack"}
IO_MODULES = {"requests", "boto3", "botocore", "subprocess", "socket", "http", "urllib3"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        if "payload" in path.relative_to(PACKAGE).parts:  # runs inside the image, not part of the program
            continue
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _imports(name: str) -> Iterator[str]:
    """Every module `name` imports, absolute (relative imports resolved)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES)


def _room(name: str) -> str:
    return name.split(".")[1] if "." in name else name


@cache
def _internal_edges() -> dict[str, set[str]]:
    return {m: {i for i in _imports(m) if i in MODULES and i != m and not m.startswith(i + ".")} for m in MODULES}


def test_the_package_has_no_import_cycle() -> None:
    edges = _internal_edges()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(path[path.index(nxt):] + [node, nxt]) if nxt in path else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [])
    assert cycles == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_each_module_imports_only_the_rooms_below_it(module: str) -> None:
    room = _room(module)
    if room not in MAY_IMPORT:
        pytest.fail(f"{module} is in a room the architecture does not name: add it to MAY_IMPORT and the doc")
    allowed = MAY_IMPORT[room] | BOTTOM | {room}
    if module in COMMANDS_OF_THE_STACK:
        allowed = allowed | {"devstack"}
    wrong = sorted({i for i in _internal_edges()[module] if _room(i) not in allowed})
    assert wrong == [], f"{module} imports {wrong}, above or beside its room {room}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _room(m) not in IO_LAYER))
def test_only_the_io_layer_talks_to_the_world(module: str) -> None:
    talking = sorted({i for i in _imports(module) if i.split(".")[0] in IO_MODULES})
    assert talking == [], f"{module} imports {talking}: I/O belongs in adapters/ (or devstack/ for the local stack)"


def test_the_checks_see_what_they_check() -> None:
    """The rules above are not vacuous: the walk finds the package and its known imports."""
    assert {"moka_images.cli", "moka_images.adapters.registry", "moka_images.stages.promote.apply"} <= set(MODULES)
    assert "moka_images.stages.promote.prepare" in _internal_edges()["moka_images.stages.promote.apply"]
    assert "requests" in set(_imports("moka_images.adapters.registry"))
