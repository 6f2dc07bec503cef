"""The story tests' view of the real bot (tests/harness.py) on the tiny models.

`story_bot.running()` starts GreenheartBot with real services (SQLite file, executor, model
runner) against the local Discord double and stops it on exit; entering it again is a
restart: same database, same image folder, same double. One model runner serves the whole
session (loading models is the slow part; its options don't depend on a test's database).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from bot.app import build_runner
from bot.client import GreenheartBot
from bot.config import Settings, settings_from_mapping
from bot.engine import ModelRunner
from bot.executor.jobs import Job
from bot.pipelines.tiny import TinyModelPaths
from tests.discord_double import SPEC_ENV, DiscordDouble, InteractionRecord, Message
from tests.discord_double.fixtures import SeededWorld
from tests.harness import BotHarness, harness_settings

SPEC_FILE = Path(__file__).resolve().parents[3] / "shared" / "discord-api-spec" / "openapi.json"
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


@pytest.fixture(scope="session")
def story_runner(tiny_models: TinyModelPaths) -> ModelRunner:
    raw = fast_sections(image={"model": str(tiny_models.image)},
                        story={"model": str(tiny_models.story)})
    return build_runner(settings_from_mapping(raw))


@pytest.fixture(autouse=True)
def _validate_against_spec_when_available(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    if not os.environ.get(SPEC_ENV) and SPEC_FILE.exists():
        monkeypatch.setenv(SPEC_ENV, str(SPEC_FILE))
    yield


@dataclass
class StoryBot:
    double: DiscordDouble
    world: SeededWorld
    tiny: TinyModelPaths
    runner: Any  # the session's ModelRunner, or a wrapper around it
    data: Path
    discord: dict[str, Any]
    bot: GreenheartBot | None = None

    @contextlib.asynccontextmanager
    async def running(self, *, drain: bool = True) -> AsyncIterator[GreenheartBot]:
        """The bot, until the block ends; with `drain`, story operations still in progress
        (a button's last edits) finish before it stops."""
        settings = story_settings(self.tiny, self.data, self.double, discord=self.discord)
        harness = BotHarness(self.double, self.world, settings,
                             runner_factory=lambda _: cast(ModelRunner, self.runner))
        await harness.start()
        try:
            assert harness.bot is not None
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

    def thread_messages(self, thread: int) -> list[Message]:
        return self.double.channel_messages(thread)

    def story_jobs(self) -> list[Job]:
        assert self.bot is not None
        return [e.job for e in self.bot.services.executor.snapshot()]


@pytest.fixture
def story_bot(discord_double: DiscordDouble, discord_world: SeededWorld,
              tiny_models: TinyModelPaths, story_runner: ModelRunner, tmp_path: Path
              ) -> Iterator[StoryBot]:
    blocked_term = story_runner.blocked_term  # tests may swap it; the runner is shared
    yield StoryBot(discord_double, discord_world, tiny_models, story_runner, tmp_path,
                   discord={})
    story_runner.blocked_term = blocked_term
