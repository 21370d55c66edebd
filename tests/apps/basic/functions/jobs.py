from backend import ActionCtx, ConvexError, MutationCtx, internal_action, mutation
from backend.mail import Mail, queue_mail
from backend.udf.system_context import SystemContext

calls: list[str] = []


@internal_action
async def side_effect(ctx: ActionCtx, label: str) -> None:
    calls.append(label)


@mutation
async def schedule_effect_then(ctx: MutationCtx, label: str, fail: bool) -> None:
    await ctx.scheduler.run_after(0, side_effect, {"label": label})
    if fail:
        raise ConvexError("NOPE", "rolled back")


@mutation
async def mail_then(ctx: MutationCtx, to: str, fail: bool) -> None:
    await queue_mail(SystemContext.of(ctx), Mail(to, "Hello", "Body"))
    if fail:
        raise ConvexError("NOPE", "rolled back")


@mutation
async def schedule_and_cancel(ctx: MutationCtx) -> str:
    job = await ctx.scheduler.run_after(5, side_effect, {"label": "cancelled"})
    await ctx.scheduler.cancel(job)
    return job


@mutation
async def schedule_bad_args(ctx: MutationCtx) -> None:
    await ctx.scheduler.run_after(0, side_effect, {"label": 5})
