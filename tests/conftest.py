"""Shared fixtures: every engine test runs on SQLite and on PostgreSQL.

PostgreSQL is found at ``TEST_POSTGRES_URL`` (the Makefile sets it). It is required: a test
that cannot reach it fails rather than skipping, so CI can never pass without it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncIterator

import pytest

from backend.testing import TestBackend
from backend.udf.app import App, load_app

POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


BASIC_SCHEMA = "tests.apps.basic.schema"
BASIC_FUNCTIONS = "tests.apps.basic.functions"


@functools.cache
def basic_app() -> App:
    """The small test app of tests/apps/basic (loaded once: its functions get their paths)."""
    return load_app(BASIC_SCHEMA, BASIC_FUNCTIONS)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """None for the default (a fresh SQLite file), or the PostgreSQL URL."""
    return None if request.param == "sqlite" else POSTGRES_URL


def rate_limited(request: pytest.FixtureRequest) -> bool:
    """Whether the test is marked ``@pytest.mark.rate_limits``: the harness enforces rate
    limits only when asked."""
    return request.node.get_closest_marker("rate_limits") is not None


@pytest.fixture
async def basic(
    database_url: str | None, request: pytest.FixtureRequest
) -> AsyncIterator[TestBackend]:
    """The engine with the small test app of tests/apps/basic, on each database."""
    async with TestBackend(database_url, app=basic_app(), rate_limits=rate_limited(request)) as t:
        yield t
