"""The sweeper: blobs with no ``_storage`` row, and upload tokens past their expiry, removed.

A blob is written and made visible before its row is committed, and deleted after its row
is; so a crash (or a failed delete) can leave a blob without a row, never a row without its
blob. Every so often the sweeper lists the blobs older than a grace period (longer than any
upload takes from the blob's completion to its row's commit) and deletes those that no row
names, and drops unfinished writes as old. It also deletes spent-by-time upload tokens. Any
server may run it; two at once only delete the same orphans twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

from backend.files.tables import TABLE, UPLOADS
from backend.storage.store import StoreUnavailable
from backend.transactions.transaction import SystemDatabase

if TYPE_CHECKING:
    from backend.engine import Engine

log = logging.getLogger("backend.files.sweeper")
GRACE: Final = timedelta(hours=1)
EVERY: Final = timedelta(minutes=10)
_BATCH: Final = 200


@dataclass(frozen=True)
class Swept:
    orphans: int
    parts: int
    tokens: int


async def sweep(
    engine: Engine, *, grace: timedelta = GRACE, wall_now: datetime | None = None
) -> Swept:
    """One sweep. Blob ages are the blob store's (wall-clock) times, ``wall_now`` by default
    the system clock's; token expiry is the engine's clock."""
    from backend.files.service import FileStorage

    files = engine.services.get(FileStorage)
    horizon = (wall_now or datetime.now(UTC)) - grace
    candidates = [key async for key in files.blobs.keys_older_than(horizon)]
    orphans = 0
    for start in range(0, len(candidates), _BATCH):
        batch = candidates[start : start + _BATCH]

        async def unnamed(db: SystemDatabase, batch: list[str] = batch) -> list[str]:
            found = []
            for key in batch:
                if await db.query(TABLE).with_index("by_blob", blobKey=key).first() is None:
                    found.append(key)
            return found

        for key in await engine.system_read(unnamed):
            await files.blobs.delete(key)
            orphans += 1
    parts = await files.blobs.remove_stale_parts(horizon)

    async def expire(db: SystemDatabase) -> int:
        now = db.now_ms
        expired = db.query(UPLOADS).with_index("by_expiry", lambda q: q.lte("expiresAt", now))
        rows = await expired.take(_BATCH)
        for row in rows:
            await db.delete_read(row)
        return len(rows)

    tokens = 0
    while True:
        removed, _ts = await engine.system_write(expire, label="_system/storage:sweep")
        tokens += removed
        if removed < _BATCH:
            break
    if orphans or parts:
        log.info("removed %d blobs without a file row and %d unfinished uploads", orphans, parts)
    return Swept(orphans, parts, tokens)


async def sweep_forever(engine: Engine, every: timedelta = EVERY) -> None:
    while True:
        await engine.runtime.timers.sleep(every.total_seconds())
        try:
            await sweep(engine)
        except StoreUnavailable:
            pass
        except Exception:
            log.exception("the storage sweep failed; trying again later")
