"""Reactive sync: invalidation at scale, fan-out over real sockets, idle memory per connection.

Run as ``python -m benchmarks.bench_sync`` (``--quick`` for a smaller variant). Every figure
is a ratio, or a per-connection cost, from this one run:

1. **Invalidation scale** (in this process). Two engines, each on its own copy of one SQLite
   file holding the same documents, each with a real ``SyncCoordinator`` and real
   ``SyncSession``s on in-memory transports: one with 10,000 sessions each watching a different
   document (``docs:get``), one with 10. A write (``docs:touch`` through ``Engine.run_mutation``)
   to one watched document must re-run exactly one query (``coordinator.executions`` + 1) and
   send exactly one Transition. *Commit-to-push* is from just before ``run_mutation`` is called
   to the moment the watching session hands the Transition to its transport (``send``); the
   two sides take turns, write by write, and the ratio is of the medians.
2. **Fan-out** (three processes: uvicorn serving the real app, uvicorn serving a plain
   Starlette baseline, and this one). 1,000 ``websockets`` clients per server, in one asyncio
   loop here, speak Convex's protocol (Connect, then ModifyQuerySet) and all watch
   ``docs:feed``. Each commit is ``docs:post`` run by the server on a benchmark-only route;
   each client's delivery time is from just before the server called ``run_mutation`` to the
   moment this process read the Transition holding the new post. The baseline server, on the
   same kind of trigger, writes one message of the same size to its 1,000 sockets, one after
   another, with no engine in between. Commits alternate between the two servers.
3. **Idle memory** (a fresh server process). 5,000 connections, each Connect and one
   ModifyQuerySet adding ``docs:get`` on its own document (so 5,000 distinct live queries),
   then idle. The server's VmRSS before and after, per connection.

All sockets are on 127.0.0.1; every server process is killed (its process group) on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import platform
import random
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from backend.engine import Engine
from backend.runtime import Runtime
from backend.storage.store import Store
from backend.sync.coordinator import SyncCoordinator
from backend.sync.session import SessionLimits, SyncSession
from backend.system import system_functions, system_schema
from backend.udf.app import App, load_app
from benchmarks.sync_server import (
    HOST,
    now_ns,
    prepare_database,
    raise_open_files_limit,
    settings_for,
)
from benchmarks.syncapp.functions.docs import FEED_SIZE

ROOT = Path(__file__).resolve().parent.parent
INVALIDATION_GOAL = 1.5
DELIVERY_TIMEOUT = 15.0  # seconds for one commit to reach every client
SERVER_START_TIMEOUT = 60.0
CONNECT_CONCURRENCY = 100
# Idle sessions would each send a Ping after 15 s of silence; in the in-process measurement
# 10,000 of them would fire in bursts unrelated to invalidation, so they are pushed out of the run.
IN_PROCESS_LIMITS = SessionLimits(ping_after=3600.0)


@dataclass(frozen=True)
class Scale:
    subscriptions: int
    small_subscriptions: int
    writes: int
    clients: int
    commits: int
    idle: int


FULL = Scale(
    subscriptions=10_000, small_subscriptions=10, writes=50, clients=1000, commits=30, idle=5000
)
QUICK = Scale(
    subscriptions=2_000, small_subscriptions=10, writes=50, clients=200, commits=10, idle=1000
)


def nearest_rank(values: list[float], percent: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


def ms(ns: float) -> str:
    return f"{ns / 1e6:.2f} ms"


def connect_message() -> str:
    return json.dumps(
        {
            "type": "Connect",
            "sessionId": str(uuid.uuid4()),
            "connectionCount": 0,
            "lastCloseReason": "InitialConnect",
            "clientTs": int(time.time() * 1000),
        }
    )


def add_query(path: str, args: dict[str, Any]) -> str:
    return json.dumps(
        {
            "type": "ModifyQuerySet",
            "baseVersion": 0,
            "newVersion": 1,
            "modifications": [{"type": "Add", "queryId": 0, "udfPath": path, "args": [args]}],
        }
    )


# ---- 1. invalidation scale, in this process ----------------------------------------------


class ProbeTransport:
    """An in-memory transport that notes when a Transition is handed to it."""

    def __init__(self, sent: list[int]) -> None:
        self.inbox: asyncio.Queue[str | None] = asyncio.Queue()
        self.sent = sent  # one counter shared by every transport of a fixture
        self.transitions = 0
        self.emitted_ns = 0
        self.waiter: asyncio.Future[tuple[int, str]] | None = None

    async def receive(self) -> str | bytes | None:
        return await self.inbox.get()

    async def send(self, text: str) -> None:
        at = now_ns()
        if not text.startswith('{"type":"Transition"'):
            return
        self.transitions += 1
        self.sent[0] += 1
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((at, text))

    async def close(self, code: int, reason: str) -> None:
        return None


class ProbedSession(SyncSession):
    """A real session that also notes when the coordinator hands it a Transition."""

    probe: ProbeTransport

    def emit(
        self,
        modifications: list[str],
        *,
        ts: int,
        query_set: int | None,
        identity_version: int | None,
    ) -> None:
        self.probe.emitted_ns = now_ns()
        super().emit(modifications, ts=ts, query_set=query_set, identity_version=identity_version)


@dataclass(frozen=True)
class WriteSample:
    returned_ns: int  # run_mutation returned
    emitted_ns: int  # the coordinator's round emitted the Transition to the session
    pushed_ns: int  # the session handed it to its transport
    reruns: int  # coordinator.executions delta
    transitions: int  # Transitions sent to any session of this fixture
    correct: bool  # the Transition carried the written value


class Fixture:
    """One engine and coordinator with ``subscriptions`` sessions, each watching one document."""

    def __init__(self, name: str, database: Path, app: App, ids: list[str], subscriptions: int):
        self.name = name
        self.store = Store(f"sqlite+aiosqlite:///{database}")
        self.engine = Engine(
            self.store,
            app,
            system_schema=system_schema(),
            system_functions=system_functions(),
            runtime=Runtime(),
        )
        self.coordinator = SyncCoordinator(self.engine)  # catch-up as in create_app
        self.ids = ids[:subscriptions]
        self.sent = [0]
        self.transports: list[ProbeTransport] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.samples: list[WriteSample] = []

    async def start(self, within: float) -> float:
        """Connect every session and wait for its first Transition; returns the seconds taken."""
        began = time.perf_counter()
        await self.coordinator.start()
        for doc_id in self.ids:
            transport = ProbeTransport(self.sent)
            session = ProbedSession(
                transport, self.engine, self.coordinator, limits=IN_PROCESS_LIMITS
            )
            session.probe = transport
            self.transports.append(transport)
            self.tasks.append(asyncio.create_task(session.run()))
            transport.inbox.put_nowait(connect_message())
            transport.inbox.put_nowait(add_query("docs:get", {"id": doc_id}))
        deadline = began + within
        while self.sent[0] < len(self.ids):
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{self.name}: {self.sent[0]}/{len(self.ids)} subscribed")
            await asyncio.sleep(0.05)
        if self.coordinator.query_count != len(self.ids):
            raise RuntimeError(f"{self.name}: {self.coordinator.query_count} live queries")
        return time.perf_counter() - began

    async def write_once(self, index: int) -> WriteSample:
        transport = self.transports[index]
        waiter: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        transport.waiter = waiter
        executions, sent = self.coordinator.executions, self.sent[0]
        start = now_ns()
        result = await self.engine.run_mutation("docs:touch", {"id": self.ids[index]})
        returned = now_ns()
        pushed, text = await asyncio.wait_for(waiter, DELIVERY_TIMEOUT)
        transport.waiter = None
        await asyncio.sleep(0.005)  # room for any stray Transition to show up in the count
        (change,) = json.loads(text)["modifications"]
        sample = WriteSample(
            returned_ns=returned - start,
            emitted_ns=transport.emitted_ns - start,
            pushed_ns=pushed - start,
            reruns=self.coordinator.executions - executions,
            transitions=self.sent[0] - sent,
            correct=change["value"]["n"] == result.value,
        )
        self.samples.append(sample)
        return sample

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.coordinator.stop()
        await self.store.close()


@dataclass
class InvalidationResult:
    large: Fixture
    small: Fixture
    setup_seconds: float

    @staticmethod
    def median(fixture: Fixture, pick: Callable[[WriteSample], int]) -> float:
        return statistics.median(pick(s) for s in fixture.samples)

    @property
    def ratio(self) -> float:
        pushed = self.median(self.large, lambda s: s.pushed_ns)
        return pushed / self.median(self.small, lambda s: s.pushed_ns)

    @property
    def violations(self) -> list[str]:
        found = []
        for fixture in (self.large, self.small):
            for i, s in enumerate(fixture.samples):
                if s.reruns != 1 or s.transitions != 1 or not s.correct:
                    found.append(
                        f"{fixture.name} write {i}: {s.reruns} re-runs, "
                        f"{s.transitions} Transitions, value correct: {s.correct}"
                    )
        return found


async def invalidation(scale: Scale, workdir: Path, seed: int) -> InvalidationResult:
    app = load_app("benchmarks.syncapp.schema", "benchmarks.syncapp.functions")
    template = workdir / "template.sqlite3"
    ids = await prepare_database(settings_for(template), scale.subscriptions)
    for name in ("large", "small"):  # the same documents on both sides
        shutil.copyfile(template, workdir / f"{name}.sqlite3")
    large = Fixture("large", workdir / "large.sqlite3", app, ids, scale.subscriptions)
    small = Fixture("small", workdir / "small.sqlite3", app, ids, scale.small_subscriptions)
    rng = random.Random(seed)
    try:
        setup = await large.start(within=120) + await small.start(within=30)
        gc.collect()
        for fixture in (large, small):  # warm-up writes, not counted
            await fixture.write_once(0)
            fixture.samples.clear()
        for write in range(scale.writes):
            for fixture in (large, small) if write % 2 == 0 else (small, large):
                await fixture.write_once(rng.randrange(len(fixture.ids)))
        return InvalidationResult(large, small, setup)
    finally:
        await large.stop()
        await small.stop()


# ---- server processes ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


class ServerProcess:
    """``benchmarks.sync_server`` in its own process group, killed whole on exit."""

    def __init__(self, mode: str, workdir: Path, docs: int = 0) -> None:
        self.mode = mode
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.sync_uri = f"ws://{HOST}:{self.port}/api/1.48.0/sync"
        self.log_path = workdir / f"server-{mode}-{self.port}.log"
        command = [sys.executable, "-m", "benchmarks.sync_server", mode, "--port", str(self.port)]
        if mode == "convex":
            database = workdir / f"server-{self.port}.sqlite3"
            command += ["--database", str(database), "--docs", str(docs)]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
                command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    async def ready(self, http: httpx.AsyncClient) -> dict[str, Any]:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.mode} server exited:\n{self.log_tail()}")
            with contextlib.suppress(httpx.TransportError):
                return await self.stats(http)
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.mode} server did not start:\n{self.log_tail()}")

    async def stats(self, http: httpx.AsyncClient) -> dict[str, Any]:
        response = await http.get(f"{self.url}/bench/stats")
        response.raise_for_status()
        found: dict[str, Any] = response.json()
        return found

    async def wait_connections(self, http: httpx.AsyncClient, count: int) -> None:
        """Wait until the baseline server holds ``count`` sockets (it answers nothing on them)."""
        deadline = time.monotonic() + DELIVERY_TIMEOUT
        while (await self.stats(http))["connections"] < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {self.mode} server did not see every client")
            await asyncio.sleep(0.1)

    async def call(self, http: httpx.AsyncClient, route: str, body: Any) -> Any:
        response = await http.post(f"{self.url}{route}", json=body)
        response.raise_for_status()
        return response.json()

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def log_tail(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue


@contextlib.contextmanager
def server(mode: str, workdir: Path, docs: int = 0) -> Iterator[ServerProcess]:
    process = ServerProcess(mode, workdir, docs)
    try:
        yield process
    finally:
        process.stop()


# ---- WebSocket clients ----------------------------------------------------------------------


class Arrivals:
    """When each marker reached each client, and the size of the message that carried it."""

    def __init__(self) -> None:
        self.times: dict[str, list[int]] = {}
        self.sizes: dict[str, int] = {}
        self._waiting: dict[str, tuple[int, asyncio.Event]] = {}

    def arrive(self, marker: str, at: int, size: int) -> None:
        times = self.times.setdefault(marker, [])
        times.append(at)
        self.sizes[marker] = max(size, self.sizes.get(marker, 0))
        waiting = self._waiting.get(marker)
        if waiting is not None and len(times) >= waiting[0]:
            waiting[1].set()

    async def wait(self, marker: str, count: int, within: float) -> list[int]:
        """When ``marker`` reached each client, once ``count`` have it (or after ``within`` s)."""
        event = asyncio.Event()
        self._waiting[marker] = (count, event)
        if len(self.times.get(marker, [])) >= count:
            event.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), within)
        del self._waiting[marker]
        return list(self.times.get(marker, []))


def feed_marker(message: dict[str, Any]) -> str | None:
    """The body of the newest post in a ``docs:feed`` result."""
    for change in message.get("modifications", []):
        if change.get("type") == "QueryUpdated" and change.get("value"):
            return str(change["value"][0]["body"])
    return None


def subscribed_marker(message: dict[str, Any]) -> str | None:
    return "subscribed" if message.get("modifications") else None


def plain_marker(message: dict[str, Any]) -> str | None:
    marker = message.get("marker")
    return None if marker is None else str(marker)


@dataclass(eq=False)
class Client:
    ws: ClientConnection
    arrivals: Arrivals
    marker_of: Callable[[dict[str, Any]], str | None]
    check_chain: bool
    chain_breaks: int = 0
    _last_end: Any = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    async def read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                at = now_ns()
                message = json.loads(raw)
                if message.get("type") != "Transition":
                    continue
                if self.check_chain:
                    start = message["startVersion"]
                    if self._last_end is not None and start != self._last_end:
                        self.chain_breaks += 1
                    self._last_end = message["endVersion"]
                marker = self.marker_of(message)
                if marker is not None:
                    self.arrivals.arrive(marker, at, len(raw))


async def open_clients(
    into: list[Client],
    uri: str,
    queries: list[tuple[str, dict[str, Any]]],
    arrivals: Arrivals,
    marker_of: Callable[[dict[str, Any]], str | None],
    *,
    check_chain: bool,
) -> None:
    """One client per query: Connect, then a ModifyQuerySet adding that query as id 0."""
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one(path: str, args: dict[str, Any]) -> None:
        async with gate:
            ws = await connect(
                uri, proxy=None, ping_interval=None, open_timeout=30, close_timeout=2, max_size=None
            )
            client = Client(ws, arrivals, marker_of, check_chain)
            into.append(client)
            client.task = asyncio.create_task(client.read())
            await ws.send(connect_message())
            await ws.send(add_query(path, args))

    await asyncio.gather(*(one(path, args) for path, args in queries))


async def close_clients(clients: list[Client]) -> None:
    async def one(client: Client) -> None:
        with contextlib.suppress(Exception):
            await client.ws.close()
        if client.task is not None:
            client.task.cancel()

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(one(c) for c in clients)), 30)
    for client in clients:
        with contextlib.suppress(Exception):
            client.ws.transport.abort()
    clients.clear()


# ---- 2. fan-out --------------------------------------------------------------------------


@dataclass
class Delivery:
    latencies_ns: list[int] = field(default_factory=list)
    missing: int = 0
    server_ns: list[int] = field(default_factory=list)  # commit returned / last byte written
    sizes: list[int] = field(default_factory=list)
    spans: list[tuple[int, int]] = field(default_factory=list)  # per commit: first, last client

    def add(self, times: list[int], start_ns: int, expected: int) -> None:
        self.latencies_ns += [t - start_ns for t in times]
        self.missing += expected - len(times)
        if times:
            self.spans.append((min(times) - start_ns, max(times) - start_ns))

    def percentile(self, percent: float) -> float:
        return nearest_rank([float(x) for x in self.latencies_ns], percent)


@dataclass
class FanoutResult:
    clients: int
    commits: int
    convex: Delivery
    plain: Delivery
    executions_per_commit: list[int]
    chain_breaks: int
    setup_seconds: float


async def fanout(scale: Scale, workdir: Path) -> FanoutResult:
    n = scale.clients
    arrivals = Arrivals()
    convex_clients: list[Client] = []
    plain_clients: list[Client] = []
    convex, plain = Delivery(), Delivery()
    executions: list[int] = []
    feed = [("docs:feed", {})] * n
    async with httpx.AsyncClient(timeout=30, trust_env=False) as http:
        with server("convex", workdir, docs=FEED_SIZE) as real, server("plain", workdir) as base:
            try:
                began = time.perf_counter()
                await real.ready(http)
                await base.ready(http)
                await open_clients(
                    convex_clients, real.sync_uri, feed, arrivals, feed_marker, check_chain=True
                )
                await open_clients(
                    plain_clients, base.sync_uri, feed, arrivals, plain_marker, check_chain=False
                )
                await base.wait_connections(http, n)
                initial = f"doc {FEED_SIZE - 1}"
                if len(await arrivals.wait(initial, n, DELIVERY_TIMEOUT)) < n:
                    raise RuntimeError("not every client got its first Transition")
                setup = time.perf_counter() - began

                async def commit(k: int, counted: bool) -> None:
                    marker = f"commit {k}"
                    before = (await real.stats(http))["executions"]
                    reply = await real.call(http, "/bench/post", {"body": marker})
                    times = await arrivals.wait(marker, n, DELIVERY_TIMEOUT)
                    after = (await real.stats(http))["executions"]
                    if counted:
                        convex.add(times, reply["start_ns"], n)
                        convex.server_ns.append(reply["committed_ns"] - reply["start_ns"])
                        convex.sizes.append(arrivals.sizes.get(marker, 0))
                        executions.append(after - before)

                async def push(k: int, counted: bool) -> None:
                    marker = f"push {k}"
                    size = max(convex.sizes or [arrivals.sizes.get(f"commit {k}", 1500)])
                    body = {"marker": marker, "size": size}
                    reply = await base.call(http, "/bench/push", body)
                    times = await arrivals.wait(marker, n, DELIVERY_TIMEOUT)
                    if counted:
                        plain.add(times, reply["start_ns"], n)
                        plain.server_ns.append(reply["sent_ns"] - reply["start_ns"])
                        plain.sizes.append(arrivals.sizes.get(marker, 0))

                await commit(-1, counted=False)  # warm-up, not counted
                await push(-1, counted=False)
                for k in range(scale.commits):
                    steps = (commit, push) if k % 2 == 0 else (push, commit)
                    for step in steps:
                        await step(k, True)
                        await asyncio.sleep(0.1)  # let both servers settle
                breaks = sum(c.chain_breaks for c in convex_clients)
                return FanoutResult(n, scale.commits, convex, plain, executions, breaks, setup)
            finally:
                await close_clients(convex_clients)
                await close_clients(plain_clients)


# ---- 3. idle memory ----------------------------------------------------------------------


@dataclass
class MemoryResult:
    mode: str
    connections: int
    before: int
    after: int
    queries: int
    seconds: float

    @property
    def per_connection(self) -> float:
        return (self.after - self.before) / self.connections


async def idle_memory(scale: Scale, workdir: Path, mode: str) -> MemoryResult:
    """Open ``scale.idle`` idle connections to a fresh server; its VmRSS before and after."""
    n = scale.idle
    clients: list[Client] = []
    async with httpx.AsyncClient(timeout=30, trust_env=False) as http:
        with server(mode, workdir, docs=n if mode == "convex" else 0) as real:
            try:
                stats = await real.ready(http)
                if stats["pid"] != real.process.pid:
                    raise RuntimeError("the server's pid is not the process started")
                if mode == "convex":
                    ids: list[str] = (await http.get(f"{real.url}/bench/ids")).json()
                else:
                    ids = ["unused"] * n  # the baseline reads and drops what clients send
                queries = [("docs:get", {"id": doc_id}) for doc_id in ids]

                async def connect_all(batch: list[tuple[str, dict[str, Any]]]) -> None:
                    arrivals = Arrivals()
                    await open_clients(
                        clients, real.sync_uri, batch, arrivals, subscribed_marker, check_chain=True
                    )
                    if mode == "plain":
                        await real.wait_connections(http, len(batch))
                    elif len(await arrivals.wait("subscribed", len(batch), 60)) < len(batch):
                        raise RuntimeError("not every idle client got its first Transition")

                # Warm the code paths (imports, caches, the first pool connection) first.
                await connect_all(queries[:20])
                await close_clients(clients)
                await asyncio.sleep(1.0)
                before = real.rss_bytes()
                began = time.perf_counter()
                await connect_all(queries)
                seconds = time.perf_counter() - began
                await asyncio.sleep(1.0)
                after = real.rss_bytes()
                live = (await real.stats(http)).get("queries", 0)
                return MemoryResult(mode, n, before, after, live, seconds)
            finally:
                await close_clients(clients)


# ---- reporting and the command -------------------------------------------------------------


def report_invalidation(result: InvalidationResult) -> list[str]:
    lines = ["1. invalidation scale (in process, one write to one watched document)"]
    for fixture in (result.large, result.small):
        med = InvalidationResult.median
        lines.append(
            f"   {len(fixture.ids):>6,} subscriptions: commit-to-push median "
            f"{ms(med(fixture, lambda s: s.pushed_ns))} "
            f"(mutation returned {ms(med(fixture, lambda s: s.returned_ns))}, "
            f"round emitted {ms(med(fixture, lambda s: s.emitted_ns))}); "
            f"p90 {ms(nearest_rank([float(s.pushed_ns) for s in fixture.samples], 90))}; "
            f"re-runs per write {sorted({s.reruns for s in fixture.samples})}, "
            f"Transitions per write {sorted({s.transitions for s in fixture.samples})}"
        )
    goal = "met" if result.ratio <= INVALIDATION_GOAL else "MISSED"
    lines.append(
        f"   ratio {len(result.large.ids):,} / {len(result.small.ids)}: {result.ratio:.2f} "
        f"(goal <= {INVALIDATION_GOAL}: {goal}); {len(result.large.samples)} writes per side, "
        f"alternating; setup {result.setup_seconds:.1f} s"
    )
    violations = result.violations
    lines.append(
        "   exactly one re-run and one Transition per write: "
        + ("yes" if not violations else f"NO ({len(violations)}): {violations[:3]}")
    )
    return lines


def report_fanout(result: FanoutResult) -> list[str]:
    lines = [
        f"2. fan-out ({result.clients:,} WebSocket clients on one query, "
        f"{result.commits} commits per side, alternating)"
    ]
    for name, side, server_label in (
        ("engine  ", result.convex, "mutation returned"),
        ("baseline", result.plain, "last send returned"),
    ):
        firsts, lasts = [a for a, _ in side.spans], [z for _, z in side.spans]
        lines += [
            f"   {name}: delivery p50 {ms(side.percentile(50))}, p99 {ms(side.percentile(99))}, "
            f"max {ms(max(side.latencies_ns))}; per commit: first client median "
            f"{ms(statistics.median(firsts))}, last client median {ms(statistics.median(lasts))}",
            f"             server: {server_label} median {ms(statistics.median(side.server_ns))};"
            f" message {max(side.sizes)} bytes; missing deliveries {side.missing}",
        ]
    p50 = result.convex.percentile(50) / result.plain.percentile(50)
    p99 = result.convex.percentile(99) / result.plain.percentile(99)
    lines.append(f"   ratio engine / baseline: p50 {p50:.2f}, p99 {p99:.2f}")
    lines.append(
        f"   executions per commit: {sorted(set(result.executions_per_commit))} "
        f"(over {len(result.executions_per_commit)} commits); version-chain breaks: "
        f"{result.chain_breaks}; setup {result.setup_seconds:.1f} s"
    )
    return lines


def report_memory(engine: MemoryResult, plain: MemoryResult) -> list[str]:
    lines = [
        f"3. idle memory ({engine.connections:,} connections, each Connect + one ModifyQuerySet "
        "adding docs:get on its own document; fresh server process each)"
    ]
    for name, result in (("engine  ", engine), ("baseline", plain)):
        lines.append(
            f"   {name}: VmRSS {result.before / 2**20:.1f} MiB -> {result.after / 2**20:.1f} MiB"
            f" = {result.per_connection:,.0f} bytes per connection "
            f"({result.queries:,} live queries; all connected in {result.seconds:.1f} s)"
        )
    extra = engine.per_connection - plain.per_connection
    lines.append(
        f"   engine / baseline: {engine.per_connection / plain.per_connection:.2f} "
        f"({extra:,.0f} bytes per connection more: the sync session and its live query)"
    )
    return lines


def describe_setup(scale: Scale) -> list[str]:
    command = shlex.join(["python", "-m", "benchmarks.bench_sync", *sys.argv[1:]])
    libraries = ", ".join(
        f"{p} {version(p)}" for p in ("websockets", "uvicorn", "starlette", "sqlalchemy")
    )
    return [
        f"command: {command}",
        f"python: {platform.python_implementation()} {platform.python_version()}; {libraries}",
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        f"scale: {scale}",
    ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_sync", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smaller variant (under a minute)")
    parser.add_argument(
        "--only", choices=("invalidation", "fanout", "memory"), help="one measurement"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the write order")
    return parser.parse_args(argv)


async def main(args: argparse.Namespace) -> int:
    scale = QUICK if args.quick else FULL
    raise_open_files_limit()
    began = time.perf_counter()
    for line in describe_setup(scale):
        print(line, flush=True)
    failed = False
    workdir = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    try:
        if args.only in (None, "invalidation"):
            invalidated = await invalidation(scale, workdir, args.seed)
            print("\n".join(report_invalidation(invalidated)), flush=True)
            failed |= bool(invalidated.violations)
        if args.only in (None, "fanout"):
            fanned = await fanout(scale, workdir)
            print("\n".join(report_fanout(fanned)), flush=True)
            failed |= set(fanned.executions_per_commit) != {1}
            failed |= fanned.convex.missing > 0 or fanned.chain_breaks > 0
        if args.only in (None, "memory"):
            engine = await idle_memory(scale, workdir, "convex")
            plain = await idle_memory(scale, workdir, "plain")
            print("\n".join(report_memory(engine, plain)), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"total {time.perf_counter() - began:.0f} s; checks {'FAILED' if failed else 'passed'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
