"""The error table: every caller-visible code with its HTTP status and its socket behaviour,
and no code written as a loose string where the table has it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from backend.errors import ConvexError, ErrorCode, OnSocket, http_status

ROOT = Path(__file__).resolve().parents[2]

# The statuses callers rely on: Better Auth's for its codes, the HTTP standards' for the rest.
PROMISED = {
    "INVALID_ARGUMENT": 400,
    "NOT_FOUND": 404,
    "UNAUTHENTICATED": 401,
    "FORBIDDEN": 403,
    "CONFLICT": 409,
    "RATE_LIMITED": 429,
    "SENSITIVE_VERIFICATION_REQUIRED": 403,
    "PAYLOAD_TOO_LARGE": 413,
    "REQUEST_TIMEOUT": 408,
    "UNAVAILABLE": 503,
    "INVALID_HOST": 400,
    "INVALID_ORIGIN": 403,
    "INVALID_EMAIL_OR_PASSWORD": 401,
    "USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL": 422,
    "INVALID_TOKEN": 401,
    "TOKEN_EXPIRED": 401,
    "EMAIL_NOT_VERIFIED": 403,
    "PASSWORD_LOCKED": 403,
    "PROVIDER_NOT_FOUND": 404,
}


@pytest.mark.parametrize(("code", "status"), sorted(PROMISED.items()))
def test_the_table_keeps_every_promised_status(code: str, status: int) -> None:
    assert ErrorCode(code).status == status
    assert http_status(code) == status


def test_a_code_an_app_makes_up_is_a_400_that_travels_on_the_socket() -> None:
    assert ErrorCode.of("ALREADY_MEMBER") is None
    assert http_status("ALREADY_MEMBER") == 400
    assert http_status(None) == 400
    assert ConvexError("ALREADY_MEMBER").data == {
        "code": "ALREADY_MEMBER",
        "message": "ALREADY_MEMBER",
    }


def test_a_member_is_its_code_string() -> None:
    error = ConvexError(ErrorCode.NOT_FOUND, "No such thing")
    assert error.data["code"] == "NOT_FOUND"
    assert type(error.data["code"]) is str  # plain text in the data, not the enum
    assert error.code == ErrorCode.NOT_FOUND


def test_step_up_answers_and_http_refusals_are_marked_as_such() -> None:
    answered = {code for code in ErrorCode if code.socket is OnSocket.ANSWER}
    assert answered == {
        "INVALID_PASSWORD",
        "INVALID_CODE",
        "CODE_EXPIRED",
        "METHOD_NOT_AVAILABLE",
        "VERIFICATION_LOCKED",
        "CHALLENGE_EXPIRED",
        "INVALID_PASSKEY",
    }
    assert ErrorCode.INVALID_EMAIL_OR_PASSWORD.socket is OnSocket.HTTP_ONLY
    assert ErrorCode.SENSITIVE_VERIFICATION_REQUIRED.socket is OnSocket.REPLY
    assert ErrorCode.UNAVAILABLE.socket is OnSocket.REPLY


def _loose_codes(folder: str) -> list[str]:
    """Codes of the table written as string literals where a caller gets them: the first
    argument of ``ConvexError(...)``, a ``"code"`` in a dict, a comparison or a return."""
    codes = {code.value for code in ErrorCode}
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        if path == ROOT / "backend" / "errors.py":
            continue  # the table itself
        for node in ast.walk(ast.parse(path.read_text())):
            literals: list[ast.expr] = []
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ConvexError":
                literals += node.args[:1]
            elif isinstance(node, ast.Dict):
                literals += [
                    value
                    for key, value in zip(node.keys, node.values, strict=True)
                    if isinstance(key, ast.Constant) and key.value == "code"
                ]
            elif isinstance(node, ast.Compare):
                literals += [node.left, *node.comparators]
            elif isinstance(node, ast.Return) and node.value is not None:
                literals += [node.value]
            for literal in literals:
                if isinstance(literal, ast.Constant) and literal.value in codes:
                    found.append(f"{path.relative_to(ROOT)}:{literal.lineno}: {literal.value}")
    return found


@pytest.mark.parametrize("folder", ["backend", "functions"])
def test_no_code_of_the_table_is_written_as_a_loose_string(folder: str) -> None:
    assert _loose_codes(folder) == []
