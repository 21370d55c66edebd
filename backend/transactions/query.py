"""``ctx.db.query(table)``: index ranges, order, filters, and pagination.

A query walks one index (``by_creation_time`` unless ``with_index`` names another) in batches.
It records in the transaction's read set only the part of the range it walked, so a
``take(10)`` is not invalidated by a write past its tenth row.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from backend.errors import ConvexError, ErrorCode, invalid_argument
from backend.schema_definition import BY_CREATION_TIME, IndexDef, SystemView
from backend.values.index_key import KeyRange, encode_key, encode_value, prefix_end

if TYPE_CHECKING:
    from backend.transactions.transaction import Transaction

Document = dict[str, Any]
Predicate = Callable[[Document], bool | Awaitable[bool]]
_BATCH = 128


class IndexRange:
    """Built by the lambda given to ``with_index``: ``q.eq("orgId", x).gte("role", "a")``.

    ``eq`` must name the index's fields in order; then one lower bound (``gt``/``gte``) and one
    upper bound (``lt``/``lte``) may follow, on the next field.
    """

    def __init__(self, index: IndexDef) -> None:
        self._index = index
        self._fields = (*index.fields, "_creationTime", "_id")
        self._eq: list[Any] = []
        self._range_field: str | None = None
        self._lower: tuple[Any, bool] | None = None
        self._upper: tuple[Any, bool] | None = None

    def _expect(self, field: str, op: str) -> None:
        position = len(self._eq)
        if position >= len(self._fields) or self._fields[position] != field:
            expected = self._fields[position] if position < len(self._fields) else "nothing"
            raise invalid_argument(
                f"index {self._index.name!r}: {op}({field!r}) out of order; expected {expected!r}",
                field,
            )

    def eq(self, field: str, value: Any) -> IndexRange:
        """Limit the walk to ``field == value``. Fields are named in the index's order (then
        ``_creationTime``, ``_id``); ``INVALID_ARGUMENT`` for a field out of that order or an
        ``eq`` after a range bound."""
        if self._range_field is not None:
            raise invalid_argument("eq() cannot follow a range bound", field)
        self._expect(field, "eq")
        self._eq.append(value)
        return self

    def _bound(self, field: str, value: Any, op: str) -> IndexRange:
        if self._range_field is None:
            self._expect(field, op)
            self._range_field = field
        elif self._range_field != field:
            raise invalid_argument("range bounds must be on one field", field)
        lower = op in ("gt", "gte")
        if (self._lower if lower else self._upper) is not None:
            raise invalid_argument(f"a second {'lower' if lower else 'upper'} bound", field)
        if lower:
            self._lower = (value, op == "gte")
        else:
            self._upper = (value, op == "lte")
        return self

    def gt(self, field: str, value: Any) -> IndexRange:
        """A lower bound ``field > value`` on the field after the equalities; at most one lower
        bound, and both bounds on one field (``INVALID_ARGUMENT`` otherwise)."""
        return self._bound(field, value, "gt")

    def gte(self, field: str, value: Any) -> IndexRange:
        """A lower bound ``field >= value`` (the rules of ``gt``)."""
        return self._bound(field, value, "gte")

    def lt(self, field: str, value: Any) -> IndexRange:
        """An upper bound ``field < value`` on the range field; at most one upper bound."""
        return self._bound(field, value, "lt")

    def lte(self, field: str, value: Any) -> IndexRange:
        """An upper bound ``field <= value`` (the rules of ``lt``)."""
        return self._bound(field, value, "lte")

    def key_range(self) -> KeyRange:
        """The encoded key range these bounds describe. ``INVALID_ARGUMENT`` for a value that
        cannot be an index key."""
        try:
            prefix = encode_key(self._eq)
            start, end = prefix, prefix_end(prefix) if prefix else None
            if self._lower is not None:
                value, inclusive = self._lower
                bound = prefix + encode_value(value)
                start = bound if inclusive else (prefix_end(bound) or bound)
            if self._upper is not None:
                value, inclusive = self._upper
                bound = prefix + encode_value(value)
                end = prefix_end(bound) if inclusive else bound
        except TypeError as exc:
            raise invalid_argument(str(exc), self._range_field) from None
        return KeyRange(start, end)


def _cursor_tag(index_name: str) -> bytes:
    return hashlib.blake2s(index_name.encode(), digest_size=4).digest()


def encode_cursor(index_name: str, last_key: bytes | None) -> str:
    """``last_key=None`` is the cursor of an exhausted query."""
    payload = _cursor_tag(index_name) + (b"\x01" if last_key is None else b"\x00" + last_key)
    return base64.urlsafe_b64encode(payload).decode("ascii").rstrip("=")


def decode_cursor(index_name: str, cursor: str) -> bytes | None:
    """The key a cursor continues after, or None when the query was exhausted."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = base64.urlsafe_b64decode(padded.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        payload = b""
    if len(payload) < 5 or payload[:4] != _cursor_tag(index_name) or payload[4] not in (0, 1):
        raise ConvexError(
            ErrorCode.INVALID_ARGUMENT,
            "InvalidCursor: this cursor does not belong to this query",
            paginationError="InvalidCursor",
            isConvexSystemError=True,
        )
    return None if payload[4] == 1 else payload[5:]


class QueryBuilder:
    """A lazy query over one table. Nothing is read until a terminal method runs.

    With a ``view`` (an engine table app code reads through ``ctx.db.system``) every document
    is shown in the view's shape, filters see that shape, documents it hides are skipped, and
    only the view's indexes can be walked.
    """

    def __init__(self, txn: Transaction, table: str, view: SystemView | None = None) -> None:
        self._txn = txn
        self._table = table
        self._view = view
        self._index = txn.schema.index(table, BY_CREATION_TIME)
        self._descending = False
        self._filters: list[Predicate] = []
        self._indexed = False
        self._range = KeyRange.everything()

    def with_index(
        self,
        name: str,
        range_fn: Callable[[IndexRange], IndexRange] | None = None,
        /,
        **equal: Any,
    ) -> QueryBuilder:
        """Walk the index ``name``, limited by ``range_fn`` (or ``field=value`` equalities):
        ``.with_index("by_org", lambda q: q.eq("orgId", org).gte("role", "a"))``. Without it a
        query walks ``by_creation_time``. ``INVALID_ARGUMENT`` for an unknown index, a second
        ``with_index``, or a range function that does not return its builder."""
        if self._indexed:
            raise invalid_argument("with_index() may be called once per query", "index")
        self._indexed = True
        if self._view is not None and name not in self._view.indexes:
            raise invalid_argument(f"table {self._table!r} has no index {name!r}", "index")
        self._index = self._txn.schema.index(self._table, name)
        builder = IndexRange(self._index)
        for field, value in equal.items():
            builder.eq(field, value)
        if range_fn is not None:
            result = range_fn(builder)
            if not isinstance(result, IndexRange):
                raise invalid_argument("the index range function must return the builder", "index")
        self._range = builder.key_range()
        return self

    def order(self, direction: Literal["asc", "desc"]) -> QueryBuilder:
        """Walk the index ascending (the default) or descending. ``INVALID_ARGUMENT`` for any
        other direction."""
        if direction not in ("asc", "desc"):
            raise invalid_argument("order is 'asc' or 'desc'", "order")
        self._descending = direction == "desc"
        return self

    def filter(self, predicate: Predicate) -> QueryBuilder:
        """Keep documents for which ``predicate(doc)`` is true (evaluated after reading)."""
        self._filters.append(predicate)
        return self

    async def _matches(self, doc: Document) -> bool:
        for predicate in self._filters:
            outcome = predicate(doc)
            if not isinstance(outcome, bool):
                outcome = await outcome
            if not outcome:
                return False
        return True

    async def _fetch(
        self, remaining: KeyRange, limit: int
    ) -> tuple[list[tuple[bytes, Document]], bool]:
        """One batch of up to ``limit`` (key, doc) pairs from ``remaining``, and whether it is
        full (more may follow). The part of the range it covered joins the read set at once, so
        the read set is complete even when the caller stops early."""
        name = self._index.qualified_name
        batch = await self._txn.reader.scan(
            name, remaining, descending=self._descending, limit=limit
        )
        self._txn.count_reads(len(batch))
        full = len(batch) == limit
        if not full:
            read = remaining
        elif self._descending:
            read = KeyRange(batch[-1][0], remaining.end)
        else:
            read = KeyRange(remaining.start, batch[-1][0] + b"\x00")
        self._txn.read_set.add_range(name, read)
        return batch, full

    def _after(self, remaining: KeyRange, last: bytes) -> KeyRange:
        """What is left of ``remaining`` once the walk has reached ``last``."""
        if self._descending:
            return KeyRange(remaining.start, last)
        return KeyRange(last + b"\x00", remaining.end)

    async def _walk(
        self, key_range: KeyRange, want: int | None, walk: _Walk | None = None
    ) -> AsyncIterator[tuple[bytes, Document]]:
        """Yield up to ``want`` (key, doc) pairs that pass the filters.

        Filters run one document at a time, as the caller asks for the next (a filter may read,
        and what it reads joins the read set).
        """
        remaining = key_range
        matched = 0
        sparse = bool(self._filters) or self._view is not None  # a batch may yield fewer
        while want is None or matched < want:
            limit = _BATCH if (sparse or want is None) else min(_BATCH, want - matched)
            batch, full = await self._fetch(remaining, limit)
            for key, stored in batch:
                if walk is not None:
                    walk.last_key = key
                doc = stored if self._view is None else self._view.shape(stored)
                if doc is None:
                    continue
                if not self._filters or await self._matches(doc):
                    matched += 1
                    yield key, doc
                    if want is not None and matched >= want:
                        return
            if not full:
                if walk is not None:
                    walk.exhausted = True
                return
            remaining = self._after(remaining, batch[-1][0])

    async def _take(self, n: int | None) -> list[Document]:
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 0):
            raise invalid_argument("take() needs a non-negative integer", "n")
        if n == 0:
            return []
        if self._filters or self._view is not None:
            return [doc async for _key, doc in self._walk(self._range, n)]
        # Without filters every document fetched is taken: the same batches and the same read
        # set as ``_walk``, without stepping an async generator once per document.
        docs: list[Document] = []
        remaining = self._range
        while n is None or len(docs) < n:
            limit = _BATCH if n is None else min(_BATCH, n - len(docs))
            batch, full = await self._fetch(remaining, limit)
            docs.extend(doc for _key, doc in batch)
            if not full:
                break
            remaining = self._after(remaining, batch[-1][0])
        return docs

    async def collect(self) -> list[Document]:
        """Every matching document, in index order."""
        return await self._take(None)

    async def take(self, n: int) -> list[Document]:
        """The first ``n`` matching documents in index order (fewer if the range runs out).
        ``INVALID_ARGUMENT`` for a negative or non-integer ``n``."""
        return await self._take(n)

    async def first(self) -> Document | None:
        """The first matching document in index order, or None."""
        found = await self._take(1)
        return found[0] if found else None

    async def unique(self) -> Document | None:
        """The only matching document, None if none; more than one is an error."""
        found = await self._take(2)
        if len(found) > 1:
            raise invalid_argument(f"unique() found more than one document in {self._table!r}")
        return found[0] if found else None

    def __aiter__(self) -> AsyncIterator[Document]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Document]:
        async for _key, doc in self._walk(self._range, None):
            yield doc

    async def paginate(
        self,
        num_items: int | Mapping[str, Any],
        cursor: str | None = None,
        *,
        end_cursor: str | None = None,
    ) -> dict[str, Any]:
        """One page in Convex's shape: ``{page, isDone, continueCursor}``.

        Takes ``num_items`` and ``cursor``, or the client's ``paginationOpts`` object as is.
        With ``end_cursor`` the page runs exactly up to that position, whatever its size, so a
        re-run of a page never shifts or overlaps its neighbours as rows come and go.
        """
        if isinstance(num_items, Mapping):
            opts = num_items
            cursor = opts.get("cursor")
            end_cursor = opts.get("endCursor")
            num_items = opts.get("numItems")  # type: ignore[assignment]
        if not isinstance(num_items, int | float) or isinstance(num_items, bool) or num_items < 0:
            raise invalid_argument("numItems must be a non-negative number", "numItems")
        for name_, value in (("cursor", cursor), ("endCursor", end_cursor)):
            if value is not None and not isinstance(value, str):
                raise invalid_argument(f"{name_} must be a string or null", name_)
        count: int | None = min(int(num_items), self._txn.limits.max_take)
        name = self._index.qualified_name
        key_range = self._range
        position = decode_cursor(name, cursor) if cursor is not None else _START
        if position is None:
            return {"page": [], "isDone": True, "continueCursor": encode_cursor(name, None)}
        if position is not _START:
            key_range = (
                key_range.intersect(KeyRange(b"", position))
                if self._descending
                else key_range.intersect(KeyRange(position + b"\x00", None))
            )
        if end_cursor is None and self._txn.journal_in is not None:
            end_cursor = self._txn.journal_in
        if end_cursor is not None:
            until = decode_cursor(name, end_cursor)
            if until is not None:
                key_range = (
                    key_range.intersect(KeyRange(until, None))
                    if self._descending
                    else key_range.intersect(KeyRange(b"", until + b"\x00"))
                )
            count = None
        if count == 0:
            return {
                "page": [],
                "isDone": False,
                "continueCursor": cursor or encode_cursor(name, b""),
            }
        walk = _Walk()
        page = [doc async for _key, doc in self._walk(key_range, count, walk)]
        if end_cursor is not None:
            done, continue_cursor = walk.exhausted and until is None, end_cursor
        elif walk.exhausted:
            done, continue_cursor = True, encode_cursor(name, None)
        else:
            done, continue_cursor = False, encode_cursor(name, walk.last_key)
        self._txn.journal_out = continue_cursor
        return {"page": page, "isDone": done, "continueCursor": continue_cursor}


_START: Any = object()


class _Walk:
    """What a walk saw: the last key it examined and whether it ran off the range's end."""

    __slots__ = ("exhausted", "last_key")

    def __init__(self) -> None:
        self.exhausted = False
        self.last_key: bytes | None = None
