"""The story tests' view of the real bot (testkit/harness.py) on the tiny models.

`StoryBot.running()` starts GreenheartBot with real services (SQLite file, executor, model
runner) against the local Discord double and stops it on exit; entering it again is a
restart: same database, same image folder, same double.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from bot.client import GreenheartBot
from bot.config import Settings
from bot.executor.executor import RunContext
from bot.executor.jobs import Job, JobResult, TextParams
from bot.pipelines.runner import ModelRunner
from bot.pipelines.tiny import TinyModelPaths
from testkit.discord_double import DiscordDouble, InteractionRecord, Message
from testkit.discord_double.seeding import SeededWorld
from testkit.harness import BotHarness, harness_settings

WAIT_S = 30.0  # generous: a loaded CI machine may be slow; a passing run takes a fraction


def fast_sections(**sections: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Settings that keep the tests fast: 64×64 pictures in 4 steps, short lines."""
    raw: dict[str, dict[str, Any]] = {
        # No width/height: pictures take the tiny model's own size (64×64), as a user's would.
        "image": {"max_side": 64, "count": 1, "preview_every": 0, "device": "cpu"},
        "story": {"max_new_tokens": 16, "steps": 4, "style": "painting"},
        "safety": {"blocked_terms": ["forbidden"]},
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return raw


def story_settings(tiny: TinyModelPaths, data: Path, double: DiscordDouble,
                   **sections: dict[str, Any]) -> Settings:
    return harness_settings(tiny, data, double, **fast_sections(**sections))


@dataclass
class StoryBot:
    double: DiscordDouble
    world: SeededWorld
    tiny: TinyModelPaths
    runner: Any  # the session's ModelRunner, or a wrapper around it
    data: Path
    discord: dict[str, Any]
    bot: GreenheartBot | None = None
    # More settings by section (e.g. {"executor": {"per_user_limit": 2}}), not "discord".
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)

    @contextlib.asynccontextmanager
    async def running(self, *, drain: bool = True) -> AsyncIterator[GreenheartBot]:
        """The bot, until the block ends; with `drain`, story operations still in progress
        (a button's last edits) finish before it stops."""
        settings = story_settings(self.tiny, self.data, self.double, discord=self.discord,
                                  **self.sections)
        harness = BotHarness(self.double, self.world, settings,
                             runner_factory=lambda _: cast(ModelRunner, self.runner))
        await harness.start()
        try:
            self.bot = harness.bot
            yield harness.bot
            if drain:
                await self.idle()
        finally:
            self.bot = None
            await harness.stop()

    async def idle(self) -> None:
        """Wait until no story operation is running or waiting for its turn."""
        assert self.bot is not None
        cog = self.bot.get_cog("Story")
        turns = cog.actions.turns  # type: ignore[union-attr]
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while turns.active:
            assert asyncio.get_running_loop().time() < deadline, "story work never finished"
            await asyncio.sleep(0.02)

    # ----- acting as members -------------------------------------------------------------

    async def slash(self, user: int, channel: int, sub: str, **options: Any
                    ) -> InteractionRecord:
        rec = await self.double.invoke_slash(self.world.guild.id, channel, user, "story",
                                             options, subcommand=sub)
        ack = await rec.wait_ack(WAIT_S)
        assert ack.latency < 1.5, f"/story {sub} was acknowledged after {ack.latency:.1f} s"
        return rec

    async def click(self, user: int, message: Message, custom_id: str) -> InteractionRecord:
        rec = await self.double.click_button(self.world.guild.id, message.channel_id, user,
                                             message.id, custom_id)
        ack = await rec.wait_ack(WAIT_S)
        assert ack.latency < 1.5
        return rec

    async def answer(self, rec: InteractionRecord, contains: str = "") -> str:
        """The text of the interaction's (ephemeral) answer once it contains `contains`."""
        def ready() -> str | None:
            texts = [m.content for m in rec.followups()]
            original = rec.original_message()
            if original is not None and not original.loading:
                texts.append(original.content)
            return next((t for t in texts if contains in t), None)

        return await self.double.wait_until(ready, WAIT_S, f"an answer with {contains!r}")

    # ----- looking at the thread ----------------------------------------------------------

    async def story_thread(self) -> int:
        def find() -> int | None:
            threads = [c for c in self.double.world.threads(self.world.guild.id)
                       if c.parent_id == self.world.studio.id]
            return threads[-1].id if threads else None

        return await self.double.wait_until(find, WAIT_S, "a story thread")

    async def line(self, thread: int, number: int, *, edited_after: int | None = None
                   ) -> Message:
        """The message of line `number` (once it has its picture or a note saying why not);
        with `edited_after`, only once it was edited more times than that."""
        def wanted(m: Message) -> bool:
            return (m.channel_id == thread and m.content.startswith(f"**{number}.** ")
                    and (edited_after is None or m.edits > edited_after)
                    and (bool(m.attachments) or "no picture" in m.content))

        return await self.double.wait_for_message(wanted, WAIT_S)

    async def choice(self, thread: int, number: int, *, edited_after: int | None = None
                     ) -> Message:
        """The choice message for line `number` (its candidates and ◀ ▶ ✅ ↻), once it
        shows them; with `edited_after`, once edited more times than that."""
        def wanted(m: Message) -> bool:
            return (m.channel_id == thread
                    and m.content.startswith(f"🪄 **{number}.** candidate")
                    and any(c.startswith("gh:choice:keep:") for c in m.custom_ids)
                    and (edited_after is None or m.edits > edited_after))

        return await self.double.wait_for_message(wanted, WAIT_S)

    async def continue_line(self, user: int, message: Message, number: int, *,
                            kept_by: int | None = None) -> Message:
        """Continue ▶ on `message`, then ✅ on the first candidate offered for line
        `number` (by `kept_by`, else the same member): the line's message, illustrated."""
        await self.click(user, message, button(message, "gh:story:cont:"))
        choice = await self.choice(message.channel_id, number)
        await self.click(kept_by or user, choice, button(choice, "gh:choice:keep:"))
        return await self.double.wait_for_message(  # the choice's message becomes the line
            lambda m: (m.id == choice.id and m.content.startswith(f"**{number}.** ")
                       and (bool(m.attachments) or "no picture" in m.content)), WAIT_S)

    def thread_messages(self, thread: int) -> list[Message]:
        return self.double.channel_messages(thread)

    def story_jobs(self) -> list[Job]:
        assert self.bot is not None
        return [e.job for e in self.bot.services.executor.snapshot()]


def button(message: Message, prefix: str) -> str:
    """The custom_id of the message's component that starts with `prefix`."""
    found = [c for c in message.custom_ids if c.startswith(prefix)]
    assert found, f"no {prefix} button on {message.content!r}: {message.custom_ids}"
    return found[0]


class HeldRunner:
    """The session's runner, made to hold text jobs while `hold` is set (a line that is
    being written for as long as a test needs); `holding` is set once one is held."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.hold = threading.Event()
        self.holding = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def run(self, jobs: Sequence[Job], ctx: RunContext) -> list[JobResult | Exception]:
        if isinstance(jobs[0].params, TextParams):
            while self.hold.is_set() and not ctx.cancelled(jobs[0].id):
                self.holding.set()
                time.sleep(0.01)
        return cast(list[JobResult | Exception], self.inner.run(jobs, ctx))
