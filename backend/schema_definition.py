"""Tables, fields and indexes, declared with pydantic models.

```python
from typing import Annotated
from pydantic import BaseModel
from backend import Id, define_schema, table

class Membership(BaseModel):
    orgId: Annotated[str, Id("orgs")]
    userId: str
    role: Literal["owner", "admin", "member"]

schema = define_schema(
    orgs=table(Org).index("by_name", "name"),
    memberships=table(Membership).index("by_org", "orgId", "role").index("by_user", "userId"),
)
```

Every document also has ``_id`` and ``_creationTime``; every table has the built-in index
``by_creation_time``, and an index orders by its fields, then ``_creationTime``, then ``_id``.
Tables whose names start with ``_`` belong to the engine (users, sessions, scheduled functions,
...) and are out of reach of app functions.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, PydanticUserError, ValidationError
from pydantic_core import core_schema

from backend.errors import ConvexError, ErrorCode, invalid_argument
from backend.values.ids import is_id_of, table_tag
from backend.values.index_key import MISSING, encode_value

SYSTEM_FIELDS = ("_id", "_creationTime")
BY_CREATION_TIME = "by_creation_time"
BY_ID = "by_id"


@dataclass(frozen=True)
class Id:
    """Field metadata: the string is the ``_id`` of a document in ``table``.

    Use as ``Annotated[str, Id("orgs")]``; a value that is not an id of that table fails
    validation with ``INVALID_ARGUMENT``.
    """

    table: str

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        def check(value: Any) -> Any:
            if not is_id_of(value, self.table):
                raise ValueError(f"expected an id of table {self.table!r}")
            return value

        return core_schema.no_info_after_validator_function(check, handler(source))


@dataclass(frozen=True)
class IndexDef:
    table: str
    name: str
    fields: tuple[str, ...]
    # Where its entries live (``index_entries.index_name``). The deployed schema assigns it:
    # ``table.name`` for an index's first definition, another name for a redefinition, which
    # is built beside the old one while the old app still reads it (storage/deploy.py).
    storage: str | None = None

    # each field path split once: a key is computed for every index of every document written
    _parts: tuple[tuple[str, ...], ...] = field(init=False, repr=False, compare=False)
    _single: str | None = field(init=False, repr=False, compare=False)  # one top-level field

    def __post_init__(self) -> None:
        parts = tuple(tuple(p.split(".")) for p in self.fields)
        object.__setattr__(self, "_parts", parts)
        object.__setattr__(
            self, "_single", parts[0][0] if len(parts) == 1 == len(parts[0]) else None
        )

    @property
    def declared_name(self) -> str:
        return f"{self.table}.{self.name}"

    @property
    def qualified_name(self) -> str:
        """The name its entries are stored, scanned and subscribed under."""
        return self.storage or f"{self.table}.{self.name}"

    def key_of(self, document: Mapping[str, Any]) -> bytes:
        return (
            self.key_prefix_of(document)
            + encode_value(document["_creationTime"])
            + encode_value(document["_id"])
        )

    def key_prefix_of(self, document: Mapping[str, Any]) -> bytes:
        """The key without its end, (``_creationTime``, ``_id``): the ``by_creation_time`` key
        of the document, which a backfill reading through that index has already."""
        if self._single is not None:
            return encode_value(document.get(self._single, MISSING))
        return b"".join(
            [
                encode_value(document.get(p[0], MISSING) if len(p) == 1 else _at(document, p))
                for p in self._parts
            ]
        )


def _at(document: Mapping[str, Any], parts: tuple[str, ...]) -> Any:
    current: Any = document
    for part in parts:
        if not isinstance(current, Mapping) or part not in current:
            return MISSING
        current = current[part]
    return current


def field_value(document: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted field path, or ``MISSING``."""
    current: Any = document
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return MISSING
        current = current[part]
    return current


@dataclass
class TableDef:
    """A table: its document model and its indexes. Built by ``table(Model)``."""

    model: type[BaseModel] | None
    indexes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    name: str = ""

    def index(self, name: str, *fields: str) -> TableDef:
        """Declare an index over ``fields`` (dotted paths allowed), in that order."""
        if not fields:
            raise TypeError(f"index {name!r} needs at least one field")
        if name in self.indexes or name in (BY_CREATION_TIME, BY_ID):
            raise TypeError(f"index {name!r} is declared twice or shadows a built-in index")
        if not name.isidentifier():
            raise TypeError(f"index name {name!r} must be an identifier")
        for path in fields:
            if path in SYSTEM_FIELDS:
                raise TypeError(f"index {name!r}: {path} is appended to every index already")
            if self.model is not None and path.split(".")[0] not in self.model.model_fields:
                raise TypeError(f"index {name!r} names unknown field {path!r}")
        self.indexes[name] = tuple(fields)
        return self


@dataclass(frozen=True)
class SystemView:
    """How app code sees one of the engine's tables through ``ctx.db.system``.

    ``shape`` turns a stored document into the document app code is shown (Convex's shape
    for that table), or None to keep it out of sight (the engine's own entries in a table it
    shares with the app). ``indexes`` are the indexes app code may walk: the stored fields of
    the others are the engine's, not the shape's. Nothing of a view can write.
    """

    shape: Callable[[Mapping[str, Any]], dict[str, Any] | None]
    indexes: frozenset[str] = frozenset({BY_CREATION_TIME})


def table(model: type[BaseModel] | None = None) -> TableDef:
    """Declare a table whose documents validate against ``model`` (None: any object)."""
    if model is not None:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError("table() takes a pydantic BaseModel subclass")
        clash = [name for name in model.model_fields if name.startswith(("_", "$"))]
        if clash:
            raise TypeError(
                f"{model.__name__}: field names must not start with '_' or '$': {clash}"
            )
    return TableDef(model)


class Schema:
    """The set of tables an engine serves: the app's and the engine's own.

    ``storage`` maps an index's declared name (``table.index``) to where its entries live,
    as the deployed schema says (``with_storage``); by default they live under that name.
    ``views`` are the engine's tables that app code may read (``ctx.db.system``), each with
    the shape it sees them in; every other ``_`` table is out of its reach.
    """

    def __init__(
        self,
        tables: Mapping[str, TableDef],
        *,
        storage: Mapping[str, str] | None = None,
        unavailable: Iterable[str] = (),
        views: Mapping[str, SystemView] | None = None,
    ) -> None:
        self.tables: dict[str, TableDef] = {}
        self.views: dict[str, SystemView] = dict(views or {})
        for name in self.views:
            if not name.startswith("_") or name not in tables:
                raise TypeError(f"a system view needs an engine table of that name: {name!r}")
        self.indexes: dict[str, IndexDef] = {}  # by declared name
        self._by_table: dict[str, list[IndexDef]] = {}
        self.storage = dict(storage or {})
        # declared indexes that are not deployed as declared: a query on one is refused
        self.unavailable = frozenset(unavailable)
        self._validators: dict[str, type[BaseModel]] = {}
        tags: dict[bytes, str] = {}
        for name, definition in tables.items():
            if not isinstance(definition, TableDef):
                raise TypeError(f"table {name!r} must be declared with table(Model)")
            if not name.replace("_", "a").isidentifier():
                raise TypeError(f"table name {name!r} must be an identifier")
            tag = table_tag(name)
            if tag in tags:  # pragma: no cover - a 1 in 2**32 accident per pair of names
                raise TypeError(f"tables {tags[tag]!r} and {name!r} share an id tag; rename one")
            tags[tag] = name
            definition.name = name
            self.tables[name] = definition
            own = self._by_table[name] = []
            for index_name, fields in {BY_CREATION_TIME: (), **definition.indexes}.items():
                declared = f"{name}.{index_name}"
                index = IndexDef(name, index_name, fields, self.storage.get(declared))
                self.indexes[declared] = index
                own.append(index)
            if definition.model is not None:
                self._validators[name] = _strict_copy(definition.model)
        self._table_by_tag = tags

    def merged(self, other: Schema) -> Schema:
        clash = set(self.tables) & set(other.tables)
        if clash:
            raise TypeError(f"tables declared twice: {sorted(clash)}")
        return Schema(
            {**self.tables, **other.tables},
            storage={**self.storage, **other.storage},
            views={**self.views, **other.views},
        )

    def with_storage(self, storage: Mapping[str, str], unavailable: Iterable[str] = ()) -> Schema:
        """This schema with its indexes' entries where ``storage`` says (declared → stored);
        the ``unavailable`` ones (not deployed as declared) refuse queries."""
        return Schema(self.tables, storage=storage, unavailable=unavailable, views=self.views)

    def table_of_id(self, doc_id: Any) -> str | None:
        from backend.values.ids import id_tag

        tag = id_tag(doc_id)
        return self._table_by_tag.get(tag) if tag is not None else None

    def indexes_of(self, table_name: str) -> list[IndexDef]:
        return self._by_table[table_name]

    def index(self, table_name: str, index_name: str) -> IndexDef:
        if table_name not in self.tables:
            raise invalid_argument(f"unknown table {table_name!r}", "table")
        found = self.indexes.get(f"{table_name}.{index_name}")
        if found is None:
            raise invalid_argument(f"table {table_name!r} has no index {index_name!r}", "index")
        if self.unavailable and found.declared_name in self.unavailable:
            raise ConvexError(
                ErrorCode.SCHEMA_OUTDATED,
                f"index {found.declared_name} is not deployed as this server's app declares it; "
                "the server must be restarted with the deployed app",
            )
        return found

    def validate(self, table_name: str, fields: Mapping[str, Any]) -> None:
        """Raise ``INVALID_ARGUMENT`` naming the first field that breaks the table's model."""
        for key in fields:
            if key.startswith("_"):
                raise invalid_argument(f"{key}: system fields cannot be written", key)
        validator = self._validators.get(table_name)
        if validator is None:
            return
        try:
            validator.model_validate(dict(fields), strict=True)
        except ValidationError as exc:
            first = exc.errors()[0]
            path = ".".join(str(p) for p in first["loc"])
            raise invalid_argument(f"{table_name}.{path}: {first['msg']}", path) from None

    def violation(self, table_name: str, document: Mapping[str, Any]) -> tuple[str, str] | None:
        """Why a stored document breaks its table's model: (field path, reason), or None."""
        validator = self._validators.get(table_name)
        if validator is None:
            return None
        fields = {k: v for k, v in document.items() if k not in SYSTEM_FIELDS}
        try:
            validator.model_validate(fields, strict=True)
        except ValidationError as exc:
            first = exc.errors()[0]
            return ".".join(str(p) for p in first["loc"]) or "(document)", first["msg"]
        return None

    def describe(self, table_name: str) -> str:
        """The table's fields as text: two schemas whose texts are equal accept the same
        documents, so a deploy revalidates a table only when its text changes. (A custom
        validator's code is not in the text: changing only that needs ``migrate --revalidate``.)"""
        return describe_fields(self.tables[table_name].model)


@functools.cache
def describe_fields(model: type[BaseModel] | None) -> str:
    """A stable description of a document model: its JSON Schema and each field's annotation
    and metadata (``Id("orgs")`` shows only there)."""
    if model is None:
        return json.dumps({"any": True})
    try:
        json_schema: Any = model.model_json_schema()
    except PydanticUserError:  # a type with no JSON Schema: the annotations still say it
        json_schema = None
    fields = {
        name: {
            "annotation": repr(info.annotation),
            "metadata": [repr(m) for m in info.metadata],
            "required": info.is_required(),
            "default": None if info.is_required() else repr(info.get_default()),
        }
        for name, info in model.model_fields.items()
    }
    extra = model.model_config.get("extra")
    return json.dumps(
        {"schema": json_schema, "fields": fields, "extra": extra}, sort_keys=True, default=repr
    )


@functools.cache
def _strict_copy(model: type[BaseModel]) -> type[BaseModel]:
    """The model with extra fields forbidden, as a Convex schema forbids them (made once per
    model: building a pydantic model costs milliseconds, and schemas are copied)."""
    if model.model_config.get("extra") == "forbid":
        return model
    return type(model.__name__, (model,), {"model_config": ConfigDict(extra="forbid")})


def define_schema(tables: Mapping[str, TableDef] | None = None, **by_name: TableDef) -> Schema:
    """The app's schema: ``define_schema(orgs=table(Org).index(...), ...)``."""
    merged = {**(tables or {}), **by_name}
    for name in merged:
        if name.startswith("_"):
            raise TypeError(f"table {name!r}: names starting with '_' are reserved for the engine")
    return Schema(merged)
