"""/stats end to end: the real bot against the Discord double, a real SQLite file; what the
studio's GPU time went to over the last day, week and month, for this server only."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from bot.db.jobs import JobRepository
from bot.db.retention import DAY_S
from bot.executor.jobs import Done, Job, StoryOrigin, TextParams, TextResult
from cogs.stats import FOOTER, NOTHING_YET, TITLE, duration, stats_embed
from testkit.discord_double.models import User
from testkit.harness import BotHarness
from testkit.imagine import ACK_DEADLINE_S, imagine


@pytest.mark.parametrize(("seconds", "text"), [
    (0.0, "0.0 s"), (0.42, "0.4 s"), (1.0, "1 s"), (42.4, "42 s"), (59.4, "59 s"),
    (59.6, "1 min 00 s"), (65.0, "1 min 05 s"), (3599.0, "59 min 59 s"),
    (3599.6, "1 h 00 min"), (3720.0, "1 h 02 min"), (26 * 3600 + 40 * 60, "26 h 40 min"),
])
def test_durations_read_as_people_say_them(seconds: float, text: str) -> None:
    assert duration(seconds) == text


async def rendered(jobs: JobRepository, user: Any, *, guild: int, gpu_s: float, model: str,
                   ago: float) -> None:
    """A story line `user` asked for in `guild`, rendered `ago` seconds ago."""
    job = Job(user_id=int(user.id), user_name=str(user.username), params=TextParams(
        seed_line="Once", lines=(), rng_seed=0), origin=StoryOrigin(
        story_id=1, op="continue", line=2, step="text", guild_id=guild, channel_id=5))
    await jobs.job_accepted(job)
    await jobs.job_started(job)
    await jobs.job_finished(job, Done(TextResult("A line.", {"gpu_s": gpu_s}, model,
                                                 worker="local")))
    await jobs.db.execute("UPDATE jobs SET finished_at = ? WHERE id = ?",
                          (time.time() - ago, job.id))


async def stats(h: BotHarness, user: Any = None) -> dict[str, Any]:
    ack = await (await h.slash("stats", user=user)).wait_ack(ACK_DEADLINE_S)
    assert ack.type == 4
    data: dict[str, Any] = ack.body["data"]
    assert data["flags"] & 64  # only the member who asked sees it
    return data


async def test_nothing_yet_then_a_real_picture(bot_harness: BotHarness) -> None:
    h = bot_harness
    empty = await stats(h)
    assert empty["content"] == NOTHING_YET and not empty.get("embeds")

    await imagine(h, prompt="a lighthouse", count=1)
    data = await stats(h)
    [embed] = data["embeds"]
    assert embed["title"] == TITLE
    assert [f["name"] for f in embed["fields"]] == ["Last 24 hours", "Last 7 days",
                                                   "Last 30 days"]
    alice = int(h.world.alice.id)
    for field in embed["fields"]:
        text = field["value"]
        assert "of GPU time · 1 job" in text
        assert f"<@{alice}> (you) · " in text  # shown, and never pinged:
        assert f"Models: {Path(h.settings.image.model).name} " in text  # the folder's name
    assert data["allowed_mentions"]["parse"] == []
    h.double.assert_clean()


async def test_each_period_totals_members_and_models_of_this_server(
    bot_harness: BotHarness,
) -> None:
    h = bot_harness
    w, jobs = h.world, h.services.jobs
    await rendered(jobs, w.alice, guild=h.guild_id, gpu_s=90, model="sd15", ago=600)
    await rendered(jobs, w.bob, guild=h.guild_id, gpu_s=42, model="gpt-neo", ago=1200)
    await rendered(jobs, w.alice, guild=h.guild_id, gpu_s=3700, model="sd15", ago=3 * DAY_S)
    await rendered(jobs, w.bob, guild=h.guild_id, gpu_s=600, model="sdxl", ago=20 * DAY_S)
    await rendered(jobs, w.bob, guild=h.guild_id, gpu_s=9999, model="sdxl", ago=45 * DAY_S)
    # Another server's work is not this server's business (nor its cost).
    await rendered(jobs, w.mod, guild=h.guild_id + 1, gpu_s=5000, model="elsewhere", ago=60)

    [embed] = (await stats(h, user=w.bob))["embeds"]
    day, week, month = (f["value"] for f in embed["fields"])
    alice, bob = f"<@{w.alice.id}>", f"<@{w.bob.id}>"
    assert day.splitlines() == [
        "**2 min 12 s** of GPU time · 2 jobs",
        f"{alice} · 1 min 30 s · 1 job",
        f"{bob} (you) · 42 s · 1 job",
        "Models: sd15 1 min 30 s · gpt-neo 42 s",
    ]
    assert week.splitlines() == [
        "**1 h 04 min** of GPU time · 3 jobs",
        f"{alice} · 1 h 03 min · 2 jobs",
        f"{bob} (you) · 42 s · 1 job",
        "Models: sd15 1 h 03 min · gpt-neo 42 s",
    ]
    assert month.splitlines()[:2] == ["**1 h 14 min** of GPU time · 4 jobs",
                                      f"{alice} · 1 h 03 min · 2 jobs"]
    assert month.splitlines()[-1] == "Models: sd15 1 h 03 min · sdxl 10 min 00 s · gpt-neo 42 s"
    everything = " ".join([day, week, month])
    assert f"<@{w.mod.id}>" not in everything and "elsewhere" not in everything


async def test_the_busiest_members_are_listed_and_the_rest_counted(
    bot_harness: BotHarness,
) -> None:
    h = bot_harness
    world, jobs = h.world, h.services.jobs
    members = [world.alice, world.bob, world.mod]
    for user in members:
        await rendered(jobs, user, guild=h.guild_id, gpu_s=10, model="sd15", ago=60)
    # Five more with more time than those three, as ids only (the double has no such
    # members; /stats mentions ids and so needs none).
    for n in range(5):
        stranger = User(id=10_000 + n, username=f"s{n}")
        await rendered(jobs, stranger, guild=h.guild_id, gpu_s=100 + n, model="sd15", ago=60)
    [embed] = (await stats(h))["embeds"]
    lines = embed["fields"][0]["value"].splitlines()
    assert lines[1].startswith("<@10004> · ") and lines[5].startswith("<@10000> · ")
    assert lines[6] == "… and 3 more members"


def test_the_footer_says_when_records_are_kept_less_than_a_month() -> None:
    assert stats_embed([], viewer=1, keep_days=30).footer.text == FOOTER
    assert stats_embed([], viewer=1, keep_days=0).footer.text == FOOTER  # kept forever
    short = stats_embed([], viewer=1, keep_days=7).footer.text
    assert short == f"{FOOTER} Job records are kept 7 days, so older work is not counted."
