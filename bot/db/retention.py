"""Retention: the pictures and rows of finished jobs older than `storage.keep_days` go.

Once a day (at start, then every 24 h: `start_retention`, run by the composition root)
`sweep` removes the jobs that are finished for good (delivered, failed or cancelled, never
queued, running or rendered: a rendered job is still owed its post) and older than
`keep_days` by `finished_at` (`created_at` where that is missing): first their image files,
then their rows (the `images` and ⭐ `stars` rows cascade). A crash between the two leaves
rows whose files are gone, which the next sweep removes; the other order would leave files
nothing points at.

Kept although old:

* jobs whose picture a line of an **open** story shows (`story_lines.image_path`, or the
  line's `image_job_id`): the story is still being told, its lines may be redrawn or edited,
  and its export is made when it ends. An ended story was exported into its thread then,
  pictures included, so its jobs age out like any other; a line whose file is gone is still
  shown and exported, without its picture (`bot/story/export.py`, `cogs/story/thread.py`).
* jobs that a queued or running job uses as its source (a V or U pressed on an old picture).
* the pictures of a telephone game still being played, or whose chain is still owed
  (bot/telephone/): its chain and export are made from them when it ends.

Each swept job leaves a tombstone in `expired_jobs` (who asked, the keep_days of the sweep)
so a button on its result can say the picture expired, not that someone deleted it
(`expired_job`); tombstones are pruned after `TOMBSTONE_DAYS`, so the table stays bounded by
a year of jobs. Files are only removed inside the images folder, never elsewhere. All
statements are single ones on the bot's shared autocommit connection (no transaction that
other writers' statements could fall into); file removal runs off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from bot.executor.jobs import JobState
from bot.images.inputs import input_path

log = logging.getLogger(__name__)

DAY_S = 86400.0
TOMBSTONE_DAYS = 365
TASK_NAME = "greenheart-retention"
SWEPT_STATES = (JobState.DELIVERED, JobState.FAILED, JobState.CANCELLED)
_CHUNK = 500  # jobs per DELETE (SQLite's variable limit), and a chance for other writers

_SWEPT = ", ".join(f"'{s.value}'" for s in SWEPT_STATES)
_OLD_JOBS = f"""
    SELECT id, user_id FROM jobs
    WHERE state IN ({_SWEPT}) AND COALESCE(finished_at, created_at) < ?
    ORDER BY COALESCE(finished_at, created_at)
"""
# The keep rules, each read once per sweep (not once per old job, which took minutes over
# years of jobs and an open story's lines): the jobs that lines of open stories wait on, the
# jobs whose files they show, and the sources of queued or running jobs.
_OPEN_LINES = "FROM story_lines l JOIN stories s ON s.id = l.story_id WHERE s.state = 'open'"
_KEEP_FOR_STORY = f"""
    SELECT l.image_job_id AS id {_OPEN_LINES} AND l.image_job_id IS NOT NULL
    UNION
    SELECT job_id AS id FROM images
    WHERE path IN (SELECT l.image_path {_OPEN_LINES} AND l.image_path IS NOT NULL)
"""
_KEEP_FOR_JOB = f"""
    SELECT json_extract(params, '$.source_job') AS id FROM jobs
    WHERE state IN ('{JobState.QUEUED.value}', '{JobState.RUNNING.value}')
"""
_KEEP_FOR_TELEPHONE = """
    SELECT r.image_job_id AS id FROM telephone_rounds r
    JOIN telephone_games g ON g.id = r.game_id
    WHERE (g.state = 'playing' OR (g.chain_message_id IS NULL AND g.chain_error IS NULL))
      AND r.image_job_id IS NOT NULL
"""


@dataclass(frozen=True)
class SweepCounts:
    jobs: int = 0  # job rows removed
    images: int = 0  # image rows removed with them
    files: int = 0  # picture files removed from disk
    kept: int = 0  # old finished jobs kept for an open story or a job that uses them


@dataclass(frozen=True)
class ExpiredJob:
    job_id: str
    user_id: int
    keep_days: int
    expired_at: float


async def sweep(db: aiosqlite.Connection, images_dir: Path, keep_days: int,
                now: float | None = None) -> SweepCounts:
    """Remove the finished jobs older than `keep_days` (see the module); 0 keeps all."""
    if keep_days <= 0:
        return SweepCounts()
    now = time.time() if now is None else now
    keep: set[str] = set()
    for sql in (_KEEP_FOR_STORY, _KEEP_FOR_JOB, _KEEP_FOR_TELEPHONE):
        async with db.execute(sql) as cur:
            keep.update(str(row["id"]) for row in await cur.fetchall() if row["id"] is not None)
    async with db.execute(_OLD_JOBS, (now - keep_days * DAY_S,)) as cur:
        rows = list(await cur.fetchall())
    old = [(row["id"], row["user_id"]) for row in rows if row["id"] not in keep]
    jobs = images = files = 0
    for start in range(0, len(old), _CHUNK):
        chunk = old[start:start + _CHUNK]
        ids = [job_id for job_id, _ in chunk]
        marks = ", ".join("?" * len(ids))
        async with db.execute(f"SELECT path FROM images WHERE job_id IN ({marks})", ids) as cur:
            paths = [Path(row["path"]) for row in await cur.fetchall()]
        images += len(paths)
        # The members' own pictures (/imagine image:) go with their jobs.
        paths += [p for p in (input_path(images_dir, job_id) for job_id in ids) if p.exists()]
        files += await asyncio.to_thread(_remove_files, paths, images_dir)
        await db.executemany(
            "INSERT OR REPLACE INTO expired_jobs (id, user_id, keep_days, expired_at)"
            " VALUES (?, ?, ?, ?)", [(job_id, user, keep_days, now) for job_id, user in chunk])
        async with db.execute(
            f"DELETE FROM jobs WHERE id IN ({marks}) AND state IN"
            f" ({', '.join('?' * len(SWEPT_STATES))})",
            (*ids, *(s.value for s in SWEPT_STATES)),
        ) as cur:
            jobs += cur.rowcount
    await db.execute("DELETE FROM expired_jobs WHERE expired_at < ?",
                     (now - TOMBSTONE_DAYS * DAY_S,))
    return SweepCounts(jobs=jobs, images=images, files=files, kept=len(rows) - len(old))


async def expired_job(db: aiosqlite.Connection, job_id: str) -> ExpiredJob | None:
    """The tombstone of a job the sweep removed; None if it never swept that job."""
    async with db.execute(
        "SELECT user_id, keep_days, expired_at FROM expired_jobs WHERE id = ?", (job_id,)
    ) as cur:
        row = await cur.fetchone()
    if row is None:
        return None
    return ExpiredJob(job_id, int(row["user_id"]), int(row["keep_days"]),
                      float(row["expired_at"]))


async def sweep_daily(db: aiosqlite.Connection, images_dir: Path, keep_days: int, *,
                      every_s: float = DAY_S, clock: Callable[[], float] = time.time) -> None:
    """Sweep now and then every `every_s` seconds, until cancelled; a failed sweep is
    logged and tried again at the next one."""
    while True:
        try:
            counts = await sweep(db, images_dir, keep_days, clock())
        except Exception:
            log.exception("the retention sweep failed; the next one is in %.0f s", every_s)
        else:
            if counts.jobs:
                log.info("retention: removed %d job(s) older than %d days, %d picture file(s); "
                         "kept %d for open stories or waiting jobs", counts.jobs, keep_days,
                         counts.files, counts.kept)
        await asyncio.sleep(every_s)


def start_retention(db: aiosqlite.Connection, images_dir: Path,
                    keep_days: int) -> asyncio.Task[None] | None:
    """The daily sweep as a task on the running loop; None when keep_days is 0 (keep all)."""
    if keep_days <= 0:
        return None
    return asyncio.create_task(sweep_daily(db, images_dir, keep_days), name=TASK_NAME)


async def stop_retention(task: asyncio.Task[None] | None) -> None:
    """Cancel the daily sweep and wait for it (a sweep cut short resumes at the next start)."""
    if task is None:
        return
    task.cancel()
    await asyncio.wait({task})  # a cancellation of the caller itself still propagates


def _remove_files(paths: list[Path], images_dir: Path) -> int:
    """Unlink the files that lie inside `images_dir`; returns how many were there."""
    root = images_dir.resolve()
    removed = 0
    for path in paths:
        resolved = path.resolve()
        if not resolved.is_relative_to(root):
            log.warning("retention: not removing %s, which is outside %s", path, root)
            continue
        try:
            resolved.unlink()
            removed += 1
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("retention: could not remove %s: %s", path, exc)
    return removed
