"""Python annotations as TypeScript types, the way Convex's codegen writes its validators.

``ts_type`` reads what a function author already wrote (parameter and return annotations,
pydantic models, ``Annotated[str, Id("orgs")]``) and answers the TypeScript a Convex
frontend sees: ``Id<"orgs">``, ``"owner" | "admin"``, ``Array<...>``, ``{ name: string;
note?: string | null }``. A type it cannot express is ``any``, never an error: the generated
API stays usable, only less precise there.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from pydantic import BaseModel

from backend.schema_definition import Id
from backend.values.convex_json import Int64

_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_SEQUENCES = (list, set, frozenset, Sequence, typing.Sequence, typing.List, typing.Set)  # noqa: UP006
_MAPPINGS = (dict, Mapping, typing.Mapping, typing.Dict)  # noqa: UP006


def property_key(name: str) -> str:
    """An object key as TypeScript needs it: bare when it is an identifier, else quoted."""
    return name if _IDENTIFIER.fullmatch(name) else json.dumps(name)


def literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return literal(value.value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    return "any"


def union(members: list[str]) -> str:
    unique = list(dict.fromkeys(members))
    if "any" in unique:
        return "any"
    return " | ".join(unique) if unique else "never"


def object_type(fields: list[tuple[str, bool, str]]) -> str:
    """``{ key: T; other?: U }`` from (key, optional, type) triples."""
    if not fields:
        return "{}"
    body = "; ".join(
        f"{property_key(k)}{'?' if optional else ''}: {t}" for k, optional, t in fields
    )
    return "{ " + body + " }"


class TypeWriter:
    """Turns annotations into TypeScript; remembers the models it is inside (a model that
    contains itself is ``any`` past its first level, as TypeScript has no name for it here)."""

    def __init__(self) -> None:
        self._open: set[type] = set()

    def ts_type(self, hint: Any) -> str:
        if hint is Any or hint is object or hint is typing.Any:
            return "any"
        if hint is None or hint is type(None):
            return "null"
        origin = get_origin(hint)
        if origin is typing.Annotated:
            base, *meta = get_args(hint)
            for item in meta:
                if isinstance(item, Id):
                    return f'Id<"{item.table}">'
            return self.ts_type(base)
        if origin is Literal:
            return union([literal(value) for value in get_args(hint)])
        if origin is Union or origin is types.UnionType:
            return union([self.ts_type(member) for member in get_args(hint)])
        if origin is tuple:
            args = get_args(hint)
            if len(args) == 2 and args[1] is Ellipsis:
                return f"Array<{self.ts_type(args[0])}>"
            return "[" + ", ".join(self.ts_type(a) for a in args) + "]"
        if origin in _SEQUENCES:
            (item,) = get_args(hint) or (Any,)
            return f"Array<{self.ts_type(item)}>"
        if origin in _MAPPINGS:
            args = get_args(hint)
            value = args[1] if len(args) == 2 else Any
            return f"Record<string, {self.ts_type(value)}>"
        alias = getattr(typing, "TypeAliasType", None)  # ``type X = ...`` (Python 3.12+)
        if alias is not None and isinstance(hint, alias):
            return self.ts_type(hint.__value__)
        if not isinstance(hint, type):
            return "any"
        return self._class(hint)

    def _class(self, hint: type) -> str:
        if issubclass(hint, bool):
            return "boolean"
        if issubclass(hint, Int64):
            return "bigint"
        if issubclass(hint, enum.Enum):
            return union([literal(member.value) for member in hint])
        if issubclass(hint, int | float):
            return "number"
        if issubclass(hint, str):
            return "string"
        if issubclass(hint, bytes | bytearray):
            return "ArrayBuffer"
        if hint in (list, set, frozenset, tuple):
            return "Array<any>"
        if hint is dict:
            return "Record<string, any>"
        if hint in self._open:
            return "any"
        self._open.add(hint)
        try:
            if issubclass(hint, BaseModel):
                return self.model(hint)
            if typing.is_typeddict(hint):
                return self._typed_dict(hint)
            if dataclasses.is_dataclass(hint):
                return self._dataclass(hint)
        finally:
            self._open.discard(hint)
        return "any"

    def model(self, model: type[BaseModel]) -> str:
        """A pydantic model's fields as an object type: a field with a default is optional."""
        fields = []
        for name, info in model.model_fields.items():
            hint: Any = info.annotation
            if info.metadata:
                hint = typing.Annotated[(hint, *info.metadata)]
            key = info.serialization_alias or info.alias or name
            fields.append((key, not info.is_required(), self.ts_type(hint)))
        return object_type(fields)

    def _typed_dict(self, hint: type) -> str:
        hints = get_type_hints(hint, include_extras=True)
        required = getattr(hint, "__required_keys__", frozenset(hints))
        fields = []
        for key, value in hints.items():
            optional = key not in required
            # a module with postponed annotations hides NotRequired from __required_keys__
            if get_origin(value) is typing.NotRequired:
                optional, value = True, get_args(value)[0]
            elif get_origin(value) is typing.Required:
                optional, value = False, get_args(value)[0]
            fields.append((key, optional, self.ts_type(value)))
        return object_type(fields)

    def _dataclass(self, hint: type) -> str:
        hints = get_type_hints(hint, include_extras=True)
        fields = []
        for f in dataclasses.fields(hint):
            optional = (
                f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            )
            fields.append((f.name, optional, self.ts_type(hints.get(f.name, Any))))
        return object_type(fields)


def ts_type(hint: Any) -> str:
    """The TypeScript type of a Python annotation (``any`` where it has none)."""
    return TypeWriter().ts_type(hint)


def field_paths(hint: Any, _open: frozenset[type] = frozenset()) -> list[tuple[str, ...]]:
    """The document field paths a type has, as Convex's data model lists them: each field,
    each nested field of an object (``author.name``), ``${string}`` under a record."""
    origin = get_origin(hint)
    if origin is typing.Annotated:
        return field_paths(get_args(hint)[0], _open)
    if origin is Union or origin is types.UnionType:
        return [p for member in get_args(hint) for p in field_paths(member, _open)]
    if origin in _MAPPINGS or hint is dict:
        return [("${string}",)]
    if isinstance(hint, type) and issubclass(hint, BaseModel) and hint not in _open:
        out: list[tuple[str, ...]] = []
        for name, info in hint.model_fields.items():
            key = info.serialization_alias or info.alias or name
            out.append((key,))
            out.extend((key, *sub) for sub in field_paths(info.annotation, _open | {hint}) if sub)
        return out
    return [()]
