"""What a caller is told of a failed function call: the same words on every transport.

The sync socket (a failed mutation, action or query) and the HTTP function API (``status:
"error"``) both answer a failure with Convex's two fields, built here once:

- a ``ConvexError``: ``errorMessage`` is ``Uncaught ConvexError: <data>`` (string data as it
  is, anything else as its JSON), as Convex words it, and ``errorData`` is the data;
- an ``InternalError`` (a function's bug, ``engine.FunctionFailed``): its public message,
  "Server Error" unless ``DEV_MODE`` adds the detail, and no ``errorData``;
- anything else (a bug of the engine's own): "Server Error" too; the transport logs it.

A transport may write ``errorData`` in its own way (the HTTP API writes numbers as floats),
never different words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backend.errors import SERVER_ERROR, ConvexError, InternalError
from backend.values.convex_json import dumps, to_json


@dataclass(frozen=True)
class Failure:
    """``message`` is Convex's ``errorMessage``; ``data`` its ``errorData`` (Convex JSON),
    present exactly when ``has_data`` (a ``ConvexError``'s data may itself be null)."""

    message: str
    data: Any = None
    has_data: bool = False
    expected: bool = True
    """False for an exception the engine did not expect: a bug to log with its traceback."""


def uncaught_message(data_json: Any) -> str:
    """The ``errorMessage`` of a ConvexError whose data is ``data_json`` (Convex JSON)."""
    detail = data_json if isinstance(data_json, str) else dumps(data_json)
    return f"Uncaught ConvexError: {detail}"


def failure_of(error: BaseException) -> Failure:
    """What the caller of a function that raised ``error`` is told."""
    if isinstance(error, ConvexError):
        data = to_json(error.data)
        return Failure(uncaught_message(data), data, has_data=True)
    if isinstance(error, InternalError):
        return Failure(error.public_message)
    return Failure(SERVER_ERROR, expected=False)


__all__ = ["Failure", "failure_of", "uncaught_message"]
