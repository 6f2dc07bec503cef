"""/imagine while the GPU is busy: queue positions, live progress and previews, cancel,
429s on status edits, a job that outlives its interaction token, safety and allow-lists."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings
from bot.executor.executor import RunContext
from bot.executor.jobs import Job
from bot.pipelines.runner import ModelRunner
from bot.pipelines.tiny import TinyModelPaths
from testkit.discord_double import DiscordDouble
from testkit.discord_double.seeding import SeededWorld, seeded_world
from testkit.harness import BotHarness, harness_settings
from testkit.imagine import imagine, is_result
from testkit.slow_runner import slow_runner


async def start_harness(double: DiscordDouble, world: SeededWorld, tiny: TinyModelPaths,
                        tmp: Path, **overrides: Any) -> BotHarness:
    settings = harness_settings(tiny, tmp, double, **overrides)
    harness = BotHarness(double, world, settings, runner_factory=slow_runner)
    await harness.start()
    return harness


@pytest.fixture
async def slow_bot(tiny_models: TinyModelPaths, tmp_path: Path, discord_double: DiscordDouble,
                   discord_world: SeededWorld) -> AsyncIterator[BotHarness]:
    harness = await start_harness(discord_double, discord_world, tiny_models, tmp_path,
                                  image={"steps": 12, "preview_every": 1},
                                  executor={"batch_limit": 1})
    yield harness
    await harness.stop()


async def test_status_shows_queue_progress_and_preview(slow_bot: BotHarness) -> None:
    h = slow_bot
    first = await h.slash("imagine", prompt="a busy GPU", count=1)
    await first.wait_ack()
    second = await h.slash("imagine", user=h.world.bob, prompt="waiting my turn", count=1)
    ack = await second.wait_ack()
    assert ack.latency < 1.0
    assert "Queued **#1**" in ack.body["data"]["content"]
    await second.wait_original(lambda m: m.content.startswith("✅"), timeout=60)
    edits = [r for r in h.double.requests_matching("PATCH", r"/webhooks/.*/messages/@original")
             if second.token in r.path]
    contents = [(r.json or {}).get("content", "") for r in edits]
    assert any("▰" in c and "/12" in c for c in contents), contents
    assert any(f.filename == "preview.jpg" for r in edits for f in r.files)
    assert any(c.startswith("✅") for c in contents)
    h.double.assert_clean()


async def test_author_cancels_from_the_status_message(slow_bot: BotHarness) -> None:
    h = slow_bot
    busy = await h.slash("imagine", prompt="long one", count=1)
    await busy.wait_ack()
    rec = await h.slash("imagine", prompt="never mind", count=1)
    await rec.wait_ack()
    status = await rec.wait_original()
    job_id = next(c for c in status.custom_ids if c.startswith("gh:cancel:")).split(":")[2]
    other = await h.double.click_button(h.guild_id, h.studio_id, int(h.world.bob.id), status.id,
                                        f"gh:cancel:{job_id}")
    assert "Only the person" in (await other.wait_ack()).body["data"]["content"]
    queue = await h.slash("queue", user=h.world.alice)
    listing = (await queue.wait_ack()).body["data"]["content"]
    assert "never mind" in listing and "(you)" in listing and "▶ running" in listing
    mine = await h.double.click_button(h.guild_id, h.studio_id, int(h.world.alice.id),
                                       status.id, f"gh:cancel:{job_id}")
    await mine.wait_ack()
    cancelled = await rec.wait_original(lambda m: "Cancelled" in m.content, timeout=10)
    assert cancelled.components == []
    assert h.services is not None
    record = await h.services.jobs.get(job_id)
    assert record is not None and record.state.value == "cancelled"


async def test_cancel_asks_the_executor_for_the_owner_not_the_job_row(
    slow_bot: BotHarness,
) -> None:
    h = slow_bot
    rec = await h.slash("imagine", prompt="mine alone", count=1)
    await rec.wait_ack()
    status = await rec.wait_original()
    job_id = next(c for c in status.custom_ids if c.startswith("gh:cancel:")).split(":")[2]
    await h.services.db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))  # row gone
    other = await h.double.click_button(h.guild_id, h.studio_id, int(h.world.bob.id), status.id,
                                        f"gh:cancel:{job_id}")
    assert "Only the person" in (await other.wait_ack()).body["data"]["content"]
    assert any(e.job.id == job_id for e in h.services.executor.snapshot())


async def test_cancel_command_stops_all_of_your_jobs(slow_bot: BotHarness) -> None:
    h = slow_bot
    for prompt in ("one", "two"):
        await (await h.slash("imagine", prompt=prompt, count=1)).wait_ack()
    rec = await h.slash("cancel")
    assert "Cancelled 2 job(s)." in (await rec.wait_ack()).body["data"]["content"]


async def test_rate_limited_status_edits_still_finish(slow_bot: BotHarness) -> None:
    h = slow_bot
    h.double.inject_429("PATCH", r"/webhooks/.*/messages/@original", times=3, retry_after=0.3)
    rec, result = await imagine(h, prompt="through the limits", count=1)
    await rec.wait_original(lambda m: m.content.startswith("✅"), timeout=20)
    assert result.attachments
    h.double.assert_clean()


async def test_result_arrives_after_the_interaction_token_expired(
    make_discord_double: Any, tiny_models: TinyModelPaths, tmp_path: Path,
) -> None:
    double = await make_discord_double(token_lifetime=1.5, heartbeat_interval_ms=500)
    h = await start_harness(double, seeded_world(double), tiny_models, tmp_path,
                            image={"steps": 12}, executor={"batch_limit": 1})
    try:
        blocker = await h.slash("imagine", prompt="first", count=4)
        await blocker.wait_ack()
        rec = await h.slash("imagine", prompt="patient", count=1)
        await rec.wait_ack()
        result = await double.wait_for_message(lambda m: is_result(m) and "patient" in m.content,
                                               timeout=60)
        assert result.attachments
        # After the token died, the status was edited through the channel with the bot token.
        status_id = rec.original_message_id
        channel_edits = double.requests_matching("PATCH", rf"/channels/\d+/messages/{status_id}")
        assert channel_edits, "no status edit went through the channel"
        await double.wait_until(
            lambda: double.world.messages[status_id].content.startswith("✅"), 10, "done")
        double.assert_clean()
    finally:
        await h.stop()


async def test_blocked_and_nsfw_terms(
    discord_double: DiscordDouble, discord_world: SeededWorld, tiny_models: TinyModelPaths,
    tmp_path: Path,
) -> None:
    h = await start_harness(discord_double, discord_world, tiny_models, tmp_path,
                            safety={"blocked_terms": ["gore"], "nsfw_terms": ["nude"]})
    try:
        rec = await h.slash("imagine", prompt="so much GORE")
        assert "blocked term ('gore')" in (await rec.wait_ack()).body["data"]["content"]
        rec = await h.slash("imagine", prompt="a nude statue")
        text = (await rec.wait_ack()).body["data"]["content"]
        assert "only allowed in channels marked NSFW" in text
        rec = await h.slash("imagine", prompt="a nude statue", count=1,
                            channel_id=int(discord_world.nsfw_art.id))
        assert (await rec.wait_ack()).body["data"].get("flags", 0) & 64 == 0
        await discord_double.wait_for_message(
            lambda m: is_result(m) and m.channel_id == int(discord_world.nsfw_art.id),
            timeout=60)
    finally:
        await h.stop()


async def test_allow_lists(
    discord_double: DiscordDouble, discord_world: SeededWorld, tiny_models: TinyModelPaths,
    tmp_path: Path,
) -> None:
    h = await start_harness(discord_double, discord_world, tiny_models, tmp_path,
                            discord={"channels": [int(discord_world.nsfw_art.id)]})
    try:
        rec = await h.slash("imagine", prompt="a fox")
        ack = await rec.wait_ack()
        assert "not enabled in this channel" in ack.body["data"]["content"]
        assert ack.body["data"]["flags"] & 64
    finally:
        await h.stop()


async def test_ack_stays_fast_with_a_full_queue(slow_bot: BotHarness) -> None:
    h = slow_bot
    users = [h.world.alice, h.world.bob, h.world.mod]
    latencies = []
    for i in range(9):
        rec = await h.slash("imagine", user=users[i % 3], prompt=f"job {i}", count=1)
        ack = await rec.wait_ack()
        latencies.append(ack.latency)
    assert max(latencies) < 1.0, latencies
    rec = await h.slash("imagine", prompt="one too many", count=1)
    assert "limit is 3 per person" in (await rec.wait_ack()).body["data"]["content"]
    await asyncio.sleep(0)


class FlaggingRunner(ModelRunner):
    """Stands in for the safety checker, whose weights can't be had offline: it flags every
    picture, as the checker would flag an unsafe one."""

    def _generate(self, jobs: Sequence[Job], ctx: RunContext) -> list[Any]:
        from dataclasses import replace

        from bot.executor.jobs import ImageResult

        results = super()._generate(jobs, ctx)
        return [replace(r, images=tuple(replace(g, nsfw=True) for g in r.images))
                if isinstance(r, ImageResult) else r for r in results]


async def test_flagged_pictures_are_spoilered_outside_nsfw_channels(
    discord_double: DiscordDouble, discord_world: SeededWorld, tiny_models: TinyModelPaths,
    tmp_path: Path,
) -> None:
    from bot.app import build_runner

    def flagging(settings: Settings) -> ModelRunner:
        base = build_runner(settings)
        return FlaggingRunner(base.image_options, base.text_options)

    settings = harness_settings(tiny_models, tmp_path, discord_double)
    h = BotHarness(discord_double, discord_world, settings, runner_factory=flagging)
    await h.start()
    try:
        _, studio = await imagine(h, prompt="a statue", count=1)
        assert studio.attachments[0].filename.startswith("SPOILER_")
        _, nsfw = await imagine(h, prompt="a statue", count=1,
                                channel_id=int(discord_world.nsfw_art.id))
        assert not nsfw.attachments[0].filename.startswith("SPOILER_")
    finally:
        await h.stop()


async def test_a_job_interrupted_by_a_restart_finishes_in_its_old_status_message(
    slow_bot: BotHarness,
) -> None:
    h = slow_bot
    rec = await h.slash("imagine", prompt="survives restarts", count=1)
    await rec.wait_ack()
    await rec.wait_original(lambda m: "▰" in m.content, timeout=30)  # it is running
    await h.restart()
    status = await rec.wait_original(lambda m: m.content.startswith("✅"), timeout=60)
    result = next(m for m in h.double.channel_messages(h.studio_id)
                  if is_result(m) and "survives restarts" in m.content)
    assert str(result.id) in status.content
    assert str((result.message_reference or {}).get("message_id")) == str(status.id)
    h.double.assert_clean()


async def test_result_fits_the_upload_limit_discord_sends(
    make_discord_double: Any, tiny_models: TinyModelPaths, tmp_path: Path,
) -> None:
    """Discord sends each interaction's upload limit; the result is made to fit it (the
    double refuses bigger uploads, as Discord does)."""
    limit = 25_000  # below a 4-picture 128×128 grid of noise as PNG
    double = await make_discord_double(attachment_size_limit=limit)
    h = await start_harness(double, seeded_world(double), tiny_models, tmp_path)
    try:
        rec = await h.slash("imagine", prompt="a big noisy grid", count=4)
        await rec.wait_ack()
        result = await double.wait_for_message(is_result, timeout=60)
        assert 0 < len(result.attachments[0].data) <= limit
    finally:
        await h.stop()
