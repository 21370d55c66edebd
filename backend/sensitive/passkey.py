"""The passkey method (WebAuthn, with py_webauthn): registration, the list, and step-up.

Registering (``factor.passkey.add``, level 3): ``sensitive:passkeyRegistrationOptions`` hands
out creation options (user verification required, a resident key preferred, the relying
party the host of ``PUBLIC_URL``), ``sensitive:registerPasskey {credential, name?}`` checks
the attestation against them and stores the public key. ``sensitive:passkeys`` lists them,
``sensitive:renamePasskey`` names one, ``sensitive:removePasskey`` removes one
(``factor.passkey.remove``, never proven by the passkey being removed).

Stepping up: ``sensitive:passkeyOptions {action, resource?}`` answers assertion options whose
challenge is bound to this session, this action and this resource and lives
``CHALLENGE_TTL``; ``sensitive:verifyPasskey {action, resource?, credential}`` checks the
assertion (signature, challenge, origin, relying party, user verification, and the sign
counter, which must move forward when the authenticator keeps one) and mints the same grant
as every method. No session is created or changed.

A challenge is stored only as its keyed hash, one per target, and is spent by the first
answer to it, right or wrong: an assertion replayed, or answered for another action or
resource, finds no challenge it fits.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import bytes_to_base64url
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from backend import audit
from backend.auth.sessions import SessionInfo
from backend.errors import ConvexError, ErrorCode
from backend.ratelimit.limiter import TokenBucket
from backend.sensitive import attempts, backup_codes, changes, require
from backend.sensitive.attempts import Answer
from backend.sensitive.factors import (
    CHALLENGES,
    PASSKEYS,
    challenge_for,
    passkey_by_credential,
    passkeys,
    replace_challenge,
)
from backend.sensitive.registry import SensitiveAction
from backend.sensitive.service import SensitiveService, caller
from backend.udf.context import MutationCtx, QueryCtx
from backend.udf.registry import RegisteredFunction, mutation, query
from backend.udf.system_context import SystemContext
from backend.values.ids import is_id_of

NAME = "passkey"
CHALLENGE_TTL = timedelta(minutes=2)
CHALLENGE_BYTES = 32
MAX_CREDENTIAL_CHARS = 16_000
MAX_NAME = 64
REGISTER = "register"
STEP_UP = "step-up"
OPTIONS_LIMITS: dict[str, TokenBucket] = {
    "sensitive.passkey.options.user": TokenBucket(20, timedelta(minutes=15)),
    "sensitive.passkey.options.ip": TokenBucket(60, timedelta(minutes=15)),
}
CHECK_LIMITS: dict[str, TokenBucket] = {
    "sensitive.passkey.check.user": TokenBucket(10, timedelta(minutes=15)),
    "sensitive.passkey.check.ip": TokenBucket(30, timedelta(minutes=15)),
}
REGISTER_LIMITS: dict[str, TokenBucket] = {
    "sensitive.passkey.register.user": TokenBucket(10, timedelta(hours=1)),
}


# ---- the pure core ---------------------------------------------------------------------------


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def presented_challenge(credential: Mapping[str, Any]) -> bytes | None:
    """The challenge a credential answers, read from its ``clientDataJSON`` (None when it is
    not there or not well formed): what the stored keyed hash is compared with. The
    signature over it is then checked by py_webauthn."""
    try:
        response = credential["response"]
        client_data = json.loads(_b64url_decode(str(response["clientDataJSON"])))
        return _b64url_decode(str(client_data["challenge"]))
    except (KeyError, TypeError, ValueError, binascii.Error):
        return None


def credential_id_of(credential: Mapping[str, Any]) -> str | None:
    """The credential's id, base64url without padding, or None."""
    raw = credential.get("id")
    if not isinstance(raw, str) or not raw or len(raw) > 1400:
        return None
    try:
        return bytes_to_base64url(_b64url_decode(raw))
    except (ValueError, binascii.Error):
        return None


def check_credential(credential: Any) -> dict[str, Any]:
    """``INVALID_ARGUMENT`` unless ``credential`` is a JSON object of a sane size."""
    if not isinstance(credential, dict):
        raise ConvexError(
            ErrorCode.INVALID_ARGUMENT, "credential must be an object", path="credential"
        )
    if len(json.dumps(credential, default=str)) > MAX_CREDENTIAL_CHARS:
        raise ConvexError(ErrorCode.INVALID_ARGUMENT, "credential is too large", path="credential")
    return credential


# ---- challenges ------------------------------------------------------------------------------


def _challenge_hash(service: SensitiveService, session_id: str, challenge: bytes) -> str:
    return service.keyed("webauthn-challenge", session_id, challenge.hex())


async def _issue_challenge(
    system: SystemContext, who: SessionInfo, purpose: str, action: str | None, resource: str | None
) -> bytes:
    db = system.db
    service = system.service(SensitiveService)
    challenge = system.runtime.random.token_bytes(CHALLENGE_BYTES)
    await replace_challenge(
        db,
        {
            "userId": who.user_id,
            "sessionId": who.session_id,
            "purpose": purpose,
            "action": action,
            "resource": resource,
            "challengeHash": _challenge_hash(service, who.session_id, challenge),
            "expiresAt": db.now_ms + CHALLENGE_TTL.total_seconds() * 1000,
            "createdAt": db.now_ms,
        },
    )
    return challenge


async def _take_challenge(
    system: SystemContext,
    who: SessionInfo,
    purpose: str,
    action: str | None,
    resource: str | None,
    credential: Mapping[str, Any],
) -> bytes | None:
    """Spend the target's challenge (whatever the answer) and return it if ``credential``
    answers it and it is unexpired; None otherwise."""
    import hmac

    db = system.db
    stored = await challenge_for(db, who.session_id, purpose, action, resource)
    if stored is None:
        return None
    await db.delete(stored["_id"])  # single use, right or wrong
    presented = presented_challenge(credential)
    if presented is None or stored["expiresAt"] <= db.now_ms:
        return None
    service = system.service(SensitiveService)
    expected = _challenge_hash(service, who.session_id, presented)
    return presented if hmac.compare_digest(expected, stored["challengeHash"]) else None


def _descriptor(doc: dict[str, Any]) -> PublicKeyCredentialDescriptor:
    transports = []
    for name in doc.get("transports") or []:
        try:
            transports.append(AuthenticatorTransport(name))
        except ValueError:
            continue
    return PublicKeyCredentialDescriptor(
        id=_b64url_decode(doc["credentialId"]), transports=transports or None
    )


def _options(options: Any) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(options_to_json(options))
    return found


def _usable(docs: list[dict[str, Any]], spec: SensitiveAction, resource: str | None) -> list[Any]:
    """The passkeys that may prove ``spec`` on ``resource`` (never the one it removes)."""
    return [d for d in docs if not (spec.not_by_resource and d["_id"] == resource)]


# ---- registration ----------------------------------------------------------------------------


@mutation
async def passkeyRegistrationOptions(ctx: MutationCtx) -> Answer:
    """Creation options for a new passkey: ``{ok: true, options}`` (for
    ``navigator.credentials.create``, as JSON). A protected action (``factor.passkey.add``);
    ``RATE_LIMITED`` past a few an hour."""
    system, who, fields = await require.begin_change(ctx, changes.PASSKEY_ADD, NAME)
    refused = await attempts.spend(system, who, REGISTER_LIMITS, fields)
    if refused is not None:
        return refused
    service = system.service(SensitiveService)
    challenge = await _issue_challenge(system, who, REGISTER, None, None)
    existing = await passkeys(system.db, who.user_id)
    options = generate_registration_options(
        rp_id=service.rp_id,
        rp_name=service.site_name,
        user_name=str(who.user["email"]),
        user_id=who.user_id.encode("utf-8"),
        user_display_name=str(who.user.get("name") or who.user["email"]),
        challenge=challenge,
        timeout=int(CHALLENGE_TTL.total_seconds() * 1000),
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[_descriptor(d) for d in existing],
    )
    await audit.record(system.db, audit.EventKind.CHALLENGE_ISSUED, outcome="register", **fields)
    return {"ok": True, "options": _options(options)}


@mutation
async def registerPasskey(
    ctx: MutationCtx, credential: dict[str, Any], name: str | None = None
) -> Answer:
    """Check the authenticator's answer to the creation options and keep the passkey:
    ``{ok: true, id, backupCodes}`` (ten codes, shown once, at the first factor). A protected
    action (``factor.passkey.add``). ``CHALLENGE_EXPIRED`` (no options, or too old: ask
    again), ``INVALID_PASSKEY`` (a credential that does not verify, or one already known)."""
    check_credential(credential)
    label = (name or "").strip()[:MAX_NAME] or "Passkey"
    system, who, fields = await require.begin_change(ctx, changes.PASSKEY_ADD, NAME)
    db = system.db
    challenge = await _take_challenge(system, who, REGISTER, None, None, credential)
    if challenge is None:
        return await attempts.failed(
            db, attempts.refusal(ErrorCode.CHALLENGE_EXPIRED), "no challenge", fields
        )
    service = system.service(SensitiveService)
    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=service.rp_id,
            expected_origin=service.origin,
            require_user_verification=True,
        )
    except (WebAuthnException, KeyError, TypeError, ValueError, binascii.Error) as error:
        return await attempts.failed(
            db, attempts.refusal(ErrorCode.INVALID_PASSKEY), type(error).__name__, fields
        )
    credential_id = bytes_to_base64url(verified.credential_id)
    if await passkey_by_credential(db, credential_id) is not None:
        return await attempts.failed(
            db, attempts.refusal(ErrorCode.INVALID_PASSKEY), "known credential", fields
        )
    response = credential.get("response")
    transports = response.get("transports") if isinstance(response, dict) else None
    passkey_id = await db.insert(
        PASSKEYS,
        {
            "userId": who.user_id,
            "credentialId": credential_id,
            "publicKey": bytes_to_base64url(verified.credential_public_key),
            "signCount": verified.sign_count,
            "name": label,
            "transports": [str(t)[:32] for t in transports[:8]]
            if isinstance(transports, list)
            else [],
            "backedUp": bool(verified.credential_backed_up),
            "createdAt": db.now_ms,
        },
    )
    codes = await backup_codes.issue_first(system, who.user_id)
    await changes.record_change(
        system,
        who,
        audit.EventKind.FACTOR_ADDED,
        NAME,
        action=changes.PASSKEY_ADD,
        resource=passkey_id,
        subject="A passkey was added",
        what=f"A passkey (“{label}”) was added to your account.",
    )
    return {"ok": True, "id": passkey_id, "backupCodes": codes}


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "name": doc["name"],
        "createdAt": doc["createdAt"],
        "lastUsedAt": doc.get("lastUsedAt"),
        "backedUp": doc.get("backedUp", False),
    }


@query
async def listPasskeys(ctx: QueryCtx) -> list[dict[str, Any]]:
    """The caller's passkeys, oldest first: ``[{id, name, createdAt, lastUsedAt, backedUp}]``."""
    system = SystemContext.of(ctx)
    who = await caller(system, with_user=False)
    return [_public(d) for d in await passkeys(system.db, who.user_id)]


async def _own(system: SystemContext, who: SessionInfo, passkey_id: Any) -> dict[str, Any]:
    if not isinstance(passkey_id, str) or not is_id_of(passkey_id, PASSKEYS):
        raise ConvexError(ErrorCode.NOT_FOUND, "No such passkey")
    found = await system.db.get(passkey_id)
    if found is None or found["userId"] != who.user_id:
        raise ConvexError(ErrorCode.NOT_FOUND, "No such passkey")
    return found


@mutation
async def renamePasskey(ctx: MutationCtx, id: str, name: str) -> Answer:
    """Name one of the caller's passkeys (1 to 64 characters). ``NOT_FOUND``."""
    label = name.strip()
    if not label or len(label) > MAX_NAME:
        raise ConvexError(
            ErrorCode.INVALID_ARGUMENT, "a passkey's name has 1 to 64 characters", path="name"
        )
    system = SystemContext.of(ctx)
    who = await caller(system, with_user=False)
    found = await _own(system, who, id)
    await system.db.patch(found["_id"], {"name": label})
    return {"ok": True}


@mutation
async def removePasskey(ctx: MutationCtx, id: str) -> Answer:
    """Remove one of the caller's passkeys. A protected action (``factor.passkey.remove``,
    with the passkey as its resource) that this passkey cannot prove. ``NOT_FOUND``."""
    from backend.sensitive.require import require_sensitive_action

    system = SystemContext.of(ctx)
    who = await caller(system)
    found = await _own(system, who, id)
    await require_sensitive_action(ctx, changes.PASSKEY_REMOVE, found["_id"])
    await system.db.delete(found["_id"])
    await changes.record_change(
        system,
        who,
        audit.EventKind.FACTOR_REMOVED,
        NAME,
        action=changes.PASSKEY_REMOVE,
        resource=found["_id"],
        subject="A passkey was removed",
        what=f"The passkey “{found['name']}” was removed from your account.",
    )
    return {"ok": True}


# ---- step-up ---------------------------------------------------------------------------------


@mutation
async def passkeyOptions(ctx: MutationCtx, action: str, resource: str | None = None) -> Answer:
    """Assertion options for this session, action and resource: ``{ok: true, options,
    expiresAt}`` (for ``navigator.credentials.get``, as JSON); a new one replaces the last.
    ``METHOD_NOT_AVAILABLE`` (no passkey, or not for this action), ``RATE_LIMITED``."""
    attempts.check_target(action, resource)
    system = SystemContext.of(ctx)
    step = await attempts.begin(system, action, resource, NAME, limits=OPTIONS_LIMITS)
    if not isinstance(step, attempts.StepUp):
        return step
    db, who, spec = system.db, step.who, step.spec
    service = system.service(SensitiveService)
    usable = _usable(await passkeys(db, who.user_id), spec, resource)
    challenge = await _issue_challenge(system, who, STEP_UP, spec.name, resource)
    options = generate_authentication_options(
        rp_id=service.rp_id,
        challenge=challenge,
        timeout=int(CHALLENGE_TTL.total_seconds() * 1000),
        allow_credentials=[_descriptor(d) for d in usable],
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    await audit.record(db, audit.EventKind.CHALLENGE_ISSUED, outcome="step-up", **step.fields)
    expires = db.now_ms + CHALLENGE_TTL.total_seconds() * 1000
    return {"ok": True, "options": _options(options), "expiresAt": expires}


@mutation
async def verifyPasskey(
    ctx: MutationCtx, action: str, credential: dict[str, Any], resource: str | None = None
) -> Answer:
    """Check an assertion made for ``passkeyOptions``'s challenge; mint a grant.
    ``CHALLENGE_EXPIRED`` (no challenge for this target, spent, or too old: ask again),
    ``INVALID_PASSKEY`` (a passkey not the caller's, a bad signature, origin, relying party,
    missing user verification, or a sign counter that went back), ``METHOD_NOT_AVAILABLE``,
    ``RATE_LIMITED``."""
    attempts.check_target(action, resource)
    check_credential(credential)
    system = SystemContext.of(ctx)
    step = await attempts.begin(system, action, resource, NAME, limits=CHECK_LIMITS)
    if not isinstance(step, attempts.StepUp):
        return step
    challenge = await _take_challenge(
        system, step.who, STEP_UP, step.spec.name, resource, credential
    )
    if challenge is None:
        return await attempts.failed(
            system.db, attempts.refusal(ErrorCode.CHALLENGE_EXPIRED), "no challenge", step.fields
        )
    return await _check_assertion(system, step, credential, challenge)


async def _check_assertion(
    system: SystemContext, step: attempts.StepUp, credential: dict[str, Any], challenge: bytes
) -> Answer:
    """Check an assertion answering ``challenge`` (already spent), by a usable passkey of the
    caller; on success move its sign counter on and mint the grant. ``INVALID_PASSKEY``,
    audited, otherwise."""
    db, who, spec, resource, fields = system.db, step.who, step.spec, step.resource, step.fields
    service = system.service(SensitiveService)
    credential_id = credential_id_of(credential)
    stored = await passkey_by_credential(db, credential_id) if credential_id else None
    usable = stored is not None and stored["userId"] == who.user_id
    if stored is None or not usable or _usable([stored], spec, resource) == []:
        return await attempts.failed(
            db, attempts.refusal(ErrorCode.INVALID_PASSKEY), "not a usable passkey", fields
        )
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=service.rp_id,
            expected_origin=service.origin,
            credential_public_key=_b64url_decode(stored["publicKey"]),
            credential_current_sign_count=int(stored["signCount"]),
            require_user_verification=True,
        )
    except (WebAuthnException, KeyError, TypeError, ValueError, binascii.Error) as error:
        detail = "sign counter" if "sign count" in str(error) else type(error).__name__
        return await attempts.failed(
            db, attempts.refusal(ErrorCode.INVALID_PASSKEY), detail, fields
        )
    await db.patch(stored["_id"], {"signCount": verified.new_sign_count, "lastUsedAt": db.now_ms})
    return await attempts.grant(db, step, factor_id=stored["_id"])


class PasskeyMethod:
    """Offered to a user with a passkey that may prove the action (not the one it removes)."""

    name = NAME
    functions: Mapping[str, RegisteredFunction[Any, Any, Any]] = {
        "sensitive:passkeyRegistrationOptions": passkeyRegistrationOptions,
        "sensitive:registerPasskey": registerPasskey,
        "sensitive:listPasskeys": listPasskeys,
        "sensitive:renamePasskey": renamePasskey,
        "sensitive:removePasskey": removePasskey,
        "sensitive:passkeyOptions": passkeyOptions,
        "sensitive:verifyPasskey": verifyPasskey,
    }

    async def available(
        self, system: SystemContext, who: SessionInfo, spec: SensitiveAction, resource: str | None
    ) -> bool:
        return bool(_usable(await passkeys(system.db, who.user_id), spec, resource))


METHOD = PasskeyMethod()

__all__ = [
    "CHALLENGES",
    "CHALLENGE_TTL",
    "METHOD",
    "credential_id_of",
    "passkeyOptions",
    "presented_challenge",
    "verifyPasskey",
]
