"""The headers every HTTP answer carries: what a page of ours may load, and who may frame it.

- ``Content-Security-Policy``: scripts, styles, images, fonts and connections (the API and its
  WebSocket) from this origin only; no plugins, no ``<base>`` rewrites, forms post here only,
  and no framing (``frame-ancestors``, with ``X-Frame-Options`` for older browsers): a framed
  verification dialog could be clickjacked. Styles also allow inline ``<style>`` because the
  verification dialog carries its own style element; scripts never run inline.
- ``X-Content-Type-Options: nosniff``: a JSON answer is never run as a script or a page.
- ``Referrer-Policy: same-origin``: a magic-link or OAuth URL never leaks to another site in a
  ``Referer``; same-origin requests keep it, and so keep their ``Origin`` header, which the
  sign-in endpoints check (``no-referrer`` would turn it into ``null``).
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
