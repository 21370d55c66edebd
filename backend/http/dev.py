"""``python -m backend dev``: serve, and on every saved change deploy the app, then restart.

A supervisor process watches the engine's and the app's source files. On a change it deploys
the app's schema in a fresh process (``python -m backend migrate``, which imports the new code);
if the deploy succeeds it restarts the server (``python -m backend serve``) on the new code,
and if the deploy is refused the report is printed and the server that is running keeps
serving the last good app (the refused deploy changed nothing). A server that cannot start is
reported the same way, and the next save tries again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from backend.config import Settings

POLL_SECONDS = 0.5


def watched_paths(settings: Settings) -> list[Path]:
    """The engine's package and the app's schema and functions, as files or folders."""
    out = [Path(__file__).resolve().parent.parent]
    for module in (settings.app_schema, settings.app_functions):
        base = Path.cwd().joinpath(*module.split("."))
        out.extend(p for p in (base, base.with_suffix(".py")) if p.exists())
    return out


def _sources(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_file():
            yield path
        elif path.is_dir():
            yield from path.rglob("*.py")


def snapshot(paths: list[Path]) -> dict[Path, float]:
    """Every source file's modification time (a deleted file disappears from it)."""
    out = {}
    for source in _sources(paths):
        try:
            out[source] = source.stat().st_mtime
        except FileNotFoundError:
            continue
    return out


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "backend", *args]


def _deploy() -> bool:
    """Deploy the code as it is on disk now, in a process of its own; True on success."""
    print("dev: deploying the app's schema", flush=True)
    return subprocess.run(_command("migrate"), check=False).returncode == 0  # noqa: S603


def _regenerate(previous: subprocess.Popen[bytes] | None) -> subprocess.Popen[bytes]:
    """Rewrite the typed client API (``convex/_generated``) beside the restart, not before it."""
    if previous is not None and previous.poll() is None:
        previous.wait()
    return subprocess.Popen(_command("codegen"))  # noqa: S603


class _Server:
    def __init__(self, host: str | None, port: int | None) -> None:
        self.args = ["serve"]
        if host:
            self.args += ["--host", host]
        if port:
            self.args += ["--port", str(port)]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(_command(*self.args))  # noqa: S603

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)  # uvicorn's clean shutdown
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


def develop(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Run until interrupted (Ctrl-C stops the server too)."""
    os.environ.setdefault("DEV_MODE", "1")
    paths = watched_paths(settings)
    server = _Server(host, port)
    seen = snapshot(paths)
    deployed = _deploy()
    codegen = None
    if deployed:
        server.start()
        codegen = _regenerate(codegen)
    else:
        print("dev: the deploy was refused; fix the app and save to try again", flush=True)
    try:
        while True:
            sleep(POLL_SECONDS)
            current = snapshot(paths)
            if current == seen:
                continue
            seen = current
            if _deploy():
                print("dev: deployed; restarting the server", flush=True)
                server.restart()
                codegen = _regenerate(codegen)
            elif server.process is not None and server.process.poll() is None:
                print("dev: deploy refused; the last good app keeps serving", flush=True)
            else:
                print("dev: deploy refused; fix the app and save to try again", flush=True)
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()
