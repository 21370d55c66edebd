"""The one error type a caller can see, and the one table of its codes.

Every error that reaches a client is a ``ConvexError``: its ``data`` travels to the caller
unchanged (as Convex's ``errorData``) and, for the errors the engine itself raises, is an
object ``{"code": ..., "message": ..., **details}``. Any other exception raised by a function
is an internal error: the caller sees a generic message ("Server Error") and the detail goes
to the server log.

``ErrorCode`` lists every code the engine, its auth endpoints and step-up verification give a
caller, each with its HTTP status and what a sync socket does with it (``OnSocket``). Each
transport has one place that turns an error into an answer and reads this table there:
``backend/http/errors.py`` for HTTP, ``backend/udf/failure.py`` for what a failed function
call says (on the socket and over the HTTP function API alike). A code an app makes up
(``ConvexError("ALREADY_MEMBER", ...)``) is not in the table: it answers 400 and travels on
the socket like any other.

Mistakes a developer makes while wiring an app (a function registered twice, a schema that
names a missing field) are plain ``TypeError`` / ``RuntimeError`` at load time instead.
"""

from __future__ import annotations

from enum import Enum, StrEnum
from typing import Any


class OnSocket(Enum):
    """What a sync socket does with an error of a code."""

    REPLY = "reply"
    """Raised by a function: the failed call's answer carries it (``errorData``, its code
    inside), and the socket stays open."""
    ANSWER = "answer"
    """Not raised: a verification function answers ``{ok: false, code, ...}`` as its value,
    so that the failed attempt commits; the call itself succeeds."""
    HTTP_ONLY = "http-only"
    """Refused before any function runs, by an HTTP endpoint or guard (the auth endpoints, a
    request body, the ``Host``): never sent on a socket."""


class ErrorCode(StrEnum):
    """Every code a caller can be given, with its HTTP status and its socket behaviour.

    A member is its code string (``ErrorCode.NOT_FOUND == "NOT_FOUND"``); ``.status`` is the
    HTTP status of a request refused with it (a function that fails over the HTTP function
    API still answers 200 with ``status: "error"``, as Convex does), ``.socket`` what the
    sync socket does with it.
    """

    status: int
    socket: OnSocket

    def __new__(cls, code: str, status: int = 400, socket: OnSocket = OnSocket.REPLY) -> ErrorCode:
        # Builds the members below; ``ErrorCode("NOT_FOUND")`` looks one up by its code.
        member = str.__new__(cls, code)
        member._value_ = code
        member.status = status
        member.socket = socket
        return member

    # ---- the engine: what any function call can fail with ----------------------------------
    INVALID_ARGUMENT = "INVALID_ARGUMENT", 400
    NOT_FOUND = "NOT_FOUND", 404
    UNAUTHENTICATED = "UNAUTHENTICATED", 401
    FORBIDDEN = "FORBIDDEN", 403
    CONFLICT = "CONFLICT", 409
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED", 400
    RATE_LIMITED = "RATE_LIMITED", 429  # with retryAfterMs (and Retry-After over HTTP)
    SENSITIVE_VERIFICATION_REQUIRED = "SENSITIVE_VERIFICATION_REQUIRED", 403
    INTERNAL = "INTERNAL", 500
    UNAVAILABLE = "UNAVAILABLE", 503  # the database is out of reach: try again shortly
    # this server runs an app older than the deployed schema: it must be restarted with it
    SCHEMA_OUTDATED = "SCHEMA_OUTDATED", 503
    # ---- HTTP requests and their guards ----------------------------------------------------
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE", 413, OnSocket.HTTP_ONLY
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED", 405, OnSocket.HTTP_ONLY
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE", 415, OnSocket.HTTP_ONLY
    REQUEST_TIMEOUT = "REQUEST_TIMEOUT", 408, OnSocket.HTTP_ONLY
    INVALID_HOST = "INVALID_HOST", 400, OnSocket.HTTP_ONLY
    INVALID_ORIGIN = "INVALID_ORIGIN", 403, OnSocket.HTTP_ONLY
    # ---- the auth endpoints (Better Auth's codes and statuses) -----------------------------
    INVALID_EMAIL_OR_PASSWORD = "INVALID_EMAIL_OR_PASSWORD", 401, OnSocket.HTTP_ONLY
    USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL = (
        "USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL",
        422,
        OnSocket.HTTP_ONLY,
    )
    INVALID_EMAIL = "INVALID_EMAIL", 400, OnSocket.HTTP_ONLY
    PASSWORD_TOO_SHORT = "PASSWORD_TOO_SHORT", 400, OnSocket.HTTP_ONLY
    PASSWORD_TOO_LONG = "PASSWORD_TOO_LONG", 400, OnSocket.HTTP_ONLY
    PASSWORD_TOO_WEAK = "PASSWORD_TOO_WEAK", 400, OnSocket.HTTP_ONLY
    INVALID_TOKEN = "INVALID_TOKEN", 401, OnSocket.HTTP_ONLY
    TOKEN_EXPIRED = "TOKEN_EXPIRED", 401, OnSocket.HTTP_ONLY
    INVALID_CALLBACK_URL = "INVALID_CALLBACK_URL", 400, OnSocket.HTTP_ONLY
    EMAIL_NOT_VERIFIED = "EMAIL_NOT_VERIFIED", 403, OnSocket.HTTP_ONLY
    EMAIL_MISMATCH = "EMAIL_MISMATCH", 400, OnSocket.HTTP_ONLY
    EMAIL_ALREADY_VERIFIED = "EMAIL_ALREADY_VERIFIED", 400, OnSocket.HTTP_ONLY
    PASSWORD_LOCKED = "PASSWORD_LOCKED", 403, OnSocket.HTTP_ONLY
    # ---- OAuth -----------------------------------------------------------------------------
    PROVIDER_NOT_FOUND = "PROVIDER_NOT_FOUND", 404, OnSocket.HTTP_ONLY
    OAUTH_FAILED = "OAUTH_FAILED", 400, OnSocket.HTTP_ONLY
    OAUTH_ACCOUNT_NOT_LINKED = "OAUTH_ACCOUNT_NOT_LINKED", 400, OnSocket.HTTP_ONLY
    # ---- step-up verification's answers (``{ok: false, code}``; RATE_LIMITED too) ----------
    INVALID_PASSWORD = "INVALID_PASSWORD", 401, OnSocket.ANSWER
    INVALID_CODE = "INVALID_CODE", 400, OnSocket.ANSWER  # with attemptsLeft
    CODE_EXPIRED = "CODE_EXPIRED", 400, OnSocket.ANSWER
    METHOD_NOT_AVAILABLE = "METHOD_NOT_AVAILABLE", 400, OnSocket.ANSWER
    VERIFICATION_LOCKED = "VERIFICATION_LOCKED", 403, OnSocket.ANSWER
    CHALLENGE_EXPIRED = "CHALLENGE_EXPIRED", 400, OnSocket.ANSWER  # a passkey's: ask again
    INVALID_PASSKEY = "INVALID_PASSKEY", 400, OnSocket.ANSWER

    @classmethod
    def of(cls, code: str | None) -> ErrorCode | None:
        """The table's entry for ``code``, or None for a code an app made up."""
        return _BY_CODE.get(code) if code is not None else None


_BY_CODE: dict[str, ErrorCode] = {member.value: member for member in ErrorCode}


APP_ERROR_STATUS = 400
"""The HTTP status of a code an app made up: the caller's request was refused."""


def http_status(code: str | None) -> int:
    """The HTTP status for an error code; a code not in the table (an app's own) is 400."""
    known = ErrorCode.of(code)
    return known.status if known is not None else APP_ERROR_STATUS


class ConvexError(Exception):
    """An error whose ``data`` reaches the caller unchanged.

    ``ConvexError(ErrorCode.NOT_FOUND, "No such organization", orgId=org_id)`` carries
    ``{"code": "NOT_FOUND", "message": "No such organization", "orgId": ...}``: over the
    socket and the HTTP function API the caller gets a ``ConvexError`` whose ``data`` is that
    object. Any string is a code (an app's own, ``"ALREADY_MEMBER"``, answers 400 where a
    status is needed); ``ErrorCode`` has the engine's. Use ``ConvexError.from_data(value)``
    to send any other Convex value as the data.
    """

    data: Any

    def __init__(self, code: str, message: str = "", **details: Any) -> None:
        self.data = {"code": str(code), "message": message or str(code), **details}
        super().__init__(self.data["message"])

    @classmethod
    def from_data(cls, data: Any) -> ConvexError:
        """An error carrying ``data`` as it is (any Convex value), as Convex's
        ``new ConvexError(data)`` does."""
        error = cls.__new__(cls)
        error.data = data
        message = data.get("message") if isinstance(data, dict) else None
        Exception.__init__(error, message if isinstance(message, str) else repr(data))
        return error

    @property
    def code(self) -> str | None:
        """``data["code"]`` when the data is an object with a string code, else None."""
        code = self.data.get("code") if isinstance(self.data, dict) else None
        return code if isinstance(code, str) else None

    @property
    def message(self) -> str:
        """The human-readable message (the engine's own errors: ``data["message"]``)."""
        return str(self.args[0]) if self.args else ""

    def __repr__(self) -> str:
        return f"ConvexError({self.data!r})"


SERVER_ERROR = "Server Error"
"""What a caller is told of a failure whose detail is not theirs to see."""


class InternalError(Exception):
    """A failure the caller must not see the detail of (a bug in a function). The caller is
    told ``public_message`` instead."""

    public_message: str = SERVER_ERROR


def invalid_argument(message: str, path: str | None = None) -> ConvexError:
    """``INVALID_ARGUMENT`` with ``message``, and the argument at fault as ``path``."""
    return (
        ConvexError(ErrorCode.INVALID_ARGUMENT, message, path=path)
        if path
        else ConvexError(ErrorCode.INVALID_ARGUMENT, message)
    )


__all__ = [
    "APP_ERROR_STATUS",
    "SERVER_ERROR",
    "ConvexError",
    "ErrorCode",
    "InternalError",
    "OnSocket",
    "http_status",
    "invalid_argument",
]
