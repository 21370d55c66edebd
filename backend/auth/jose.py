"""What both JWT paths share: our own tokens (``jwt.py``) and providers' ID tokens
(``oauth.py``), and the random tokens of sessions and links.

A signed token is checked in the same steps on both paths, each step here once:
``unverified_header`` (its ``alg`` and ``kid``, nothing trusted yet), ``public_jwk`` (a
public key, bound to the one algorithm it fits, RSA keys at least 2048 bits), ``decode`` (the
signature, the required claims, and the issuer and audience where the caller names them),
then ``check_lifetime`` (``exp``, ``iat``, ``nbf``) against the injected clock: PyJWT's own
time checks read the wall clock, so they are off. Each step refuses with a ``Rejection``;
each path words it for its own callers.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any, TypeGuard

import jwt as pyjwt
from cryptography.hazmat.primitives.asymmetric import rsa

MIN_RSA_BITS = 2048


def b64url(data: bytes) -> str:
    """Base64url without padding, as JOSE and URLs want it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def is_text(value: object) -> TypeGuard[str]:
    """A non-empty string claim."""
    return isinstance(value, str) and bool(value)


def is_time(value: Any) -> bool:
    """A usable numeric time claim. json.loads accepts NaN, and NaN compares false with
    everything: a token whose ``exp`` is NaN would never expire."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class Rejection(StrEnum):
    """Why a signed token is refused."""

    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad signature"
    MISSING_CLAIM = "missing claim"
    WRONG_ISSUER = "wrong issuer"
    WRONG_AUDIENCE = "wrong audience"
    EXPIRED = "expired"
    NOT_YET_VALID = "not yet valid"


class Rejected(Exception):
    """A token refused at one of the steps, for ``reason``; it never holds the token."""

    def __init__(self, reason: Rejection) -> None:
        super().__init__(reason.value)
        self.reason = reason


def unverified_header(token: str) -> tuple[Any, Any]:
    """The token's ``alg`` and ``kid``, as it claims them (checked by nobody yet)."""
    try:
        header = pyjwt.get_unverified_header(token)
    except pyjwt.PyJWTError:
        raise Rejected(Rejection.MALFORMED) from None
    return header.get("alg"), header.get("kid")


def public_jwk(data: Mapping[str, Any], algorithm: str) -> pyjwt.PyJWK:
    """A public JWK as a key for ``algorithm`` alone. ``ValueError`` for one that does not
    fit it, or an RSA key under ``MIN_RSA_BITS``."""
    try:
        jwk = pyjwt.PyJWK(dict(data), algorithm=algorithm)
    except pyjwt.PyJWTError as exc:
        raise ValueError(str(exc)) from exc
    if isinstance(jwk.key, rsa.RSAPublicKey) and jwk.key.key_size < MIN_RSA_BITS:
        raise ValueError(f"RSA keys need at least {MIN_RSA_BITS} bits")
    return jwk


def decode(
    token: str,
    key: pyjwt.PyJWK,
    algorithm: str,
    *,
    require: Sequence[str],
    issuer: str | None = None,
    audience: str | None = None,
) -> dict[str, Any]:
    """The claims of ``token`` if ``key`` signed it with ``algorithm`` and it has every claim
    of ``require`` (and names ``issuer`` and ``audience``, when given). Times are not
    checked: see ``check_lifetime``."""
    try:
        claims: dict[str, Any] = pyjwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=audience,
            issuer=issuer,
            options={
                "verify_aud": audience is not None,
                "verify_iss": issuer is not None,
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "require": list(require),
                "enforce_minimum_key_length": True,
            },
        )
    except (pyjwt.InvalidSignatureError, pyjwt.InvalidAlgorithmError):
        raise Rejected(Rejection.BAD_SIGNATURE) from None
    except pyjwt.MissingRequiredClaimError:
        raise Rejected(Rejection.MISSING_CLAIM) from None
    except pyjwt.InvalidIssuerError:
        raise Rejected(Rejection.WRONG_ISSUER) from None
    except pyjwt.InvalidAudienceError:
        raise Rejected(Rejection.WRONG_AUDIENCE) from None
    except pyjwt.PyJWTError:
        raise Rejected(Rejection.MALFORMED) from None
    return claims


def check_lifetime(
    claims: Mapping[str, Any], now: float, leeway: float, *, exp_after_iat: bool = False
) -> None:
    """Refuse a token whose ``exp`` has passed or whose ``iat`` / ``nbf`` is still ahead, at
    ``now`` (seconds) give or take ``leeway``; ``MALFORMED`` for times that are not numbers
    (and, with ``exp_after_iat``, for an ``exp`` not after its ``iat``)."""
    exp, iat = claims["exp"], claims["iat"]
    nbf = claims.get("nbf", iat)
    if not (is_time(exp) and is_time(iat) and is_time(nbf)):
        raise Rejected(Rejection.MALFORMED)
    if exp_after_iat and exp <= iat:
        raise Rejected(Rejection.MALFORMED)
    if exp <= now - leeway:
        raise Rejected(Rejection.EXPIRED)
    if max(iat, nbf) > now + leeway:
        raise Rejected(Rejection.NOT_YET_VALID)


__all__ = [
    "MIN_RSA_BITS",
    "Rejected",
    "Rejection",
    "b64url",
    "check_lifetime",
    "decode",
    "is_text",
    "is_time",
    "public_jwk",
    "unverified_header",
]
