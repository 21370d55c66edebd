"""File storage's tables: ``_storage`` (one document per file) and its upload tokens.

A ``_storage`` document is Convex's (``_id``, ``_creationTime``, ``sha256``, ``size``,
``contentType``) plus the key of its blob, which app code never sees: ``VIEW`` leaves it out.
``sha256`` is the base64 of the file's SHA-256 digest, as in Convex.

An upload URL carries a random token; the table keeps only its keyed hash (HMAC-SHA256 under
the server's secret) and its expiry, so a copy of the database holds no usable URL. A token
is spent by the transaction that records the file, so it uploads one file at most.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from backend.schema_definition import SystemView, TableDef, table

TABLE = "_storage"
UPLOADS = "_storage_uploads"


class StoredFile(BaseModel):
    sha256: str
    size: int
    contentType: str | None = None
    blobKey: str


class UploadToken(BaseModel):
    tokenHash: str
    expiresAt: float


TABLES: dict[str, TableDef] = {
    TABLE: table(StoredFile).index("by_blob", "blobKey"),
    UPLOADS: table(UploadToken).index("by_hash", "tokenHash").index("by_expiry", "expiresAt"),
}


def public_file(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A ``_storage`` document as Convex shows it: ``{_id, _creationTime, contentType?,
    sha256, size}``."""
    shown: dict[str, Any] = {"_id": stored["_id"], "_creationTime": stored["_creationTime"]}
    if stored.get("contentType") is not None:
        shown["contentType"] = stored["contentType"]
    shown["sha256"] = stored["sha256"]
    shown["size"] = stored["size"]
    return shown


VIEW = SystemView(shape=public_file)
"""``_storage`` as app code reads it (registered in ``backend/system.py``)."""
