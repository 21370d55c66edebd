"""The engine's own functions for file storage: the job that removes a deleted file's bytes."""

from __future__ import annotations

from typing import Any

from backend.files.service import DELETE_PATH, FileStorage
from backend.udf.context import ActionCtx
from backend.udf.registry import internal_action
from backend.udf.system_context import engine_of


@internal_action
async def delete_blob(ctx: ActionCtx, key: str) -> None:
    """The engine's job that removes a deleted file's bytes."""
    await engine_of(ctx).services.get(FileStorage).blobs.delete(key)


FUNCTIONS: dict[str, Any] = {DELETE_PATH: delete_blob}
