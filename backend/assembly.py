"""The one place an engine is put together: the store, the engine, and every service its
subsystems reach through ``SystemContext`` (auth, step-up, sealing, file storage, tokens).

The server, the test harness, the live test servers and the benchmarks all call
``assemble``; they differ only in the settings and the overrides they pass (a fake clock, a
mail transport that captures, a fast password hasher, a store they prepared, limits). What a
subsystem needs is registered here, once, in one order::

    parts = assemble(settings)                       # a server, from its settings
    parts = assemble(settings, runtime=Runtime(clock=clock), mail_transport=capture,
                     passwords=fast, store=store)    # a test, with its overrides
    parts.engine, parts.auth, parts.keyring, parts.files

``assemble`` opens nothing and deploys nothing: the caller runs migrations and deploys, and
serves (``backend/http/app.py``'s ``create_app`` takes the parts).
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from backend.auth.jwt import KeyRing
from backend.auth.oauth import OAuthClient, providers_from_env
from backend.auth.passwords import Passwords
from backend.auth.service import AuthConfig, AuthService
from backend.auth.sessions import resolve_identity
from backend.config import ConfigurationError, Settings
from backend.engine import Engine
from backend.files.blobs import BlobStore, LocalDiskBlobs
from backend.files.service import FileStorage, install_storage
from backend.mail import install_seal
from backend.mail.outbox import MailTransport
from backend.mail.smtp import transport_from_url
from backend.runtime import Runtime
from backend.sensitive.methods import METHODS
from backend.sensitive.service import SensitiveService
from backend.storage.store import Store
from backend.system import system_functions, system_schema
from backend.transactions.limits import Limits
from backend.udf.app import App, load_app
from backend.udf.calls import write_calls_to


@dataclass(frozen=True)
class Assembly:
    """An engine and the services registered on it."""

    engine: Engine
    auth: AuthService
    keyring: KeyRing
    files: FileStorage


def assemble(
    settings: Settings,
    *,
    serving: bool = False,
    store: Store | None = None,
    app: App | None = None,
    runtime: Runtime | None = None,
    mail_transport: MailTransport | None = None,
    passwords: Passwords | None = None,
    limits: Limits | None = None,
    blobs: BlobStore | None = None,
    test_tokens: bool = False,
) -> Assembly:
    """The engine and its services from ``settings``, with what the caller overrides.

    ``serving`` is a real server's assembly: the production checks (``ConfigurationError``
    for a production configuration without a mail transport or secret), the app loaded from
    the working directory, and every call logged to ``FUNCTION_LOG``. ``test_tokens`` leaves
    sessions unchecked behind tokens, for servers whose tests sign tokens naming no session."""
    if serving:
        settings.check_can_serve()
        sys.path.insert(0, str(Path.cwd()))
        if settings.function_log:
            write_calls_to(Path(settings.function_log))
    runtime = runtime or Runtime()
    engine = Engine(
        store or Store(settings.database_url, pg_schema=settings.database_schema),
        app or load_app(settings.app_schema, settings.app_functions),
        system_schema=system_schema(),
        system_functions=system_functions(),
        runtime=runtime,
        limits=limits,
        dev_mode=settings.dev_mode,
        identity_resolver=None if test_tokens else resolve_identity,
        mail_transport=mail_transport or transport_from_url(settings.smtp_url, runtime=runtime),
    )
    secret, origin = settings.resolved_secret_key(), settings.origin()
    providers = providers_from_env(os.environ)
    auth = AuthService(
        engine,
        AuthConfig(
            secret=secret,
            base_url=origin,
            trusted_origins=list(settings.allowed_origins),
            require_email_verification=settings.require_email_verification,
        ),
        passwords=passwords,
        oauth=OAuthClient(providers, engine.runtime) if providers else None,
    )
    engine.services.register(
        SensitiveService,
        SensitiveService(engine, secret, auth.passwords, methods=METHODS, origin=origin),
    )
    install_seal(engine, secret)
    files = install_storage(
        engine,
        secret,
        origin,
        blobs=blobs or blob_store(settings),
        max_bytes=settings.storage_max_bytes,
    )
    return Assembly(engine, auth, KeyRing(engine, secret, issuer=origin), files)


def blob_store(settings: Settings) -> BlobStore:
    """The blob store the settings name: ``STORAGE_BACKEND`` (``module:factory``, called with
    the settings), or files on local disk under ``STORAGE_DIR``."""
    if not settings.storage_backend:
        return LocalDiskBlobs(settings.storage_dir)
    module_name, _, factory_name = settings.storage_backend.partition(":")
    if not module_name or not factory_name:
        raise ConfigurationError("STORAGE_BACKEND must be 'package.module:factory'")
    factory = getattr(importlib.import_module(module_name), factory_name)
    store = factory(settings)
    if not isinstance(store, BlobStore):
        raise ConfigurationError(f"STORAGE_BACKEND {settings.storage_backend} made no BlobStore")
    return store


__all__ = ["Assembly", "assemble", "blob_store"]
