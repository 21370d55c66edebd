"""Function logs: what a function prints or logs, captured per execution.

Inside a query, mutation or action, ``print(...)`` and the ``logging`` module write log lines
instead of the server's output, as ``console.log`` does in a Convex function:

- ``print(a, b)`` is a ``[LOG]`` line (``[ERROR]`` with ``file=sys.stderr``), worded as
  Python's ``print`` words it (``sep`` between the values; one line per call, whatever
  ``end`` is). A print to any other file is a plain print.
- a record of a logger under the app's functions package (``logging.getLogger(__name__)``
  in ``functions/messages.py``), or of the root logger (``logging.warning(...)``), is a
  ``[DEBUG]`` / ``[INFO]`` / ``[WARN]`` / ``[ERROR]`` line; the app's loggers let every level
  through inside a function (outside one, they follow the root logger's level, as before).

The lines of one execution go to its caller (``logLines`` on the socket and over the HTTP
function API, which the official clients print as ``[CONVEX Q(messages:list)] [LOG] ...``)
and into the one structured line the server logs for the call (``calls.py``). As Convex does,
an execution keeps at most 256 lines of at most 32 KiB each (the rest is said to be omitted),
and a mutation that runs again after losing a race keeps only its last attempt's lines.

How the capture finds its execution: a ``ContextVar`` holds the collector of the execution
running in the current task, so concurrent calls (each in a task of its own, or in a thread
that copied the context) never mix their lines. ``print`` is replaced once in ``builtins`` by
a function that writes to that collector when there is one, and is the original ``print``
otherwise; the logging side is a handler on the app's package logger (which forwards what it
does not take to the root logger's handlers) and a filter on the root logger.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, Final

MAX_LINES: Final = 256
MAX_LINE_CHARS: Final = 32768
TRUNCATED: Final = " (truncated due to length)"
OVERFLOW: Final = f"[ERROR] Log overflow (maximum {MAX_LINES}). Remaining log lines omitted."


class FunctionLogs:
    """The log lines of one execution, each ``[LEVEL] message``."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._full = False

    def add(self, level: str, message: str) -> None:
        if self._full:
            return
        if len(self.lines) >= MAX_LINES - 1:
            self.lines.append(OVERFLOW)
            self._full = True
            return
        line = f"[{level}] {message}"
        if len(line) > MAX_LINE_CHARS:
            line = line[: MAX_LINE_CHARS - len(TRUNCATED)] + TRUNCATED
        self.lines.append(line)

    def extend(self, lines: list[str]) -> None:
        for line in lines:
            if self._full:
                return
            level, _, message = line[1:].partition("] ")
            self.add(level, message)

    def restart(self) -> None:
        """Forget the lines so far: the execution starts over (a mutation's next attempt)."""
        self.lines.clear()
        self._full = False


_current: ContextVar[FunctionLogs | None] = ContextVar("function_logs", default=None)


def current() -> FunctionLogs | None:
    """The collector of the execution running here, if any."""
    return _current.get()


def restart() -> None:
    """Forget the current execution's lines so far (its transaction starts over)."""
    logs = _current.get()
    if logs is not None:
        logs.restart()


@contextlib.contextmanager
def capture() -> Iterator[FunctionLogs]:
    """Collect the log lines written inside the block; on leaving it, hand them on to the
    collector the block ran in (an action's, when a query it runs logs), if any."""
    outer = _current.get()
    logs = FunctionLogs()
    token = _current.set(logs)
    try:
        yield logs
    finally:
        _current.reset(token)
        if outer is not None:
            outer.extend(logs.lines)


# ---- print ------------------------------------------------------------------------------------

_print: Final = builtins.print


def _captured_print(
    *values: object,
    sep: str | None = " ",
    end: str | None = "\n",
    file: Any = None,
    flush: bool = False,
) -> None:
    logs = _current.get()
    if logs is None or (file is not None and file is not sys.stdout and file is not sys.stderr):
        _print(*values, sep=sep, end=end, file=file, flush=flush)
        return
    text = (" " if sep is None else sep).join(str(v) for v in values)
    logs.add("ERROR" if file is not None and file is sys.stderr else "LOG", text)


# ---- logging ----------------------------------------------------------------------------------


def level_name(levelno: int) -> str:
    """Convex's level for a logging level."""
    if levelno >= logging.ERROR:
        return "ERROR"
    if levelno >= logging.WARNING:
        return "WARN"
    if levelno >= logging.INFO:
        return "INFO"
    return "DEBUG"


class CaptureRecords(logging.Filter):
    """At the root logger (records logged on it directly): during an execution, takes a
    record into its log lines and stops it there."""

    def filter(self, record: logging.LogRecord) -> bool:
        logs = _current.get()
        if logs is None:
            return True
        logs.add(level_name(record.levelno), _message(record))
        return False


class CaptureHandler(logging.Handler):
    """The app's package logger's only handler (it does not propagate): during an execution a
    record becomes a log line; otherwise it goes on to the root logger's handlers at the root
    logger's level, as it would have without us."""

    def emit(self, record: logging.LogRecord) -> None:
        logs = _current.get()
        if logs is not None:
            logs.add(level_name(record.levelno), _message(record))
            return
        root = logging.getLogger()
        if record.levelno < root.getEffectiveLevel():
            return
        for handler in root.handlers:
            if record.levelno >= handler.level:
                handler.handle(record)


def _message(record: logging.LogRecord) -> str:
    message = record.getMessage()
    if record.exc_info:
        message = f"{message}\n{logging.Formatter().formatException(record.exc_info)}"
    return message


_installed: set[str] = set()


def install(functions_package: str | None) -> None:
    """Capture ``print`` and the app's logging inside executions (once per package)."""
    builtins.print = _captured_print
    if not _installed:
        _installed.add("")
        logging.getLogger().addFilter(CaptureRecords())
    if functions_package is None or functions_package in _installed:
        return
    _installed.add(functions_package)
    logger = logging.getLogger(functions_package)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.DEBUG)  # every level inside a function; the handler gates
    logger.addHandler(CaptureHandler())
    logger.propagate = False


__all__ = [
    "MAX_LINES",
    "MAX_LINE_CHARS",
    "CaptureHandler",
    "CaptureRecords",
    "FunctionLogs",
    "capture",
    "current",
    "install",
    "level_name",
    "restart",
]
