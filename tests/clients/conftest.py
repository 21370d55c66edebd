"""One real server process per database for the official-client tests (they share it: each
test writes to channels of its own, so no test sees another's data)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.clients.server import ServerProcess, running_server
from tests.conftest import POSTGRES_URL


@pytest.fixture(scope="module")
def sqlite_server() -> Iterator[ServerProcess]:
    with running_server(None) as server:
        yield server


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[ServerProcess]:
    with running_server(POSTGRES_URL) as server:
        yield server


@pytest.fixture(params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest) -> ServerProcess:
    """The server on each database in turn."""
    found: ServerProcess = request.getfixturevalue(f"{request.param}_server")
    return found


@pytest.fixture
def channel() -> str:
    return f"c-{uuid.uuid4().hex[:8]}"
