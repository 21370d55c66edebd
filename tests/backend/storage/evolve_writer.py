"""A server process of the old app, writing items until a deploy fences it.

    python -m tests.backend.storage.evolve_writer URL PG_SCHEMA

Runs tests/apps/evolve's v1: inserts items, changes and deletes some, printing ``commit`` per
write, until a write is refused with SCHEMA_OUTDATED (the new schema went live). Then it prints
``fenced`` and, as JSON, the ids of the items it left alive.
"""

from __future__ import annotations

import asyncio
import json
import sys

from backend.engine import Engine
from backend.errors import ConvexError
from backend.storage.store import Store
from backend.system import system_functions, system_schema
from backend.udf.app import load_app


async def main(url: str, pg_schema: str) -> None:
    app = load_app("tests.apps.evolve.v1", "tests.apps.evolve.functions")
    store = Store(url, pg_schema=pg_schema or None)
    engine = Engine(store, app, system_schema=system_schema(), system_functions=system_functions())
    await engine.load_deployment(require=True)
    alive: list[str] = []
    k = 0
    try:
        while True:
            k += 1
            alive.append((await engine.run_mutation("items:add", {"name": f"w{k}", "n": k})).value)
            await engine.run_mutation("items:touch", {"id": alive[k // 2], "n": 100_000 + k})
            if k % 4 == 0:
                await engine.run_mutation("items:remove", {"id": alive.pop(k // 3)})
            print("commit", flush=True)
    except ConvexError as error:
        print(error.data["code"], flush=True)
    print(json.dumps(alive), flush=True)
    await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
