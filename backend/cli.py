"""``python -m backend serve | dev | migrate | verify-log | compact``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sys
from datetime import timedelta
from pathlib import Path

from backend.config import DATA_DIR, ConfigurationError, Settings, load_settings
from backend.storage.engine import DatabaseKind, kind_of
from backend.storage.migrate import upgrade
from backend.storage.store import Store


def _prepare(settings: Settings) -> None:
    if kind_of(settings.database_url) is DatabaseKind.SQLITE:
        DATA_DIR.mkdir(parents=True, exist_ok=True)


async def migrate(settings: Settings) -> None:
    _prepare(settings)
    store = Store(settings.database_url)
    try:
        await upgrade(store.engine)
    finally:
        await store.close()


async def verify(settings: Settings) -> int:
    from backend.storage.verify import verify_log
    from backend.system import system_schema
    from backend.udf.app import load_app

    sys.path.insert(0, str(Path.cwd()))
    app = load_app(settings.app_schema, settings.app_functions)
    store = Store(settings.database_url)
    try:
        report = await verify_log(store, app.schema.merged(system_schema()))
    finally:
        await store.close()
    print(
        f"commits: {report.commits}  log rows: {report.log_rows}  "
        f"documents: {report.documents}  index entries: {report.index_entries}"
    )
    if report.ok:
        print("ok: the projections match a replay of the log")
        return 0
    print(f"MISMATCH: {report.difference}")
    return 1


_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def duration(value: str) -> timedelta:
    """``7d``, ``12h``, ``30m``, ``90s``, ``2w``: a retention window for ``compact --keep``."""
    match = _DURATION.fullmatch(value.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"expected a duration like 7d, 12h or 30m, not {value!r}")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


async def compact(settings: Settings, *, keep: timedelta | None, before_ts: int | None) -> int:
    from backend.storage.compact import compact_log, horizon_for

    store = Store(settings.database_url)
    try:
        if keep is not None:
            horizon = horizon_for(await store.latest_ts(), keep)
        else:
            assert before_ts is not None
            horizon = before_ts
        report = await compact_log(store, horizon_ts=horizon)
    finally:
        await store.close()
    print(
        f"compacted the log at or before ts {report.horizon_ts}: removed {report.rows_removed} "
        f"rows of {report.documents_affected} documents"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the API and the demo app")
    dev = sub.add_parser("dev", help="serve, reloading on code changes")
    for p in (serve, dev):
        p.add_argument("--host")
        p.add_argument("--port", type=int)
    sub.add_parser("migrate", help="apply database migrations")
    sub.add_parser("verify-log", help="check the projections against a replay of the log")
    compaction = sub.add_parser("compact", help="drop log history a replay no longer needs")
    horizon = compaction.add_mutually_exclusive_group(required=True)
    horizon.add_argument(
        "--keep", type=duration, help="history to keep before the newest commit (7d, 12h, ...)"
    )
    horizon.add_argument("--before-ts", type=int, help="compact at or before this commit ts")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = load_settings()
    if args.command == "migrate":
        asyncio.run(migrate(settings))
        print("migrations applied")
        return 0
    if args.command == "verify-log":
        return asyncio.run(verify(settings))
    if args.command == "compact":
        return asyncio.run(compact(settings, keep=args.keep, before_ts=args.before_ts))
    from backend.http.serve import serve_forever

    try:
        settings.check_can_serve()
    except ConfigurationError as refused:
        print(f"error: refusing to start: {refused}", file=sys.stderr)
        return 2
    _prepare(settings)
    return serve_forever(settings, host=args.host, port=args.port, reload=args.command == "dev")
