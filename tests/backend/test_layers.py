"""The engine's layers only depend downwards, its modules import no cycle, the engine never
imports the app, and a function context's insides (``ctx._txn``, ``ctx._engine``) are reached
only where contexts are made: every other subsystem goes through ``SystemContext``.

Imports are read from the source: absolute ones, relative ones, and ``from backend import x``
(an edge to ``backend.x`` when that is a module), wherever they stand (a lazy import inside a
function is an edge like any other). Only an import under ``if TYPE_CHECKING:`` is left out of
the cycle check: it never runs.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BACKEND = ROOT / "backend"

LAYERS: list[tuple[str, ...]] = [
    (
        "backend.values",
        "backend.errors",
        "backend.runtime",
        "backend.config",
        "backend.schema_definition",
        "backend.services",
        "backend.failures",
    ),
    ("backend.storage",),
    ("backend.transactions",),
    (
        "backend.udf",
        "backend.engine",
        "backend.environment",
        "backend.scheduler",
        "backend.crons",
        "backend.files",
        "backend.migrator",
        "backend.mail",
        "backend.ratelimit",
        "backend.snapshot",
    ),
    ("backend.sync", "backend.auth", "backend.sensitive", "backend.audit"),
    ("backend.system", "backend.assembly", "backend.codegen", "backend.dashboard"),
    # the harness drives the HTTP side too (HTTP actions, file URLs: ``t.fetch``)
    (
        "backend.http",
        "backend.cli",
        "backend.__main__",
        "backend.testing",
        "backend.pytest_plugin",
    ),
]


def _layer(module: str) -> int:
    for rank, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    raise AssertionError(f"{module} is in no layer; add it to LAYERS")


def modules(package: Path) -> dict[str, Path]:
    """Every module under ``package`` by dotted name (the Alembic scripts left out)."""
    found = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if "migrations" in parts:
            continue
        found[".".join(parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(tree: ast.AST, *, typing_too: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node) and not typing_too:
            for other in node.orelse:
                yield from _statements(ast.Module(body=[other], type_ignores=[]), typing_too=False)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _statements(node, typing_too=typing_too)


def imports(
    module: str, path: Path, known: dict[str, Path], *, typing_too: bool = True
) -> set[str]:
    """The modules ``module`` imports, resolved to names in ``known`` where they are one."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in _statements(ast.parse(path.read_text()), typing_too=typing_too):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
            continue
        if node.level:
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        for alias in node.names:
            submodule = f"{source}.{alias.name}"
            names.add(submodule if submodule in known else source)
    names.discard(module)
    return names


def cycles(package: Path) -> list[list[str]]:
    """Every import cycle among the modules of ``package`` (its strongly connected components
    of more than one module, or a module importing itself), each sorted."""
    known = modules(package)
    graph = {
        name: {n for n in imports(name, path, known, typing_too=False) if n in known}
        for name, path in known.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def upward_imports(package: Path, layer: Callable[[str], int] = _layer) -> list[str]:
    """Every ``a -> b`` where ``b`` sits in a higher layer than ``a`` (a module in no layer
    fails the check by name)."""
    known = modules(package)
    violations = []
    root = package.name
    for module, path in known.items():
        if module == root:
            continue  # the package root re-exports the public names
        for name in imports(module, path, known):
            if name.startswith(root + ".") and layer(name) > layer(module):
                violations.append(f"{module} -> {name}")
    return sorted(violations)


# where a context's private attributes may be read: the modules that build contexts and the
# system context that hands out their parts
CONTEXT_INSIDES = {"_txn", "_engine"}
CONTEXT_MAKERS = ("backend.engine", "backend.udf.system_context", "backend.udf.context")


def private_context_reads(package: Path, allowed: tuple[str, ...]) -> list[str]:
    """``module:line expression`` for each read of ``x._txn`` or ``x._engine`` (``x`` not
    ``self`` or ``cls``) in a module outside ``allowed``."""
    found = []
    for module, path in modules(package).items():
        if any(module == a or module.startswith(a + ".") for a in allowed):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in CONTEXT_INSIDES
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                found.append(f"{module}:{node.lineno} {ast.unparse(node)}")
    return sorted(found)


def test_no_subsystem_reaches_into_a_function_context() -> None:
    for package in (BACKEND, ROOT / "functions"):
        assert private_context_reads(package, CONTEXT_MAKERS) == []


def test_the_context_check_fails_on_a_ctx_txn(tmp_path: Path) -> None:
    package = _write(
        tmp_path,
        {
            "__init__.py": "",
            "ok.py": "class A:\n    def f(self):\n        return self._txn\n",
            "bad.py": "async def f(ctx):\n    return ctx._txn.get(1), ctx.db._engine\n",
        },
    )
    assert private_context_reads(package, ()) == ["pkg.bad:2 ctx._txn", "pkg.bad:2 ctx.db._engine"]


def test_the_engine_never_imports_the_app() -> None:
    known = modules(BACKEND)
    for module, path in known.items():
        app = ("functions", "schema")
        bad = {n for n in imports(module, path, known) if n.split(".")[0] in app}
        assert not bad, f"{module} imports the app: {bad}"


def test_every_module_depends_only_on_its_layer_or_below() -> None:
    assert upward_imports(BACKEND) == []


def test_the_engine_has_no_import_cycle() -> None:
    assert cycles(BACKEND) == []


def test_the_app_imports_the_engine_only_through_its_package_root() -> None:
    """``functions/`` and ``schema/`` use the names ``backend`` exports, never its modules."""
    offenders = []
    for package in (ROOT / "functions", ROOT / "schema"):
        known = modules(package)
        for module, path in known.items():
            for name in imports(module, path, known):
                if name.startswith("backend."):
                    offenders.append(f"{module} -> {name}")
    assert offenders == []


def _write(tmp: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp / "pkg"


def test_the_cycle_check_sees_lazy_relative_and_package_root_imports(tmp_path: Path) -> None:
    package = _write(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "from pkg import b\n",
            "b.py": "def f():\n    from .c import g\n    return g\n",
            "c.py": "import pkg.a\n",
            "d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n",
        },
    )
    assert cycles(package) == [["pkg.a", "pkg.b", "pkg.c"]]


def test_the_layer_check_fails_on_an_upward_import(tmp_path: Path) -> None:
    package = _write(
        tmp_path,
        {"__init__.py": "", "low.py": "from . import high\n", "high.py": "from pkg import low\n"},
    )

    def rank(name: str) -> int:
        return {"pkg.low": 0, "pkg.high": 1}[name]

    assert upward_imports(package, rank) == ["pkg.low -> pkg.high"]
