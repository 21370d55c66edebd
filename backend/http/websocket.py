"""The sync endpoint: ``/api/sync`` and ``/api/<any version>/sync``, a Convex session per socket.

Any ``Origin`` may open the socket, as with Convex itself: a frontend served from another
origin (a Vite dev server on ``localhost:5173`` talking to this server on 3210) is the everyday
setup. This is safe because nothing on the socket is authenticated by the browser: the session
cookie is never read here, and an identity exists only after an in-band ``Authenticate``
message carrying a JWT that the page itself had to obtain. A hostile page that opens a socket
from a victim's browser therefore gets exactly what it would get from its own script: an
anonymous connection. (Cross-site WebSocket hijacking needs ambient credentials; there are
none.) Endpoints that do read the cookie keep their Origin checks (``backend/http/auth_routes.py``).
"""

from __future__ import annotations

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from backend.sync.session import SyncSession
from backend.udf.context import ClientInfo


class StarletteTransport:
    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket

    async def receive(self) -> str | bytes | None:
        try:
            message = await self.websocket.receive()
        except (WebSocketDisconnect, RuntimeError):
            return None
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        return text if text is not None else message.get("bytes") or b""

    async def send(self, text: str) -> None:
        await self.websocket.send_text(text)

    async def close(self, code: int, reason: str) -> None:
        if self.websocket.application_state is not WebSocketState.DISCONNECTED:
            await self.websocket.close(code, reason)


async def serve_session(websocket: WebSocket, **session: object) -> None:
    """Accept the socket (from any origin, see the module docstring) and run its session."""
    await websocket.accept()
    headers = websocket.headers
    client = ClientInfo(
        ip_address=websocket.client.host if websocket.client else None,
        user_agent=headers.get("user-agent"),
    )
    await SyncSession(StarletteTransport(websocket), client=client, **session).run()  # type: ignore[arg-type]
