"""Query plans on tables the planner knows nothing about, for tests that pin index use.

PostgreSQL plans from its statistics, and a table nobody has analyzed has none: a batch
statement that is an index range scan on an analyzed table can turn into a scan of the whole
table there. These helpers fill the engine's tables straight with SQL, keep autovacuum from
analyzing them, and read a statement's plan on either database.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from backend.storage.database import DatabaseKind
from backend.storage.store import Store

INDEX_SCANS = ("Index Scan", "Index Only Scan", "Bitmap Index Scan")
TABLES = ("log", "documents", "index_entries")


def _series(store: Store) -> str:
    if store.kind is DatabaseKind.POSTGRESQL:
        return "SELECT g FROM generate_series(1, :rows) AS g"
    return (
        "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < :rows)"
        " SELECT g FROM s"
    )


async def fill_unanalyzed(store: Store, *, rows: int, docs: int) -> None:
    """``rows`` log rows over ``docs`` documents (ids ``doc1000000``...), the documents
    themselves and one index entry each, with no statistics ever gathered on the tables."""
    fills = (
        "INSERT INTO log (ts, seq, table_name, doc_id, value)"
        " SELECT g, 0, 'notes', 'doc' || (1000000 + g % :docs), NULL FROM ({series}) AS n",
        "INSERT INTO documents (doc_id, table_name, value)"
        " SELECT 'doc' || (1000000 + g), 'notes', '{{}}' FROM ({series}) AS n WHERE g < :docs",
        "INSERT INTO index_entries (index_name, key, doc_id)"
        " SELECT 'notes.by_author', CAST('doc' || (1000000 + g) AS {blob}), 'doc' || (1000000 + g)"
        " FROM ({series}) AS n WHERE g < :docs",
    )
    postgres = store.kind is DatabaseKind.POSTGRESQL
    async with store.engine.begin() as conn:
        if postgres:
            for table in TABLES:
                await conn.execute(text(f"ALTER TABLE {table} SET (autovacuum_enabled = false)"))
        for fill in fills:
            statement = fill.format(series=_series(store), blob="bytea" if postgres else "blob")
            await conn.execute(text(statement), {"rows": rows, "docs": docs})
        if postgres:
            known = await conn.execute(
                text("SELECT count(*) FROM pg_stats WHERE schemaname = current_schema()")
            )
            assert known.scalar_one() == 0  # the planner knows nothing of these tables


async def plan_of(store: Store, statement: Any, params: dict[str, object]) -> list[str]:
    """The plan's lines (PostgreSQL's VERBOSE shows the subplans a recursive step runs)."""
    compiled = statement.compile(dialect=store.engine.dialect)
    bound = compiled.construct_params(params)
    values = tuple(bound[name] for name in compiled.positiontup)
    verb = "EXPLAIN (VERBOSE)" if store.kind is DatabaseKind.POSTGRESQL else "EXPLAIN QUERY PLAN"
    async with store.engine.connect() as conn:
        rows = await conn.exec_driver_sql(f"{verb} {compiled}", values)
        return [str(r[-1]) for r in rows]


def assert_reads_by_index(
    store: Store, name: str, plan: list[str], aliases: tuple[str, ...] = ()
) -> None:
    """Every read of the engine's tables in ``plan`` goes through an index range: on
    PostgreSQL no sequential scan at all and an index scan somewhere; on SQLite a SEARCH (a
    range of an index), never a SCAN of one of the tables."""
    whole = "\n".join(plan)
    names = TABLES + aliases
    reads = [line for line in plan if any(f" {table}" in line for table in names)]
    assert reads, (name, whole)
    if store.kind is DatabaseKind.POSTGRESQL:
        assert "Seq Scan" not in whole, (name, whole)
        assert any(scan in whole for scan in INDEX_SCANS), (name, whole)
        return
    for line in reads:
        assert line.startswith("SEARCH"), (name, whole)
        assert " USING " in line, (name, whole)
