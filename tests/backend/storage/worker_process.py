"""A separate engine process for crash and multi-process tests.

    python -m tests.backend.storage.worker_process URL PG_SCHEMA MODE N

MODE ``insert`` writes notes from 4 tasks until killed, printing a line per commit;
MODE ``increment`` runs N concurrent increments of counter "shared" and prints "done";
MODE ``ensure`` runs N concurrent ``counters:ensure`` of "once" and prints how many created it.
"""

from __future__ import annotations

import asyncio
import sys

from backend.engine import Engine
from backend.storage.store import Store
from backend.system import system_functions, system_schema
from backend.udf.app import load_app


async def main(url: str, pg_schema: str, mode: str, n: int) -> None:
    app = load_app("tests.apps.basic.schema", "tests.apps.basic.functions")
    store = Store(url, pg_schema=pg_schema or None)
    engine = Engine(store, app, system_schema=system_schema(), system_functions=system_functions())
    if mode == "insert":

        async def writer(k: int) -> None:
            i = 0
            while True:
                await engine.run_mutation("notes:add", {"author": f"w{k}", "body": str(i)})
                i += 1
                print("commit", flush=True)

        await asyncio.gather(*(writer(k) for k in range(4)))
    elif mode == "increment":
        print("ready", flush=True)
        sys.stdin.readline()  # start together with the other process
        await asyncio.gather(
            *(engine.run_mutation("counters:increment", {"name": "shared"}) for _ in range(n))
        )
        print("done", flush=True)
    elif mode == "ensure":
        print("ready", flush=True)
        sys.stdin.readline()
        created = await asyncio.gather(
            *(engine.run_mutation("counters:ensure", {"name": "once"}) for _ in range(n))
        )
        print(sum(1 for c in created if c.value), flush=True)
    await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
