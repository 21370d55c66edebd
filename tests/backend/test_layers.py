"""The engine's layers only depend downwards, and the engine never imports the app."""

from __future__ import annotations

import ast
from pathlib import Path

BACKEND = Path(__file__).resolve().parents[2] / "backend"

LAYERS: list[tuple[str, ...]] = [
    (
        "backend.values",
        "backend.errors",
        "backend.runtime",
        "backend.config",
        "backend.schema",
        "backend.services",
        "backend.failures",
    ),
    ("backend.storage",),
    ("backend.transactions",),
    (
        "backend.udf",
        "backend.engine",
        "backend.scheduler",
        "backend.crons",
        "backend.migrator",
        "backend.mail",
        "backend.ratelimit",
        "backend.snapshot",
    ),
    ("backend.sync", "backend.auth", "backend.sensitive", "backend.audit"),
    ("backend.system", "backend.testing", "backend.pytest_plugin"),
    ("backend.http", "backend.cli", "backend.__main__"),
]


def _layer(module: str) -> int:
    for rank, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    raise AssertionError(f"{module} is in no layer; add it to LAYERS")


def _modules() -> dict[str, Path]:
    found = {}
    for path in BACKEND.rglob("*.py"):
        parts = path.relative_to(BACKEND.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if "migrations" in parts:
            continue
        found[".".join(parts)] = path
    return found


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_engine_never_imports_the_app() -> None:
    for module, path in _modules().items():
        bad = {n for n in _imports(path) if n.split(".")[0] in ("functions", "schema")}
        assert not bad, f"{module} imports the app: {bad}"


def test_every_module_depends_only_on_its_layer_or_below() -> None:
    violations = []
    for module, path in _modules().items():
        if module == "backend":
            continue  # the package root re-exports the public names
        rank = _layer(module)
        for name in _imports(path):
            if name.startswith("backend.") and _layer(name) > rank:
                violations.append(f"{module} -> {name}")
    assert violations == []
