from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from backend.auth.passwords import Passwords
from backend.testing import TestBackend
from tests.conftest import basic_app, rate_limited

PASSWORD = "correct horse battery"


def cheap_passwords() -> Passwords:
    # The checks are what these tests are about, not argon2's cost.
    return Passwords(time_cost=1, memory_cost=1024)


@pytest.fixture
async def demo(
    database_url: str | None, request: pytest.FixtureRequest
) -> AsyncIterator[TestBackend]:
    """The demo app (schema/, functions/) on each database."""
    async with TestBackend(
        database_url, passwords=cheap_passwords(), rate_limits=rate_limited(request)
    ) as t:
        yield t


@pytest.fixture
async def basic_t(
    database_url: str | None, request: pytest.FixtureRequest
) -> AsyncIterator[TestBackend]:
    async with TestBackend(
        database_url,
        app=basic_app(),
        passwords=cheap_passwords(),
        rate_limits=rate_limited(request),
    ) as t:
        yield t
