"""HTTP: the ASGI app (Convex's HTTP API, the sync WebSocket, the demo page) and its server."""
