"""Configuration, from the environment (and a ``.env`` file when present)."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DATA_DIR = Path("data")
DEFAULT_DATABASE_URL = f"sqlite+aiosqlite:///{DATA_DIR / 'backend.sqlite3'}"


class ConfigurationError(RuntimeError):
    """A configuration a server must not start with; the message says what to set."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 3210
    database_url: str = DEFAULT_DATABASE_URL
    database_schema: str | None = None  # PostgreSQL: the schema to use (default: public)
    smtp_url: str | None = None
    dev_mode: bool = False
    secret_key: str | None = Field(default=None, repr=False)
    allowed_origins: list[str] = Field(default_factory=list)
    # host names served besides PUBLIC_URL's (``*.example.com`` for every subdomain)
    allowed_hosts: list[str] = Field(default_factory=list)
    public_url: str | None = None
    app_schema: str = "schema"
    app_functions: str = "functions"
    web_dir: str = "client_js/demo/dist"  # the built demo web app, served at /
    # The dashboard at /_dashboard: its key (at least 32 characters; unset in dev: one derived
    # from SECRET_KEY, unset in production: no dashboard at all) and its built page
    admin_key: str | None = Field(default=None, repr=False)
    dashboard_dir: str = "client_js/dashboard/dist"
    ws_compression: bool = False  # per-message deflate on the sync socket
    # No session for a password account until its address is proven (a verification link)
    require_email_verification: bool = False
    body_timeout: float = 30.0  # seconds a request body may take to arrive (else 408)
    # Addresses of the reverse proxies whose X-Forwarded-For / -Proto are believed (uvicorn's
    # ``forwarded_allow_ips``: a comma-separated list, or "*"). Unset: no proxy is trusted, and
    # a client address is the socket's peer, so no client can pick its own address for the
    # per-address rate limits and audit trails.
    forwarded_allow_ips: str | None = None
    # HTTP actions answer at the site origin: this port (0: no second listener), and under
    # /http/ on the main port either way
    site_port: int = 3211
    http_action_max_body: int = 20 * 1024 * 1024  # bytes, as Convex's limit
    # File storage: where files live, the largest upload, and how long an upload may take
    storage_dir: str = str(DATA_DIR / "storage")
    # another blob store: "package.module:factory", called with these settings (S3, ...)
    storage_backend: str | None = None
    storage_max_bytes: int = 2 * 1024**3
    storage_upload_timeout: float = 600.0
    # Where every function call's structured line is appended (``python -m backend logs``
    # tails it); every server process of a deployment may share one file. Empty: nowhere.
    function_log: str = str(DATA_DIR / "logs" / "functions.jsonl")

    def resolved_secret_key(self) -> str:
        """The server secret; generated once under ``./data/`` in dev, required otherwise."""
        if self.secret_key:
            return self.secret_key
        if not self.dev_mode:
            raise RuntimeError("SECRET_KEY must be set when DEV_MODE=0")
        path = DATA_DIR / "secret_key"
        if path.exists():
            return path.read_text().strip()
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key)
        return key

    def resolved_admin_key(self) -> str | None:
        """The dashboard's admin key: ``ADMIN_KEY``, or in dev one derived from the secret;
        None in production without ``ADMIN_KEY`` (then nothing accepts an admin key)."""
        if self.admin_key:
            return self.admin_key
        if not self.dev_mode:
            return None
        # derived, never the secret itself; stable across restarts
        secret = self.resolved_secret_key().encode()
        return hmac.new(secret, b"dashboard admin key", hashlib.sha256).hexdigest()

    def check_can_serve(self) -> None:
        """Refuse to serve a production configuration that would fail silently.

        With ``DEV_MODE=0`` a server needs ``SECRET_KEY`` (it signs and keys everything) and a
        mail transport (``SMTP_URL``): without one, sign-in links and verification codes would
        go to the dev mailbox, which nobody reads outside development. Raises
        ``ConfigurationError`` naming every missing setting.
        """
        if self.admin_key is not None and len(self.admin_key) < 32:
            raise ConfigurationError("ADMIN_KEY must have at least 32 characters")
        if self.dev_mode:
            return
        missing = []
        if not self.secret_key:
            missing.append("SECRET_KEY must be set when DEV_MODE=0")
        if not (self.smtp_url and self.smtp_url.strip()):
            missing.append(
                "SMTP_URL must be set when DEV_MODE=0: without a mail server, sign-in links "
                "and verification codes would go nowhere (set SMTP_URL=smtp://host:port, "
                "or DEV_MODE=1 for development)"
            )
        if missing:
            raise ConfigurationError("; ".join(missing))

    def origin(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    def served_hosts(self) -> list[str]:
        """The ``Host`` names this server answers: ``PUBLIC_URL``'s, ``ALLOWED_HOSTS``, and in
        dev the loopback names (a page can only send those by being loaded from them, so they
        are never a rebound name)."""
        hosts = [urlsplit(self.origin()).hostname or "", *self.allowed_hosts]
        if self.dev_mode:
            hosts += ["localhost", "127.0.0.1", "[::1]"]
        bracketed = [f"[{h}]" if ":" in h and not h.startswith("[") else h for h in hosts]
        return list(dict.fromkeys(h.lower() for h in bracketed if h))


def load_settings() -> Settings:
    return Settings()
