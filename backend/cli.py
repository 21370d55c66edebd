"""``python -m backend VERB``: ``python -m backend --help`` lists every verb."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from backend.config import DATA_DIR, ConfigurationError, Settings, load_settings
from backend.storage.database import DatabaseKind, kind_of
from backend.storage.migrate import upgrade
from backend.storage.store import Store
from backend.udf.app import App
from backend.udf.calls import tail


def _prepare(settings: Settings) -> None:
    if kind_of(settings.database_url) is DatabaseKind.SQLITE:
        DATA_DIR.mkdir(parents=True, exist_ok=True)


def _store(settings: Settings) -> Store:
    return Store(settings.database_url, pg_schema=settings.database_schema)


def _app(settings: Settings) -> App:
    from backend.udf.app import load_app

    sys.path.insert(0, str(Path.cwd()))
    return load_app(settings.app_schema, settings.app_functions)


def _say(line: str) -> None:
    print(line, flush=True)


async def migrate(
    settings: Settings,
    *,
    batch_size: int | None = None,
    batch_pause: float = 0.0,
    revalidate: bool = False,
) -> int:
    """Apply the system migrations, then deploy the app's schema; 1 when it is refused."""
    from backend.storage.deploy import BATCH_SIZE, deploy
    from backend.system import system_schema

    _prepare(settings)
    schema = _app(settings).schema.merged(system_schema())
    store = _store(settings)
    try:
        await upgrade(store.engine)
        _say("system migrations applied")
        report = await deploy(
            store,
            schema,
            batch_size=batch_size or BATCH_SIZE,
            batch_pause=batch_pause,
            revalidate=revalidate,
            progress=_say,
        )
    finally:
        await store.close()
    _say(report.format())
    return 0 if report.ok else 1


async def migrations(
    settings: Settings,
    *,
    name: str | None,
    listing: bool,
    batch_size: int | None = None,
    batch_pause: float = 0.0,
) -> int:
    """Run data migrations (one, or every one not done yet), or list them."""
    from backend.assembly import assemble
    from backend.errors import ConvexError
    from backend.migrator import BATCH_SIZE, MigrationProgress, Migrator
    from backend.storage.deployment import NotDeployed

    engine = assemble(settings, store=_store(settings), app=_app(settings)).engine
    migrator = Migrator(engine)
    try:
        try:
            await engine.load_deployment(require=True)
        except NotDeployed as exc:
            print(exc, file=sys.stderr)
            return 2
        if listing:
            for state in await migrator.status():
                _say(state.describe())
            return 0
        names = [migrator.find(name).path or name] if name else await migrator.pending()
        if not names:
            _say("no migration to run")
        last_line = 0.0

        def report(progress: MigrationProgress) -> None:
            nonlocal last_line
            now = asyncio.get_running_loop().time()
            if progress.done or now - last_line >= 1.0:
                last_line = now
                _say(progress.describe())

        for each in names:
            try:
                await migrator.run(
                    each,
                    batch_size=batch_size or BATCH_SIZE,
                    batch_pause=batch_pause,
                    progress=report,
                )
            except ConvexError as exc:
                print(f"migration {each} failed: {exc}", file=sys.stderr)
                return 1
        return 0
    finally:
        await engine.store.close()


async def verify(settings: Settings) -> int:
    from backend.storage.deployment import DEPLOY_COMMAND
    from backend.storage.verify import verify_log
    from backend.system import system_schema

    app = _app(settings)
    store = _store(settings)
    try:
        report = await verify_log(store, app.schema.merged(system_schema()))
    finally:
        await store.close()
    print(
        f"commits: {report.commits}  log rows: {report.log_rows}  "
        f"documents: {report.documents}  index entries: {report.index_entries}"
    )
    for state, names in (("built", report.building), ("dropped", report.dropping)):
        for name in names:
            print(f"index {name} is being {state} by a deploy (`{DEPLOY_COMMAND}` finishes it)")
    if report.ok:
        print("ok: the projections match a replay of the log")
        return 0
    print(f"MISMATCH: {report.difference}")
    return 1


async def check_deployed(settings: Settings) -> str | None:
    """Why the app cannot be served (its schema is not the deployed one), or None."""
    from sqlalchemy.exc import DBAPIError

    from backend.storage.deployment import load_deployment
    from backend.system import system_schema

    schema = _app(settings).schema.merged(system_schema())
    store = _store(settings)
    try:
        try:
            deployment = await load_deployment(store)
        except DBAPIError:  # a database never migrated has no record at all
            return "The database is not set up: run `python -m backend migrate`."
        differences = deployment.differences(schema)
    finally:
        await store.close()
    if not differences:
        return None
    from backend.storage.deployment import NotDeployed

    return str(NotDeployed(differences))


_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def duration(value: str) -> timedelta:
    """``7d``, ``12h``, ``30m``, ``90s``, ``2w``: a retention window for ``compact --keep``."""
    match = _DURATION.fullmatch(value.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"expected a duration like 7d, 12h or 30m, not {value!r}")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


async def compact(settings: Settings, *, keep: timedelta | None, before_ts: int | None) -> int:
    from backend.storage.compact import compact_log, horizon_for

    store = _store(settings)
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


def codegen(settings: Settings, *, out: Path, check: bool) -> int:
    """Write ``convex/_generated/`` (``api.js``, ``api.d.ts``, ``dataModel.d.ts``); with
    ``check``, write nothing and answer 1 if a file is not current."""
    from backend.codegen import app_files, write

    files = app_files(_app(settings))
    if check:
        stale = [
            n
            for n, text in files.items()
            if not (out / n).is_file() or (out / n).read_text() != text
        ]
        for name in stale:
            print(f"{out / name} is not current: run `python -m backend codegen`", file=sys.stderr)
        return 1 if stale else 0
    written = write(out, files)
    _say(
        f"codegen: wrote {', '.join(written)} in {out}" if written else f"codegen: {out} is current"
    )
    return 0


async def _engine(settings: Settings) -> Any:
    """The engine a server would run (its services too), on the deployed schema."""
    from backend.assembly import assemble

    engine = assemble(settings, store=_store(settings), app=_app(settings)).engine
    await engine.load_deployment(require=True)
    return engine


async def run_function(settings: Settings, path: str, raw_args: str, as_email: str | None) -> int:
    """``run``: call any function (internal ones too) as nobody or as the user ``as_email``
    (on a session opened for the call and revoked after it); print its value as JSON."""
    import json

    from backend.auth import sessions
    from backend.auth.service import normalise_email
    from backend.auth.tables import USERS
    from backend.errors import ConvexError
    from backend.storage.deployment import NotDeployed
    from backend.udf.context import Identity
    from backend.udf.registry import FunctionKind
    from backend.values.convex_json import from_json, to_json

    try:
        args = from_json(json.loads(raw_args))
    except (ValueError, ConvexError) as exc:
        print(f"error: the arguments are not a JSON object: {exc}", file=sys.stderr)
        return 2
    if not isinstance(args, dict):
        print(
            'error: the arguments must be a JSON object, like \'{"name": "Acme"}\'', file=sys.stderr
        )
        return 2
    try:
        engine = await _engine(settings)
    except (ConfigurationError, NotDeployed) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    session_id: str | None = None
    try:
        function = engine.functions.get(path if ":" in path else f"{path}:default")
        if function is None:
            print(f"error: no function {path!r}", file=sys.stderr)
            return 2
        identity = None
        if as_email is not None:
            address = normalise_email(as_email)

            async def open_session(db: Any) -> tuple[str, str] | None:
                user = await db.query(USERS).with_index("by_email", email=address).first()
                if user is None:
                    return None
                _token, session = await sessions.create_session(
                    db,
                    engine.runtime,
                    user["_id"],
                    now_ms=db.now_ms,
                    user_agent="python -m backend run",
                )
                return str(user["_id"]), str(session["_id"])

            opened, _ = await engine.system_write(open_session, label="_system/cli:run")
            if opened is None:
                print(f"error: no user has the email {as_email!r}", file=sys.stderr)
                return 2
            session_id = opened[1]
            identity = Identity(subject=opened[0], session_id=session_id)
        try:
            if function.kind is FunctionKind.QUERY:
                value = await engine.run_query(path, args, identity, internal=True)
            elif function.kind is FunctionKind.MUTATION:
                value = (await engine.run_mutation(path, args, identity, internal=True)).value
            else:
                value = await engine.run_action(path, args, identity, internal=True)
        except ConvexError as exc:
            print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
            print(json.dumps(to_json(exc.data)), file=sys.stderr)
            return 1
        print(json.dumps(to_json(value), indent=2))
        return 0
    finally:
        if session_id is not None:
            closing = session_id
            await engine.system_write(
                lambda db: sessions.revoke(db, closing), label="_system/cli:run"
            )
        await engine.store.close()


async def export_data(settings: Settings, path: Path) -> int:
    from backend.assembly import assemble
    from backend.snapshot import ExportFailed, export_snapshot

    # assembled as a server is, for its file storage (STORAGE_DIR or STORAGE_BACKEND)
    engine = assemble(settings, store=_store(settings), app=_app(settings)).engine
    try:
        report = await export_snapshot(engine, path)
    except ExportFailed as failed:
        print(f"error: {failed}; nothing was written", file=sys.stderr)
        return 1
    finally:
        await engine.store.close()
    _say(report.format())
    return 0


async def import_data(settings: Settings, path: Path, *, replace_tables: bool) -> int:
    from backend.assembly import assemble
    from backend.snapshot import import_snapshot
    from backend.storage.deployment import NotDeployed

    engine = assemble(settings, store=_store(settings), app=_app(settings)).engine
    try:
        try:
            await engine.load_deployment(require=True)
        except NotDeployed as exc:
            print(exc, file=sys.stderr)
            return 2
        report = await import_snapshot(engine, path, replace_tables=replace_tables)
    finally:
        await engine.store.close()
    print(report.format(), file=sys.stdout if report.ok else sys.stderr)
    return 0 if report.ok else 1


def _batch_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--batch-size", type=_positive, help="documents per transaction (default: 2000 / 500)"
    )
    parser.add_argument(
        "--batch-pause", type=float, default=0.0, help="seconds to wait between batches"
    )


async def env(settings: Settings, action: str, name: str | None, value: str | None) -> int:
    """``python -m backend env set|get|list|remove``: the deployment's environment variables,
    sealed under ``SECRET_KEY`` (the servers' own) in the database they share."""
    from backend.assembly import assemble
    from backend.errors import ConvexError
    from backend.storage.deployment import NotDeployed

    engine = assemble(settings, store=_store(settings), app=_app(settings)).engine
    try:
        try:
            await engine.load_deployment(require=True)
        except NotDeployed as exc:
            print(exc, file=sys.stderr)
            return 2
        variables = engine.environment
        if action == "list":
            for key, found in sorted((await variables.listing()).items()):
                _say(f"{key}={found}")
            return 0
        assert name is not None
        if action == "get":
            current = (await variables.listing()).get(name)
            if current is None:
                print(f"error: {name} is not set", file=sys.stderr)
                return 1
            _say(current)
            return 0
        if action == "remove":
            if not await variables.remove(name):
                print(f"error: {name} is not set", file=sys.stderr)
                return 1
            _say(f"removed {name}")
            return 0
        if value is None:  # from stdin: a secret kept out of the shell's history
            value = sys.stdin.read().removesuffix("\n")
        await variables.set(name, value)
        _say(f"set {name}")  # never the value
        return 0
    except ConvexError as refused:
        print(f"error: {refused.message}", file=sys.stderr)
        return 2
    finally:
        await engine.store.close()


def show_logs(file: str | None, *, history: int, follow: bool, raw: bool) -> int:
    """``python -m backend logs``: the calls every server process appended to the log file."""
    path = Path(file or load_settings().function_log)
    if not str(path) or str(path) == ".":
        print("error: FUNCTION_LOG is empty: the servers write no call log", file=sys.stderr)
        return 2
    if not path.exists() and not follow:
        print(f"error: no call log at {path} yet", file=sys.stderr)
        return 1

    def say(line: str) -> None:
        print(line, flush=True)

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends the follow
        tail(path, history=max(history, 0), follow=follow, say=say, raw=raw)
    return 0


class _VerbsHelp(argparse.HelpFormatter):
    """Lists each verb on one line: argparse measures the verbs without their indent."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30, width=100)

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        if isinstance(action.choices, dict):  # the verbs, listed one indent further in
            longest = max(map(len, action.choices)) + self._current_indent
            self._action_max_length = max(self._action_max_length, longest + 2 * 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m backend",
        description="The backend's command line: serve the app, deploy it, look at its data.",
        formatter_class=_VerbsHelp,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="VERB", title="verbs")
    serve = sub.add_parser("serve", help="serve the API and the demo app")
    dev = sub.add_parser("dev", help="serve, deploying and restarting on code changes")
    for p in (serve, dev):
        p.add_argument("--host")
        p.add_argument("--port", type=int)
        p.add_argument(
            "--site-port", type=int, help="the site origin's port, for HTTP actions (0: none)"
        )
    deploying = sub.add_parser(
        "migrate", help="apply the database migrations, then deploy the app's schema"
    )
    _batch_options(deploying)
    deploying.add_argument(
        "--revalidate", action="store_true", help="check every stored document, changed or not"
    )
    data = sub.add_parser("migrations", help="data migrations (@migration)")
    data_sub = data.add_subparsers(dest="action", required=True)
    run = data_sub.add_parser("run", help="run one migration, or every one not done yet")
    run.add_argument("name", nargs="?", help="module:name, or the bare name")
    _batch_options(run)
    data_sub.add_parser("list", help="every migration and how far it has got")
    sub.add_parser("verify-log", help="check the projections against a replay of the log")
    compaction = sub.add_parser("compact", help="drop log history a replay no longer needs")
    horizon = compaction.add_mutually_exclusive_group(required=True)
    horizon.add_argument(
        "--keep", type=duration, help="history to keep before the newest commit (7d, 12h, ...)"
    )
    horizon.add_argument("--before-ts", type=int, help="compact at or before this commit ts")
    generating = sub.add_parser("codegen", help="write the typed client API (convex/_generated)")
    generating.add_argument("--out", type=Path, default=Path("convex") / "_generated")
    generating.add_argument("--check", action="store_true", help="fail if it is not current")
    variables = sub.add_parser("env", help="the deployment's environment variables")
    env_sub = variables.add_subparsers(dest="action", required=True)
    setting = env_sub.add_parser("set", help="set NAME to VALUE (or to what stdin holds)")
    setting.add_argument("name")
    setting.add_argument("value", nargs="?")
    for verb, text in (("get", "print NAME's value"), ("remove", "unset NAME")):
        env_sub.add_parser(verb, help=text).add_argument("name")
    env_sub.add_parser("list", help="every variable, NAME=VALUE")
    logs = sub.add_parser("logs", help="print the function calls' logs, then follow new ones")
    logs.add_argument(
        "--history", type=int, default=10, help="calls to show from before now (default 10)"
    )
    logs.add_argument("--no-follow", action="store_true", help="print the history and stop")
    logs.add_argument("--json", action="store_true", help="each call's line as it is stored")
    logs.add_argument("--file", help="the log file (default: FUNCTION_LOG)")
    running = sub.add_parser("run", help='call a function: run orgs:create \'{"name": "Acme"}\'')
    running.add_argument("path", help="module:function (internal functions too)")
    running.add_argument("args", nargs="?", default="{}", help="its arguments, a JSON object")
    running.add_argument("--as", dest="as_email", metavar="EMAIL", help="call as this user")
    exporting = sub.add_parser(
        "export", help="write the app's tables and stored files to a ZIP (Convex's layout)"
    )
    exporting.add_argument("--path", type=Path, required=True, help="the ZIP file to write")
    importing = sub.add_parser(
        "import",
        help="load a ZIP made by export, files too; refused whole if any of it breaks the schema",
    )
    importing.add_argument("path", type=Path, help="the ZIP file to read")
    importing.add_argument(
        "--replace", action="store_true", help="empty the imported tables (and files) first"
    )
    args = parser.parse_args(argv)
    if args.command == "logs":
        return show_logs(args.file, history=args.history, follow=not args.no_follow, raw=args.json)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command in ("run", "export", "import", "env", "migrations"):
        # the per-call line is a server's log; a verb that calls functions prints its own
        logging.getLogger("backend.functions").setLevel(logging.WARNING)
    if args.command == "dev":
        # `dev` is for development, as `npx convex dev` is: DEV_MODE=0 in the environment
        # still wins, and then the production checks below apply
        os.environ.setdefault("DEV_MODE", "1")
    settings = load_settings()
    if args.command in ("run", "export", "import", "env"):
        try:
            settings.resolved_secret_key()
        except RuntimeError as missing:  # said in one line, not as a traceback
            print(
                f"error: {missing} (or DEV_MODE=1 for the development deployment that"
                " `dev` keeps in this folder)",
                file=sys.stderr,
            )
            return 2
    if args.command == "migrate":
        return asyncio.run(
            migrate(
                settings,
                batch_size=args.batch_size,
                batch_pause=args.batch_pause,
                revalidate=args.revalidate,
            )
        )
    if args.command == "migrations":
        return asyncio.run(
            migrations(
                settings,
                name=getattr(args, "name", None),
                listing=args.action == "list",
                batch_size=getattr(args, "batch_size", None),
                batch_pause=getattr(args, "batch_pause", 0.0),
            )
        )
    if args.command == "codegen":
        return codegen(settings, out=args.out, check=args.check)
    if args.command == "verify-log":
        return asyncio.run(verify(settings))
    if args.command == "env":
        return asyncio.run(
            env(settings, args.action, getattr(args, "name", None), getattr(args, "value", None))
        )
    if args.command == "compact":
        return asyncio.run(compact(settings, keep=args.keep, before_ts=args.before_ts))
    if args.command == "run":
        return asyncio.run(run_function(settings, args.path, args.args, args.as_email))
    if args.command == "export":
        return asyncio.run(export_data(settings, args.path))
    if args.command == "import":
        return asyncio.run(import_data(settings, args.path, replace_tables=args.replace))
    try:
        settings.check_can_serve()
    except ConfigurationError as refused:
        print(f"error: refusing to start: {refused}", file=sys.stderr)
        return 2
    _prepare(settings)
    if args.site_port is not None:  # the app reads its settings anew (a reloading child too)
        os.environ["SITE_PORT"] = str(args.site_port)
    if args.command == "dev":
        from backend.http.dev import develop

        return develop(settings, host=args.host, port=args.port)
    refusal = asyncio.run(check_deployed(settings))
    if refusal is not None:
        print(refusal, file=sys.stderr)
        return 2
    from backend.http.serve import serve_forever

    return serve_forever(settings, host=args.host, port=args.port)
