"""``FileStorage``: the engine's file storage service, its URLs and what it does in a
transaction. Registered on the engine by ``install_storage``; ``ctx.storage`` (``api.py``) and
the HTTP endpoints (``backend/http/storage_routes.py``) both go through it.

URLs are at the deployment's origin, as Convex's are:

- an upload URL is ``/api/storage/upload?token=T``: ``T`` is 256 random bits, stored only as
  its keyed hash with an expiry (``UPLOAD_URL_LIFETIME``, an hour as in Convex), and spent by
  the upload that records a file;
- a file's URL is ``/api/storage/<id>?sig=S``, ``S`` a MAC of the id under the server secret:
  the URL is a capability that only ``get_url`` hands out, so knowing a storage id (often
  shown to every client, as the file-storage demo's messages do) does not open the file.
  It does not expire, as Convex's do not; deleting the file ends it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from backend.errors import ConvexError, ErrorCode, invalid_argument
from backend.files.blobs import BlobStore, LocalDiskBlobs, WrittenBlob
from backend.files.tables import TABLE, UPLOADS
from backend.runtime import to_ms
from backend.transactions.transaction import SystemDatabase
from backend.udf import jobs

if TYPE_CHECKING:
    from backend.engine import Engine

DEFAULT_ROOT: Final = Path("data") / "storage"
DEFAULT_MAX_BYTES: Final = 2 * 1024**3
UPLOAD_URL_LIFETIME: Final = timedelta(hours=1)
DELETE_PATH: Final = "_system/storage:deleteBlob"
_INFO: Final = b"stepup/files/url-keys/v1"
# A media type as RFC 9110 writes one (type "/" subtype, optional parameters), short enough to
# store; anything else is refused rather than served back as a header.
_MEDIA_TYPE: Final = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(\s*;[ -~]*)?$")
MAX_CONTENT_TYPE: Final = 255


@dataclass(frozen=True)
class StoredBlob:
    """A file's row, as the serving endpoint needs it."""

    key: str
    size: int
    content_type: str | None
    sha256: str


class FileStorage:
    """The engine's file storage (see the module's docstring)."""

    def __init__(
        self,
        blobs: BlobStore,
        secret_key: str,
        base_url: str,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        upload_url_lifetime: timedelta = UPLOAD_URL_LIFETIME,
    ) -> None:
        if not secret_key:
            raise ValueError("file storage needs the server's SECRET_KEY")
        self.blobs = blobs
        self.base_url = base_url.rstrip("/")
        self.max_bytes = max_bytes
        self.upload_url_lifetime = upload_url_lifetime
        self._key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
            secret_key.encode("utf-8")
        )

    def __repr__(self) -> str:
        return f"FileStorage({self.blobs!r}, base_url={self.base_url!r})"

    def _mac(self, purpose: str, value: str) -> str:
        digest = hmac.new(self._key, f"{purpose}\0{value}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")

    def token_hash(self, token: str) -> str:
        return self._mac("upload-token", token)

    def url_signature(self, storage_id: str) -> str:
        return self._mac("file-url", storage_id)

    def signature_ok(self, storage_id: str, signature: str) -> bool:
        return hmac.compare_digest(
            self.url_signature(storage_id).encode("ascii"),
            signature.encode("ascii", "replace"),
        )

    def file_url(self, storage_id: str) -> str:
        return f"{self.base_url}/api/storage/{storage_id}?sig={self.url_signature(storage_id)}"

    def upload_url(self, token: str) -> str:
        return f"{self.base_url}/api/storage/upload?token={quote(token)}"

    # ---- inside a transaction -----------------------------------------------------------

    async def issue_upload_url(self, db: SystemDatabase) -> str:
        """A fresh upload URL, its token recorded (hashed) in ``db``'s transaction."""
        token = base64.urlsafe_b64encode(db.txn.runtime.random.token_bytes(32)).decode()
        token = token.rstrip("=")
        expires = to_ms(db.txn.now + self.upload_url_lifetime)
        await db.insert(UPLOADS, {"tokenHash": self.token_hash(token), "expiresAt": expires})
        return self.upload_url(token)

    async def live_token(self, db: SystemDatabase, token: str) -> dict[str, Any] | None:
        """The unexpired, unspent token row behind ``token``, or None."""
        if not token or len(token) > 128:
            return None
        hashed = self.token_hash(token)
        row = await db.query(UPLOADS).with_index("by_hash", tokenHash=hashed).first()
        if row is None or float(row["expiresAt"]) <= db.now_ms:
            return None
        return row

    async def record_upload(
        self, db: SystemDatabase, token: str | None, blob: WrittenBlob, content_type: str | None
    ) -> str:
        """Spend ``token`` (None: an action's ``store``) and record ``blob``; its id.
        ``INVALID_TOKEN`` when the token is unknown, expired or spent already."""
        if token is not None:
            row = await self.live_token(db, token)
            if row is None:
                raise ConvexError(ErrorCode.INVALID_TOKEN, "The upload URL is invalid or expired")
            await db.delete_read(row)
        fields: dict[str, Any] = {
            "sha256": base64.b64encode(bytes.fromhex(blob.sha256)).decode("ascii"),
            "size": blob.size,
            "blobKey": blob.key,
        }
        if content_type is not None:
            fields["contentType"] = content_type
        return await db.insert(TABLE, fields)

    async def stored(self, db: SystemDatabase, storage_id: Any) -> dict[str, Any] | None:
        """The ``_storage`` row of ``storage_id``; None for a missing file. Raises
        ``INVALID_ARGUMENT`` for anything that is not a storage id."""
        if db.txn.schema.table_of_id(storage_id) != TABLE:
            raise invalid_argument(f"{str(storage_id)[:64]!r} is not a storage id", "storageId")
        return await db.get(storage_id)

    async def url_of(self, db: SystemDatabase, storage_id: Any) -> str | None:
        row = await self.stored(db, storage_id)
        return None if row is None else self.file_url(row["_id"])

    async def delete(self, engine: Engine, db: SystemDatabase, storage_id: Any) -> None:
        """Delete the row now and its blob once this transaction commits (a job in the same
        transaction; the sweeper catches a blob whose deletion failed)."""
        row = await self.stored(db, storage_id)
        if row is None:
            raise ConvexError(ErrorCode.NOT_FOUND, "no such file in storage")
        await db.delete_read(row)
        await jobs.enqueue(engine, db, db.txn.now, DELETE_PATH, {"key": row["blobKey"]})

    async def serveable(self, db: SystemDatabase, storage_id: str) -> StoredBlob | None:
        if db.txn.schema.table_of_id(storage_id) != TABLE:
            return None
        row = await db.get(storage_id)
        if row is None:
            return None
        return StoredBlob(row["blobKey"], int(row["size"]), row.get("contentType"), row["sha256"])


def checked_content_type(value: str | None) -> str | None:
    """A client's ``Content-Type``, or None for none; ``INVALID_ARGUMENT`` for one that is
    not a media type."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if len(value) > MAX_CONTENT_TYPE or not _MEDIA_TYPE.match(value):
        raise invalid_argument("Content-Type is not a media type", "contentType")
    return value


def install_storage(
    engine: Engine,
    secret_key: str,
    base_url: str,
    *,
    blobs: BlobStore | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> FileStorage:
    """Give ``engine`` its file storage (by default on local disk under ``./data/storage``).
    Servers and the test harness call this where they set up the engine's other secrets."""
    storage = FileStorage(
        blobs or LocalDiskBlobs(DEFAULT_ROOT), secret_key, base_url, max_bytes=max_bytes
    )
    return engine.services.register(FileStorage, storage)
