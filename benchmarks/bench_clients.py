"""The official clients against one server process: round trips, and the time to another
client's update, each beside a baseline that speaks Convex's protocol with no client library.

Run as ``python -m benchmarks.bench_clients`` (``--n 200`` per figure by default). One server
process (``tests/clients/serve.py``: the app built as ``python -m backend serve`` builds it,
SQLite in a temp dir, the system clock) serves every client in the run:

1. **Round trips** of a trivial query (``messages:ping``) and of a mutation (``messages:send``)
   through the official Python client (this process), the official JS client (a node process,
   ``client_js/scripts/bench-clients.mjs``) and the baseline: one ``websockets`` socket here
   sending the same messages a client sends (a one-shot query is ``ModifyQuerySet`` Add, its
   Transition, Remove, its Transition; a mutation is ``Mutation``, its ``MutationResponse``
   and the Transition that settles it), timed from send to the last message read.
2. **Mutation return to another client's update**: the writer's mutation call returns at T0,
   the watcher (subscribed to ``messages:count`` of the channel) sees the new count at T1;
   the figure is T1 - T0 on the wall clock both processes read. Python writes while JS
   watches, JS writes while Python watches, and the baseline: two raw sockets in this process.

Figures are p50 and p99 in milliseconds; each ratio is to the baseline of the same row.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from importlib.metadata import version
from typing import IO, Any

from convex import ConvexClient
from websockets.asyncio.client import ClientConnection, connect

from tests.clients.server import REPO, ServerProcess

DRIVER = REPO / "client_js" / "scripts" / "bench-clients.mjs"
NODE = shutil.which("node") or "node"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Figure:
    name: str
    samples: list[float]

    @property
    def p50(self) -> float:
        return statistics.median(self.samples)

    @property
    def p99(self) -> float:
        return percentile(self.samples, 0.99)


def line(figure: Figure, baseline: Figure, *, difference: bool = False) -> str:
    """The figure, and beside it its ratio to the baseline (or, for figures whose baseline is
    about zero, where a ratio means nothing, the difference in ms)."""
    text = f"   {figure.name:<36} p50 {figure.p50:7.2f} ms   p99 {figure.p99:7.2f} ms"
    if figure is baseline:
        return text + "   (baseline)"
    if difference:
        return (
            text + f"   vs baseline: p50 {figure.p50 - baseline.p50:+7.2f} ms, "
            f"p99 {figure.p99 - baseline.p99:+7.2f} ms"
        )
    p50, p99 = figure.p50 / baseline.p50, figure.p99 / baseline.p99
    return text + f"   ratio p50 {p50:5.2f}, p99 {p99:5.2f}"


# ---- the baseline: Convex's protocol over a bare socket -------------------------------------


class RawClient:
    """Just enough of the protocol to time the server: no client library in between."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.query_set = 0
        self.request = 0
        self.query_id = 0

    @classmethod
    async def open(cls, url: str) -> RawClient:
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
        return cls(socket)

    async def next(self, kind: str) -> dict[str, Any]:
        while True:
            message: dict[str, Any] = json.loads(await self.socket.recv())
            if message["type"] == kind:
                return message

    async def modify(self, change: dict[str, Any], *, wait: bool = True) -> dict[str, Any]:
        self.query_set += 1
        await self.socket.send(
            json.dumps(
                {
                    "type": "ModifyQuerySet",
                    "baseVersion": self.query_set - 1,
                    "newVersion": self.query_set,
                    "modifications": [change],
                }
            )
        )
        while wait:  # skip the Transitions of earlier changes not waited for
            transition = await self.next("Transition")
            if transition["endVersion"]["querySet"] >= self.query_set:
                return transition
        return {}

    async def query(self, path: str, args: dict[str, Any]) -> Any:
        # As the clients' one-shot query does: Add, its result, then Remove without waiting.
        self.query_id += 1
        query_id = self.query_id
        add = {"type": "Add", "queryId": query_id, "udfPath": path, "args": [args]}
        added = await self.modify(add)
        await self.modify({"type": "Remove", "queryId": query_id}, wait=False)
        # One Transition may carry the previous query's removal too.
        return next(m["value"] for m in added["modifications"] if m.get("queryId") == query_id)

    async def mutation(self, path: str, args: dict[str, Any]) -> Any:
        self.request += 1
        message = {"type": "Mutation", "requestId": self.request, "udfPath": path, "args": [args]}
        await self.socket.send(json.dumps(message))
        response = await self.next("MutationResponse")
        await self.next("Transition")  # the one that settles it, as the clients wait for
        return response["result"]


async def raw_round_trips(url: str, n: int) -> tuple[Figure, Figure]:
    client = await RawClient.open(url)
    for _ in range(20):
        await client.query("messages:ping", {})
    queries, mutations = [], []
    for i in range(n):
        start = time.perf_counter()
        await client.query("messages:ping", {})
        queries.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        await client.mutation("messages:send", {"channel": "bench-raw", "body": str(i)})
        mutations.append((time.perf_counter() - start) * 1000)
    await client.socket.close()
    return Figure("baseline (raw protocol) query", queries), Figure(
        "baseline (raw protocol) mutation", mutations
    )


async def raw_propagation(url: str, n: int) -> Figure:
    channel = f"raw-{uuid.uuid4().hex[:8]}"
    watcher, writer = await RawClient.open(url), await RawClient.open(url)
    await watcher.modify(
        {"type": "Add", "queryId": 1, "udfPath": "messages:count", "args": [{"channel": channel}]}
    )

    async def arrival() -> tuple[dict[str, Any], float]:
        message = await watcher.next("Transition")
        return message, time.time()

    delays = []
    for i in range(n):
        seen = asyncio.ensure_future(arrival())
        await writer.mutation("messages:send", {"channel": channel, "body": str(i)})
        returned = time.time()
        update, arrived = await seen
        assert update["modifications"][0]["value"] == i + 1
        delays.append((arrived - returned) * 1000)
    await watcher.socket.close()
    await writer.socket.close()
    return Figure("baseline (raw writer, raw watcher)", delays)


# ---- the official clients -----------------------------------------------------------------


def python_round_trips(url: str, n: int) -> tuple[Figure, Figure]:
    client = ConvexClient(url)
    for _ in range(20):
        client.query("messages:ping")
    queries, mutations = [], []
    for i in range(n):
        start = time.perf_counter()
        client.query("messages:ping")
        queries.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        client.mutation("messages:send", {"channel": "bench-py", "body": str(i)})
        mutations.append((time.perf_counter() - start) * 1000)
    return Figure("Python client query", queries), Figure("Python client mutation", mutations)


def node(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - our own script, our own arguments
        [NODE, str(DRIVER), *args],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )


def read(stream: IO[str] | None) -> dict[str, Any]:
    assert stream is not None
    text = stream.readline()
    if not text:
        raise RuntimeError("the JS client stopped")
    message: dict[str, Any] = json.loads(text)
    return message


def js_round_trips(url: str, n: int) -> tuple[Figure, Figure]:
    done = subprocess.run(  # noqa: S603 - our own script, our own arguments
        [NODE, str(DRIVER), "roundtrips", url, str(n)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    result = json.loads(done.stdout)
    return (
        Figure("JS client query", result["query"]),
        Figure("JS client mutation", result["mutation"]),
    )


def python_writes_js_watches(url: str, n: int) -> Figure:
    channel = f"pyjs-{uuid.uuid4().hex[:8]}"
    watcher = node("watch", url, channel)
    try:
        assert read(watcher.stdout) == {"ready": True}
        assert read(watcher.stdout)["count"] == 0
        writer = ConvexClient(url)
        delays = []
        for i in range(n):
            writer.mutation("messages:send", {"channel": channel, "body": str(i)})
            returned = time.time() * 1000
            update = read(watcher.stdout)
            assert update["count"] == i + 1
            delays.append(update["at"] - returned)
        return Figure("Python writes, JS watches", delays)
    finally:
        if watcher.stdin is not None:
            watcher.stdin.close()
        watcher.wait(30)


def js_writes_python_watches(url: str, n: int) -> Figure:
    channel = f"jspy-{uuid.uuid4().hex[:8]}"
    watcher = ConvexClient(url)
    updates = watcher.subscribe("messages:count", {"channel": channel})
    assert next(updates) == 0
    writer = node("write", url, channel)
    try:
        assert read(writer.stdout) == {"ready": True}
        delays = []
        assert writer.stdin is not None
        for i in range(n):
            writer.stdin.write(f"{i}\n")
            writer.stdin.flush()
            count = next(updates)  # blocks this process (and its GIL) until the update
            seen = time.time() * 1000
            assert count == i + 1
            delays.append(seen - read(writer.stdout)["returned"])
        return Figure("JS writes, Python watches", delays)
    finally:
        if writer.stdin is not None:
            writer.stdin.close()
        writer.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200, help="samples per figure")
    n = parser.parse_args(sys.argv[1:]).n
    started = time.monotonic()
    server = ServerProcess(None)
    server.start()
    try:
        raw_query, raw_mutation = asyncio.run(raw_round_trips(server.url, n))
        py_query, py_mutation = python_round_trips(server.url, n)
        js_query, js_mutation = js_round_trips(server.url, n)
        raw_update = asyncio.run(raw_propagation(server.url, n))
        py_to_js = python_writes_js_watches(server.url, n)
        js_to_py = js_writes_python_watches(server.url, n)
    finally:
        server.close()
    print(f"command: python -m benchmarks.bench_clients --n {n}")
    print(
        f"python: {platform.python_implementation()} {platform.python_version()}; "
        f"convex (PyPI) {version('convex')}, websockets {version('websockets')}, "
        f"uvicorn {version('uvicorn')}; node {node_version()}"
    )
    print(f"machine: {platform.machine()}, {platform.system()} {platform.release()}")
    print(f"1. round trips ({n} each, one server process, SQLite)")
    for figure in (raw_query, py_query, js_query):
        print(line(figure, raw_query))
    for figure in (raw_mutation, py_mutation, js_mutation):
        print(line(figure, raw_mutation))
    print(f"2. mutation return to another client's update ({n} writes each)")
    for figure in (raw_update, py_to_js, js_to_py):
        print(line(figure, raw_update, difference=True))
    print(f"total {time.monotonic() - started:.0f} s")


def node_version() -> str:
    return subprocess.run(  # noqa: S603
        [NODE, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()


if __name__ == "__main__":
    main()
