"""``@query``, ``@mutation``, ``@action`` and their internal variants.

A decorated function keeps its signature (so it can still be called directly, in a unit test
or from another helper) and gains what the engine needs: its kind, whether clients may call it,
and a validator built from its parameters. Arguments arrive as one object, as in Convex:

```python
@mutation
async def rename(ctx: MutationCtx, orgId: Annotated[str, Id("orgs")], name: str) -> None: ...

# or, with a model:
class RenameArgs(BaseModel): ...
@mutation
async def rename(ctx: MutationCtx, args: RenameArgs) -> None: ...
```

Its declared return type is checked on the way out, as a Convex ``returns:`` validator is: the
return annotation, or ``returns=`` on the decorator, which wins (``@query(returns=list[Org])``);
no annotation, or ``Any``, checks nothing. A value that does not fit fails the call with
``ReturnsValidationError`` (``validation.py``), and a mutation's writes go with it.

A function's path (``orgs:rename``) comes from the module it is defined in, relative to the
app's functions package, and is assigned when the app is loaded.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any, Concatenate, Final, Generic, ParamSpec, TypeVar, get_type_hints, overload

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from backend.errors import invalid_argument
from backend.udf.validation import (
    Check,
    argument_error,
    as_returned,
    fast_check,
    integral_floats_as_ints,
    returns_error,
    strict_objects,
)

P = ParamSpec("P")
R = TypeVar("R")
C = TypeVar("C")


class FunctionKind(Enum):
    QUERY = "query"
    MUTATION = "mutation"
    ACTION = "action"


class Visibility(Enum):
    PUBLIC = "public"
    INTERNAL = "internal"


class _ArgsBase(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


class _Unset(Enum):
    UNSET = "unset"


UNSET: Final = _Unset.UNSET
"""``returns=`` not given: the return annotation, if any, is the declared type."""


class RegisteredFunction(Generic[C, P, R]):
    """A function the engine can run. Calling it directly calls the plain Python function."""

    def __init__(
        self,
        handler: Callable[Concatenate[C, P], Awaitable[R]],
        kind: FunctionKind,
        visibility: Visibility,
        returns: Any = UNSET,
    ) -> None:
        if not inspect.iscoroutinefunction(handler):
            raise TypeError(f"{handler.__qualname__} must be an async function")
        self.handler = handler
        self.kind = kind
        self.visibility = visibility
        self.path: str | None = None
        self.__name__ = handler.__name__
        self.__qualname__ = handler.__qualname__
        self.__module__ = handler.__module__
        self.__doc__ = handler.__doc__
        self.__wrapped__ = handler
        self._model, self._single = _args_model(handler)
        self._returns, self._fits = _returns_model(handler, returns)

    def __call__(self, ctx: C, /, *args: P.args, **kwargs: P.kwargs) -> Awaitable[R]:
        return self.handler(ctx, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<{self.visibility.value} {self.kind.value} {self.path or self.__qualname__}>"

    def validate_args(self, args: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Check the client's args object; return what to call the handler with.

        Raises ``INVALID_ARGUMENT`` with the path of the first field at fault.
        """
        if not isinstance(args, dict):
            raise invalid_argument("arguments must be an object", "args")
        args = integral_floats_as_ints(args)
        try:
            parsed = self._model.model_validate(args, strict=True)
        except ValidationError as exc:
            name = self.path or self.__qualname__
            raise argument_error(name, self._model, args, exc.errors()[0]) from None
        if self._single is not None:
            return (parsed,), {}
        return (), {name: getattr(parsed, name) for name in type(parsed).model_fields}

    @property
    def validates_returns(self) -> bool:
        return self._returns is not None

    def validate_returns(self, value: Any) -> None:
        """Check a returned value (as it travels: a model already dumped) against the declared
        return type. Raises ``ReturnsValidationError`` with Convex's wording."""
        if self._returns is None or (self._fits is not None and self._fits(value)):
            return
        checked = as_returned(value)
        try:
            self._returns.model_validate({"value": checked}, strict=True)
        except ValidationError as exc:
            name = self.path or self.__qualname__
            raise returns_error(name, self._returns, checked, exc.errors()[0]) from None


def _returns_model(
    handler: Callable[..., Any], returns: Any
) -> tuple[type[BaseModel] | None, Check | None]:
    """The model whose one field ``value`` checks what ``handler`` returns (None when nothing
    is declared: no annotation, or ``Any``), and a cheaper predicate when there is one."""
    if returns is UNSET:
        hints = get_type_hints(handler, include_extras=True)
        if "return" not in hints:
            return None, None
        returns = hints["return"]
    if returns is None:
        returns = type(None)
    if returns is Any or returns is object:
        return None, None
    try:
        model = create_model(
            f"{handler.__name__}_returns", __base__=_ArgsBase, value=(strict_objects(returns), ...)
        )
        return model, fast_check(returns)
    except Exception as exc:  # pydantic cannot check it: a wiring mistake, said at load time
        raise TypeError(
            f"{handler.__qualname__}: cannot check its return type {returns!r}: {exc}"
        ) from exc


def _args_model(handler: Callable[..., Any]) -> tuple[type[BaseModel], str | None]:
    signature = inspect.signature(handler)
    params = list(signature.parameters.values())
    if not params:
        raise TypeError(f"{handler.__qualname__} must take ctx as its first parameter")
    try:
        hints = get_type_hints(handler, include_extras=True)
    except NameError as exc:
        raise TypeError(f"{handler.__qualname__}: cannot resolve annotations: {exc}") from exc
    rest = params[1:]
    if len(rest) == 1:
        hint = hints.get(rest[0].name)
        if isinstance(hint, type) and issubclass(hint, BaseModel):
            # the single model *is* the args object
            if hint.model_config.get("extra") != "forbid":
                hint = type(hint.__name__, (hint,), {"model_config": ConfigDict(extra="forbid")})
            return hint, rest[0].name
    fields: dict[str, Any] = {}
    for param in rest:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise TypeError(
                f"{handler.__qualname__}: argument {param.name} must be a named parameter"
            )
        if param.name not in hints:
            raise TypeError(
                f"{handler.__qualname__}: argument {param.name} needs a type annotation"
            )
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (hints[param.name], default)
    return create_model(f"{handler.__name__}_args", __base__=_ArgsBase, **fields), None


class _Decorator:
    """``@query`` (the return annotation is the declared type) or ``@query(returns=T)``."""

    def __init__(self, kind: FunctionKind, visibility: Visibility) -> None:
        self.kind = kind
        self.visibility = visibility

    @overload
    def __call__(
        self, fn: Callable[Concatenate[C, P], Awaitable[R]], /
    ) -> RegisteredFunction[C, P, R]: ...

    @overload
    def __call__(
        self, *, returns: Any
    ) -> Callable[[Callable[Concatenate[C, P], Awaitable[R]]], RegisteredFunction[C, P, R]]: ...

    def __call__(self, fn: Any = None, /, *, returns: Any = UNSET) -> Any:  # type: ignore[misc]
        if fn is None:
            return lambda inner: self._register(inner, returns)
        return self._register(fn, returns)

    def _register(self, fn: Any, returns: Any) -> RegisteredFunction[Any, Any, Any]:
        if isinstance(fn, RegisteredFunction):
            raise TypeError(f"{fn.__qualname__} is registered twice")
        if not callable(fn):
            raise TypeError(f"@{self.kind.value} decorates a function, not {fn!r}")
        return RegisteredFunction(fn, self.kind, self.visibility, returns)


query = _Decorator(FunctionKind.QUERY, Visibility.PUBLIC)
mutation = _Decorator(FunctionKind.MUTATION, Visibility.PUBLIC)
action = _Decorator(FunctionKind.ACTION, Visibility.PUBLIC)
internal_query = _Decorator(FunctionKind.QUERY, Visibility.INTERNAL)
internal_mutation = _Decorator(FunctionKind.MUTATION, Visibility.INTERNAL)
internal_action = _Decorator(FunctionKind.ACTION, Visibility.INTERNAL)
