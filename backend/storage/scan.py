"""Keyset batches over an index whose plan does not depend on the planner's statistics.

Maintenance that walks a large table (``verify-log``, compaction) does it a batch of keys at a
time: the keys in ``(after, last]``, where ``last`` is the ``batch``-th distinct key above
``after``. Asking the database for ``last`` with ``SELECT DISTINCT key ... ORDER BY key LIMIT
n`` leaves the plan to the statistics: on a PostgreSQL table that was never analyzed the
planner guesses 200 distinct keys, finds the limit unreachable and hashes the whole table, per
batch, which makes a pass over the table quadratic. ``batch_end`` asks instead with a loose
index scan: a recursive query of ``batch`` steps, each one ``min(key) WHERE key > previous``,
which both databases answer with one descent of the index (PostgreSQL's min/max rewrite,
SQLite's min() optimisation), whatever they know about the table.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Integer, Select, bindparam, func, literal_column, select


def batch_end(column: ColumnElement[Any], *where: ColumnElement[bool]) -> Select[tuple[Any]]:
    """The ``:batch``-th distinct value of ``column`` above ``:after`` among the rows matching
    ``where`` (the greatest one when fewer remain; NULL when none does).

    ``column`` must lead an index (with the columns ``where`` tests next, ideally)."""
    first = select(func.min(column)).where(column > bindparam("after"), *where).scalar_subquery()
    steps = select(first.label("value"), literal_column("1").label("n")).cte(
        "keyset", recursive=True
    )
    following = select(func.min(column)).where(column > steps.c.value, *where).scalar_subquery()
    steps = steps.union_all(
        select(following, steps.c.n + 1).where(
            steps.c.value.is_not(None), steps.c.n < bindparam("batch", type_=Integer)
        )
    )
    return select(func.max(steps.c.value))
