"""What a caller is told of a failed call: one wording, whichever transport carries it."""

from __future__ import annotations

from backend.engine import FunctionFailed
from backend.errors import ConvexError, ErrorCode
from backend.failures import failure_of, uncaught_message
from backend.values.convex_json import Int64


def test_a_convex_error_says_uncaught_convex_error_with_its_data_as_json() -> None:
    failure = failure_of(ConvexError(ErrorCode.FORBIDDEN, "No", level=3))
    assert failure.message == 'Uncaught ConvexError: {"code":"FORBIDDEN","message":"No","level":3}'
    assert failure.has_data
    assert failure.expected
    assert failure.data == {"code": "FORBIDDEN", "message": "No", "level": 3}


def test_string_data_is_the_message_itself_and_null_is_still_data() -> None:
    assert failure_of(ConvexError.from_data("sold out")).message == "Uncaught ConvexError: sold out"
    null = failure_of(ConvexError.from_data(None))
    assert (null.message, null.data, null.has_data) == ("Uncaught ConvexError: null", None, True)


def test_data_is_convex_json() -> None:
    failure = failure_of(ConvexError.from_data({"n": Int64(5)}))
    assert failure.data == {"n": {"$integer": "BQAAAAAAAAA="}}
    assert uncaught_message(failure.data) == failure.message


def test_a_bug_says_only_its_public_message_and_carries_no_data() -> None:
    assert failure_of(FunctionFailed("Server Error")).message == "Server Error"
    assert not failure_of(FunctionFailed("Server Error")).has_data
    unexpected = failure_of(ZeroDivisionError("secret detail"))
    assert (unexpected.message, unexpected.has_data, unexpected.expected) == (
        "Server Error",
        False,
        False,
    )
