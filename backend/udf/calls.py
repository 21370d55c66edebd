"""One structured server log line per function call.

Every call the engine runs for a caller (a client's query, mutation or action, a subscription's
run, a scheduled function, a cron's tick) is written, when it ends, as one JSON object on the
``backend.functions`` logger::

    {"ts": "2026-12-02T01:26:21.123Z", "path": "messages:send", "kind": "mutation",
     "durationMs": 3.2, "outcome": "success", "caller": "k17...", "logLines": ["[LOG] hi"]}

``outcome`` is ``success``, ``failure`` (a ``ConvexError``: ``error`` is its code, the app's
own or the engine's) or ``error`` (the function's bug, or an outage: ``error`` is what the caller
was told, "Server Error"; the detail is logged beside it by the engine). ``caller`` is the
identity's subject (a user id, or a provider's ``sub``), or null for nobody and for the
engine's own work. Arguments and return values are never written: they may be secrets. A call
made from inside another (a query an action runs) is part of its caller's line.

The server's log shows the line (``INFO backend.functions: {...}``); ``CallLogFile`` appends the
lines of every process of a deployment to one file, which ``python -m backend logs`` tails.

The same record (the dict the line is encoded from, cut to the same size) goes to the engine's
``RecentCalls`` (``recent_calls.py``), the ring of this process's last calls that the
dashboard's Logs page reads (``GET /_dashboard/api/function_logs``). The ring is fed even when
the logger's level is above INFO: silencing the server's log must not blank the dashboard.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import time
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Final

from backend.errors import ConvexError, InternalError
from backend.udf import logs
from backend.udf.context import Identity
from backend.udf.recent_calls import RecentCalls

log = logging.getLogger("backend.functions")
MAX_RECORD_BYTES: Final = 64 * 1024  # a longer line keeps its first log lines only

_in_call: ContextVar[bool] = ContextVar("in_function_call", default=False)


class CallRecord:
    """The call being run: its log lines, and how it ended (set by ``fail``)."""

    def __init__(self, logs: logs.FunctionLogs) -> None:
        self.logs = logs
        self.outcome = "success"
        self.error: str | None = None

    def fail(self, error: BaseException) -> None:
        if isinstance(error, ConvexError):
            self.outcome, self.error = "failure", error.code or "ConvexError"
        elif isinstance(error, InternalError):
            self.outcome, self.error = "error", error.public_message.split("\n", 1)[0][:200]
        else:
            self.outcome, self.error = "error", "Server Error"


@contextlib.contextmanager
def function_call(
    path: str | None, kind: str, identity: Identity | None, *, recent: RecentCalls | None = None
) -> Iterator[CallRecord]:
    """Run a call inside: capture its log lines, and log its line when it ends (and keep it in
    ``recent``, the engine's ring). A call inside a call is part of the outer one (its lines
    join the outer's, no line of its own)."""
    nested = _in_call.get()
    token = _in_call.set(True)
    started = time.perf_counter()  # a duration for operators, not the engine's clock
    try:
        with logs.capture() as captured:
            record = CallRecord(captured)
            try:
                yield record
            except BaseException as error:
                record.fail(error)
                raise
            finally:
                if not nested:
                    seconds = time.perf_counter() - started
                    _write(path, kind, identity, record, seconds, recent)
    finally:
        _in_call.reset(token)


def _write(
    path: str | None,
    kind: str,
    identity: Identity | None,
    record: CallRecord,
    seconds: float,
    recent: RecentCalls | None = None,
) -> None:
    logged = log.isEnabledFor(logging.INFO)
    if not logged and recent is None:
        return
    entry: dict[str, Any] = {
        "ts": _iso_now(),
        "path": path,
        "kind": kind,
        "durationMs": round(seconds * 1000, 3),
        "outcome": record.outcome,
        "caller": identity.subject if identity is not None else None,
    }
    if record.error is not None:
        entry["error"] = record.error
    lines = list(record.logs.lines)
    entry["logLines"] = lines
    if not logged and recent is not None:
        # only the ring wants it: a small record's size is estimated rather than encoded (the
        # ring's byte budget bounds memory, to which the exact text length is no closer)
        size = _ENTRY_OVERHEAD + len(path or "") + len(entry["caller"] or "")
        size += len(record.error or "") + sum(len(line) + 3 for line in lines)
        if size <= MAX_RECORD_BYTES // 4:
            recent.add(entry, size)
            return
    text = _ENCODER.encode(entry)
    while len(text) > MAX_RECORD_BYTES // 4 and len(text.encode()) > MAX_RECORD_BYTES and lines:
        lines.pop()
        entry["logLines"] = [*lines, "[WARN] (more lines were written than this record keeps)"]
        text = _ENCODER.encode(entry)
    if recent is not None:
        recent.add(entry, len(text))
    if logged:
        log.info("%s", text)


# the JSON around a record's strings: its keys, its time, duration, kind and outcome
_ENTRY_OVERHEAD: Final = 150
_ENCODER: Final = json.JSONEncoder(ensure_ascii=False)  # built once: ``dumps`` builds one a call


def _iso_now() -> str:
    now = time.time()  # the wall clock: when the line was written, for operators
    return _iso_second(int(now)) + f".{int(now * 1000) % 1000:03d}Z"


@functools.lru_cache(maxsize=4)
def _iso_second(second: int) -> str:
    """The ISO text of one second (every call within it shares it)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


class CallLogFile(logging.Handler):
    """Appends each call's line to ``path`` (created with mode 0600). Every process of a
    deployment may append to the same file: each line is one ``write`` to a file opened with
    ``O_APPEND``, so lines never interleave."""

    def __init__(self, path: Path) -> None:
        super().__init__(logging.INFO)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd: int | None = self._open()

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def emit(self, record: logging.LogRecord) -> None:
        line = (record.getMessage() + "\n").encode("utf-8", "replace")
        try:
            with self.lock or contextlib.nullcontext():
                if self._fd is None:
                    # closed under us (``logging.config`` closes every handler when a server
                    # configures its logging, and leaves this one on its logger): open the
                    # file again. Writing to the old descriptor would write into whatever file
                    # was opened under its number since, such as the database.
                    self._fd = self._open()
                os.write(self._fd, line)
        except OSError:
            self.handleError(record)

    def close(self) -> None:
        with self.lock or contextlib.nullcontext():
            fd, self._fd = self._fd, None
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        super().close()


_installed_files: dict[Path, CallLogFile] = {}


def write_calls_to(path: Path) -> None:
    """Append every call's line to ``path`` too (once per path in a process)."""
    resolved = path.resolve()
    if resolved not in _installed_files:
        handler = CallLogFile(resolved)
        _installed_files[resolved] = handler
        log.addHandler(handler)
        if log.level == logging.NOTSET or log.level > logging.INFO:
            log.setLevel(logging.INFO)


# ---- reading them back: ``python -m backend logs`` ----------------------------------------------

_KINDS: Final = {"query": "Q", "mutation": "M", "action": "A"}


def format_call(entry: dict[str, Any]) -> list[str]:
    """A call's line as ``python -m backend logs`` prints it: its log lines, each as the
    official client prints them (``[CONVEX Q(messages:list)] [LOG] hi``), then how it ended."""
    ts = str(entry.get("ts", ""))
    where = f"[CONVEX {_KINDS.get(str(entry.get('kind')), '?')}({entry.get('path')})]"
    lines = [f"{ts} {where} {line}" for line in entry.get("logLines") or []]
    outcome = str(entry.get("outcome"))
    summary = f"{ts} {where} {outcome} in {entry.get('durationMs')} ms"
    if entry.get("error"):
        summary += f": {entry['error']}"
    if entry.get("caller"):
        summary += f" (caller {entry['caller']})"
    return [*lines, summary]


def _entries(chunk: str) -> Iterator[dict[str, Any]]:
    for line in chunk.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash, or not ours
        if isinstance(entry, dict):
            yield entry


def tail(
    path: Path,
    *,
    history: int,
    follow: bool,
    say: Any,
    raw: bool = False,
    poll: float = 0.25,
    stop: Any = None,
) -> None:
    """Print the newest ``history`` calls of the file at ``path``, then (``follow``) every call
    appended after, until ``stop()`` is true or the process is interrupted. A file that is
    rotated or truncated is read again from its start."""

    def show(entry: dict[str, Any]) -> None:
        for line in [json.dumps(entry, ensure_ascii=False)] if raw else format_call(entry):
            say(line)

    position = 0
    if path.exists():
        with path.open("rb") as handle:
            data = handle.read()
        position = len(data)
        text = data.decode("utf-8", "replace")
        if not text.endswith("\n"):  # a line still being written: read it with the next ones
            cut = text.rfind("\n") + 1
            position = len(text[:cut].encode("utf-8", "replace"))
            text = text[:cut]
        for entry in list(_entries(text))[-history:] if history > 0 else []:
            show(entry)
    while follow and not (stop is not None and stop()):
        time.sleep(poll)
        if not path.exists():
            continue
        size = path.stat().st_size
        if size < position:
            position = 0  # rotated or truncated
        if size == position:
            continue
        with path.open("rb") as handle:
            handle.seek(position)
            data = handle.read()
        cut = data.rfind(b"\n") + 1
        position += cut
        for entry in _entries(data[:cut].decode("utf-8", "replace")):
            show(entry)


__all__ = [
    "MAX_RECORD_BYTES",
    "CallLogFile",
    "CallRecord",
    "format_call",
    "function_call",
    "tail",
    "write_calls_to",
]
