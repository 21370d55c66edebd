"""pytest fixtures for function authors: a test of an app function is three lines.

```python
async def test_an_org_lists_its_creator(user):
    org = await user.mutation("orgs:create", {"name": "Acme"})
    assert await user.query("orgs:list", {}) == [{"_id": org, "name": "Acme", "role": "owner"}]
```

Installing the package registers this plugin with pytest (the ``pytest11`` entry point); run
the tests with pytest-asyncio (``asyncio_mode = "auto"``). The fixtures:

- ``backend``: a ``TestBackend`` (``backend.testing``) serving the app of the project under
  test, on a fresh database, torn down after the test;
- ``user``: a signed-in caller on that backend (``backend.with_identity(...)``), whose
  ``ctx.auth`` is Alice, alice@example.com.

A test changes its backend with the marker ``@pytest.mark.backend(...)``, whose keywords are
``TestBackend``'s (``rate_limits=True``, ``hold_scheduled=True``, ``database_url=...``). Ini
options name the app: ``backend_schema`` (default ``schema``), ``backend_functions``
(default ``functions``), and ``backend_database_url`` (default: a fresh SQLite file).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from backend.testing import TestBackend, UserHandle

try:
    import pytest_asyncio

    _async_fixture: Callable[..., Any] = pytest_asyncio.fixture
except ImportError:  # pragma: no cover - the fixtures then need an async-aware runner
    _async_fixture = pytest.fixture


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("backend_schema", "the module of the app's schema", default="schema")
    parser.addini("backend_functions", "the package of the app's functions", default="functions")
    parser.addini(
        "backend_database_url",
        "the database the backend fixture opens a fresh schema in (default: fresh SQLite)",
        default="",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "backend(**options): options of the test's TestBackend (rate_limits=True, "
        "hold_scheduled=True, database_url=...)",
    )


def _options(request: pytest.FixtureRequest) -> dict[str, Any]:
    config = request.config
    options: dict[str, Any] = {
        "schema_module": config.getini("backend_schema"),
        "functions_package": config.getini("backend_functions"),
    }
    url = config.getini("backend_database_url")
    if url:
        options["database_url"] = url
    for marker in reversed(list(request.node.iter_markers("backend"))):
        if marker.args:
            raise TypeError("@pytest.mark.backend takes keywords only (TestBackend's options)")
        options.update(marker.kwargs)
    return options


@_async_fixture
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[TestBackend]:
    """The app under test on a fresh database (see the module's docstring)."""
    async with TestBackend(**_options(request)) as t:
        yield t


@_async_fixture
async def user(backend: TestBackend) -> UserHandle:
    """Alice (alice@example.com), signed in on ``backend``."""
    return await backend.with_identity(name="Alice", email="alice@example.com")
