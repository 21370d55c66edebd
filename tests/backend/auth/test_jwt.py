"""Signing keys and Convex tokens: stored encrypted, minted and verified by the engine's clock,
rotated without breaking live tokens, and every forgery refused; on both databases."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from backend.auth.jwt import InvalidToken, JwtVerifier, KeyRing, VerificationKey
from backend.runtime import FakeClock
from backend.testing import TestBackend

SECRET = "a test secret, never used in production"
ISSUER = "http://127.0.0.1:3210"
AUDIENCE = "convex"


def make_ring(t: TestBackend, secret: str = SECRET, **options: Any) -> KeyRing:
    return KeyRing(t.engine, secret, issuer=ISSUER, **options)


async def stored_keys(t: TestBackend) -> list[dict[str, Any]]:
    return await t.run(lambda ctx: ctx.db.query("_jwks").collect())


def kid_of(token: str) -> str:
    kid = jwt.get_unverified_header(token)["kid"]
    assert isinstance(kid, str)
    return kid


def payload_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


async def refused(verifier: JwtVerifier, token: str) -> str:
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(token)
    assert not token or token not in str(caught.value)  # never echoed
    return caught.value.reason


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unsigned(header: Mapping[str, Any], payload: Mapping[str, Any]) -> str:
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"


# ---- keys ---------------------------------------------------------------------------------


async def test_the_first_ensure_key_makes_a_key_and_later_calls_reuse_it(
    basic: TestBackend,
) -> None:
    assert await stored_keys(basic) == []
    ring = make_ring(basic)
    await ring.ensure_key()
    await ring.ensure_key()
    await make_ring(basic).ensure_key()  # another process starting later

    (key,) = await stored_keys(basic)
    assert key["alg"] == "ES256"
    assert key["retiredAt"] is None
    assert (await ring.jwks())["keys"] == [key["publicJwk"]]
    assert key["publicJwk"]["kid"] == key["kid"]
    assert key["publicJwk"]["use"] == "sig"


async def test_mint_makes_the_first_key_when_none_exists(basic: TestBackend) -> None:
    ring = make_ring(basic)
    token = await ring.mint(subject="user1", session_id="session1")
    (key,) = await stored_keys(basic)
    assert kid_of(token) == key["kid"]


async def test_the_private_key_is_stored_encrypted_under_the_secret(basic: TestBackend) -> None:
    ring = make_ring(basic)
    await ring.ensure_key()
    (key,) = await stored_keys(basic)

    text = json.dumps(key)
    assert "PRIVATE KEY" not in text
    assert "MIIE" not in text
    assert "MIGH" not in text
    assert "d" not in key["publicJwk"]

    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        await make_ring(basic, secret="some other secret").ensure_key()


# ---- minting and verifying ----------------------------------------------------------------


async def test_a_minted_token_verifies_with_its_claims(basic: TestBackend) -> None:
    ring = make_ring(basic)
    await ring.ensure_key()
    now = basic.clock.now()

    token = await ring.mint(subject="user1", session_id="session1", extra={"email": "a@b.org"})
    claims = await ring.verifier().verify(token)

    assert (claims.subject, claims.session_id, claims.issuer) == ("user1", "session1", ISSUER)
    assert claims.issued_at == now.replace(microsecond=0)
    assert claims.expires_at - claims.issued_at == timedelta(minutes=15)
    assert claims.raw["aud"] == AUDIENCE
    assert claims.raw["email"] == "a@b.org"
    identity = claims.identity()
    assert (identity.subject, identity.session_id) == ("user1", "session1")
    # What the Convex client reads: numeric iat and exp, more than 2 s apart.
    payload = payload_of(token)
    assert isinstance(payload["iat"], int)
    assert isinstance(payload["exp"], int)
    assert payload["exp"] - payload["iat"] > 2
    assert jwt.get_unverified_header(token)["alg"] == "ES256"


async def test_two_mints_in_the_same_second_differ(basic: TestBackend) -> None:
    ring = make_ring(basic)
    first = await ring.mint(subject="user1", session_id="session1")
    second = await ring.mint(subject="user1", session_id="session1")
    assert first != second
    assert payload_of(first)["iat"] == payload_of(second)["iat"]
    assert payload_of(first)["jti"] != payload_of(second)["jti"]


async def test_extra_claims_cannot_override_the_rings_own(basic: TestBackend) -> None:
    ring = make_ring(basic)
    with pytest.raises(TypeError, match="sub"):
        await ring.mint(subject="user1", session_id="session1", extra={"sub": "admin"})


async def test_a_token_expires_by_the_engines_clock_with_a_small_leeway(
    basic: TestBackend,
) -> None:
    ring = make_ring(basic)
    token = await ring.mint(subject="user1", session_id="session1")
    verifier = ring.verifier()

    basic.clock.advance(minutes=15, seconds=4)  # inside the 5 s leeway
    assert (await verifier.verify(token)).subject == "user1"
    basic.clock.advance(seconds=2)
    assert await refused(verifier, token) == "expired"


async def test_a_forged_signature_is_refused(basic: TestBackend) -> None:
    ring = make_ring(basic)
    genuine = await ring.mint(subject="user1", session_id="session1")
    payload = {**payload_of(genuine), "sub": "admin"}
    impostor = ec.generate_private_key(ec.SECP256R1())

    forged = jwt.encode(payload, impostor, algorithm="ES256", headers={"kid": kid_of(genuine)})
    assert await refused(ring.verifier(), forged) == "bad signature"

    head, _body, signature = genuine.split(".")
    tampered = f"{head}.{unsigned({}, payload).split('.')[1]}.{signature}"
    assert await refused(ring.verifier(), tampered) == "bad signature"


async def test_alg_none_and_hmac_with_the_public_key_are_refused(basic: TestBackend) -> None:
    ring = make_ring(basic)
    genuine = await ring.mint(subject="user1", session_id="session1")
    kid, payload = kid_of(genuine), payload_of(genuine)
    verifier = ring.verifier()

    for alg in ("none", "None", "NONE"):
        assert await refused(verifier, unsigned({"alg": alg, "kid": kid}, payload) + ".") == (
            "bad signature"
        )

    # Key confusion: HS256 "signed" with the public key, as a verifier that lets the token
    # pick its algorithm would check it.
    (jwk,) = (await ring.jwks())["keys"]
    public_key = jwt.PyJWK(jwk).key
    for secret in (
        public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        json.dumps(jwk).encode(),
    ):
        signing_input = unsigned({"alg": "HS256", "typ": "JWT", "kid": kid}, payload)
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        assert await refused(verifier, f"{signing_input}.{b64url(mac)}") == "bad signature"


async def test_a_wrong_issuer_or_audience_is_refused(basic: TestBackend) -> None:
    ring = make_ring(basic)
    token = await ring.mint(subject="user1", session_id="session1")
    jwks = await ring.jwks()

    other_issuer = JwtVerifier.from_jwks(
        jwks, issuer="https://elsewhere.example", audience=AUDIENCE, clock=basic.clock
    )
    assert await refused(other_issuer, token) == "wrong issuer"
    other_audience = JwtVerifier.from_jwks(
        jwks, issuer=ISSUER, audience="another-app", clock=basic.clock
    )
    assert await refused(other_audience, token) == "wrong audience"
    same = JwtVerifier.from_jwks(jwks, issuer=ISSUER, audience=AUDIENCE, clock=basic.clock)
    assert (await same.verify(token)).subject == "user1"


# ---- rotation -----------------------------------------------------------------------------


async def test_rotation_keeps_old_tokens_valid_until_the_retired_key_is_dropped(
    basic: TestBackend,
) -> None:
    # Long-lived tokens, so that the key's life and not the token's is what is under test.
    ring = make_ring(basic, token_ttl=timedelta(hours=23))
    elsewhere = make_ring(basic, token_ttl=timedelta(hours=23)).verifier()  # another process
    await ring.ensure_key()
    (first,) = await stored_keys(basic)

    basic.clock.advance(days=30, seconds=-1)
    old_token = await ring.mint(subject="user1", session_id="session1")
    assert kid_of(old_token) == first["kid"]
    assert (await elsewhere.verify(old_token)).subject == "user1"

    basic.clock.advance(seconds=1)  # the key is now 30 days old
    await ring.ensure_key()
    keys = {k["kid"]: k for k in await stored_keys(basic)}
    assert len(keys) == 2
    assert keys[first["kid"]]["retiredAt"] is not None
    (second_kid,) = set(keys) - {first["kid"]}
    assert [k["kid"] for k in (await ring.jwks())["keys"]] == [second_kid, first["kid"]]

    # For a few seconds the old key goes on signing, until every verifier can know the new.
    assert kid_of(await ring.mint(subject="user1", session_id="s")) == first["kid"]
    basic.clock.advance(seconds=10)
    new_token = await ring.mint(subject="user1", session_id="session2")
    assert kid_of(new_token) == second_kid
    for verifier in (ring.verifier(), elsewhere):
        assert (await verifier.verify(new_token)).session_id == "session2"
        assert (await verifier.verify(old_token)).session_id == "session1"

    basic.clock.advance(hours=22)  # the retired key still verifies for keep_retired (1 day)
    assert (await ring.verifier().verify(old_token)).session_id == "session1"

    basic.clock.advance(hours=2, seconds=-10)
    for verifier in (ring.verifier(), elsewhere):
        assert await refused(verifier, old_token) == "unknown key"
    assert [k["kid"] for k in (await ring.jwks())["keys"]] == [second_kid]

    await ring.ensure_key()
    assert [k["kid"] for k in await stored_keys(basic)] == [second_kid]


async def test_a_verifier_picks_up_a_key_made_by_another_process(basic: TestBackend) -> None:
    here, there = make_ring(basic), make_ring(basic)  # two processes
    await here.ensure_key()
    basic.clock.advance(days=30, seconds=-30)
    verifier = here.verifier()
    before = await here.mint(subject="u", session_id="s")
    await verifier.verify(before)  # the one key there is now cached

    basic.clock.advance(seconds=30)
    await there.ensure_key()  # rotates
    basic.clock.advance(seconds=10)
    token = await there.mint(subject="u", session_id="s")
    assert kid_of(token) != kid_of(before)
    assert (await verifier.verify(token)).subject == "u"  # unknown kid: reloaded


# ---- a verifier without a database ----------------------------------------------------------


def _test_key(kid: str = "test-key") -> tuple[ec.EllipticCurvePrivateKey, dict[str, Any]]:
    private_key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private_key.public_key()))
    return private_key, {**jwk, "kid": kid, "alg": "ES256", "use": "sig"}


def _claims(clock: FakeClock, **overrides: Any) -> dict[str, Any]:
    iat = int(clock.now().timestamp())
    claims = {"sub": "u1", "sid": "s1", "iat": iat, "exp": iat + 600, "iss": ISSUER}
    return {**claims, "aud": AUDIENCE, **overrides}


async def test_a_static_verifier_works_without_a_database() -> None:
    clock = FakeClock()
    private_key, jwk = _test_key()
    verifier = JwtVerifier.from_jwks({"keys": [jwk]}, issuer=ISSUER, audience=AUDIENCE, clock=clock)

    def sign(claims: Mapping[str, Any], kid: str = "test-key") -> str:
        return jwt.encode(dict(claims), private_key, algorithm="ES256", headers={"kid": kid})

    claims = await verifier.verify(sign(_claims(clock)))
    assert (claims.subject, claims.session_id) == ("u1", "s1")

    without_sid = {k: v for k, v in _claims(clock).items() if k != "sid"}
    assert await refused(verifier, sign(without_sid)) == "missing claim"
    assert await refused(verifier, sign(_claims(clock, aud=None))) == "missing claim"
    assert await refused(verifier, sign(_claims(clock, sub=7))) == "malformed"
    assert await refused(verifier, sign(_claims(clock, iat="now"))) == "malformed"
    assert await refused(verifier, sign(_claims(clock), kid="other")) == "unknown key"
    future = _claims(clock, iat=int(clock.now().timestamp()) + 60)
    assert await refused(verifier, sign(future)) == "not yet valid"
    huge = sign(_claims(clock, padding="x" * 9000))
    assert await refused(verifier, huge) == "malformed"
    for garbage in ("", "a.b", "a.b.c", "not a token at all", "é.é.é"):
        assert await refused(verifier, garbage) == "malformed"

    backwards = _claims(clock, exp=int(clock.now().timestamp()) - 1)
    assert await refused(verifier, sign(backwards)) == "malformed"  # exp before iat

    token = sign(_claims(clock))  # lives 600 s
    clock.advance(minutes=10, seconds=4)
    assert (await verifier.verify(token)).subject == "u1"
    clock.advance(seconds=1)
    assert await refused(verifier, token) == "expired"


async def test_an_unknown_kid_reloads_the_keys_at_most_once_per_interval() -> None:
    clock = FakeClock()
    private_key, jwk = _test_key()
    loads: list[int] = []

    async def source() -> Mapping[str, VerificationKey]:
        loads.append(1)
        return {"test-key": VerificationKey.from_jwk(jwk)}

    verifier = JwtVerifier(source, issuer=ISSUER, audience=AUDIENCE, clock=clock)
    stranger = jwt.encode(_claims(clock), private_key, algorithm="ES256", headers={"kid": "x"})

    assert await refused(verifier, stranger) == "unknown key"
    assert await refused(verifier, stranger) == "unknown key"
    assert len(loads) == 1
    clock.advance(seconds=5)
    assert await refused(verifier, stranger) == "unknown key"
    assert len(loads) == 2


async def test_rs256_and_eddsa_keys_are_accepted_only_when_their_jwk_names_them() -> None:
    clock = FakeClock()
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ed_key = ed25519.Ed25519PrivateKey.generate()
    rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    ed_jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(ed_key.public_key()))
    jwks = {
        "keys": [{**rsa_jwk, "kid": "r", "alg": "RS256"}, {**ed_jwk, "kid": "e", "alg": "EdDSA"}]
    }
    verifier = JwtVerifier.from_jwks(jwks, issuer=ISSUER, audience=AUDIENCE, clock=clock)
    for key, alg, kid in ((rsa_key, "RS256", "r"), (ed_key, "EdDSA", "e")):
        token = jwt.encode(_claims(clock), key, algorithm=alg, headers={"kid": kid})
        assert (await verifier.verify(token)).subject == "u1"
    # The RSA key signs PS256 just as well; its JWK says RS256, so that is all it verifies.
    ps256 = jwt.encode(_claims(clock), rsa_key, algorithm="PS256", headers={"kid": "r"})
    assert await refused(verifier, ps256) == "bad signature"

    for unnamed in (rsa_jwk, ed_jwk):
        with pytest.raises(ValueError, match="not accepted"):
            VerificationKey.from_jwk({**unnamed, "kid": "k"})


@pytest.mark.parametrize(
    ("jwks", "match"),
    [
        ({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]}, "symmetric"),
        ({"keys": [{"kty": "EC", "crv": "P-256", "x": "", "y": "", "d": "", "kid": "p"}]}, "priv"),
        ({"keys": [{"kty": "EC", "crv": "P-384", "kid": "c", "alg": "ES256"}]}, "does not fit"),
        ({"keys": [{"kty": "EC", "crv": "P-256"}]}, "kid"),
        ({"nokeys": []}, "keys"),
    ],
)
def test_a_bad_jwks_is_refused_when_loaded(jwks: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        JwtVerifier.from_jwks(jwks, issuer=ISSUER, audience=AUDIENCE, clock=FakeClock())


def test_a_ring_refuses_durations_that_would_break_tokens() -> None:
    engine: Any = object()
    with pytest.raises(ValueError, match="keep_retired"):
        KeyRing(engine, SECRET, issuer=ISSUER, keep_retired=timedelta(minutes=5))
    with pytest.raises(ValueError, match="token_ttl"):
        KeyRing(engine, SECRET, issuer=ISSUER, token_ttl=timedelta(seconds=2))
    with pytest.raises(ValueError, match="secret"):
        KeyRing(engine, "", issuer=ISSUER)
