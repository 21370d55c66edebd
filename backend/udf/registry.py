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

A function's path (``orgs:rename``) comes from the module it is defined in, relative to the
app's functions package, and is assigned when the app is loaded.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, get_type_hints

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from backend.errors import invalid_argument
from backend.udf.validation import argument_error, integral_floats_as_ints

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


class RegisteredFunction(Generic[C, P, R]):
    """A function the engine can run. Calling it directly calls the plain Python function."""

    def __init__(
        self,
        handler: Callable[Concatenate[C, P], Awaitable[R]],
        kind: FunctionKind,
        visibility: Visibility,
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


def _decorator(
    kind: FunctionKind, visibility: Visibility
) -> Callable[[Callable[Concatenate[C, P], Awaitable[R]]], RegisteredFunction[C, P, R]]:
    def register(fn: Callable[Concatenate[C, P], Awaitable[R]]) -> RegisteredFunction[C, P, R]:
        if isinstance(fn, RegisteredFunction):
            raise TypeError(f"{fn.__qualname__} is registered twice")
        return RegisteredFunction(fn, kind, visibility)

    return register


query = _decorator(FunctionKind.QUERY, Visibility.PUBLIC)
mutation = _decorator(FunctionKind.MUTATION, Visibility.PUBLIC)
action = _decorator(FunctionKind.ACTION, Visibility.PUBLIC)
internal_query = _decorator(FunctionKind.QUERY, Visibility.INTERNAL)
internal_mutation = _decorator(FunctionKind.MUTATION, Visibility.INTERNAL)
internal_action = _decorator(FunctionKind.ACTION, Visibility.INTERNAL)
