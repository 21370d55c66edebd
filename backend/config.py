"""Configuration, from the environment (and a ``.env`` file when present)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DATA_DIR = Path("data")
DEFAULT_DATABASE_URL = f"sqlite+aiosqlite:///{DATA_DIR / 'backend.sqlite3'}"


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
    public_url: str | None = None
    app_schema: str = "schema"
    app_functions: str = "functions"
    web_dir: str = "client_js/demo/dist"  # the built demo web app, served at /
    ws_compression: bool = False  # per-message deflate on the sync socket

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

    def origin(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"


def load_settings() -> Settings:
    return Settings()
