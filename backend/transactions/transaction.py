"""One execution's view of the database: reads at a snapshot, writes, read and write sets.

``Transaction`` is the engine's handle; function code sees it through ``DatabaseReader`` (in
queries) and ``DatabaseWriter`` (in mutations), which refuse the engine's own tables (names
starting with ``_``), except for the few the schema offers app code as views, read-only and in
Convex's shapes, through ``ctx.db.system`` (``SystemTableReader``). The engine's subsystems
(auth, scheduler, audit) use ``SystemDatabase``, which is never handed to function code.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from backend.errors import ConvexError, ErrorCode, invalid_argument
from backend.runtime import Runtime, to_ms
from backend.schema_definition import Schema, SystemView
from backend.storage.store import MutationWriter, StoreReader, StoreWriter
from backend.transactions.client import ClientInfo
from backend.transactions.limits import Limits
from backend.transactions.query import QueryBuilder
from backend.transactions.readset import ReadSet, WriteSet
from backend.values.convex_json import DEFAULT_MAX_DEPTH, dumps, to_json
from backend.values.ids import make_id

Document = dict[str, Any]


class _Remove:
    def __repr__(self) -> str:
        return "REMOVE"


REMOVE: Any = _Remove()
"""Pass as a value to ``patch`` to remove that field (Convex's ``undefined``)."""


class CreationTimes:
    """Hands out ``_creationTime`` values that strictly increase within this process, so
    documents created in the same millisecond still sort in creation order."""

    def __init__(self) -> None:
        self._last = 0.0

    def next(self, now_ms: float) -> float:
        """A creation time at ``now_ms`` or just after, greater than every one given before."""
        value = now_ms if now_ms > self._last else self._last + 0.001
        self._last = value
        return value


_DEFAULT_CREATION_TIMES = CreationTimes()


class Transaction:
    """One function execution's view of the database: reads at the snapshot of ``reader``
    (every id and index range read is recorded in ``read_set``, for reactivity and for the
    commit's conflict check), and, with a writer, buffered writes (``write_set``) validated
    against ``schema`` and counted against ``limits``.

    Engine-internal: function code reaches it only through ``ctx.db`` (``DatabaseReader``,
    ``DatabaseWriter``), which fixes ``system=False`` so that the engine's own ``_`` tables
    stay out of reach. The methods raise what those document: ``INVALID_ARGUMENT`` for a
    non-id, an unknown table or a document that does not fit the schema, ``NOT_FOUND`` for a
    write to a missing document, ``LIMIT_EXCEEDED`` past a limit.
    """

    def __init__(
        self,
        reader: StoreReader,
        schema: Schema,
        runtime: Runtime,
        limits: Limits,
        *,
        now: datetime,
        creation_times: CreationTimes = _DEFAULT_CREATION_TIMES,
    ) -> None:
        self.reader = reader
        self._creation_times = creation_times
        self.schema = schema
        self.runtime = runtime
        self.limits = limits
        self.now = now
        self.read_set = ReadSet()
        self.write_set = WriteSet()
        self.docs_read = 0
        self.docs_written = 0
        # Documents by id as this transaction sees them (reads and its own writes), so that a
        # second get of the same id costs no round trip.
        self._by_id: dict[str, tuple[str, Document | None]] = {}
        # Gapless pagination (Convex's journal): the end a page reached on its first run comes
        # back on re-runs, so a live page keeps its bounds as rows come and go around it.
        self.journal_in: str | None = None
        self.journal_out: str | None = None
        self.client: ClientInfo | None = None  # where the call came from, if the transport knows
        self.committed = False
        self.durable: list[Callable[[SystemDatabase], Awaitable[None]]] = []

    def durably(self, write: Callable[[SystemDatabase], Awaitable[None]]) -> None:
        """Engine-internal: ``write`` happens whether or not this transaction commits.

        It runs inside this transaction when it commits, and in a small transaction of its own
        right after a rollback. For the few records that must survive a failed call (a refused
        protected action's audit event); ordinary function code has no way to reach it.
        """
        self.durable.append(write)

    @property
    def writer(self) -> StoreWriter | MutationWriter | None:
        """The reader, when it can also write (a mutation's); None in a query."""
        return self.reader if isinstance(self.reader, StoreWriter | MutationWriter) else None

    def count_reads(self, n: int) -> None:
        """Count ``n`` more documents read; ``LIMIT_EXCEEDED`` past the limit."""
        self.docs_read += n
        if self.docs_read > self.limits.max_docs_read:
            raise ConvexError(
                ErrorCode.LIMIT_EXCEEDED,
                f"a transaction may read at most {self.limits.max_docs_read} documents",
            )

    def _count_write(self) -> None:
        self.docs_written += 1
        if self.docs_written > self.limits.max_docs_written:
            raise ConvexError(
                ErrorCode.LIMIT_EXCEEDED,
                f"a transaction may write at most {self.limits.max_docs_written} documents",
            )

    def table_of(self, doc_id: Any, *, system: bool) -> str:
        """The table ``doc_id`` belongs to; ``INVALID_ARGUMENT`` for anything else (and for an
        engine table's id unless ``system``)."""
        table = self.schema.table_of_id(doc_id)
        if table is None or (table.startswith("_") and not system):
            raise invalid_argument(f"{str(doc_id)[:64]!r} is not a document id", "id")
        return table

    def check_table(self, table: Any, *, system: bool) -> str:
        """``table`` if the schema declares it (an engine table only with ``system``);
        ``INVALID_ARGUMENT`` otherwise."""
        if (
            not isinstance(table, str)
            or table not in self.schema.tables
            or (table.startswith("_") and not system)
        ):
            raise invalid_argument(f"unknown table {str(table)[:64]!r}", "table")
        return table

    async def get(self, doc_id: Any, *, system: bool) -> Document | None:
        """The document as this transaction sees it (its own writes included), or None; the id
        joins the read set either way."""
        table = self.table_of(doc_id, system=system)
        self.read_set.add_id(doc_id)
        cached = self._by_id.get(doc_id)
        if cached is not None:  # read or written earlier in this transaction
            return _copy(cached[1]) if cached[0] == table else None
        found = await self.reader.get(doc_id)
        self.count_reads(1)
        self._by_id[doc_id] = found or (table, None)
        if found is None or found[0] != table:
            return None
        return _copy(found[1])

    def query(self, table: str, *, system: bool) -> QueryBuilder:
        """A query over ``table`` (see ``QueryBuilder``); the ranges it reads join the read
        set as it runs."""
        return QueryBuilder(self, self.check_table(table, system=system))

    def _require_writer(self) -> StoreWriter | MutationWriter:
        writer = self.writer
        if writer is None:
            raise TypeError("this transaction is read-only (a query cannot write)")
        return writer

    def _checked(self, table: str, fields: Mapping[str, Any]) -> None:
        if not isinstance(fields, Mapping):
            raise invalid_argument("a document must be an object", "value")
        self.schema.validate(table, fields)

    def _encode_checked(self, document: Document) -> str:
        """The document's stored text (``encode_doc``), once its depth and size are checked.

        The store writes this same text, so a document is encoded once per write.
        """
        # the store's own encoding allows DEFAULT_MAX_DEPTH levels, whatever the limits say
        depth = min(self.limits.max_depth, DEFAULT_MAX_DEPTH)
        encoded = dumps(to_json(document, max_depth=depth))
        size = len(encoded.encode("utf-8"))
        if size > self.limits.max_document_bytes:
            raise ConvexError(
                ErrorCode.LIMIT_EXCEEDED,
                f"document is {size} bytes; the limit is {self.limits.max_document_bytes}",
            )
        return encoded

    def _keys(self, table: str, document: Document) -> list[tuple[str, bytes]]:
        return [(i.qualified_name, i.key_of(document)) for i in self.schema.indexes_of(table)]

    def _note_writes(self, doc_id: str, *key_lists: list[tuple[str, bytes]]) -> None:
        self.write_set.ids.add(doc_id)
        for keys in key_lists:
            for name, key in keys:
                self.write_set.add_key(name, key)

    async def insert(self, table: str, fields: Mapping[str, Any], *, system: bool) -> str:
        """Validate and buffer a new document; its new ``_id``."""
        writer = self._require_writer()
        self.check_table(table, system=system)
        self._checked(table, fields)
        self._count_write()
        creation = self._creation_times.next(to_ms(self.now))
        doc_id = make_id(table, self.runtime.random.token_bytes(16))
        document: Document = {"_id": doc_id, "_creationTime": creation, **fields}
        encoded = self._encode_checked(document)
        keys = self._keys(table, document)
        await writer.insert(table, document, keys, encoded=encoded)
        self._note_writes(doc_id, keys)
        self._by_id[doc_id] = (table, document)
        return doc_id

    async def restore(
        self, table: str, document: Mapping[str, Any], *, system: bool = False
    ) -> None:
        """Engine-internal (snapshot import): insert ``document`` as a snapshot kept it, with
        its own ``_id`` (which must be an id of ``table`` that is not in use) and
        ``_creationTime``. Validated as any insert; ``INVALID_ARGUMENT`` otherwise. An engine
        table only with ``system`` (``_storage``'s rows)."""
        writer = self._require_writer()
        self.check_table(table, system=system)
        doc_id, creation = document.get("_id"), document.get("_creationTime")
        if not isinstance(doc_id, str) or self.schema.table_of_id(doc_id) != table:
            raise invalid_argument(f"{str(doc_id)[:64]!r} is not an id of {table}", "_id")
        if isinstance(creation, bool) or not isinstance(creation, int | float):
            raise invalid_argument("_creationTime must be a number", "_creationTime")
        if await self.get(doc_id, system=system) is not None:
            raise invalid_argument(f"{doc_id} is in use already", "_id")
        fields = {k: v for k, v in document.items() if k not in ("_id", "_creationTime")}
        self._checked(table, fields)
        self._count_write()
        restored: Document = {"_id": doc_id, "_creationTime": float(creation), **fields}
        encoded = self._encode_checked(restored)
        keys = self._keys(table, restored)
        await writer.insert(table, restored, keys, encoded=encoded)
        self._note_writes(doc_id, keys)
        self._by_id[doc_id] = (table, restored)

    async def _existing(self, doc_id: Any, *, system: bool) -> tuple[str, Document]:
        table = self.table_of(doc_id, system=system)
        current = await self.get(doc_id, system=system)
        if current is None:
            raise ConvexError(ErrorCode.NOT_FOUND, f"document {doc_id} does not exist", id=doc_id)
        return table, current

    async def _rewrite(self, table: str, old: Document, fields: Mapping[str, Any]) -> None:
        writer = self._require_writer()
        self._checked(table, fields)
        self._count_write()
        document: Document = {"_id": old["_id"], "_creationTime": old["_creationTime"], **fields}
        encoded = self._encode_checked(document)
        old_keys, new_keys = self._keys(table, old), self._keys(table, document)
        await writer.replace(table, document, old_keys, new_keys, encoded=encoded)
        self._note_writes(document["_id"], old_keys, new_keys)
        self._by_id[document["_id"]] = (table, document)

    async def patch(self, doc_id: Any, fields: Mapping[str, Any], *, system: bool) -> None:
        """Shallow-merge ``fields`` (``REMOVE`` deletes one) and buffer the validated result."""
        self._require_writer()
        if not isinstance(fields, Mapping):
            raise invalid_argument("patch() takes an object of fields", "value")
        for key in fields:
            if key in ("_id", "_creationTime"):
                raise invalid_argument(f"{key} cannot be changed", key)
        table, current = await self._existing(doc_id, system=system)
        merged = {k: v for k, v in current.items() if not k.startswith("_")}
        for key, value in fields.items():
            if value is REMOVE:
                merged.pop(key, None)
            else:
                merged[key] = value
        await self._rewrite(table, current, merged)

    async def replace(
        self, doc_id: Any, fields: Mapping[str, Any], *, system: bool, known: Document | None = None
    ) -> None:
        """Buffer the document's new fields, whole (``_id`` and ``_creationTime`` kept)."""
        self._require_writer()
        if known is not None and known.get("_id") == doc_id:
            # Engine code that has just read the document in this transaction: no second read.
            table, current = self.table_of(doc_id, system=system), known
        else:
            table, current = await self._existing(doc_id, system=system)
        clean = {k: v for k, v in fields.items() if k not in ("_id", "_creationTime")}
        await self._rewrite(table, current, clean)

    async def delete(self, doc_id: Any, *, system: bool, known: Document | None = None) -> None:
        """Buffer the document's deletion (``known``: the document, when just read)."""
        writer = self._require_writer()
        if known is not None and known.get("_id") == doc_id:
            # Engine code that has just read the document in this transaction: no second read.
            table, current = self.table_of(doc_id, system=system), known
        else:
            table, current = await self._existing(doc_id, system=system)
        self._count_write()
        keys = self._keys(table, current)
        await writer.delete(table, doc_id, keys)
        self._note_writes(doc_id, keys)
        self._by_id[doc_id] = (table, None)


_FLAT = (str, int, float, bool, bytes, type(None))


def _copy(document: Document | None) -> Document | None:
    """A copy the caller may change without changing what this transaction has seen."""
    if document is None:
        return None
    return {k: v if isinstance(v, _FLAT) else copy.deepcopy(v) for k, v in document.items()}


class SystemTableReader:
    """``ctx.db.system``: the engine's tables that app code may read, read-only, as Convex shows
    them (``_scheduled_functions``: ``{_id, _creationTime, name, args: [...], scheduledTime,
    completedTime?, state: {kind, error?}}``). Reads join the read set like any other, so a
    live query over them re-runs when they change. Every other engine table (sessions, grants,
    codes, audit, rate limits, ...) is refused with ``INVALID_ARGUMENT``, as an unknown table.
    """

    def __init__(self, txn: Transaction) -> None:
        self._txn = txn

    def _view(self, table: Any) -> SystemView:
        view = self._txn.schema.views.get(table) if isinstance(table, str) else None
        if view is None:
            raise invalid_argument(f"unknown system table {str(table)[:64]!r}", "table")
        return view

    async def get(self, table_or_id: str, doc_id: str | None = None) -> Document | None:
        """The document with this id (``get(id)``, or Convex's ``get(table, id)``), or None.
        Raises ``INVALID_ARGUMENT`` for an id of any other table."""
        if doc_id is None:
            doc_id = table_or_id
            table = self._txn.schema.table_of_id(doc_id)
        else:
            table = table_or_id
            if self._txn.schema.table_of_id(doc_id) != table:
                raise invalid_argument(f"{str(doc_id)[:64]!r} is not an id of {table!r}", "id")
        if table is None or table not in self._txn.schema.views:
            raise invalid_argument(
                f"{str(doc_id)[:64]!r} is not an id of a readable system table", "id"
            )
        view = self._view(table)
        found = await self._txn.get(doc_id, system=True)
        return None if found is None else view.shape(found)

    def query(self, table: str) -> QueryBuilder:
        """A query over a readable system table (``by_creation_time`` is its index)."""
        view = self._view(table)
        return QueryBuilder(self._txn, table, view)


class DatabaseReader:
    """``ctx.db`` in a query: ``get``, ``query``, and ``system`` (the engine's tables an app may
    read). The engine's own tables are otherwise out of reach."""

    _system = False

    def __init__(self, txn: Transaction) -> None:
        self._txn = txn

    @property
    def system(self) -> SystemTableReader:
        """Read-only access to ``_scheduled_functions`` (and the engine's other app-readable
        tables), in Convex's shapes: ``ctx.db.system.get(id)``, ``ctx.db.system.query(t)``."""
        return SystemTableReader(self._txn)

    async def get(self, doc_id: str) -> Document | None:
        """The document with this id, or None. Raises ``INVALID_ARGUMENT`` for a non-id."""
        return await self._txn.get(doc_id, system=self._system)

    def query(self, table: str) -> QueryBuilder:
        """A query over ``table``; see ``QueryBuilder``. ``INVALID_ARGUMENT`` for a table the
        schema does not declare (or one of the engine's)."""
        return self._txn.query(table, system=self._system)


class DatabaseWriter(DatabaseReader):
    """``ctx.db`` in a mutation: reads plus ``insert``, ``patch``, ``replace``, ``delete``.

    Every write is validated against the schema (``INVALID_ARGUMENT`` naming the field) and
    checked against the limits (``LIMIT_EXCEEDED``); a failed write leaves nothing behind
    once the mutation fails.
    """

    async def insert(self, table: str, document: Mapping[str, Any]) -> str:
        """Insert a document and return its new ``_id``. The document is validated against
        the table's schema (``INVALID_ARGUMENT`` with the path of the bad field) and the
        transaction's limits (``LIMIT_EXCEEDED`` for too many writes or too large a
        document); a failed call writes nothing."""
        return await self._txn.insert(table, document, system=self._system)

    async def patch(self, doc_id: str, fields: Mapping[str, Any]) -> None:
        """Shallow-merge ``fields`` into the document (``REMOVE`` as a value deletes a field).
        ``NOT_FOUND`` for a document that does not exist; the result is validated as by
        ``insert``; patching ``_id`` or ``_creationTime`` is ``INVALID_ARGUMENT``."""
        await self._txn.patch(doc_id, fields, system=self._system)

    async def replace(self, doc_id: str, document: Mapping[str, Any]) -> None:
        """Replace the document's fields whole (``_id`` and ``_creationTime`` are kept).
        ``NOT_FOUND`` and validation as for ``patch``."""
        await self._txn.replace(doc_id, document, system=self._system)

    async def delete(self, doc_id: str) -> None:
        """Delete the document. Raises ``NOT_FOUND`` if it does not exist."""
        await self._txn.delete(doc_id, system=self._system)


class SystemDatabase(DatabaseWriter):
    """The engine's own access, including its ``_`` tables. Never given to function code."""

    _system = True

    @property
    def txn(self) -> Transaction:
        """The transaction underneath (engine code that needs its read or write set)."""
        return self._txn

    async def delete_read(self, document: Document) -> None:
        """Delete a document this transaction has just read (saves reading it again)."""
        await self._txn.delete(document["_id"], system=True, known=document)

    @property
    def now_ms(self) -> float:
        """The transaction's frozen time, in milliseconds since the epoch."""
        return to_ms(self._txn.now)
