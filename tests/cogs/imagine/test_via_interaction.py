"""/imagine where the bot cannot post (a group DM, a guild that only the member installed
the app to): everything through the interactions' tokens, never the bot token; a queue
too long for the token's 15 minutes refused up front; a late job told and cancelled while
its token still lives; a job whose token expired during a restart cancelled."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from bot.app import build_runner
from bot.config import Settings
from bot.db.interaction_tokens import InteractionToken, InteractionTokens
from bot.executor.executor import RunContext
from bot.executor.jobs import ImagineOrigin, Job, JobState
from bot.images.requests import ImageOptions
from bot.pipelines.runner import ModelRunner
from bot.pipelines.tiny import TinyModelPaths
from cogs.imagine.via_interaction import EXPIRED, LATE
from testkit.discord_double import CommandUnavailable, DiscordDouble
from testkit.discord_double.models import Channel, Message
from testkit.discord_double.seeding import SeededWorld
from testkit.harness import BotHarness, harness_settings
from testkit.imagine import ACK_DEADLINE_S, is_result, job_id_of
from testkit.slow_runner import slow_runner

GATE = threading.Event()  # closed: the worker waits at its first step


class GatedRunner(ModelRunner):
    @staticmethod
    def _step_reporter(jobs: Sequence[Job], owners: list[int], ctx: RunContext, chunk: int,
                       chunks: int) -> Callable[..., None]:
        report = ModelRunner._step_reporter(jobs, owners, ctx, chunk, chunks)

        def gated(step: int, total: int, previews: Callable[[], Any]) -> None:
            GATE.wait(60)
            report(step, total, previews)

        return gated


def gated_runner(settings: Settings) -> ModelRunner:
    base = build_runner(settings)
    return GatedRunner(base.pool, base.text_options, blocked_term=base.blocked_term,
                       describe_options=base.describe_options, loras=base.loras,
                       model_loras=base.model_loras)


async def harness(double: DiscordDouble, world: SeededWorld, tiny: TinyModelPaths, tmp: Path,
                  runner: Callable[[Settings], ModelRunner] = build_runner,
                  **discord: float) -> BotHarness:
    settings = harness_settings(tiny, tmp, double, discord=dict(discord))
    h = BotHarness(double, world, settings, runner_factory=runner)
    await h.start()
    return h


@pytest.fixture
async def gdm_harness(tiny_models: TinyModelPaths, tmp_path: Path,
                      discord_double: DiscordDouble,
                      discord_world: SeededWorld) -> AsyncIterator[BotHarness]:
    h = await harness(discord_double, discord_world, tiny_models, tmp_path)
    yield h
    await h.stop()


def group_dm(h: BotHarness) -> Channel:
    return h.double.add_group_dm(int(h.world.alice.id), [int(h.world.bob.id)], name="pals")


def bot_token_requests_to(h: BotHarness, channel_id: int) -> list[Any]:
    return [r for r in h.double.requests if r.path.startswith(f"/channels/{channel_id}")]


async def answered(h: BotHarness, rec: Any) -> Message:
    """The result: the interaction's original response, edited into it."""
    return await h.double.wait_until(
        lambda: m if (m := rec.original_message()) is not None and is_result(m) else None,
        60, "the result in the original response")


async def test_imagine_reroll_variation_upscale_and_delete_in_a_group_dm(
        gdm_harness: BotHarness) -> None:
    h = gdm_harness
    gdm = group_dm(h)
    alice, bob = int(h.world.alice.id), int(h.world.bob.id)
    rec = await h.double.invoke_slash(0, gdm.id, alice, "imagine",
                                      {"prompt": "a kite over dunes", "count": 2})
    assert (await rec.wait_ack(ACK_DEADLINE_S)).type == 4
    status = rec.original_message()
    assert status is not None and not status.ephemeral  # the group sees it
    result = await answered(h, rec)
    assert result.id == status.id and "a kite over dunes" in result.content
    job = job_id_of(result)
    record = await h.services.jobs.get(job)
    assert record is not None and record.state is JobState.DELIVERED
    assert isinstance(record.job.origin, ImagineOrigin) and record.job.origin.via_interaction
    assert await InteractionTokens(h.services.db).get(job) is None  # dropped once delivered

    # Buttons: each click answers through its own token, visible to the group.
    for custom_id, presser in ((f"gh:rr:{job}", bob), (f"gh:var:{job}:0", alice),
                               (f"gh:up:{job}:1", alice)):
        click_rec = await h.double.click_button(0, gdm.id, presser, result.id, custom_id)
        assert (await click_rec.wait_ack(ACK_DEADLINE_S)).type == 4
        own = click_rec.original_message()
        assert own is not None and not own.ephemeral
        made = await answered(h, click_rec)
        assert job_id_of(made) != job

    # 🗑 deletes through the click's token too.
    delete = await h.double.click_button(0, gdm.id, alice, result.id, f"gh:del:{job}")
    assert (await delete.wait_ack(ACK_DEADLINE_S)).type == 6
    await h.double.wait_until(
        lambda: h.double.world.messages[result.id].deleted or None, 10, "the deletion")

    assert bot_token_requests_to(h, gdm.id) == []
    assert all(m.webhook_id for m in h.double.channel_messages(gdm.id))
    h.double.assert_clean()


async def test_commands_that_cannot_work_there_are_not_offered(
        gdm_harness: BotHarness) -> None:
    h = gdm_harness
    gdm = group_dm(h)
    # (/story works there too: tests/cogs/story/test_conversation.py)
    for name, options in (("describe", {"image": ("a.png", b"x")}),
                          ("telephone", {"prompt": "a fox"}), ("stats", None)):
        with pytest.raises(CommandUnavailable):
            await h.double.invoke_slash(0, gdm.id, int(h.world.alice.id), name, options)
    rec = await h.double.invoke_slash(0, gdm.id, int(h.world.alice.id), "settings",
                                      {"scope": "server"})
    ack = await rec.wait_ack(ACK_DEADLINE_S)
    assert "no server settings" in str(ack.data.get("content"))
    rec = await h.double.invoke_slash(0, gdm.id, int(h.world.alice.id), "queue")
    assert "queue" in str((await rec.wait_ack(ACK_DEADLINE_S)).data.get("content")).lower()


async def test_a_guild_that_only_the_member_installed_it_to(gdm_harness: BotHarness) -> None:
    h = gdm_harness
    other = h.double.add_guild("Elsewhere", with_bot=False)
    lounge = h.double.add_text_channel(other.id, "lounge")
    h.double.add_member(other.id, int(h.world.alice.id))
    rec = await h.double.invoke_slash(other.id, lounge.id, int(h.world.alice.id), "imagine",
                                      {"prompt": "a lighthouse", "count": 1})
    result = await answered(h, rec)
    assert "a lighthouse" in result.content
    assert bot_token_requests_to(h, lounge.id) == []


async def test_a_queue_too_long_for_the_token_is_refused_up_front(
        tiny_models: TinyModelPaths, tmp_path: Path, discord_double: DiscordDouble,
        discord_world: SeededWorld) -> None:
    # A 2 s token with a 1.8 s margin: any measured run is too long for it.
    h = await harness(discord_double, discord_world, tiny_models, tmp_path, slow_runner,
                      interaction_token_s=2.0, token_margin_s=1.8)
    try:
        gdm = group_dm(h)
        # A job in the server (the bot token reaches it, no deadline) measures the speed.
        await h.slash("imagine", user=h.world.bob, prompt="measuring", count=1)
        await h.double.wait_until(
            lambda: next((m for m in h.double.channel_messages(h.studio_id)
                          if is_result(m)), None), 60, "the server job's result")
        assert h.services.images.finish_estimate_s(Job(
            user_id=1, params=h.services.images.request(ImageOptions(prompt="x", count=1)))
        ) is not None  # a speed now
        rec = await h.double.invoke_slash(0, gdm.id, int(h.world.alice.id), "imagine",
                                          {"prompt": "too slow", "count": 1})
        ack = await rec.wait_ack(ACK_DEADLINE_S)
        text = str(ack.data.get("content"))
        assert ack.type == 4 and "too long" in text and "Nothing was queued" in text
        assert "ready in about" in text
        assert h.services.executor.snapshot() == []
        assert rec.followups() == []
    finally:
        await h.stop()


async def test_a_late_job_is_told_and_cancelled_before_its_token_expires(
        tiny_models: TinyModelPaths, tmp_path: Path, discord_double: DiscordDouble,
        discord_world: SeededWorld) -> None:
    GATE.clear()
    discord_double.token_lifetime = 4.0
    h = await harness(discord_double, discord_world, tiny_models, tmp_path, gated_runner,
                      interaction_token_s=4.0, token_margin_s=2.0)
    try:
        blocker = await h.slash("imagine", user=h.world.bob, prompt="holding the gpu",
                                count=1)
        await blocker.wait_ack(ACK_DEADLINE_S)
        gdm = group_dm(h)
        rec = await h.double.invoke_slash(0, gdm.id, int(h.world.alice.id), "imagine",
                                          {"prompt": "stuck behind", "count": 1})
        await rec.wait_ack(ACK_DEADLINE_S)
        status = rec.original_message()
        assert status is not None
        told = await h.double.wait_until(lambda: LATE in status.content or None, 30,
                                         "the late job told")
        assert told
        edits = h.double.requests_matching("PATCH", r"^/webhooks/\d+/[^/]+/messages/")
        telling = [r for r in edits if LATE in str((r.json or {}).get("content"))]
        assert telling and telling[-1].status == 200  # while the token still lived
        assert status.custom_ids == []  # no ✖ left on it: nothing more will come
        waiting = [e.job.user_id for e in h.services.executor.snapshot()]
        assert int(h.world.alice.id) not in waiting
    finally:
        GATE.set()
    try:
        await h.double.wait_until(
            lambda: next((m for m in h.double.channel_messages(h.studio_id) if is_result(m)),
                         None), 60, "the blocker's result")
        cancelled = [r for r in await _alice_jobs(h) if r.state is JobState.CANCELLED]
        assert len(cancelled) == 1 and cancelled[0].reason == LATE
        assert not cancelled[0].images  # never rendered for nobody
        assert bot_token_requests_to(h, gdm.id) == []
    finally:
        await h.stop()


async def _alice_jobs(h: BotHarness) -> list[Any]:
    async with h.services.db.execute("SELECT id FROM jobs WHERE user_id = ?",
                                     (int(h.world.alice.id),)) as cur:
        ids = [row[0] for row in await cur.fetchall()]
    return [r for r in [await h.services.jobs.get(i) for i in ids] if r is not None]


async def test_a_job_whose_token_expired_during_a_restart_is_cancelled(
        gdm_harness: BotHarness) -> None:
    h = gdm_harness
    gdm = group_dm(h)
    params = h.services.images.request(ImageOptions(prompt="asked before the restart",
                                                    count=1))
    job = Job(user_id=int(h.world.alice.id), user_name="alice", params=params,
              origin=ImagineOrigin(guild_id=None, channel_id=gdm.id, via_interaction=True,
                                   status_message_id=123))
    await h.services.jobs.job_accepted(job)
    await InteractionTokens(h.services.db).put(
        job.id, InteractionToken("aW50ZXJhY3Rpb246expired", time.time() - 1))
    await h.restart()
    for _ in range(100):  # the resume runs once the bot is ready; the cancel is stored after
        record = await h.services.jobs.get(job.id)
        if record is not None and record.state.finished:
            break
        await asyncio.sleep(0.1)
    assert record is not None and record.state is JobState.CANCELLED
    assert record.reason == EXPIRED
    assert bot_token_requests_to(h, gdm.id) == []
    assert await InteractionTokens(h.services.db).get(job.id) is None
