"""``python -m backend dev``: serve, and on every save deploy the app and serve the new code.

The supervisor holds the listening socket and has the engine and the web stack imported
(never the app). On a save it first compiles the app's files: a syntax error is reported at
once (file, line, the offending line) and nothing else happens. Otherwise it forks: the child
imports the app, deploys the schema and starts serving on the same socket; once it answers,
the old one is stopped. An app that does not import, or a deploy that is refused, is reported
the same short way, and the server that was serving keeps serving the last good app; the next
save tries again. With no good app yet, the port answers ``503`` with the reason instead of
leaving requests hanging. A change to the engine's own files (``backend/``) re-executes the
supervisor on the same socket, since what it forks from is the old engine.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from backend.config import Settings

POLL_SECONDS = 0.1
START_PATIENCE = 120.0  # seconds a server may take to load and deploy on a loaded machine
ENGINE = Path(__file__).resolve().parent.parent


def watched_paths(settings: Settings) -> list[Path]:
    """The engine's package and the app's schema and functions, as files or folders."""
    from backend.http.dev_server import app_roots

    return [ENGINE, *app_roots(settings)]


def _sources(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_file():
            yield path
        elif path.is_dir():
            yield from path.rglob("*.py")


def snapshot(paths: list[Path]) -> dict[Path, int]:
    """Every source file's modification time (a deleted file disappears from it)."""
    out = {}
    for source in _sources(paths):
        try:
            out[source] = source.stat().st_mtime_ns
        except FileNotFoundError:
            continue
    return out


def syntax_problem(paths: list[Path]) -> str | None:
    """The first syntax error in the app's files, as one short message, or None."""
    from backend.http.dev_server import describe_failure

    for source in _sources(paths):
        try:
            text = source.read_bytes()
        except FileNotFoundError:
            continue
        try:
            compile(text, str(source), "exec", dont_inherit=True)
        except SyntaxError as exc:
            return describe_failure(exc, paths)
        except ValueError as exc:  # null bytes
            return f"dev: {source}: {exc}"
    return None


def _say(line: str) -> None:
    print(line, flush=True)


class _Process:
    """A server forked from this process, from loading the app to stopped."""

    def __init__(self, listener: socket.socket, *, explain: bool, upgrade_first: bool) -> None:
        from backend.http import dev_server

        read, write = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: serve, then leave without unwinding the supervisor's stack
            code = 1
            try:
                os.close(read)
                code = dev_server.run(
                    listener.fileno(), write, explain=explain, upgrade_first=upgrade_first
                )
            except KeyboardInterrupt:
                pass
            except BaseException:  # a bug of the engine's: show it, the supervisor goes on
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        os.close(write)
        self.pid = pid
        self.returncode: int | None = None
        self._events = os.fdopen(read, "r")
        self.stopping_since: float | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def next_event(self, timeout: float) -> dict[str, Any]:
        """The next event it reports (``{"event": "died"}`` if it exits first)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return {"event": "timeout"}
            ready, _, _ = select.select([self._events], [], [], left)
            if ready:
                line = self._events.readline()
                if not line:
                    return {"event": "died"}
                event: dict[str, Any] = json.loads(line)
                return event

    def _signal(self, signum: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def stop(self) -> None:
        """Ask it to stop (uvicorn's clean shutdown); ``reap`` finishes the job."""
        if self.stopping_since is None:
            self._signal(signal.SIGINT)
            self.stopping_since = time.monotonic()

    def reap(self, patience: float = 10.0) -> bool:
        """True once it has exited (killed if it took longer than ``patience``)."""
        if self.poll() is not None:
            self._close()
            return True
        if self.stopping_since is not None and time.monotonic() - self.stopping_since > patience:
            self._signal(signal.SIGKILL)
        return False

    def kill(self) -> None:
        self._signal(signal.SIGKILL)
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        self._close()

    def _close(self) -> None:
        with contextlib.suppress(OSError):
            self._events.close()


def _regenerate(previous: subprocess.Popen[bytes] | None) -> subprocess.Popen[bytes]:
    """Rewrite the typed client API (``convex/_generated``) beside the new server, in a
    process of its own, so a save is never slower for it."""
    if previous is not None and previous.poll() is None:
        previous.wait()
    return subprocess.Popen([sys.executable, "-m", "backend", "codegen"])


class Supervisor:
    def __init__(self, settings: Settings, listener: socket.socket) -> None:
        from backend.http.dev_server import app_roots

        self.listener = listener
        self.app_paths = app_roots(settings)
        self.serving: _Process | None = None
        self.retiring: list[_Process] = []
        self.upgraded = False  # the system migrations ran for this engine's code
        self._codegen: subprocess.Popen[bytes] | None = None

    def reload(self, *, first: bool = False) -> bool:
        """Serve the code on disk in a new process; True once it serves it."""
        started = time.monotonic()
        explain = self.serving is None
        process = _Process(self.listener, explain=explain, upgrade_first=not self.upgraded)
        event = process.next_event(START_PATIENCE)
        kind = event.get("event")
        if kind == "ready":
            self.upgraded = True
            self._replace(process)
            self._codegen = _regenerate(self._codegen)
            what = "serving" if first else "deployed; serving the new code"
            _say(f"dev: {what} ({time.monotonic() - started:.2f} s)")
        elif kind in ("broken", "refused") and explain:
            # nothing good to keep: this process answers 503 with the reason meanwhile
            if kind == "broken":
                _say(str(event.get("message")))
            ready = process.next_event(START_PATIENCE)
            if ready.get("event") == "ready":
                self._replace(process)
            else:
                process.kill()
            _say("dev: fix the app and save to try again")
        else:
            if kind == "broken":
                _say(str(event.get("message")))
                _say("dev: the last good app keeps serving")
            elif kind == "refused":
                _say("dev: deploy refused; the last good app keeps serving")
            else:
                _say(f"dev: the new server did not start ({kind}); the last good app keeps serving")
            process.kill()
        return kind == "ready"

    def _replace(self, process: _Process) -> None:
        if self.serving is not None:
            self.serving.stop()
            self.retiring.append(self.serving)
        self.serving = process

    def tidy(self) -> None:
        self.retiring = [p for p in self.retiring if not p.reap()]

    def close(self) -> None:
        every = [p for p in (self.serving, *self.retiring) if p is not None]
        for process in every:
            process.stop()
        deadline = time.monotonic() + 15
        for process in every:
            while not process.reap(patience=10) and time.monotonic() < deadline:
                time.sleep(0.05)
        self.serving, self.retiring = None, []


_INHERITED = "BACKEND_DEV_LISTENER_FD"


def _listen(host: str, port: int) -> socket.socket:
    inherited = os.environ.pop(_INHERITED, None)
    if inherited is not None:  # this supervisor was re-executed for a change to the engine
        listener = socket.socket(fileno=int(inherited))
        listener.set_inheritable(True)
        return listener
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(2048)
    listener.set_inheritable(True)
    return listener


def develop(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Run until interrupted (Ctrl-C or SIGTERM stops the servers too)."""
    # Ctrl-C stops dev even when it was started with SIGINT ignored (``make dev &`` from a
    # shell without job control), and so does SIGTERM
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    host, port = host or settings.host, port or settings.port
    try:
        listener = _listen(host, port)
    except OSError as exc:
        print(f"error: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        return 2
    paths = watched_paths(settings)
    import backend.http.dev_server  # noqa: F401 - what every server forked from here needs

    supervisor = Supervisor(settings, listener)
    seen = snapshot(paths)
    try:
        supervisor.reload(first=True)
        if supervisor.serving is not None:
            from backend.http.serve import announce

            announce(settings, host, port)
        while True:
            sleep(POLL_SECONDS)
            supervisor.tidy()
            current = snapshot(paths)
            if current == seen:
                continue
            changed = {p for p in current.keys() | seen.keys() if current.get(p) != seen.get(p)}
            seen = current
            problem = syntax_problem(supervisor.app_paths)
            if problem is not None:
                _say(problem)
                _say(
                    "dev: the last good app keeps serving"
                    if supervisor.serving is not None
                    else "dev: fix the app and save to try again"
                )
                continue
            if any(path.is_relative_to(ENGINE) for path in changed):
                # the engine this process forks from is the old one: start afresh, on the
                # same socket (requests wait in its queue meanwhile)
                _say("dev: the engine changed; restarting")
                supervisor.close()
                os.environ[_INHERITED] = str(listener.fileno())
                command = [sys.executable, "-m", "backend", "dev", "--host", host]
                os.execv(sys.executable, [*command, "--port", str(port)])  # noqa: S606
            supervisor.reload()
    except KeyboardInterrupt:
        return 0
    finally:
        supervisor.close()
        listener.close()
