"""``@migration``: a data migration over one table, one document at a time.

```python
from backend import DELETE, MutationCtx, migration

@migration("notes")
def fill_priority(note: dict) -> dict:
    if "priority" in note:                # already migrated: return it unchanged
        return note
    return {**note, "priority": "low"}

@migration("legacy_notes")
async def move_to_notes(ctx: MutationCtx, note: dict) -> object:
    await ctx.db.insert("notes", {"author": note["author"], "body": note["body"]})
    return DELETE                          # a rename of a table: copy, then delete
```

The body gets each document (with ``_id`` and ``_creationTime``) and returns its new value
(system fields are kept whatever it says), the same value for no change, or ``DELETE``. It
may take a ``MutationCtx`` first, to read or write other documents in the same transaction.
A migration is addressed like a function (``module:name``, from its place under the app's
functions package) and run with ``python -m backend migrations run [NAME]`` (``migrator.py``).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any


class _Delete:
    def __repr__(self) -> str:
        return "DELETE"


DELETE: Any = _Delete()
"""Return it from a migration's body to delete the document."""

Document = dict[str, Any]
Body = Callable[..., Any]


class Migration:
    """A registered data migration. Calling it calls the plain body."""

    def __init__(self, table: str, body: Body) -> None:
        if not isinstance(table, str) or not table or table.startswith("_"):
            raise TypeError("@migration takes the name of one of the app's tables")
        parameters = list(inspect.signature(body).parameters.values())
        if len(parameters) not in (1, 2):
            raise TypeError(f"{body.__qualname__} must take (doc) or (ctx, doc)")
        self.table = table
        self.body = body
        self.takes_ctx = len(parameters) == 2
        self.path: str | None = None
        self.__name__ = body.__name__
        self.__qualname__ = body.__qualname__
        self.__module__ = body.__module__
        self.__doc__ = body.__doc__
        self.__wrapped__ = body

    def __call__(self, *args: Any) -> Any:
        return self.body(*args)

    def __repr__(self) -> str:
        return f"<migration {self.path or self.__qualname__} over {self.table}>"

    async def apply(self, ctx: Any, document: Document) -> Document | Any:
        """The document's new value, or ``DELETE``."""
        result = self.body(ctx, document) if self.takes_ctx else self.body(document)
        if inspect.isawaitable(result):
            result = await result
        if result is DELETE:
            return DELETE
        if not isinstance(result, dict):
            raise TypeError(
                f"{self.path or self.__qualname__} returned {type(result).__name__}: a migration "
                "returns the document's new value (a dict), or DELETE"
            )
        return result


def migration(table: str) -> Callable[[Callable[..., Document | Any]], Migration]:
    """Declare a data migration over ``table``; see the module docstring."""

    def register(body: Callable[..., Document | Awaitable[Document] | Any]) -> Migration:
        if isinstance(body, Migration):
            raise TypeError(f"{body.__qualname__} is registered twice")
        return Migration(table, body)

    return register
