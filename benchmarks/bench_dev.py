"""From saving a function to calling it, under ``python -m backend dev``.

A real dev server on a small app in a temporary folder: each round saves a new version of a
function's file and calls the function over HTTP until it answers with the new version; the
time from the save to that answer is the figure. The baseline is what a reload cost when dev
restarted the server: a ``migrate`` process, then a ``serve`` process, to the first answer.

    .venv/bin/python -m benchmarks.bench_dev [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
GOAL_SECONDS = 1.0
SCHEMA = """
from pydantic import BaseModel
from backend import define_schema, table

class Item(BaseModel):
    name: str

schema = define_schema(items=table(Item))
"""
FUNCTIONS = """
from backend import QueryCtx, query

@query
async def version(ctx: QueryCtx) -> int:
    return {version}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _project(root: Path) -> dict[str, str]:
    app = root / "benchapp"
    (app / "functions").mkdir(parents=True)
    (app / "__init__.py").write_text("")
    (app / "functions" / "__init__.py").write_text("")
    (app / "schema.py").write_text(SCHEMA)
    (app / "functions" / "items.py").write_text(FUNCTIONS.format(version=0))
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": f"sqlite+aiosqlite:///{root / 'bench.sqlite3'}",
        "APP_SCHEMA": "benchapp.schema",
        "APP_FUNCTIONS": "benchapp.functions",
        "SECRET_KEY": "bench-dev-secret",
        "DEV_MODE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def _answers(http: httpx.Client, url: str, version: int, patience: float = 120.0) -> float:
    """Poll until ``items:version`` answers ``version``; the moment it did."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        try:
            body = http.post(f"{url}/api/query", json={"path": "items:version", "args": {}}).json()
            if body.get("status") == "success" and body.get("value") == version:
                return time.monotonic()
        except (httpx.TransportError, ValueError):
            pass
        time.sleep(0.01)
    raise RuntimeError(f"items:version never answered {version}")


def measure_dev(rounds: int, pause: float) -> list[float]:
    """Each save's time to an answer."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        env = _project(root)
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        dev = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "backend", "dev", "--port", str(port)],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        figures = []
        try:
            with httpx.Client(timeout=10) as http:
                _answers(http, url, 0)
                source = root / "benchapp" / "functions" / "items.py"
                for version in range(1, rounds + 1):
                    time.sleep(pause)  # as between two saves
                    saved = time.monotonic()
                    source.write_text(FUNCTIONS.format(version=version))
                    figures.append(_answers(http, url, version) - saved)
        finally:
            dev.send_signal(signal.SIGINT)
            dev.wait(30)
    return figures


def measure_restart() -> float:
    """The old reload: deploy in a process of its own, then start a server, to an answer."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        env = _project(root)
        port = _free_port()
        subprocess.run(
            [sys.executable, "-m", "backend", "migrate"],
            cwd=root,
            env=env,
            check=True,
            capture_output=True,
        )
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "backend", "migrate"],
            cwd=root,
            env=env,
            check=True,
            capture_output=True,
        )
        server = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "backend", "serve", "--port", str(port)],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            with httpx.Client(timeout=10) as http:
                return _answers(http, f"http://127.0.0.1:{port}", 0) - started
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between two saves")
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.1f} at the start")
    baseline = measure_restart()
    figures = measure_dev(args.rounds, args.pause)
    median, worst = statistics.median(figures), max(figures)
    print(
        f"save to callable in dev, {len(figures)} saves: " + ", ".join(f"{f:.3f}" for f in figures)
    )
    print(f"  median {median:.3f} s, worst {worst:.3f} s")
    print(f"  baseline (migrate + serve restart): {baseline:.3f} s; ratio {baseline / median:.1f}x")
    verdict = "met" if median < GOAL_SECONDS else "missed"
    print(f"  goal: median under {GOAL_SECONDS:.0f} s: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
