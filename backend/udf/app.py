"""Loading an app: its schema module and every function under its functions package.

The engine never imports the app by name in its code: it is handed the names (by default
``schema`` and ``functions``, or ``APP_SCHEMA`` / ``APP_FUNCTIONS``) and imports them here.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any

from backend.schema_definition import Schema
from backend.udf.migration import Migration
from backend.udf.registry import RegisteredFunction


@dataclass
class App:
    schema: Schema
    functions: dict[str, RegisteredFunction] = field(default_factory=dict)  # type: ignore[type-arg]
    # Objects the app declares for the engine's subsystems, found by their
    # ``__app_extension__`` name (e.g. the registry of sensitive actions).
    extensions: dict[str, Any] = field(default_factory=dict)
    migrations: dict[str, Migration] = field(default_factory=dict)  # by path, ``mod:name``
    package: str | None = None  # the functions package, whose loggers are function logs


def canonical_path(path: str) -> str:
    """Convex's canonical form: ``module/path:name`` (``:default`` when no name, no ``.js``)."""
    module, sep, name = path.partition(":")
    if module.endswith(".js"):
        module = module[:-3]
    return f"{module}:{name if sep else 'default'}"


def collect_functions(
    package: str,
    extensions: dict[str, Any] | None = None,
    migrations: dict[str, Migration] | None = None,
) -> dict[str, RegisteredFunction]:  # type: ignore[type-arg]
    """Import every module under ``package`` and name each registered function ``mod:name``;
    gather app extensions (objects with an ``__app_extension__`` name) into ``extensions``
    and data migrations (``@migration``), named the same way, into ``migrations``."""
    root = importlib.import_module(package)
    found: dict[str, RegisteredFunction] = {}  # type: ignore[type-arg]
    prefix = root.__name__ + "."
    module_names = [
        info.name for info in pkgutil.walk_packages(getattr(root, "__path__", []), prefix)
    ]
    for module_name in sorted(module_names):
        module = importlib.import_module(module_name)
        relative = module_name[len(prefix) :].replace(".", "/")
        for attr, value in vars(module).items():
            kind = getattr(type(value), "__app_extension__", None)
            if isinstance(kind, str) and extensions is not None:
                if kind in extensions and extensions[kind] is not value:
                    raise TypeError(f"the app declares more than one {kind}")
                extensions[kind] = value
                continue
            if isinstance(value, Migration) and value.__module__ == module_name:
                if migrations is not None:
                    value.path = f"{relative}:{attr}"
                    migrations[value.path] = value
                continue
            if not isinstance(value, RegisteredFunction) or value.__module__ != module_name:
                continue
            path = f"{relative}:{attr}"
            if value.path is not None and value.path != path:
                raise TypeError(f"{value.path} is also exported as {path}; register it once")
            value.path = path
            found[path] = value
    return found


def load_app(schema_module: str = "schema", functions_package: str = "functions") -> App:
    module = importlib.import_module(schema_module)
    schema = getattr(module, "schema", None)
    if not isinstance(schema, Schema):
        raise TypeError(f"{schema_module}.schema must be made with define_schema(...)")
    extensions: dict[str, Any] = {}
    migrations: dict[str, Migration] = {}
    functions = collect_functions(functions_package, extensions, migrations)
    return App(
        schema=schema,
        functions=functions,
        extensions=extensions,
        migrations=migrations,
        package=functions_package,
    )
