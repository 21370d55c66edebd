"""Serving the app with uvicorn (``python -m backend serve`` / ``dev``), and what its logs keep.

Secrets travel in query strings: a magic link's ``token`` (and Better Auth's verify-email
link), an OAuth callback's ``code`` and ``state``. uvicorn's access log writes every request
line whole, so each of them would be written to the log of every server, readable by whoever
reads logs, kept as long as logs are kept. ``RedactSecrets`` replaces their values with
``[redacted]`` in every record our servers write (access lines, WebSocket lines, our own), for
``serve`` and ``dev`` alike (``log_config``), before any handler formats them.
"""

from __future__ import annotations

import copy
import gc
import logging
import re
from typing import Any
from urllib.parse import unquote

import h11
import uvicorn
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.h11_impl import H11Protocol

from backend.config import Settings
from backend.udf.recent_calls import stop_waiting

REDACTED = "[redacted]"
# Query parameters whose values are secrets (compared in lower case, "-" as "_"), and name
# endings that say so whatever the rest of the name (``access_token``, ``client_secret``).
SECRET_PARAMETERS = frozenset({"token", "code", "state", "otp", "password", "ticket", "sig"})
SECRET_ENDINGS = ("token", "secret", "password", "_key", "_code", "signature")
_PARAMETER = re.compile(r"([?&;])([^=&;#\s\"']+)=([^&;#\s\"']*)")


def _is_secret(name: str) -> bool:
    plain = unquote(name).strip().lower().replace("-", "_")
    return plain in SECRET_PARAMETERS or plain.endswith(SECRET_ENDINGS)


def redact_query(text: str) -> str:
    """``text`` with the values of secret query parameters replaced:
    ``/verify?token=abc&callbackURL=%2F`` → ``/verify?token=[redacted]&callbackURL=%2F``."""
    if "=" not in text:
        return text
    return _PARAMETER.sub(
        lambda m: f"{m[1]}{m[2]}={REDACTED}" if m[3] and _is_secret(m[2]) else m[0], text
    )


class RedactSecrets(logging.Filter):
    """Redacts secret query values in a record's message and arguments, in place, so that the
    formatter (uvicorn's access formatter reads the arguments) never sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_query(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_query(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {
                k: redact_query(v) if isinstance(v, str) else v for k, v in record.args.items()
            }
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's logging configuration, with ``RedactSecrets`` on every handler, and our own
    loggers (``backend.*``, and anything else that reaches the root) through one of them too."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact_secrets": {"()": f"{__name__}.RedactSecrets"}}
    config["formatters"]["named"] = {"format": "%(levelname)s %(name)s: %(message)s"}
    config["handlers"]["named"] = {
        "formatter": "named",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
    }
    for handler in config["handlers"].values():
        handler["filters"] = ["redact_secrets"]
    config["root"] = {"handlers": ["named"], "level": "INFO"}
    return config


class HTTPProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, except for a client that half-closes mid-body.

    uvicorn closes such a connection at once, so the app only learns that the client left and
    the client never hears why. Here the end of input goes to h11, which finds the body
    incomplete, and uvicorn answers that as any other broken framing: 400, then close.
    """

    def eof_received(self) -> bool | None:  # type: ignore[override]  # asyncio allows a bool
        if self.conn.their_state is not h11.SEND_BODY:
            return None  # between requests or done: close as uvicorn does
        self.conn.receive_data(b"")
        self.handle_events()
        return True  # keep the transport to write the answer (uvicorn closes it after)


def server_options(settings: Settings | None = None) -> dict[str, Any]:
    """The uvicorn options every server of ours uses (benchmarks and test servers too)."""
    trusted_proxies = settings.forwarded_allow_ips if settings else None
    return {
        "http": HTTPProtocol,
        "proxy_headers": bool(trusted_proxies),
        **({"forwarded_allow_ips": trusted_proxies} if trusted_proxies else {}),
        "ws_max_size": 16 * 1024 * 1024,
        # per-message deflate costs ~40 KB of zlib state per socket and compresses every
        # Transition once per subscriber; off unless WS_COMPRESSION=1 (BENCHMARKS.md).
        "ws_per_message_deflate": bool(settings and settings.ws_compression),
        "backlog": 2048,
    }


def tune_gc() -> None:
    """Collect the young generation less often: a server holds many long-lived objects per
    connection, and frequent collections of them stall every socket at once."""
    gc.collect()
    gc.freeze()  # what exists at start-up (modules, the app) is never garbage
    gc.set_threshold(50_000, 20, 20)


def announce(settings: Settings, host: str, port: int) -> None:
    """The last lines a starting server prints: where the demo is, and in dev the dashboard and
    the dev outbox."""
    origin = (settings.public_url or f"http://{host}:{port}").rstrip("/")
    lines = [f"the demo:       {origin}/"]
    if settings.dev_mode:
        lines += [
            f"the dashboard:  {origin}/_dashboard",
            f"the dev outbox: {origin}/api/dev/outbox",
        ]
    print("\n".join(["ready.", *lines]), flush=True)


class _AnnouncingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, settings: Settings) -> None:
        super().__init__(config)
        self.settings = settings

    async def startup(self, sockets: list[Any] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            announce(self.settings, self.config.host, self.config.port)

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        # uvicorn waits for open requests before it stops: the dashboard's long polls answer
        # now rather than hold the stop for their wait
        stop_waiting()
        await super().shutdown(sockets)


def serve_forever(
    settings: Settings, *, host: str | None = None, port: int | None = None, reload: bool = False
) -> int:
    """Serve until interrupted; Ctrl-C stops cleanly (the scheduler and database close)."""
    tune_gc()
    if not reload:
        config = uvicorn.Config(
            "backend.http.asgi:app",
            host=host or settings.host,
            port=port or settings.port,
            log_level="info",
            log_config=log_config(),
            **server_options(settings),
        )
        _AnnouncingServer(config, settings).run()
        return 0
    uvicorn.run(
        "backend.http.asgi:app",
        host=host or settings.host,
        port=port or settings.port,
        reload=reload,
        reload_dirs=["backend", settings.app_functions, settings.app_schema] if reload else None,
        log_level="info",
        log_config=log_config(),  # the reloading child configures its logging from it too
        **server_options(settings),
    )
    return 0
