"""The retention sweep on a real SQLite file: old finished jobs lose their files and rows
(and leave a tombstone), everything that is recent, unfinished, owed a post, shown by an open
story or used by a waiting job stays, keep_days = 0 keeps all; the daily task."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiosqlite
import pytest
from PIL import Image

from bot.db import retention
from bot.db.jobs import JobRepository
from bot.db.retention import (
    DAY_S,
    TASK_NAME,
    TOMBSTONE_DAYS,
    SweepCounts,
    expired_job,
    start_retention,
    stop_retention,
    sweep,
)
from bot.executor.jobs import (
    Cancelled,
    Done,
    Failed,
    GeneratedImage,
    ImageMode,
    ImageParams,
    ImageResult,
    ImagineOrigin,
    Job,
    JobState,
)
from bot.story.export import build_export
from bot.story.models import Author, LineSource
from bot.story.repository import StoryRepository

NOW = 1_800_000_000.0
KEEP = 30
OLD = NOW - 31 * DAY_S
RECENT = NOW - 29 * DAY_S


def params(**overrides: object) -> ImageParams:
    values: dict[str, object] = dict(prompt="a fox", negative="", subject="a fox", style=None,
                                     seeds=(1, 2), steps=4, guidance=7.0, width=8, height=8)
    values.update(overrides)
    return ImageParams(**values)  # type: ignore[arg-type]


def result(count: int = 2) -> ImageResult:
    return ImageResult(tuple(GeneratedImage(Image.new("RGB", (8, 8), (0, 160, 0)), i)
                             for i in range(count)), {}, "tiny", "Euler a")


class World:
    def __init__(self, db: aiosqlite.Connection, images: Path) -> None:
        self.db = db
        self.images = images
        self.jobs = JobRepository(db, images)

    async def job(self, state: JobState, finished_at: float | None, *,
                  created_at: float | None = None, p: ImageParams | None = None,
                  user_id: int = 42) -> Job:
        """A job in `state` the way the bot gets it there, then aged."""
        job = Job(user_id=user_id, params=p or params(),
                  origin=ImagineOrigin(guild_id=1, channel_id=2))
        await self.jobs.job_accepted(job)
        if state is not JobState.QUEUED:
            await self.jobs.job_started(job)
        if state in (JobState.RENDERED, JobState.DELIVERED):
            await self.jobs.job_finished(job, Done(result(job.params.count)))  # type: ignore[union-attr]
        if state is JobState.DELIVERED:
            assert await self.jobs.mark_delivered(job.id, 2, 3)
        if state is JobState.FAILED:
            await self.jobs.job_finished(job, Failed("no"))
        if state is JobState.CANCELLED:
            await self.jobs.job_finished(job, Cancelled(by_user=42))
        await self.db.execute("UPDATE jobs SET finished_at = ?, created_at = ? WHERE id = ?",
                              (finished_at, created_at or (finished_at or OLD) - 60, job.id))
        record = await self.jobs.get(job.id)
        assert record is not None and record.state is state
        return job

    async def paths(self, job: Job) -> list[Path]:
        record = await self.jobs.get(job.id)
        assert record is not None
        return [i.path for i in record.images]

    async def exists(self, job: Job) -> bool:
        return await self.jobs.get(job.id) is not None

    async def image_rows(self) -> int:
        async with self.db.execute("SELECT COUNT(*) FROM images") as cur:
            row = await cur.fetchone()
        assert row is not None
        return int(row[0])


@pytest.fixture
def world(db: aiosqlite.Connection, tmp_path: Path) -> World:
    return World(db, tmp_path / "images")


async def test_old_finished_jobs_go_with_their_files_and_leave_a_tombstone(
    world: World,
) -> None:
    delivered = await world.job(JobState.DELIVERED, OLD, user_id=7)
    failed = await world.job(JobState.FAILED, OLD)
    cancelled = await world.job(JobState.CANCELLED, OLD)
    no_finish_time = await world.job(JobState.CANCELLED, None, created_at=OLD)
    files = await world.paths(delivered)
    assert len(files) == 2 and all(f.exists() for f in files)

    counts = await sweep(world.db, world.images, KEEP, NOW)

    assert counts == SweepCounts(jobs=4, images=2, files=2, kept=0)
    for job in (delivered, failed, cancelled, no_finish_time):
        assert not await world.exists(job)
    assert not any(f.exists() for f in files)
    assert await world.image_rows() == 0  # cascaded with their jobs
    tombstone = await expired_job(world.db, delivered.id)
    assert tombstone is not None
    assert (tombstone.user_id, tombstone.keep_days, tombstone.expired_at) == (7, KEEP, NOW)
    assert await expired_job(world.db, "never-swept") is None


async def test_recent_unfinished_and_undelivered_jobs_stay(world: World) -> None:
    recent = await world.job(JobState.DELIVERED, RECENT)
    recent_by_creation = await world.job(JobState.FAILED, None, created_at=RECENT)
    queued = await world.job(JobState.QUEUED, None, created_at=OLD)
    running = await world.job(JobState.RUNNING, None, created_at=OLD)
    rendered = await world.job(JobState.RENDERED, OLD)  # still owed its post
    kept = [recent, recent_by_creation, queued, running, rendered]
    files = [*await world.paths(recent), *await world.paths(rendered)]

    assert await sweep(world.db, world.images, KEEP, NOW) == SweepCounts()

    for job in kept:
        assert await world.exists(job)
        assert await expired_job(world.db, job.id) is None
    assert all(f.exists() for f in files)


async def test_pictures_of_open_stories_stay_and_ended_ones_age_out(world: World) -> None:
    stories = StoryRepository(world.db)
    author = Author(42, "Zoë")
    open_story = await stories.create(title="Open", style=None, author=author)
    ended_story = await stories.create(title="Ended", style=None, author=author)
    shown = await world.job(JobState.DELIVERED, OLD)
    exported = await world.job(JobState.DELIVERED, OLD)
    redrawing = await world.job(JobState.DELIVERED, OLD)  # its line waits for a new picture
    for story, job in ((open_story, shown), (ended_story, exported)):
        await stories.add_line(story.id, 1, source=LineSource.SEED, text="Once", author=author)
        await stories.set_image(story.id, 1, (await world.paths(job))[0])
    await stories.add_line(open_story.id, 2, source=LineSource.MODEL, text="then",
                           author=author)
    await stories.set_image_job(open_story.id, 2, redrawing.id, 1)
    assert await stories.end(ended_story.id)
    ended_files = await world.paths(exported)

    counts = await sweep(world.db, world.images, KEEP, NOW)

    assert counts == SweepCounts(jobs=1, images=2, files=2, kept=2)
    assert await world.exists(shown) and await world.exists(redrawing)
    assert all(p.exists() for p in await world.paths(shown))
    assert not await world.exists(exported) and not any(p.exists() for p in ended_files)
    # The ended story's line keeps its text; its export simply has no picture any more.
    ended = await stories.get(ended_story.id)
    assert ended is not None
    export = build_export(ended, await stories.lines(ended_story.id))
    assert export.images == () and "Once" in export.markdown.decode()


async def test_the_source_of_a_waiting_variation_stays(world: World) -> None:
    source = await world.job(JobState.DELIVERED, OLD)
    path = (await world.paths(source))[0]
    await world.job(JobState.QUEUED, None, created_at=NOW, p=params(
        mode=ImageMode.VARIATION, strength=0.5, source_job=source.id, source_path=str(path)))
    assert await sweep(world.db, world.images, KEEP, NOW) == SweepCounts(kept=1)
    assert await world.exists(source) and path.exists()


async def test_pictures_of_a_telephone_game_being_played_stay(world: World) -> None:
    from bot.telephone import GameState, Mode, TelephoneRepository

    games = TelephoneRepository(world.db)
    author = Author(42, "Zoë")
    playing, over = [await games.create(guild_id=1, channel_id=2, started_by=author,
                                        mode=Mode.AI, rounds=2, nsfw=False,
                                        upload_limit=2**20, prompt="a fox")
                     for _ in range(2)]
    kept, gone = await world.job(JobState.DELIVERED, OLD), await world.job(JobState.DELIVERED, OLD)
    await games.set_image_job(playing.id, 1, kept.id)
    await games.set_image_job(over.id, 1, gone.id)
    assert await games.end(over.id, GameState.ENDED)
    await games.set_chain(over.id, 99)  # its chain and export are posted

    assert await sweep(world.db, world.images, KEEP, NOW) == SweepCounts(
        jobs=1, images=2, files=2, kept=1)
    assert await world.exists(kept) and all(p.exists() for p in await world.paths(kept))
    assert not await world.exists(gone)


async def test_keep_days_0_keeps_everything(world: World) -> None:
    ancient = await world.job(JobState.DELIVERED, NOW - 3650 * DAY_S)
    assert await sweep(world.db, world.images, 0, NOW) == SweepCounts()
    assert await world.exists(ancient)
    assert all(p.exists() for p in await world.paths(ancient))
    assert start_retention(world.db, world.images, 0) is None  # no task at all


async def test_files_outside_the_images_folder_are_never_removed(
    world: World, tmp_path: Path,
) -> None:
    job = await world.job(JobState.DELIVERED, OLD)
    elsewhere = tmp_path / "precious.png"
    elsewhere.write_bytes(b"not ours")
    await world.db.execute("UPDATE images SET path = ? WHERE job_id = ? AND idx = 0",
                           (str(elsewhere), job.id))
    counts = await sweep(world.db, world.images, KEEP, NOW)
    assert (counts.jobs, counts.files) == (1, 1)
    assert elsewhere.read_bytes() == b"not ours"


async def test_tombstones_are_pruned_after_a_year(world: World) -> None:
    job = await world.job(JobState.FAILED, OLD)
    await sweep(world.db, world.images, KEEP, NOW)
    assert await expired_job(world.db, job.id) is not None
    await sweep(world.db, world.images, KEEP, NOW + (TOMBSTONE_DAYS - 1) * DAY_S)
    assert await expired_job(world.db, job.id) is not None
    await sweep(world.db, world.images, KEEP, NOW + (TOMBSTONE_DAYS + 1) * DAY_S)
    assert await expired_job(world.db, job.id) is None


async def test_the_daily_task_sweeps_at_start_and_again_and_stops_when_cancelled(
    world: World, monkeypatch: pytest.MonkeyPatch,
) -> None:
    sweeps: list[float] = []
    real_sweep = retention.sweep

    async def noted(*args: object) -> SweepCounts:
        sweeps.append(time.monotonic())
        if len(sweeps) == 2:
            raise RuntimeError("disk I/O error")  # logged; the next sweep still comes
        return await real_sweep(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(retention, "sweep", noted)
    old = await world.job(JobState.DELIVERED, time.time() - 31 * DAY_S)
    task = asyncio.create_task(retention.sweep_daily(world.db, world.images, KEEP,
                                                     every_s=0.05))
    for _ in range(200):
        if len(sweeps) >= 3:
            break
        await asyncio.sleep(0.01)
    assert len(sweeps) >= 3 and not task.done()
    assert not await world.exists(old)  # swept by the first run, at start
    await stop_retention(task)
    assert task.cancelled()
    count = len(sweeps)
    await asyncio.sleep(0.1)
    assert len(sweeps) == count


async def test_start_retention_names_its_task(world: World) -> None:
    task = start_retention(world.db, world.images, KEEP)
    assert task is not None and task.get_name() == TASK_NAME and not task.done()
    await stop_retention(task)
    assert task.cancelled()
    await stop_retention(None)  # nothing started: nothing to stop


async def test_a_sweep_over_many_old_jobs_and_open_story_lines_is_quick(world: World) -> None:
    # The first sweep after an upgrade: years of old jobs while stories are open. Each keep
    # rule is looked up once, not per old job (that took minutes on the bot's only
    # connection, so its buttons missed Discord's 3 s). Rows go straight in, no files.
    old_jobs, lines = 20_000, 2_000
    ids = [f"old-{i}" for i in range(old_jobs)]
    await world.db.executemany(
        "INSERT INTO jobs (id, user_id, kind, params, state, created_at, finished_at)"
        " VALUES (?, 42, 'imagine', '{}', 'delivered', ?, ?)",
        [(job_id, OLD - 60, OLD) for job_id in ids])
    await world.db.executemany(
        "INSERT INTO images (job_id, idx, seed, path) VALUES (?, 0, 1, ?)",
        [(job_id, str(world.images / f"{job_id}.png")) for job_id in ids])
    await world.db.execute(
        "INSERT INTO jobs (id, user_id, kind, params, state, created_at)"
        " VALUES ('waiting', 42, 'imagine', '{\"source_job\": \"old-2\"}', 'queued', ?)",
        (NOW,))
    await world.db.execute(
        "INSERT INTO stories (id, title, author_id, state, created_at)"
        " VALUES (1, 'Open', 42, 'open', ?)", (NOW,))
    # Most lines show pictures of recent jobs (no match: the worst case for a per-job
    # lookup); line 1 shows an old job's file, line 2 waits on an old job's picture.
    rows = [(n, f"recent-{n}", str(world.images / f"recent-{n}.png")) for n in range(3, lines)]
    rows += [(1, None, str(world.images / "old-0.png")), (2, "old-1", None)]
    await world.db.executemany(
        "INSERT INTO story_lines (story_id, number, source, text, author_id, image_job_id,"
        " image_path, created_at, updated_at) VALUES (1, ?, 'model', 'then', 42, ?, ?, 0, 0)",
        rows)

    started = time.monotonic()
    counts = await sweep(world.db, world.images, KEEP, NOW)
    elapsed = time.monotonic() - started

    assert counts == SweepCounts(jobs=old_jobs - 3, images=old_jobs - 3, files=0, kept=3)
    assert elapsed < 10, f"the sweep took {elapsed:.1f} s"
    for kept in ("old-0", "old-1", "old-2"):
        async with world.db.execute("SELECT 1 FROM jobs WHERE id = ?", (kept,)) as cur:
            assert await cur.fetchone() is not None
