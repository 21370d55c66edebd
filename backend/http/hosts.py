"""Serve only our own host names: the defence against DNS rebinding.

A page on ``attacker.example`` whose name is made to resolve to 127.0.0.1 (or to a private
address) is, to the browser, same-origin with whatever answers there: it can read the dev
outbox, post the sign-in form, open the sync socket. The one thing it cannot choose is the
``Host`` header, which names the attacker's host. Starlette's ``TrustedHostMiddleware``
checks it; this wrapper only answers its refusal in our coded shape, ``400 {code:
"INVALID_HOST"}``, on plain requests and on WebSocket upgrades alike.

``/api/health`` is exempt: load balancers and orchestrators probe an instance by its address,
and what it answers (whether the store is up) is nothing a rebound page could use.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.errors import ErrorCode
from backend.http.errors import refused

EXEMPT_PATHS = frozenset({"/api/health"})


class TrustedHosts:
    def __init__(self, app: ASGIApp, allowed_hosts: Sequence[str]) -> None:
        self.app = app
        self.allowed_hosts = list(allowed_hosts)
        TrustedHostMiddleware(app, self.allowed_hosts)  # checks the patterns once, up front

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope.get("path") in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        admitted = False
        answered = False

        async def admit(scope: Scope, receive: Receive, send: Send) -> None:
            nonlocal admitted
            admitted = True
            await self.app(scope, receive, send)

        async def send_or_refuse(message: Message) -> None:
            nonlocal answered
            if admitted:
                await send(message)
            elif not answered:  # the middleware's plain-text refusal, answered in our shape
                answered = True
                response = refused(ErrorCode.INVALID_HOST, "This server does not serve that host")
                await response(scope, receive, send)

        checker = TrustedHostMiddleware(admit, self.allowed_hosts, www_redirect=False)
        await checker(scope, receive, send_or_refuse)
