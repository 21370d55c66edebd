"""Mutations in steps (backend/udf/steps.py) for the tests: marks show which steps ran, and
``between`` counts the work done outside any transaction."""

from typing import Any

from backend import ConvexError
from backend.udf.steps import Proceed, Steps, mutation_in_steps
from backend.udf.system_context import SystemContext

between: list[str] = []


@mutation_in_steps
async def twoSteps(steps: Steps, call: str, failSecond: bool = False) -> dict[str, Any]:
    async def first(system: SystemContext) -> Proceed[str]:
        await system.db.insert("marks", {"call": call, "step": 1})
        return Proceed(call.upper())

    shouted = (await steps.transaction(first)).state
    between.append(call)  # outside any transaction: runs once per call

    async def second(system: SystemContext) -> dict[str, Any]:
        await system.db.insert("marks", {"call": call, "step": 2})
        counter = await system.db.query("counters").with_index("by_name", name="c").first()
        if counter is None:
            await system.db.insert("counters", {"name": "c", "value": 1})
        else:
            await system.db.patch(counter["_id"], {"value": counter["value"] + 1})
        if failSecond:
            raise ConvexError("SECOND_FAILED", "the second step failed")
        return {"done": shouted}

    return await steps.transaction(second)


@mutation_in_steps
async def early(steps: Steps, call: str) -> dict[str, Any]:
    async def only(system: SystemContext) -> dict[str, Any]:
        await system.db.insert("marks", {"call": call, "step": 1})
        return {"refused": call}

    answer = await steps.transaction(only)
    between.append(call)
    return answer


@mutation_in_steps
async def breaksTheRule(steps: Steps) -> dict[str, Any]:
    async def only(system: SystemContext) -> dict[str, Any]:
        return {"stored": True}

    await steps.transaction(only)
    return {"something": "else"}
