"""CORS: open on the token-authenticated function API, credentialed and closed elsewhere.

Two policies, chosen by path:

- ``/api/query``, ``/api/mutation``, ``/api/action`` (Convex's HTTP function API) answer any
  origin, without credentials, as Convex's own backend does. The caller proves who it is with
  an ``Authorization: Bearer`` header that its own script must set; the session cookie is
  never read there, so a page on another origin gains nothing it could not get by calling the
  API from its own server. Without credentials the browser also refuses to attach or expose
  cookies, so this opens no door to the cookie-authenticated endpoints.
- ``/api/storage/...`` (file storage's upload and file URLs) answer any origin too, without
  credentials: the token or signature in the URL is the whole authority, and no cookie is read.
- ``/http/...`` (HTTP actions) get nothing from here: the app answers CORS itself.
- Everything else (the auth endpoints, which set and read the session cookie) answers only the
  configured ``ALLOWED_ORIGINS``, with credentials; their CSRF checks live beside them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

FUNCTION_API_PATHS: Final = frozenset({"/api/query", "/api/mutation", "/api/action"})
# File storage's upload and file URLs: capabilities in the URL, no cookie read (open too)
OPEN_PREFIXES: Final = ("/api/storage/",)
# HTTP actions under /http/: CORS is the app's own to answer there, as on Convex
APP_OWNED_PREFIXES: Final = ("/http/",)
ALLOWED_HEADERS: Final = ["Content-Type", "Convex-Client", "Authorization"]


class CorsByPath:
    """Apply the open policy to the function API and the credentialed one to the rest."""

    def __init__(self, app: ASGIApp, *, allowed_origins: Sequence[str]) -> None:
        self.app = app
        self.open = CORSMiddleware(
            app,
            allow_origins=["*"],
            allow_credentials=False,
            allow_methods=["GET", "POST"],
            allow_headers=ALLOWED_HEADERS,
            max_age=600,
        )
        self.credentialed = CORSMiddleware(
            app,
            allow_origins=list(allowed_origins),
            allow_credentials=True,
            allow_methods=["GET", "POST"],
            allow_headers=ALLOWED_HEADERS,
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").startswith(APP_OWNED_PREFIXES):
            await self.app(scope, receive, send)
        elif scope.get("path", "") in FUNCTION_API_PATHS or scope.get("path", "").startswith(
            OPEN_PREFIXES
        ):
            await self.open(scope, receive, send)
        else:
            await self.credentialed(scope, receive, send)
