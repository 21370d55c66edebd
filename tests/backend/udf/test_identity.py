"""``ctx.auth.get_user_identity()``: Convex's ``UserIdentity``, by attribute and by key."""

from __future__ import annotations

import functools

import pytest

from backend.testing import RunCtx, TestBackend
from backend.udf.app import App, load_app
from backend.udf.context import Identity


@functools.cache
def clients_app() -> App:
    return load_app("tests.apps.clients.schema", "tests.apps.clients.functions")


TOKEN_CLAIMS = {
    "sub": "u1",
    "sid": "s1",
    "iss": "https://auth.example",
    "aud": "convex",
    "iat": 1,
    "exp": 2,
    "email": "ada@example.com",
    "email_verified": True,
    "picture": "https://img.example/ada.png",
    "given_name": "Ada",
    "tenant": "acme",
}


def test_attributes_read_convex_names_and_their_python_spellings() -> None:
    identity = Identity("u1", "s1", "https://auth.example", TOKEN_CLAIMS)
    assert identity.tokenIdentifier == identity.token_identifier == "https://auth.example|u1"
    assert identity.subject == "u1"
    assert identity.issuer == "https://auth.example"
    assert identity.email == "ada@example.com"
    assert identity.emailVerified is identity.email_verified is True
    assert identity.pictureUrl == identity.picture_url == "https://img.example/ada.png"
    assert identity.givenName == "Ada"
    assert identity.name is None  # a claim the user does not have
    with pytest.raises(AttributeError):
        identity.no_such_claim  # type: ignore[attr-defined]  # noqa: B018


def test_as_a_mapping_it_is_exactly_convex_user_identity() -> None:
    identity = Identity("u1", "s1", "https://auth.example", TOKEN_CLAIMS)
    assert dict(identity) == {
        "tokenIdentifier": "https://auth.example|u1",
        "subject": "u1",
        "issuer": "https://auth.example",
        "givenName": "Ada",
        "pictureUrl": "https://img.example/ada.png",
        "email": "ada@example.com",
        "emailVerified": True,
        # custom claims keep their names; the token's own claims (aud, exp, iat) are not the user's
        "sid": "s1",
        "tenant": "acme",
    }
    assert identity["tenant"] == "acme"
    assert identity.get("name") is None
    assert "aud" not in identity
    with pytest.raises(KeyError):
        identity["name"]


async def test_a_signed_in_caller_carries_the_claims_of_their_account(
    database_url: str | None,
) -> None:
    async with TestBackend(database_url, app=clients_app()) as t:
        ada = await t.sign_up("ada@example.com", "correct horse battery", name="Ada Lovelace")
        seen = await ada.query("messages:whoami", {})
        assert seen["subject"] == ada.user_id
        assert seen["tokenIdentifier"] == f"{seen['issuer']}|{ada.user_id}"
        assert seen["name"] == "Ada Lovelace"
        assert seen["email"] == "ada@example.com"
        assert seen["emailVerified"] is False
        assert "pictureUrl" not in seen  # no image on the account
        assert seen["updatedAt"].endswith("Z")

        async def rename(ctx: RunCtx) -> None:
            await ctx.db.patch(ada.user_id, {"name": "Countess"})

        await t.run(rename)
        assert (await ada.query("messages:whoami", {}))["name"] == "Countess"
