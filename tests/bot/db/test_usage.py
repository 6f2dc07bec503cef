"""GPU time per member and per model from the job table (what /stats shows), on a real
SQLite file: which jobs count, the windows, the fallback to wall time, the guild filter."""

from __future__ import annotations

import time
from pathlib import Path

import aiosqlite
import pytest

from bot.db.jobs import JobRepository
from bot.db.retention import DAY_S
from bot.db.usage import PERIODS, UsageQueries
from bot.executor.jobs import (
    Cancelled,
    Done,
    Failed,
    Job,
    StoryOrigin,
    TextParams,
    TextResult,
)

NOW = 1_800_000_000.0
GUILD, OTHER_GUILD = 100, 200


@pytest.fixture
def jobs(db: aiosqlite.Connection, tmp_path: Path) -> JobRepository:
    return JobRepository(db, tmp_path / "images")


async def finished(jobs: JobRepository, *, user: int = 1, name: str = "Ann",
                   gpu_s: float | None = 10.0, model: str = "sd15", ago: float = 3600.0,
                   guild: int | None = GUILD, wall_s: float = 99.0, outcome: str = "done",
                   delivered: bool = False) -> Job:
    """A story-line job that ran `wall_s` and finished `ago` seconds before NOW."""
    origin = StoryOrigin(story_id=1, op="continue", line=2, step="text", guild_id=guild,
                         channel_id=5) if guild is not None else None
    job = Job(user_id=user, user_name=name, origin=origin,
              params=TextParams(seed_line="Once", lines=(), rng_seed=0))
    await jobs.job_accepted(job)
    await jobs.job_started(job)
    timings = {"generate": 1.0} if gpu_s is None else {"generate": 1.0, "gpu_s": gpu_s}
    events: dict[str, Done | Failed | Cancelled] = {
        "done": Done(TextResult("A line.", timings, model, worker="local")),
        "failed": Failed("broken"), "cancelled": Cancelled(None)}
    event = events[outcome]
    await jobs.job_finished(job, event)
    if delivered:
        assert await jobs.mark_delivered(job.id, 5, 6)
    await jobs.db.execute("UPDATE jobs SET started_at = ?, finished_at = ? WHERE id = ?",
                          (NOW - ago - wall_s, NOW - ago, job.id))
    return job


async def test_nothing_yet_is_all_zeros(jobs: JobRepository) -> None:
    usage = await UsageQueries(jobs.db).since(NOW - DAY_S)
    assert (usage.gpu_s, usage.jobs, usage.member_count) == (0.0, 0, 0)
    assert usage.members == () and usage.models == ()


async def test_gpu_seconds_per_member_and_model_in_each_window(jobs: JobRepository) -> None:
    await finished(jobs, user=1, gpu_s=30.0, ago=3600)  # in every window
    await finished(jobs, user=2, name="Bo", gpu_s=5.0, model="gpt-neo", ago=3600,
                   delivered=True)
    await finished(jobs, user=2, name="Bo", gpu_s=40.0, ago=3 * DAY_S)  # week and month
    await finished(jobs, user=1, gpu_s=100.0, ago=20 * DAY_S)  # month only
    await finished(jobs, user=1, gpu_s=1000.0, ago=40 * DAY_S)  # too old for all
    day, week, month = [usage for _, usage in
                        await UsageQueries(jobs.db).periods(now=NOW)]
    assert [label for label, _ in PERIODS] == ["Last 24 hours", "Last 7 days", "Last 30 days"]
    assert (day.gpu_s, day.jobs) == (35.0, 2)
    assert [(m.user_id, m.user_name, m.gpu_s, m.jobs) for m in day.members] == [
        (1, "Ann", 30.0, 1), (2, "Bo", 5.0, 1)]
    assert [(m.model, m.gpu_s, m.jobs) for m in day.models] == [
        ("sd15", 30.0, 1), ("gpt-neo", 5.0, 1)]
    assert (week.gpu_s, week.jobs) == (75.0, 3)
    assert [(m.user_id, m.gpu_s) for m in week.members] == [(2, 45.0), (1, 30.0)]
    assert (month.gpu_s, month.jobs, month.member_count) == (175.0, 4, 2)
    assert [(m.user_id, m.gpu_s, m.jobs) for m in month.members] == [(1, 130.0, 2),
                                                                     (2, 45.0, 2)]


async def test_only_rendered_jobs_count(jobs: JobRepository) -> None:
    await finished(jobs, gpu_s=7.0)
    await finished(jobs, gpu_s=7.0, delivered=True)
    await finished(jobs, outcome="failed")
    await finished(jobs, outcome="cancelled")
    waiting = Job(user_id=1, params=TextParams(seed_line="x", lines=(), rng_seed=0))
    await jobs.job_accepted(waiting)
    usage = await UsageQueries(jobs.db).since(0)
    assert (usage.gpu_s, usage.jobs) == (14.0, 2)


async def test_wall_time_stands_in_when_a_job_has_no_gpu_seconds(jobs: JobRepository) -> None:
    await finished(jobs, gpu_s=None, wall_s=12.5)
    await finished(jobs, gpu_s=2.0, wall_s=12.5)  # measured: the wall time is not used
    job = await finished(jobs, gpu_s=None)
    # Without a start time either (a row from before started_at was kept): nothing to count.
    await jobs.db.execute("UPDATE jobs SET started_at = NULL WHERE id = ?", (job.id,))
    usage = await UsageQueries(jobs.db).since(0)
    assert (usage.gpu_s, usage.jobs) == (14.5, 3)


async def test_a_guild_sees_only_its_own_jobs(jobs: JobRepository) -> None:
    await finished(jobs, user=1, gpu_s=1.0, guild=GUILD)
    await finished(jobs, user=2, gpu_s=2.0, guild=OTHER_GUILD)
    await finished(jobs, user=3, gpu_s=4.0, guild=None)  # the CLI: no origin
    queries = UsageQueries(jobs.db)
    mine = await queries.since(0, guild_id=GUILD)
    assert (mine.gpu_s, [m.user_id for m in mine.members]) == (1.0, [1])
    everything = await queries.since(0)
    assert (everything.gpu_s, everything.member_count) == (7.0, 3)


async def test_top_lists_the_busiest_members_and_counts_the_rest(jobs: JobRepository) -> None:
    for user in range(1, 8):
        await finished(jobs, user=user, gpu_s=float(user))
    usage = await UsageQueries(jobs.db).since(0, top=3)
    assert [m.user_id for m in usage.members] == [7, 6, 5]
    assert (usage.member_count, usage.jobs, usage.gpu_s) == (7, 7, 28.0)


async def test_a_member_is_named_as_in_their_latest_job(jobs: JobRepository) -> None:
    await finished(jobs, name="old name", ago=5000)
    await finished(jobs, name="new name", ago=100)
    await finished(jobs, name="older name", ago=9000)
    [member] = (await UsageQueries(jobs.db).since(0)).members
    assert (member.user_name, member.jobs) == ("new name", 3)


async def test_models_are_named_publicly_and_merged(jobs: JobRepository) -> None:
    # A row from before results named a folder by its own name stored the host's path.
    await finished(jobs, model="/home/me/models/sd15", gpu_s=3.0)
    await finished(jobs, model="sd15", gpu_s=4.0)
    await finished(jobs, model="stabilityai/sdxl-turbo", gpu_s=5.0)
    models = (await UsageQueries(jobs.db).since(0)).models
    assert [(m.model, m.gpu_s, m.jobs) for m in models] == [
        ("sd15", 7.0, 2), ("stabilityai/sdxl-turbo", 5.0, 1)]


async def test_periods_end_now_by_default(jobs: JobRepository) -> None:
    job = await finished(jobs, gpu_s=9.0)
    await jobs.db.execute("UPDATE jobs SET finished_at = ? WHERE id = ?",
                          (time.time() - 60, job.id))
    periods = await UsageQueries(jobs.db).periods()
    assert [usage.gpu_s for _, usage in periods] == [9.0, 9.0, 9.0]
