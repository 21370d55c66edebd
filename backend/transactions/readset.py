"""Read sets and write sets (kept beside the store, which checks one against the other at
commit: ``backend/storage/readset.py``)."""

from backend.storage.readset import ReadSet, WriteSet

__all__ = ["ReadSet", "WriteSet"]
