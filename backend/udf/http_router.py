"""HTTP actions: ``HttpRouter`` and ``@http_action``, as Convex's ``httpRouter`` and
``httpAction``.

```python
# functions/http.py
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from backend import ActionCtx, HttpRouter, http_action

@http_action
async def post_message(ctx: ActionCtx, request: Request) -> Response:
    body = await request.json()
    await ctx.run_mutation("messages:send", {"body": body["body"], "author": body["author"]})
    return Response(status_code=200)

http = HttpRouter()
http.route(path="/postMessage", method="POST", handler=post_message)
http.route(path_prefix="/getAuthorMessages/", method="GET", handler=by_author)
```

Routing is Convex's: an exact path wins over a prefix, the longest prefix over a shorter one;
``HEAD`` runs the ``GET`` route and drops the body; a path or method with no route answers
404. A route is registered once per path (or prefix) and method; a path starts with ``/``, a
prefix also ends with one. The router is found wherever the app's functions define it (by
convention ``functions/http.py``), and there is one per app.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from backend.udf.context import ActionCtx

ROUTABLE_METHODS: Final = ("GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")
Handler = Callable[["ActionCtx", "Request"], Awaitable["Response"]]


class HttpAction:
    """A handler made with ``@http_action``: ``async (ctx: ActionCtx, request) -> Response``."""

    def __init__(self, handler: Handler) -> None:
        if not inspect.iscoroutinefunction(handler):
            raise TypeError(f"{handler.__qualname__} must be an async function")
        self.handler = handler
        self.__name__ = handler.__name__
        self.__qualname__ = handler.__qualname__
        self.__module__ = handler.__module__
        self.__doc__ = handler.__doc__
        self.__wrapped__ = handler

    def __call__(self, ctx: ActionCtx, request: Request) -> Awaitable[Response]:
        return self.handler(ctx, request)

    def __repr__(self) -> str:
        return f"<http action {self.__qualname__}>"


def http_action(handler: Handler) -> HttpAction:
    """Make ``handler`` an HTTP action, to route with ``HttpRouter.route``."""
    return HttpAction(handler)


@dataclass(frozen=True)
class RouteMatch:
    action: HttpAction
    method: str
    route: str  # the path, or the prefix followed by ``*``, as Convex names a matched route


class HttpRouter:
    """The app's HTTP routes (see the module's docstring)."""

    __app_extension__: ClassVar[str] = "http"

    def __init__(self) -> None:
        self.exact: dict[str, dict[str, HttpAction]] = {}
        self.prefixes: dict[str, dict[str, HttpAction]] = {}  # by method, then prefix

    def route(
        self,
        *,
        method: str,
        handler: HttpAction,
        path: str | None = None,
        path_prefix: str | None = None,
        pathPrefix: str | None = None,  # Convex's spelling, for ported code
    ) -> None:
        """Route ``method`` requests for ``path`` (exactly) or under ``path_prefix``."""
        path_prefix = path_prefix if path_prefix is not None else pathPrefix
        if not isinstance(handler, HttpAction):
            raise TypeError("a route's handler must be made with @http_action")
        if method == "HEAD":
            raise TypeError("HEAD is answered by running the GET route and dropping the body")
        if method not in ROUTABLE_METHODS:
            raise TypeError(f"{method!r} is not a routable HTTP method ({ROUTABLE_METHODS})")
        if (path is None) == (path_prefix is None):
            raise TypeError("a route takes either path= or path_prefix=")
        if path is not None:
            if not path.startswith("/"):
                raise TypeError(f"path {path!r} does not start with a /")
            methods = self.exact.setdefault(path, {})
            if method in methods:
                raise TypeError(f"path {path!r} for method {method} is already routed")
            methods[method] = handler
            return
        assert path_prefix is not None
        if not path_prefix.startswith("/"):
            raise TypeError(f"path_prefix {path_prefix!r} does not start with a /")
        if not path_prefix.endswith("/"):
            raise TypeError(f"path_prefix {path_prefix!r} must end with a /")
        prefixes = self.prefixes.setdefault(method, {})
        if path_prefix in prefixes:
            raise TypeError(f"{method} path_prefix {path_prefix!r} is already routed")
        prefixes[path_prefix] = handler

    def lookup(self, path: str, method: str) -> RouteMatch | None:
        """The route for a request, or None (404). ``HEAD`` looks up ``GET``."""
        method = "GET" if method == "HEAD" else method
        exact = self.exact.get(path, {}).get(method)
        if exact is not None:
            return RouteMatch(exact, method, path)
        prefixes = self.prefixes.get(method, {})
        for prefix in sorted(prefixes, key=len, reverse=True):
            if path.startswith(prefix):
                return RouteMatch(prefixes[prefix], method, prefix + "*")
        return None

    def routes(self) -> list[tuple[str, str]]:
        """Every route as ``(method, path or prefix*)``."""
        found = [(m, p) for p, methods in self.exact.items() for m in methods]
        found += [(m, p + "*") for m, prefixes in self.prefixes.items() for p in prefixes]
        return sorted(found)


def router_of(extensions: dict[str, Any]) -> HttpRouter | None:
    found = extensions.get(HttpRouter.__app_extension__)
    return found if isinstance(found, HttpRouter) else None
