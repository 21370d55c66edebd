"""A new author's first function: the README's "Your first function", followed from nothing.

Every step the section asks for, run as a newcomer would run it, in an empty folder, each timed:
a fresh virtual environment with this project installed into it (``pip install -e``), the
section's files written out (the README's own code blocks), the official client installed
(``npm install convex``), the test run with ``pytest``, ``python -m backend dev`` started until
it answers, the node client signing up and calling the app, and ``python -m backend run``
reading what it wrote. The goal is the whole under two minutes.

A person also reads the section and types (or pastes) its files. That time cannot be measured
by a script: the goal is judged on the steps' time, and the reading is estimated from the
section's length at 200 words a minute and printed beside it, for what it adds.

    .venv/bin/python -m benchmarks.bench_first_function [--venv PATH]

``--venv PATH`` reuses an environment made by an earlier run, to time the rest alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.support.readme import files_of_the_section, section

ROOT = Path(__file__).resolve().parents[1]
GOAL_SECONDS = 120.0
WORDS_PER_MINUTE = 200
CLIENT_VERSION = json.loads((ROOT / "client_js" / "package.json").read_text())["devDependencies"][
    "convex"
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(  # noqa: S603 - our own commands
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _answering(url: str, patience: float = 120.0) -> None:
    deadline = time.monotonic() + patience
    with httpx.Client(timeout=5) as http:
        while time.monotonic() < deadline:
            try:
                if http.get(f"{url}/api/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    raise RuntimeError("the dev server never answered")


def follow(venv: Path | None) -> list[tuple[str, float]]:
    """The section's steps, each with its seconds."""
    steps: list[tuple[str, float]] = []

    def timed(name: str, work: Callable[[], object]) -> None:
        started = time.monotonic()
        work()
        steps.append((name, time.monotonic() - started))
        print(f"  {name}: {steps[-1][1]:.1f} s", flush=True)

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        project = root / "notes-app"
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("DEV_MODE", "SECRET_KEY", "APP_SCHEMA", "APP_FUNCTIONS", "PYTHONPATH")
            and not key.startswith("DATABASE_")
        }
        if venv is None:
            venv = root / "venv"

            def install() -> None:
                _run([sys.executable, "-m", "venv", str(venv)], root, env)
                pip = str(venv / "bin" / "pip")
                _run([pip, "install", "-q", "-e", str(ROOT), "pytest", "pytest-asyncio"], root, env)

            timed("python -m venv; pip install -e (this project), pytest, pytest-asyncio", install)
        python = str(venv / "bin" / "python")

        def write() -> None:
            for name, text in files_of_the_section().items():
                path = project / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
            (project / "functions" / "__init__.py").write_text("")
            (project / "pytest.ini").write_text("[pytest]\nasyncio_mode = auto\n")

        timed("the section's files written", write)
        timed(
            f"npm install convex@{CLIENT_VERSION}",
            lambda: _run(
                ["npm", "install", "--no-audit", "--no-fund", f"convex@{CLIENT_VERSION}"],
                project,
                env,
            ),
        )
        timed(
            "pytest (the section's test)",
            lambda: _run([python, "-m", "pytest", "-q"], project, env),
        )
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        dev = subprocess.Popen(  # noqa: S603
            [python, "-m", "backend", "dev", "--port", str(port)],
            cwd=project,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            timed("python -m backend dev, to its first answer", lambda: _answering(url))
            out: list[str] = []
            timed(
                "node client.mjs (sign up, a token, a mutation, a query)",
                lambda: out.append(
                    _run(["node", "client.mjs"], project, {**env, "BACKEND_URL": url})
                ),
            )
            if "from node" not in out[0]:
                raise RuntimeError(f"the client did not see its note: {out[0]}")
            ran: list[str] = []
            timed(
                "python -m backend run notes:mine --as ada@example.com",
                lambda: ran.append(
                    _run(
                        [python, "-m", "backend", "run", "notes:mine", "--as", "ada@example.com"],
                        project,
                        {**env, "DEV_MODE": "1"},
                    )
                ),
            )
            if "from node" not in ran[0]:
                raise RuntimeError(f"run did not read the note: {ran[0]}")
        finally:
            dev.send_signal(signal.SIGINT)
            dev.wait(30)
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, help="an environment with this project installed")
    args = parser.parse_args()
    print(
        "command: python -m benchmarks.bench_first_function" + (" --venv ..." if args.venv else "")
    )
    print(f"python: {platform.python_implementation()} {platform.python_version()}")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores,"
        f" load average {os.getloadavg()[0]:.1f}"
    )
    steps = follow(args.venv)
    machine = sum(seconds for _name, seconds in steps)
    words = len(re.findall(r"\S+", section()))
    reading = words / WORDS_PER_MINUTE * 60
    print(f"machine time, every step: {machine:.1f} s")
    print(
        f"reading the section: {words} words,"
        f" about {reading:.0f} s at {WORDS_PER_MINUTE} words/min (an estimate, not measured)"
    )
    verdict = "met" if machine < GOAL_SECONDS else "missed"
    print(f"goal: the steps under {GOAL_SECONDS:.0f} s: {machine:.0f} s: {verdict}")
    print(f"with the reading estimate: {machine + reading:.0f} s")


if __name__ == "__main__":
    main()
