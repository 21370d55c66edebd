"""Sign-up says when an email already has an account (Better Auth's client expects
``USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL``), so asking about one email is limited per email,
whichever addresses the asking comes from."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from backend.errors import ConvexError
from backend.testing import TestBackend
from backend.udf.context import ClientInfo
from tests.backend.sensitive.conftest import PASSWORD, cheap_passwords


@pytest.fixture
async def demo(database_url: str | None) -> AsyncIterator[TestBackend]:
    async with TestBackend(database_url, passwords=cheap_passwords(), rate_limits=True) as t:
        yield t


async def test_probing_one_email_from_rotating_addresses_is_limited(demo: TestBackend) -> None:
    await demo.sign_up("ada@example.com", PASSWORD)
    codes = []
    for i in range(8):
        client = ClientInfo(ip_address=f"198.51.100.{i + 1}", user_agent="prober")
        with pytest.raises(ConvexError) as info:
            await demo.auth.sign_up("ada@example.com", PASSWORD, "Ada", client)
        codes.append(info.value.code)
    assert codes[0] == "USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL"
    assert "RATE_LIMITED" in codes
    assert codes[-1] == "RATE_LIMITED"
    # Another email is not held back by it, from any of those addresses.
    client = ClientInfo(ip_address="198.51.100.1", user_agent="someone")
    assert (await demo.auth.sign_up("bea@example.com", PASSWORD, "Bea", client)).user
