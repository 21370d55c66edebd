"""The one error type a caller can see, and the table that maps its codes to transports.

Every error that reaches a client is a ``ConvexError``: its ``data`` travels to the caller
unchanged (as Convex's ``errorData``) and, for the errors the engine itself raises, is an
object ``{"code": ..., "message": ..., **details}``. Any other exception raised by a function
is an internal error: the caller sees a generic message and the detail goes to the server log.

Mistakes a developer makes while wiring an app (a function registered twice, a schema that
names a missing field) are plain ``TypeError`` / ``RuntimeError`` at load time instead.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    CONFLICT = "CONFLICT"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    RATE_LIMITED = "RATE_LIMITED"
    SENSITIVE_VERIFICATION_REQUIRED = "SENSITIVE_VERIFICATION_REQUIRED"
    INTERNAL = "INTERNAL"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    REQUEST_TIMEOUT = "REQUEST_TIMEOUT"
    UNAVAILABLE = "UNAVAILABLE"
    # the server runs an app older than the deployed schema: it must be restarted
    SCHEMA_OUTDATED = "SCHEMA_OUTDATED"


# code -> (HTTP status for a plain HTTP endpoint, WebSocket close code when it ends a socket)
TRANSPORT: dict[str, tuple[int, int]] = {
    ErrorCode.INVALID_ARGUMENT: (400, 4400),
    ErrorCode.NOT_FOUND: (404, 4404),
    ErrorCode.UNAUTHENTICATED: (401, 4401),
    ErrorCode.FORBIDDEN: (403, 4403),
    ErrorCode.CONFLICT: (409, 4409),
    ErrorCode.LIMIT_EXCEEDED: (400, 4400),
    ErrorCode.RATE_LIMITED: (429, 4429),
    ErrorCode.SENSITIVE_VERIFICATION_REQUIRED: (403, 4403),
    ErrorCode.PAYLOAD_TOO_LARGE: (413, 1009),
    ErrorCode.METHOD_NOT_ALLOWED: (405, 4405),
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: (415, 4415),
    ErrorCode.REQUEST_TIMEOUT: (408, 4408),
    ErrorCode.INTERNAL: (500, 1011),
    # the database is out of reach: try again shortly (1013 is WebSocket's "Try Again Later")
    ErrorCode.UNAVAILABLE: (503, 1013),
    ErrorCode.SCHEMA_OUTDATED: (503, 1012),  # 1012: Service Restart
    # auth (Better Auth's codes and statuses)
    "INVALID_EMAIL_OR_PASSWORD": (401, 4401),
    "USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL": (422, 4400),
    "INVALID_TOKEN": (401, 4401),
    "TOKEN_EXPIRED": (401, 4401),
    "EMAIL_NOT_VERIFIED": (403, 4403),
    "PASSWORD_LOCKED": (403, 4403),
    "INVALID_ORIGIN": (403, 4403),
    "INVALID_HOST": (400, 4400),
    "PROVIDER_NOT_FOUND": (404, 4404),
}


def http_status(code: str | None) -> int:
    """The HTTP status for an error code; unknown (app-defined) codes are 400."""
    return TRANSPORT.get(code or "", (400, 4400))[0]


def websocket_close_code(code: str | None) -> int:
    return TRANSPORT.get(code or "", (400, 4400))[1]


class ConvexError(Exception):
    """An error whose ``data`` reaches the caller unchanged.

    ``ConvexError("NOT_FOUND", "No such organization", orgId=org_id)`` carries
    ``{"code": "NOT_FOUND", "message": "No such organization", "orgId": ...}``.
    Use ``ConvexError.from_data(value)`` to send any other Convex value as the data.
    """

    data: Any

    def __init__(self, code: str, message: str = "", **details: Any) -> None:
        self.data = {"code": str(code), "message": message or str(code), **details}
        super().__init__(self.data["message"])

    @classmethod
    def from_data(cls, data: Any) -> ConvexError:
        error = cls.__new__(cls)
        error.data = data
        message = data.get("message") if isinstance(data, dict) else None
        Exception.__init__(error, message if isinstance(message, str) else repr(data))
        return error

    @property
    def code(self) -> str | None:
        code = self.data.get("code") if isinstance(self.data, dict) else None
        return code if isinstance(code, str) else None

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __repr__(self) -> str:
        return f"ConvexError({self.data!r})"


class InternalError(Exception):
    """A failure the caller must not see the detail of (a bug, a lost database)."""


def invalid_argument(message: str, path: str | None = None) -> ConvexError:
    return (
        ConvexError(ErrorCode.INVALID_ARGUMENT, message, path=path)
        if path
        else ConvexError(ErrorCode.INVALID_ARGUMENT, message)
    )
