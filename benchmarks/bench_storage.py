"""File storage: a 200 MB upload and download through the engine, against raw Starlette.

    .venv/bin/python -m benchmarks.bench_storage [--mb 200] [--rounds 2]

Two servers, each in its own process on 127.0.0.1, writing to the same disk (one temporary
directory under /var/tmp):

- **engine**: the real app (``create_app``, the file-storage demo app, SQLite), the file
  POSTed to an upload URL from ``messages:generateUploadUrl`` and read back from the URL
  ``ctx.storage.get_url`` gives (a query over the HTTP function API);
- **raw**: a Starlette endpoint that streams a request body to a file, and one that streams
  the file back (1 MiB chunks through anyio's file API, as the engine's blob store does).

The client streams the file from a generator (never whole in memory either) and reads the
answer in chunks. While each transfer runs, the server's resident memory (``VmRSS``) is
sampled every 20 ms; the figure is the peak above the server's idle RSS (measured after a
warm-up upload). Throughput is MB/s of file bytes, the best of ``--rounds``.

Goals: the engine's RSS stays under 100 MB above idle for the upload and for the download;
its throughput is at least half the raw endpoint's each way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

HOST = "127.0.0.1"
MB = 1024 * 1024
CHUNK = 256 * 1024
RSS_GOAL_MB = 100.0
THROUGHPUT_GOAL = 0.5


# ---- the servers ------------------------------------------------------------------------------


def serve_engine(port: int, directory: Path) -> None:
    import uvicorn

    from backend.assembly import assemble
    from backend.config import Settings
    from backend.http.app import create_app
    from backend.http.serve import server_options, tune_gc
    from backend.storage.deploy import deploy
    from backend.storage.migrate import upgrade

    sys.path.insert(0, str(Path.cwd()))
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{directory / 'bench.sqlite3'}",
        host=HOST,
        port=port,
        dev_mode=True,
        secret_key="bench-storage-secret",  # noqa: S106 - a benchmark's fixed secret
        app_schema="tests.apps.file_storage.schema",
        app_functions="tests.apps.file_storage.functions",
        web_dir=str(directory / "no-web"),
        site_port=0,
        storage_dir=str(directory / "engine-files"),
    )
    parts = assemble(settings, serving=True)
    engine = parts.engine

    async def prepare() -> None:
        await upgrade(engine.store.engine)
        report = await deploy(engine.store, engine.code_schema)
        assert report.ok, report.format()

    asyncio.run(prepare())
    app = create_app(settings, parts=parts)
    tune_gc()
    uvicorn.run(app, host=HOST, port=port, log_level="warning", **server_options(settings))


def serve_raw(port: int, directory: Path) -> None:
    import anyio
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    target = directory / "raw-file"

    async def upload(request: Request) -> Response:
        size = 0
        async with await anyio.open_file(target, "wb") as out:
            pending: list[bytes] = []
            pending_bytes = 0
            async for chunk in request.stream():
                size += len(chunk)
                pending.append(chunk)
                pending_bytes += len(chunk)
                if pending_bytes >= MB:
                    await out.write(b"".join(pending))
                    pending, pending_bytes = [], 0
            if pending:
                await out.write(b"".join(pending))
        return JSONResponse({"size": size})

    async def download(_request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            async with await anyio.open_file(target, "rb") as handle:
                while chunk := await handle.read(MB):
                    yield chunk

        return StreamingResponse(
            chunks(),
            headers={"content-length": str(target.stat().st_size)},
            media_type="application/octet-stream",
        )

    app = Starlette(routes=[Route("/upload", upload, methods=["POST"]), Route("/file", download)])
    uvicorn.run(app, host=HOST, port=port, log_level="warning")


# ---- the client -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class Sampler:
    """The peak RSS of a process while a transfer runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, rss_mb(self.pid))
            await asyncio.sleep(0.02)

    async def __aenter__(self) -> Sampler:
        self.peak = rss_mb(self.pid)
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        self.peak = max(self.peak, rss_mb(self.pid))


async def body(total: int) -> AsyncIterator[bytes]:
    block = os.urandom(CHUNK)
    sent = 0
    while sent < total:
        piece = block[: min(CHUNK, total - sent)]
        sent += len(piece)
        yield piece


async def read_all(http: httpx.AsyncClient, url: str) -> int:
    size = 0
    async with http.stream("GET", url) as answer:
        assert answer.status_code == 200, answer.status_code
        async for chunk in answer.aiter_raw(MB):
            size += len(chunk)
    return size


async def call(http: httpx.AsyncClient, base: str, kind: str, path: str, args: Any) -> Any:
    answer = await http.post(f"{base}/api/{kind}", json={"path": path, "args": args})
    payload = answer.json()
    assert payload["status"] == "success", payload
    return payload["value"]


async def wait_up(http: httpx.AsyncClient, url: str, process: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        if process.poll() is not None:
            raise RuntimeError(f"the server exited ({process.returncode})")
        try:
            await http.get(url)
            return
        except httpx.TransportError:
            await asyncio.sleep(0.1)
    raise RuntimeError("the server did not come up")


def start_server(kind: str, port: int, directory: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "benchmarks.bench_storage", f"serve-{kind}"]
    return subprocess.Popen([*command, str(port), str(directory)])  # noqa: S603 - our own


async def measure(kind: str, total: int, rounds: int, directory: Path) -> dict[str, float]:
    port = free_port()
    process = start_server(kind, port, directory)
    base = f"http://{HOST}:{port}"
    results = {"up_mbs": 0.0, "down_mbs": 0.0, "up_rss": 0.0, "down_rss": 0.0, "idle": 0.0}
    try:
        async with httpx.AsyncClient(timeout=600) as http:
            await wait_up(http, f"{base}/api/health" if kind == "engine" else f"{base}/", process)

            async def upload(size: int) -> str:
                if kind == "raw":
                    answer = await http.post(f"{base}/upload", content=body(size))
                    assert answer.status_code == 200, answer.text
                    return f"{base}/file"
                url = await call(http, base, "mutation", "messages:generateUploadUrl", {})
                answer = await http.post(
                    url, content=body(size), headers={"content-type": "application/octet-stream"}
                )
                assert answer.status_code == 200, answer.text
                storage_id = answer.json()["storageId"]
                await call(
                    http,
                    base,
                    "mutation",
                    "messages:sendImage",
                    {"storageId": storage_id, "author": "bench"},
                )
                messages = await call(http, base, "query", "messages:list", {})
                return str(next(m["url"] for m in messages if m["body"] == storage_id))

            warm = await upload(4 * MB)  # warm-up: imports, first writes, pools
            await read_all(http, warm)
            await asyncio.sleep(0.5)
            idle = rss_mb(process.pid)
            results["idle"] = idle
            for _ in range(rounds):
                async with Sampler(process.pid) as sampled:
                    started = time.perf_counter()
                    url = await upload(total)
                    elapsed = time.perf_counter() - started
                results["up_mbs"] = max(results["up_mbs"], total / MB / elapsed)
                results["up_rss"] = max(results["up_rss"], sampled.peak - idle)
                async with Sampler(process.pid) as sampled:
                    started = time.perf_counter()
                    size = await read_all(http, url)
                    elapsed = time.perf_counter() - started
                assert size == total, size
                results["down_mbs"] = max(results["down_mbs"], total / MB / elapsed)
                results["down_rss"] = max(results["down_rss"], sampled.peak - idle)
    finally:
        process.terminate()
        process.wait(timeout=20)
    return results


async def run(total_mb: int, rounds: int) -> None:
    directory = Path(tempfile.mkdtemp(prefix="bench-storage-", dir="/var/tmp"))
    try:
        total = total_mb * MB
        raw = await measure("raw", total, rounds, directory)
        engine = await measure("engine", total, rounds, directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(f"file storage, {total_mb} MB file, best of {rounds} (server RSS: peak above idle)")
    print(f"{'':18}{'engine':>12}{'raw Starlette':>16}{'ratio':>8}")
    for key, label in (("up_mbs", "upload MB/s"), ("down_mbs", "download MB/s")):
        ratio = engine[key] / raw[key]
        verdict = "met" if ratio >= THROUGHPUT_GOAL else "missed"
        print(
            f"{label:18}{engine[key]:12.0f}{raw[key]:16.0f}{ratio:7.2f}x"
            f"   goal >= {THROUGHPUT_GOAL}x of raw: {verdict}"
        )
    print(f"{'idle RSS MB':18}{engine['idle']:12.0f}{raw['idle']:16.0f}")
    for key, label in (("up_rss", "upload +RSS MB"), ("down_rss", "download +RSS MB")):
        verdict = "met" if engine[key] < RSS_GOAL_MB else "missed"
        print(
            f"{label:18}{engine[key]:12.1f}{raw[key]:16.1f}"
            f"{'':8}   goal < {RSS_GOAL_MB:.0f} MB: {verdict}"
        )
    print(json.dumps({"engine": engine, "raw": raw}))


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] in ("serve-engine", "serve-raw"):
        serve = serve_engine if sys.argv[1] == "serve-engine" else serve_raw
        serve(int(sys.argv[2]), Path(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(run(args.mb, args.rounds))


if __name__ == "__main__":
    main()
