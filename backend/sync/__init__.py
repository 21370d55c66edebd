"""The Convex sync protocol: WebSocket messages, their validation and the version chain."""
