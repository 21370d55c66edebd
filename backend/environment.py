"""Deployment environment variables: ``python -m backend env set NAME VALUE``, read by functions
as ``ctx.env["NAME"]``.

They live in the system table ``_environment_variables`` (one document per name), so a change is
an ordinary commit: in the log, ordered, seen by every server process. A value is sealed before
it is stored (AES-GCM under a key derived from ``SECRET_KEY``, bound to its name), so neither the
table, the log nor a backup holds it readable; the name is stored plain.

Reading is synchronous, as ``process.env`` is: each engine keeps the opened values in memory, and
refreshes them

- before the next call, when one of its own commits changed a variable (the CLI's ``env set``
  through this process, a test's ``t.set_env``): the next call sees the new value;
- from the very snapshot of a subscription's re-run, when the commits a sync round reads name a
  variable (``observe``): a query re-runs with the value of the commit that invalidated it;
- before a call, from a snapshot of its own, when the values in memory are older than
  ``REFRESH`` (a change made by another process reaches this one's plain calls within it).

A query that reads ``ctx.env["NAME"]`` records the read of that name's key in its read set, so a
change of that variable, and only of it, re-runs it; ``dict(ctx.env)`` reads them all.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final

from pydantic import BaseModel

from backend.errors import ConvexError, ErrorCode
from backend.mail.sealing import SecretSeal
from backend.schema_definition import TableDef, table
from backend.storage.store import StoreReader
from backend.transactions.readset import WriteSet
from backend.transactions.transaction import SystemDatabase, Transaction
from backend.values.index_key import KeyRange, encode_key

if TYPE_CHECKING:
    from backend.engine import Engine

log = logging.getLogger("backend.environment")

TABLE: Final = "_environment_variables"
INDEX: Final = "by_name"
REFRESH: Final = timedelta(seconds=1)
# Convex's rules: a letter first, then letters, digits and underscores, at most 40 characters;
# a value of at most 8 KiB.
NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")
MAX_VALUE_BYTES: Final = 8 * 1024
MAX_VARIABLES: Final = 100


class EnvironmentVariable(BaseModel):
    name: str
    sealedValue: str


TABLES: dict[str, TableDef] = {TABLE: table(EnvironmentVariable).index(INDEX, "name")}


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ConvexError(
            ErrorCode.INVALID_ARGUMENT,
            "an environment variable's name is a letter, then letters, digits or underscores "
            "(at most 40)",
            path="name",
        )
    return name


def check_value(value: Any) -> str:
    if not isinstance(value, str) or len(value.encode("utf-8", "surrogatepass")) > MAX_VALUE_BYTES:
        raise ConvexError(
            ErrorCode.INVALID_ARGUMENT,
            f"an environment variable's value is a string of at most {MAX_VALUE_BYTES} bytes",
            path="value",
        )
    if "\x00" in value:
        raise ConvexError(ErrorCode.INVALID_ARGUMENT, "a value cannot hold NUL", path="value")
    return value


def _bound_to(name: str) -> str:
    return f"env:{name}"


class Environment:
    """One engine's view of the deployment's variables (see the module's docstring)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._values: dict[str, str] = {}
        self._stale = True
        self._lock = asyncio.Lock()
        self._loaded_at: float | None = None

    # ---- reading ------------------------------------------------------------------------

    @property
    def values(self) -> Mapping[str, str]:
        """The values now (a reload replaces the mapping, never changes it)."""
        return self._values

    def view(self, values: Mapping[str, str], txn: Transaction | None) -> EnvView:
        return EnvView(values, txn)

    async def fresh(self) -> None:
        """Reload before a call if a change is known, or the last load is older than REFRESH."""
        now = asyncio.get_running_loop().time()
        old = self._loaded_at is None or now - self._loaded_at >= REFRESH.total_seconds()
        if not (self._stale or old):
            return
        async with self._lock:
            if self._stale or old:
                await self._engine.system_read(self._load)

    async def observe(self, writes: WriteSet, reader: StoreReader) -> None:
        """A sync round's commits: when they changed a variable, load them from its snapshot."""
        if self._touches(writes):
            txn = Transaction(
                reader,
                self._engine.schema,
                self._engine.runtime,
                self._engine.limits,
                now=self._engine.runtime.now(),
            )
            await self._load(SystemDatabase(txn))

    def on_commit(self, _ts: int, writes: WriteSet) -> None:
        if self._touches(writes):
            self._stale = True

    def _touches(self, writes: WriteSet) -> bool:
        return writes.touches(TABLE)

    async def _load(self, db: SystemDatabase) -> None:
        values: dict[str, str] = {}
        self._stale = False
        async for doc in db.query(TABLE):
            opened = self._open(doc)
            if opened is not None:
                values[doc["name"]] = opened
        self._values = values
        self._loaded_at = asyncio.get_running_loop().time()

    @property
    def _seal(self) -> SecretSeal | None:
        # the server's SECRET_KEY seal, installed once the engine is assembled (install_seal)
        return self._engine.services.find(SecretSeal)

    def _open(self, doc: Mapping[str, Any]) -> str | None:
        if self._seal is None:
            log.error("environment variables are stored but this engine has no SECRET_KEY seal")
            return None
        try:
            return self._seal.open(doc["sealedValue"], bound_to=_bound_to(doc["name"]))
        except ValueError:
            # the name only: never the value
            log.error("environment variable %s does not open under this SECRET_KEY", doc["name"])
            return None

    # ---- writing (the CLI, the harness) ---------------------------------------------------

    async def set(self, name: str, value: str) -> None:
        check_name(name)
        check_value(value)
        seal = self._seal
        if seal is None:
            raise RuntimeError("environment variables need the engine's seal (SECRET_KEY)")
        sealed = seal.seal(value, bound_to=_bound_to(name), random=self._engine.runtime.random)

        async def write(db: SystemDatabase) -> None:
            found = await db.query(TABLE).with_index(INDEX, name=name).unique()
            if found is not None:
                await db.patch(found["_id"], {"sealedValue": sealed})
                return
            count = len(await db.query(TABLE).take(MAX_VARIABLES + 1))
            if count >= MAX_VARIABLES:
                raise ConvexError(
                    ErrorCode.LIMIT_EXCEEDED,
                    f"a deployment has at most {MAX_VARIABLES} environment variables",
                )
            await db.insert(TABLE, {"name": name, "sealedValue": sealed})

        await self._engine.system_write(write, label="_system/env:set")

    async def remove(self, name: str) -> bool:
        check_name(name)

        async def delete(db: SystemDatabase) -> bool:
            found = await db.query(TABLE).with_index(INDEX, name=name).unique()
            if found is None:
                return False
            await db.delete_read(found)
            return True

        removed, _ts = await self._engine.system_write(delete, label="_system/env:remove")
        return removed

    async def listing(self) -> dict[str, str]:
        """Every variable, opened, read now (not from memory)."""
        await self._engine.system_read(self._load)
        return dict(self._values)


class EnvView(Mapping[str, str]):
    """``ctx.env``: the deployment's variables, read-only. ``ctx.env["NAME"]`` raises
    ``KeyError`` for a variable that is not set; ``ctx.env.get("NAME", default)`` does not.
    In a query or mutation a read joins the read set: a live query re-runs when a variable it
    read changes."""

    def __init__(self, values: Mapping[str, str], txn: Transaction | None) -> None:
        self._values = values
        self._txn = txn

    def _note(self, key_range: KeyRange) -> None:
        if self._txn is not None:
            index = self._txn.schema.index(TABLE, INDEX)
            self._txn.read_set.add_range(index.qualified_name, key_range)

    def __getitem__(self, name: str) -> str:
        if isinstance(name, str):
            self._note(KeyRange.prefix(encode_key([name])))
        return self._values[name]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        self._note(KeyRange.prefix(encode_key([name])))
        return name in self._values

    def __iter__(self) -> Iterator[str]:
        self._note(KeyRange.everything())
        return iter(sorted(self._values))

    def __len__(self) -> int:
        self._note(KeyRange.everything())
        return len(self._values)

    def __repr__(self) -> str:
        return f"<environment variables: {len(self._values)}>"  # never the values


__all__ = [
    "MAX_VALUE_BYTES",
    "TABLE",
    "TABLES",
    "EnvView",
    "Environment",
    "EnvironmentVariable",
    "check_name",
    "check_value",
]
