"""Argument validation errors that read like Convex's ``ArgumentValidationError``.

A function's arguments are checked by pydantic (strictly) against the function's parameters;
when they fail, the caller gets ``INVALID_ARGUMENT`` with ``path`` naming the field at fault
(``name``, ``items.0.qty``), and a message in the form Convex's backend writes, so a ported
app's logs and error screens read the same::

    ArgumentValidationError: Value does not match validator.
    Path: .limit
    Value: "ten"
    Validator: v.number()
    Function: notes:by_author

(or ``Object is missing the required field `x`.`` / ``Object contains extra field `x` that
is not in the validator.`` with the ``Object``). Parameter types are written in Convex's
validator notation (``v.string()``, ``v.optional(v.id("orgs"))``, ``v.array(...)``); a Python
``int`` is ``v.number()`` that must be integral. A value under a key that names a secret
(``password``, ``token``, ``secret``, ``code``) is never echoed.

This module also undoes one artefact of the wire: the Rust-based clients (Python, Swift,
Kotlin) send every number as a float, ``5.0`` for ``5``, so an integral float becomes an
``int`` before validation (``float`` parameters accept it as before).
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from backend.errors import ConvexError, invalid_argument
from backend.schema_definition import Id
from backend.values.convex_json import Int64, dumps, to_json

MAX_SHOWN: Final = 200
_SECRET_PARTS: Final = ("password", "secret", "token")
_SECRET_NAMES: Final = frozenset({"code", "otp"})
_MAX_INTEGRAL: Final = 2**53


def integral_floats_as_ints(value: Any) -> Any:
    """``value`` with every float that holds a safe integer (not ``-0.0``) made an ``int``."""
    if isinstance(value, float):
        negative_zero = value == 0 and math.copysign(1.0, value) < 0
        if value.is_integer() and abs(value) <= _MAX_INTEGRAL and not negative_zero:
            return int(value)
        return value
    if isinstance(value, dict):
        return {k: integral_floats_as_ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [integral_floats_as_ints(v) for v in value]
    return value


def argument_error(
    function: str, model: type[BaseModel], args: Any, error: ErrorDetails
) -> ConvexError:
    """The ``INVALID_ARGUMENT`` error for pydantic's first complaint about ``args``."""
    loc = tuple(error["loc"])
    path = ".".join(str(p) for p in loc) or "args"
    kind = error["type"]
    if kind == "missing" and loc:
        parent = _walk(model, loc[:-1])
        body = (
            f"Object is missing the required field `{loc[-1]}`. Consider wrapping the field "
            f"validator in `v.optional(...)` if this is expected.\n{_context(loc[:-1])}\n"
            f"Object: {_show(_value_at(args, loc[:-1]))}\nValidator: {validator_of(parent)}"
        )
    elif kind == "extra_forbidden" and loc:
        parent = _walk(model, loc[:-1])
        body = (
            f"Object contains extra field `{loc[-1]}` that is not in the validator.\n"
            f"{_context(loc[:-1])}\n"
            f"Object: {_show(_value_at(args, loc[:-1]))}\nValidator: {validator_of(parent)}"
        )
    else:
        body = (
            f"Value does not match validator.\n{_context(loc)}\n"
            f"Value: {_show(error.get('input'), _last_key(loc))}\n"
            f"Validator: {validator_of(_walk(model, loc))}"
        )
    message = f"ArgumentValidationError: {body}\nFunction: {function}"
    return invalid_argument(message, path)


def _context(loc: Sequence[Any]) -> str:
    # Convex's "Path: .items[0].qty" line, empty at the top level.
    if not loc:
        return ""
    return "Path: " + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)


def _last_key(loc: Sequence[Any]) -> str | None:
    for part in reversed(loc):
        if isinstance(part, str):
            return part
    return None


def _secret(key: str | None) -> bool:
    if key is None:
        return False
    lowered = key.lower()
    return lowered in _SECRET_NAMES or any(part in lowered for part in _SECRET_PARTS)


def _redacted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "<redacted>" if _secret(str(k)) else _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


def _show(value: Any, key: str | None = None) -> str:
    if _secret(key):
        return "<redacted>"
    try:
        text = dumps(to_json(_redacted(value)))
    except (ConvexError, TypeError, ValueError):
        text = f"<{type(value).__name__}>"
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


def _value_at(args: Any, loc: Sequence[Any]) -> Any:
    value = args
    for part in loc:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def _strip(annotation: Any) -> tuple[Any, list[Any]]:
    """The annotation without ``Annotated[...]``, and its metadata."""
    if get_origin(annotation) is Annotated:
        inner, *metadata = get_args(annotation)
        stripped, more = _strip(inner)
        return stripped, [*metadata, *more]
    return annotation, []


def _members(annotation: Any) -> tuple[Any, ...]:
    origin = get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        return get_args(annotation)
    return ()


def _walk(model: Any, loc: Sequence[Any]) -> Any:
    """The annotation that validates the value at ``loc`` (as far as it can be followed)."""
    current: Any = model
    for part in loc:
        current, _ = _strip(current)
        members = [m for m in _members(current) if m is not type(None)]
        if members:
            named = [m for m in members if _name_of(m) == part]
            if named:  # pydantic names the union member it tried in the location
                current = named[0]
                continue
            current = members[0] if len(members) == 1 else current
            current, _ = _strip(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return current
            current = _field_annotation(field)
        elif get_origin(current) in (list, tuple, set, frozenset) or current in (list, tuple):
            items = get_args(current)
            current = items[0] if items else Any
        elif get_origin(current) in (dict, Mapping) or current is dict:
            items = get_args(current)
            current = items[1] if len(items) == 2 else Any
        else:
            return current
    return current


def _field_annotation(field: FieldInfo) -> Any:
    # pydantic moves Annotated metadata (our Id) off the annotation; put it back.
    if field.metadata:
        return Annotated[(field.annotation, *field.metadata)]
    return field.annotation


def _name_of(annotation: Any) -> str:
    return getattr(annotation, "__name__", str(annotation))


def validator_of(annotation: Any, *, optional: bool = False) -> str:
    """``annotation`` in Convex's validator notation (``v.string()``, ``v.array(...)``)."""
    text = _validator(annotation)
    return f"v.optional({text})" if optional else text


def _validator(annotation: Any) -> str:
    annotation, metadata = _strip(annotation)
    for meta in metadata:
        if isinstance(meta, Id):
            return f'v.id("{meta.table}")'
    if annotation is Any or annotation is object:
        return "v.any()"
    if annotation is type(None) or annotation is None:
        return "v.null()"
    if annotation is bool:
        return "v.boolean()"
    if annotation is str:
        return "v.string()"
    if isinstance(annotation, type) and issubclass(annotation, Int64):
        return "v.int64()"
    if annotation is int:
        return "v.number() (an integer)"
    if annotation is float:
        return "v.number()"
    if annotation is bytes:
        return "v.bytes()"
    origin = get_origin(annotation)
    if origin is Literal:
        literals = [f"v.literal({dumps(to_json(v))})" for v in get_args(annotation)]
        return literals[0] if len(literals) == 1 else f"v.union({', '.join(literals)})"
    members = _members(annotation)
    if members:
        return f"v.union({', '.join(_validator(m) for m in members)})"
    if origin in (list, tuple, set, frozenset) or annotation in (list, tuple):
        items = get_args(annotation)
        return f"v.array({_validator(items[0]) if items else 'v.any()'})"
    if origin in (dict, Mapping) or annotation is dict:
        items = get_args(annotation)
        value = _validator(items[1]) if len(items) == 2 else "v.any()"
        return f"v.record(v.string(), {value})"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        fields = []
        for name, field in annotation.model_fields.items():
            inner = _field_annotation(field)
            fields.append(f"{name}: {validator_of(inner, optional=not field.is_required())}")
        return "v.object({" + ", ".join(fields) + "})"
    return _name_of(annotation)


# ---- return values --------------------------------------------------------------------------
#
# A function's declared return type (its annotation, or ``returns=`` on the decorator) is
# checked against what it returned, as Convex checks a ``returns:`` validator. The value is
# checked as it will travel: a model already dumped to its dict, integral floats as ints, tuples
# as arrays. An object's fields are exactly its model's, as in Convex's ``v.object``: a field the
# model does not declare is refused even where the model itself would ignore it, so a declared
# ``-> PublicProfile`` cannot leak the stored document it was read from.


class ReturnsValidationError(Exception):
    """A function returned something other than its declared type. ``message`` reads as
    Convex's (``ReturnsValidationError: Value does not match validator. ...``); the engine
    turns it into a failed call (the caller sees "Server Error" outside ``DEV_MODE``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def as_returned(value: Any) -> Any:
    """``value`` as a caller receives it, for checking: tuples as lists, integral floats as
    ints (``5.0`` is the number 5 on the wire)."""
    if isinstance(value, tuple):
        return [as_returned(v) for v in value]
    if isinstance(value, list):
        return [as_returned(v) for v in value]
    if isinstance(value, dict):
        return {k: as_returned(v) for k, v in value.items()}
    return integral_floats_as_ints(value)


def returns_error(
    function: str, model: type[BaseModel], value: Any, error: ErrorDetails
) -> ReturnsValidationError:
    """The error for pydantic's first complaint about ``value`` (checked as ``model``'s only
    field, ``value``: the location is reported without it)."""
    loc = tuple(error["loc"])[1:]
    kind = error["type"]
    annotation = _field_annotation(model.model_fields["value"])
    if kind in ("missing", "extra_forbidden") and loc:
        parent = _object_of(_walk(annotation, loc[:-1]))
        first = (
            f"Object is missing the required field `{loc[-1]}`. Consider wrapping the field "
            "validator in `v.optional(...)` if this is expected."
            if kind == "missing"
            else f"Object contains extra field `{loc[-1]}` that is not in the validator."
        )
        body = (
            f"{first}\n{_context(loc[:-1])}\n"
            f"Object: {_show(_value_at(value, loc[:-1]))}\nValidator: {validator_of(parent)}"
        )
    else:
        body = (
            f"Value does not match validator.\n{_context(loc)}\n"
            f"Value: {_show(_value_at(value, loc), _last_key(loc))}\n"
            f"Validator: {validator_of(_walk(annotation, loc))}"
        )
    # Convex leaves an empty line where a top-level value has no path; so do we.
    return ReturnsValidationError(f"ReturnsValidationError: {body}\nFunction: {function}")


def _object_of(annotation: Any) -> Any:
    # an object's complaint names the object's validator, not the ``| None`` around it
    stripped, _ = _strip(annotation)
    models = [m for m in _members(stripped) if isinstance(m, type) and issubclass(m, BaseModel)]
    return models[0] if len(models) == 1 else annotation


def strict_objects(annotation: Any, _seen: dict[type, type] | None = None) -> Any:
    """``annotation`` with every pydantic model in it refusing fields it does not declare."""
    seen = {} if _seen is None else _seen
    stripped, metadata = _strip(annotation)
    if metadata:
        return Annotated[(strict_objects(stripped, seen), *metadata)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _strict_model(annotation, seen)
    origin = get_origin(annotation)
    args = get_args(annotation)
    if not args or origin is Literal:
        return annotation
    inner = tuple(strict_objects(a, seen) for a in args)
    if inner == args:
        return annotation
    if origin is Union or origin is types.UnionType:
        return Union[inner]  # noqa: UP007 (built from a tuple)
    if origin in (list, tuple, set, frozenset, dict):
        return origin[inner]
    if origin is Mapping:
        return Mapping[inner]  # type: ignore[misc,valid-type]
    return annotation


def _strict_model(model: type[BaseModel], seen: dict[type, type]) -> type[BaseModel]:
    if model in seen:
        return seen[model]
    seen[model] = model  # a model that refers to itself keeps its own rule below that point
    changed = {
        name: strict_objects(_field_annotation(field), seen)
        for name, field in model.model_fields.items()
    }
    namespace: dict[str, Any] = {
        "model_config": ConfigDict(**{**model.model_config, "extra": "forbid"}),
        "__annotations__": {name: changed[name] for name in changed},
        "__module__": model.__module__,
    }
    for name, field in model.model_fields.items():
        namespace[name] = field
    strict: type[BaseModel] = type(model.__name__, (model,), namespace)
    seen[model] = strict
    return strict


# A fast path for the common return types (``-> list[dict[str, Any]]``, ``-> str | None``):
# a plain predicate over the value, built once per function, that says "fits" without pydantic
# (which would cost as much as encoding the result). Only when it says no does pydantic run,
# to find and word the complaint. Types it cannot judge exactly (models, ids, other classes)
# have no fast path.

Check = Callable[[Any], bool]


def fast_check(annotation: Any) -> Check | None:
    """A predicate true exactly for values that ``annotation`` accepts (as they travel), or
    None when there is no such cheap predicate."""
    if annotation is Any or annotation is object:
        return lambda _value: True
    if annotation is None or annotation is type(None):
        return lambda value: value is None
    if annotation is bool:
        return lambda value: type(value) is bool
    if annotation is str:
        return lambda value: isinstance(value, str)
    if annotation is bytes:
        return lambda value: isinstance(value, bytes)
    if annotation is int:
        return _is_integer
    if annotation is float:
        return lambda value: isinstance(value, int | float) and not isinstance(value, bool)
    if annotation in (list, tuple):
        return lambda value: isinstance(value, list | tuple)
    if annotation is dict:
        return lambda value: isinstance(value, dict)
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        allowed = [(type(a), a) for a in args]
        return lambda value: any(type(value) is t and value == a for t, a in allowed)
    if origin is Union or origin is types.UnionType:
        members = [fast_check(a) for a in args]
        if any(m is None for m in members):
            return None
        checks = [m for m in members if m is not None]
        return lambda value: any(check(value) for check in checks)
    if origin is list and len(args) == 1:
        if args[0] is dict or get_args(args[0]) == (str, Any):  # list[dict[str, Any]]
            return lambda value: (
                isinstance(value, list | tuple) and all(isinstance(v, dict) for v in value)
            )
        item = fast_check(args[0])
        if item is None:
            return None
        return lambda value: isinstance(value, list | tuple) and all(item(v) for v in value)
    if origin is dict and len(args) == 2 and args[0] is str:
        if args[1] is Any:  # its keys are strings already: the value was encoded before this
            return lambda value: isinstance(value, dict)
        inner = fast_check(args[1])
        if inner is None:
            return None
        return lambda value: isinstance(value, dict) and all(inner(v) for v in value.values())
    return None


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and integral_floats_as_ints(value) is not value
