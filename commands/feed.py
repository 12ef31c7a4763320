"""Use cases of the home feed."""
from __future__ import annotations

from commands.context import Actor, CommandContext, Done
from domain.aggregates import timeline_stream
from domain.events import TimelineRebuildRequested


async def request_timeline_rebuild(ctx: CommandContext, actor: Actor) -> Done:
    """A reader whose timeline was left behind while they were away is back: ask the
    home_timeline projection to rebuild it (and to count the reader as active again).
    Issued by the feed query when it finds the timeline dormant; repeating it is harmless."""
    reader = actor.account_id or ""
    return await ctx.append(timeline_stream(reader), [TimelineRebuildRequested(reader)], actor)
