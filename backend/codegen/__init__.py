"""``python -m backend codegen``: the typed client API Convex's codegen would write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backend.codegen.api import GENERATED_DIR, generate, write
from backend.udf.app import App

__all__ = ["GENERATED_DIR", "app_files", "generate", "write", "write_app"]


def app_files(app: App) -> dict[str, str]:
    """The generated files for an app and the engine's own public functions."""
    from backend.system import system_functions  # the system's functions include the dashboard's

    functions: dict[str, Any] = {**system_functions(), **app.functions}
    return generate(app.schema, functions)


def write_app(app: App, directory: Path = GENERATED_DIR) -> list[str]:
    """Write the app's generated files under ``directory``; the names of those that changed."""
    return write(directory, app_files(app))
