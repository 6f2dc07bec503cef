"""/story in a group DM, where the bot is not in the conversation: the story is told in it,
every message the answer to the command or click that asked for it (through the
interactions' tokens alone), never a bot-token request to the channel."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any, cast

from bot.executor.executor import RunContext
from bot.executor.jobs import Job, JobResult, JobState, TextParams
from bot.story.models import StoryState
from cogs.story.actions import LATE
from testkit.discord_double import InteractionRecord, Message
from testkit.story import WAIT_S, StoryBot, button


async def slash(h: StoryBot, user: int, channel: int, sub: str,
                **options: Any) -> InteractionRecord:
    rec = await h.double.invoke_slash(0, channel, user, "story", options, subcommand=sub)
    assert (await rec.wait_ack(WAIT_S)).type == 5  # thinking…, for the whole group
    return rec


async def click(h: StoryBot, user: int, message: Message, prefix: str) -> InteractionRecord:
    rec = await h.double.click_button(0, message.channel_id, user, message.id,
                                      button(message, prefix))
    await rec.wait_ack(WAIT_S)
    return rec


def bot_token_requests_to(h: StoryBot, channel_id: int) -> list[Any]:
    return [r for r in h.double.requests if r.path.startswith(f"/channels/{channel_id}")]


def illustrated(m: Message, number: int) -> bool:
    return m.content.startswith(f"**{number}.** ") and bool(m.attachments)


async def test_a_story_in_a_group_dm_from_start_to_export(story_bot: StoryBot) -> None:
    h = story_bot
    alice, bob = int(h.world.alice.id), int(h.world.bob.id)
    async with h.running() as bot:
        gdm = h.double.add_group_dm(alice, [bob], name="pals")

        # /story start: line 1, with its picture, is the command's own answer.
        start = await slash(h, alice, gdm.id, "start", seed="The sky", title="Kites")
        first = await h.line(gdm.id, 1)
        assert first.id == start.original_message_id and not first.ephemeral
        assert illustrated(first, 1)
        await h.idle()
        story = await bot.services.stories.in_conversation(gdm.id)
        assert story is not None and story.thread_id is None and story.title == "Kites"

        # Continue ▶: the candidates come in a followup of the click.
        cont = await click(h, bob, first, "gh:story:cont:")
        choice = await h.choice(gdm.id, 2)
        assert choice.id in cont.followup_ids
        await h.idle()

        # ✅: the choice's message (the click's own message) becomes line 2, illustrated.
        keep = await click(h, alice, choice, "gh:choice:keep:")
        assert keep.original_message_id == choice.id
        second = await h.double.wait_for_message(
            lambda m: m.id == choice.id and illustrated(m, 2), WAIT_S)
        await h.idle()
        # Line 1 is no longer the latest: its Continue ▶ went, through its own token.
        assert not any(c.startswith("gh:story:cont:") for c in first.custom_ids)

        # /story add: the member's line is the command's answer.
        add = await slash(h, bob, gdm.id, "add", text="A kite rose over the dunes.")
        third = await h.line(gdm.id, 3)
        assert third.id == add.original_message_id
        assert "A kite rose over the dunes." in third.content
        await h.idle()
        assert not any(c.startswith("gh:story:cont:") for c in second.custom_ids)

        # /story end: the export is the answer, and the story is over.
        end = await slash(h, alice, gdm.id, "end")
        export = await h.double.wait_until(
            lambda: m if (m := end.original_message()) is not None and m.attachments
            else None, WAIT_S, "the export in /story end's answer")
        await h.idle()
        names = [a.filename for a in export.attachments]
        assert any(n.endswith(".html") for n in names) and any(n.endswith(".md") for n in names)
        assert "A kite rose over the dunes." in next(
            a.data.decode() for a in export.attachments if a.filename.endswith(".md"))
        ended = await bot.services.stories.get(story.id)
        assert ended is not None and ended.state is StoryState.ENDED
        assert third.custom_ids == []  # an ended story's lines have no buttons

    assert bot_token_requests_to(h, gdm.id) == []


async def test_a_server_story_is_still_a_thread(story_bot: StoryBot) -> None:
    h = story_bot
    async with h.running() as bot:
        await h.slash(h.world.alice.id, h.world.studio.id, "start", seed="The sky")
        thread = await h.story_thread()
        await h.line(thread, 1)
        story = await bot.services.stories.by_thread(thread)
        assert story is not None and not story.in_conversation


async def test_a_line_not_ready_within_the_token_is_told_and_cancelled(
        story_bot: StoryBot) -> None:
    h = story_bot
    h.discord = {"interaction_token_s": 6, "token_margin_s": 2}
    runner = StopGate(h.runner)
    h.runner = runner
    alice = int(h.world.alice.id)
    async with h.running() as bot:
        gdm = h.double.add_group_dm(alice, [int(h.world.bob.id)])
        await slash(h, alice, gdm.id, "start", seed="The sky")
        first = await h.line(gdm.id, 1)
        await h.idle()
        runner.hold.set()  # the line is written for longer than the click's token lives
        cont = await click(h, alice, first, "gh:story:cont:")
        told = await h.double.wait_until(
            lambda: next((m for m in cont.followup_ids
                          if LATE in h.double.world.messages[m].content), None),
            WAIT_S, "the late notice, through the click")
        assert told
        await h.idle()
        story = await bot.services.stories.in_conversation(gdm.id)
        assert story is not None and await bot.services.stories.count_lines(story.id) == 1
        async with bot.services.db.execute("SELECT id FROM jobs") as cur:
            ids = [row[0] for row in await cur.fetchall()]
        records = [await bot.services.jobs.get(job_id) for job_id in ids]
        texts = [r for r in records if r is not None and isinstance(r.job.params, TextParams)]
        assert texts and all(r.state is JobState.CANCELLED for r in texts)
    assert bot_token_requests_to(h, gdm.id) == []


class StopGate:
    """Holds text jobs while `hold` is set until they are cancelled (a stop, or too late),
    never running them: a worker thread left writing would outlive its bot."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.hold, self.holding = threading.Event(), threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def run(self, jobs: Sequence[Job], ctx: RunContext) -> list[JobResult | Exception]:
        if self.hold.is_set() and isinstance(jobs[0].params, TextParams):
            self.holding.set()
            while not ctx.cancelled(jobs[0].id):
                time.sleep(0.01)
            return [RuntimeError("interrupted")] * len(jobs)
        return cast(list[JobResult | Exception], self.inner.run(jobs, ctx))


async def test_a_restart_within_the_tokens_life_still_answers_the_click(
        story_bot: StoryBot) -> None:
    h = story_bot
    runner = StopGate(h.runner)
    h.runner = runner
    alice = int(h.world.alice.id)
    gdm = h.double.add_group_dm(alice, [int(h.world.bob.id)])
    async with h.running(drain=False):  # it stops while the candidates are written
        await slash(h, alice, gdm.id, "start", seed="The sky")
        first = await h.line(gdm.id, 1)
        await h.idle()
        runner.hold.set()
        cont = await click(h, alice, first, "gh:story:cont:")
        assert await asyncio.to_thread(runner.holding.wait, WAIT_S)
    runner.hold.clear()
    async with h.running() as bot:
        choice = await h.choice(gdm.id, 2)  # the restored job's, through the stored token
        assert choice.id in cont.followup_ids
        await h.idle()
        story = await bot.services.stories.in_conversation(gdm.id)
        assert story is not None
    assert bot_token_requests_to(h, gdm.id) == []


async def test_a_line_that_could_not_be_ready_in_time_is_refused_up_front(
        story_bot: StoryBot) -> None:
    h = story_bot
    # A 2 s token with a 1.95 s margin: any measured line is too long for it.
    h.discord = {"interaction_token_s": 2, "token_margin_s": 1.95}
    alice = int(h.world.alice.id)
    async with h.running() as bot:
        # A story in a server (the bot token reaches its thread) measures the speed.
        await h.slash(h.world.alice.id, h.world.studio.id, "start", seed="The sky")
        await h.line(await h.story_thread(), 1)
        await h.idle()
        gdm = h.double.add_group_dm(alice, [int(h.world.bob.id)])
        rec = await h.double.invoke_slash(0, gdm.id, alice, "story",
                                          {"seed": "The sea"}, subcommand="start")
        await rec.wait_ack(WAIT_S)
        said = await rec.wait_original(lambda m: "too long" in m.content, timeout=WAIT_S)
        assert "Nothing was queued" in said.content and "ready in about" in said.content
        assert await bot.services.stories.in_conversation(gdm.id) is None, "no story begun"
        assert bot.services.executor.snapshot() == []
    assert bot_token_requests_to(h, gdm.id) == []
