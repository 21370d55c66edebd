"""Document ids: opaque, unguessable strings that still say which table they belong to.

An id is 16 random bytes followed by a 4-byte tag of the table name, in lowercase base32
without padding (32 characters). The random part makes ids unguessable; the tag lets the engine
check ``Id["orgs"]`` arguments and route ``db.get(id)`` without a database round trip, and lets
it refuse an id of a system table handed to an app function.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re

ID_LENGTH = 32
_RANDOM_BYTES = 16
_TAG_BYTES = 4


@functools.lru_cache(maxsize=1024)
def table_tag(table: str) -> bytes:
    """The 4-byte tag of ``table``'s name (a schema has a few dozen tables: remembered)."""
    return hashlib.blake2s(table.encode("utf-8"), digest_size=_TAG_BYTES).digest()


def make_id(table: str, random_bytes: bytes) -> str:
    if len(random_bytes) != _RANDOM_BYTES:
        raise ValueError("an id needs 16 random bytes")
    raw = random_bytes + table_tag(table)
    return base64.b32encode(raw).decode("ascii").rstrip("=").lower()


# 20 bytes are exactly 32 base32 characters (no padding, no unused bits), so any 32 characters
# of the lowercase alphabet are one id's canonical text, and its last 8 characters are its last
# 5 bytes: one random byte, then the tag
_ID_TEXT = re.compile(r"[a-z2-7]{32}")


def id_tag(doc_id: object) -> bytes | None:
    """The table tag of a well-formed id, or None when ``doc_id`` is not an id at all."""
    if not isinstance(doc_id, str) or len(doc_id) != ID_LENGTH or not _ID_TEXT.fullmatch(doc_id):
        return None
    return base64.b32decode(doc_id[-8:].upper())[1:]


def make_raw_text(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def is_id_of(doc_id: object, table: str) -> bool:
    return id_tag(doc_id) == table_tag(table)
