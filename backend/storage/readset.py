"""Read sets and write sets: what an execution read, and what a commit touched.

A query's read set is the documents it fetched by id and the index key ranges it scanned (only
the part of a range it actually walked: a ``take(10)`` reads up to its tenth key, not the whole
index). A commit's write set is the ids it wrote and, for every index of every written
document, the key before and the key after the write. A commit invalidates a read set exactly
when they share an id or a written key falls inside a read range: moving a document out of a
range counts, because its old key is in the write set.

The same test decides both reactivity (a subscription re-runs) and optimistic concurrency (a
mutation whose read set a commit after its snapshot invalidated is re-run, ``storage/occ.py``):
``conflict`` also says where they met, for the log and for the retry's place in line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from backend.values.index_key import KeyRange


@dataclass(frozen=True)
class ReadConflict:
    """Where a commit met a read set: ``reason`` for people, ``key`` names the document or the
    read range (its index and start), the same on every attempt of the same function."""

    reason: str
    key: str


@dataclass
class ReadSet:
    ids: set[str] = field(default_factory=set)
    ranges: dict[str, list[KeyRange]] = field(default_factory=dict)

    def add_id(self, doc_id: str) -> None:
        self.ids.add(doc_id)

    def add_range(self, index_name: str, key_range: KeyRange) -> None:
        if not key_range.is_empty():
            self.ranges.setdefault(index_name, []).append(key_range)

    def overlaps(self, writes: WriteSet) -> bool:
        if not self.ids.isdisjoint(writes.ids):
            return True
        for index_name, keys in writes.keys.items():
            ranges = self.ranges.get(index_name)
            if ranges and any(r.contains(k) for k in keys for r in ranges):
                return True
        return False

    def conflict(self, writes: WriteSet) -> ReadConflict | None:
        """Where ``writes`` meets this read set (the first place found), or None."""
        common = self.ids & writes.ids
        if common:
            doc_id = min(common)
            return ReadConflict(f"document {doc_id}", f"doc:{doc_id}")
        for index_name, keys in writes.keys.items():
            for r in self.ranges.get(index_name, ()):
                for k in keys:
                    if r.contains(k):
                        end = "" if r.end is None else r.end.hex()
                        return ReadConflict(
                            f"index {index_name} range [{r.start.hex()}, {end}) key {k.hex()}",
                            f"range:{index_name}:{r.start.hex()}",
                        )
        return None

    def size(self) -> int:
        return len(self.ids) + sum(len(r) for r in self.ranges.values())


# ``json.dumps`` with options builds an encoder per call; this one is built once.
_COMPACT = json.JSONEncoder(separators=(",", ":"))


@dataclass
class WriteSet:
    ids: set[str] = field(default_factory=set)
    keys: dict[str, set[bytes]] = field(default_factory=dict)

    def add_key(self, index_name: str, key: bytes) -> None:
        self.keys.setdefault(index_name, set()).add(key)

    def is_empty(self) -> bool:
        return not self.ids

    def touches(self, table: str) -> bool:
        """Whether a document of ``table`` was written: every write notes the keys of all its
        table's indexes, ``by_id`` among them, under names qualified by the table."""
        prefix = table + "."
        return any(name.startswith(prefix) for name in self.keys)

    def to_json(self) -> str:
        return _COMPACT.encode(
            {
                "ids": sorted(self.ids),
                "keys": {name: sorted(k.hex() for k in keys) for name, keys in self.keys.items()},
            }
        )

    @classmethod
    def from_json(cls, text: str) -> WriteSet:
        data = json.loads(text)
        return cls(
            ids=set(data["ids"]),
            keys={name: {bytes.fromhex(k) for k in keys} for name, keys in data["keys"].items()},
        )

    @classmethod
    def union(cls, sets: Iterable[WriteSet]) -> WriteSet:
        out = cls()
        for ws in sets:
            out.ids |= ws.ids
            for name, keys in ws.keys.items():
                out.keys.setdefault(name, set()).update(keys)
        return out
