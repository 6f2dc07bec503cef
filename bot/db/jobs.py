"""The job table: every job is written when accepted and updated at each state change
(see `JobState`). A state only moves along `NEXT_STATES`: each update names the states it
may come from, so a late or repeated write (a delivery after a failure, a second delivery)
changes nothing."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from bot.executor.jobs import (
    Cancelled,
    Done,
    Failed,
    ImageParams,
    ImageResult,
    Job,
    JobKind,
    JobResult,
    JobState,
    TextResult,
    origin_from_json,
    params_from_json,
)
from bot.images.files import save_images
from bot.images.inputs import input_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredImage:
    index: int
    seed: int
    path: Path
    nsfw: bool
    label: str


@dataclass(frozen=True)
class JobRecord:
    job: Job
    state: JobState
    reason: str | None
    model: str | None
    sampler: str | None
    timings: dict[str, float]
    result_text: str | None
    images: tuple[StoredImage, ...]
    channel_id: int | None
    message_id: int | None
    created_at: float
    started_at: float | None
    finished_at: float | None


class JobRepository:
    """Implements the executor's JobStore on SQLite, plus look-ups for buttons and /queue."""

    def __init__(self, db: aiosqlite.Connection, images_dir: Path) -> None:
        self.db = db
        self.images_dir = images_dir
        # Told of every result a run produced, before it is written (the composition root
        # wires the metrics here); GPU time was spent even if its files can't be saved.
        self.on_result: Callable[[Job, JobResult], None] | None = None

    # ----- JobStore ---------------------------------------------------------------------------

    async def job_accepted(self, job: Job) -> None:
        await self.db.execute(
            "INSERT INTO jobs (id, user_id, user_name, kind, params, origin, state, attempts,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (job.id, job.user_id, job.user_name, job.kind.value,
             json.dumps(job.params.to_json(), ensure_ascii=False),
             _origin_json(job), JobState.QUEUED.value, job.attempts, job.created_at),
        )

    async def job_started(self, job: Job) -> None:
        # From queued; or from running, where a restart runs again a job that the previous
        # process left running (`Executor.restore`), and the new attempt must be counted.
        await self._move(job.id, JobState.RUNNING, "attempts = ?, started_at = ?",
                         job.attempts, time.time(),
                         before=(JobState.QUEUED, JobState.RUNNING))

    async def job_finished(self, job: Job, event: Done | Failed | Cancelled) -> JobRecord | None:
        """Record how a run ended; returns the job's record as it now stands (the executor
        hands it to whoever waits on the job)."""
        now = time.time()
        if isinstance(event, Failed):
            await self._set_final(job.id, JobState.FAILED, now, reason=event.reason)
        elif isinstance(event, Cancelled):
            await self._set_final(job.id, JobState.CANCELLED, now,
                                  reason=event.reason or "cancelled")
        else:
            if self.on_result is not None:
                try:
                    self.on_result(job, event.result)
                except Exception:  # an observer must never keep a result from its record
                    log.exception("job %s: the result observer failed", job.id)
            if isinstance(event.result, ImageResult):
                await self._record_images(job, event.result, now)
            else:
                await self._record_text(job.id, event.result, now)
        return await self.get(job.id)

    async def job_interrupted(self, job: Job) -> None:
        # A clean shutdown is not a crash: the run doesn't count towards the retry limit.
        await self._move(job.id, JobState.QUEUED, "attempts = MAX(0, attempts - 1)")

    async def job_requeued(self, job: Job) -> None:
        # Its remote worker was lost mid-run: that run counts (a job that kills its worker
        # each time is given up after two), unlike a clean stop's.
        await self._move(job.id, JobState.QUEUED, "attempts = ?", job.attempts)

    async def job_dispatched(self, job: Job, batch_id: str) -> None:
        """Written before the batch is sent to a remote worker: after a restart, the bot
        looks for the batch's result (or its worker) under this id instead of sending the
        job again."""
        await self.db.execute("UPDATE jobs SET dispatch = ? WHERE id = ?", (batch_id, job.id))

    async def dispatches(self) -> dict[str, str]:
        """Unfinished jobs' remote batch ids (job id → batch id)."""
        async with self.db.execute(
            "SELECT id, dispatch FROM jobs WHERE state IN (?, ?) AND dispatch IS NOT NULL",
            (JobState.QUEUED.value, JobState.RUNNING.value),
        ) as cur:
            return {row["id"]: row["dispatch"] for row in await cur.fetchall()}

    async def unfinished_jobs(self) -> list[tuple[Job, JobState]]:
        async with self.db.execute(
            "SELECT * FROM jobs WHERE state IN (?, ?) ORDER BY created_at",
            (JobState.QUEUED.value, JobState.RUNNING.value),
        ) as cur:
            rows = await cur.fetchall()
        return [(_job_from_row(row), JobState(row["state"])) for row in rows]

    # ----- results ----------------------------------------------------------------------------

    async def _set_final(self, job_id: str, state: JobState, now: float, *,
                         reason: str | None = None) -> None:
        await self._move(job_id, state, "reason = ?, finished_at = ?", reason, now)

    async def _move(self, job_id: str, state: JobState, sets: str = "", *values: Any,
                    before: tuple[JobState, ...] | None = None) -> bool:
        """Set `state` (and `sets`) if the job is in a state that may become it (or, given
        `before`, in one of those)."""
        origins = [s.value for s in (before if before is not None else
                                     tuple(s for s in JobState if s.may_become(state)))]
        marks = ", ".join("?" * len(origins))
        async with self.db.execute(
            f"UPDATE jobs SET state = ?{', ' + sets if sets else ''}"
            f" WHERE id = ? AND state IN ({marks})",
            (state.value, *values, job_id, *origins),
        ) as cur:
            return cur.rowcount > 0

    async def _record_images(self, job: Job, result: ImageResult, now: float) -> None:
        assert isinstance(job.params, ImageParams)
        try:
            # PNG encoding is CPU work: keep it off the event loop.
            paths = await asyncio.to_thread(save_images, job, result, self.images_dir)
        except OSError as exc:
            # A full disk (or a folder gone) fails the job: left running, it would render
            # and post again after a restart. save_images left no partial files behind.
            log.error("job %s: could not write its pictures: %s", job.id, exc)
            await self._set_final(job.id, JobState.FAILED, now, reason=_write_failure(exc))
            return
        await self.db.executemany(
            "INSERT OR REPLACE INTO images (job_id, idx, seed, path, nsfw, label)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(job.id, i, img.seed, str(path), int(img.nsfw), img.label)
             for i, (img, path) in enumerate(zip(result.images, paths, strict=True))],
        )
        # Rendered only after its images are recorded: a crash in between re-runs it.
        await self._move(job.id, JobState.RENDERED,
                         "model = ?, sampler = ?, timings = ?, finished_at = ?, worker = ?,"
                         " gpu_s = ?",
                         result.model, result.sampler, json.dumps(result.timings), now,
                         *_who_and_how_long(result))

    async def _record_text(self, job_id: str, result: TextResult, now: float) -> None:
        await self._move(job_id, JobState.RENDERED,
                         "model = ?, timings = ?, result_text = ?, finished_at = ?,"
                         " worker = ?, gpu_s = ?",
                         result.model, json.dumps(result.timings), result.text, now,
                         *_who_and_how_long(result))

    async def job_born_finished(self, job: Job, source: Path, *, seed: int, label: str,
                                nsfw: bool, model: str | None,
                                sampler: str | None) -> JobRecord | None:
        """Record a job made without a render (🎞 a kept step): `source` copied as its one
        picture, then the job as rendered, so its post is owed like any rendered job's (once,
        after a restart too). Single statements on the shared connection, each safe to be
        the last: the row is written failed, its image added, and only then is it rendered;
        a crash between leaves a failed job, never one owed a post without its picture.
        Raises OSError when the picture can't be copied (nothing is left behind)."""
        path = self.images_dir / f"{job.id}-0{source.suffix or '.png'}"
        await asyncio.to_thread(_copy_file, source, path)
        now = time.time()
        await self.db.execute(
            "INSERT INTO jobs (id, user_id, user_name, kind, params, origin, state, attempts,"
            " reason, model, sampler, timings, created_at, started_at, finished_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, '{}', ?, ?, ?)",
            (job.id, job.user_id, job.user_name, job.kind.value,
             json.dumps(job.params.to_json(), ensure_ascii=False), _origin_json(job),
             JobState.FAILED.value, _UNFINISHED_BIRTH, model, sampler, job.created_at, now,
             now))
        await self.db.execute(
            "INSERT INTO images (job_id, idx, seed, path, nsfw, label) VALUES (?, 0, ?, ?, ?, ?)",
            (job.id, seed, str(path), int(nsfw), label))
        await self.db.execute(
            "UPDATE jobs SET state = ?, reason = NULL WHERE id = ? AND state = ? AND reason = ?",
            (JobState.RENDERED.value, job.id, JobState.FAILED.value, _UNFINISHED_BIRTH))
        return await self.get(job.id)

    # ----- delivery ---------------------------------------------------------------------------

    async def mark_delivered(self, job_id: str, channel_id: int, message_id: int) -> bool:
        """The job's result message exists: store where. False when it was not rendered
        (or was delivered already: the first delivery's ids stay)."""
        return await self._move(job_id, JobState.DELIVERED, "channel_id = ?, message_id = ?",
                                channel_id, message_id)

    async def mark_undeliverable(self, job_id: str, reason: str) -> bool:
        """Its result can never be posted (the channel is gone, no access): failed."""
        return await self._move(job_id, JobState.FAILED, "reason = ?", reason)

    async def undelivered(self) -> list[JobRecord]:
        """Rendered jobs whose result was never posted, oldest first."""
        async with self.db.execute(
            "SELECT id FROM jobs WHERE state = ? ORDER BY created_at",
            (JobState.RENDERED.value,),
        ) as cur:
            ids = [row["id"] for row in await cur.fetchall()]
        records = [await self.get(job_id) for job_id in ids]
        return [r for r in records if r is not None]

    # ----- look-ups ---------------------------------------------------------------------------

    async def update_origin(self, job: Job) -> None:
        await self.db.execute("UPDATE jobs SET origin = ? WHERE id = ?",
                              (_origin_json(job), job.id))

    async def get(self, job_id: str) -> JobRecord | None:
        async with self.db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        async with self.db.execute(
            "SELECT * FROM images WHERE job_id = ? ORDER BY idx", (job_id,)
        ) as cur:
            images = await cur.fetchall()
        return JobRecord(
            job=_job_from_row(row),
            state=JobState(row["state"]),
            reason=row["reason"],
            model=row["model"],
            sampler=row["sampler"],
            timings=json.loads(row["timings"] or "{}"),
            result_text=row["result_text"],
            images=tuple(
                StoredImage(r["idx"], r["seed"], Path(r["path"]), bool(r["nsfw"]), r["label"])
                for r in images
            ),
            channel_id=row["channel_id"],
            message_id=row["message_id"],
            created_at=row["created_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
        )

    async def delete(self, job_id: str) -> None:
        """Forget a job and remove its image files (the 🗑 button)."""
        async with self.db.execute("SELECT path FROM images WHERE job_id = ?", (job_id,)) as cur:
            paths = [Path(row["path"]) for row in await cur.fetchall()]
        paths.append(input_path(self.images_dir, job_id))  # a member's own picture, if any
        await self.db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        await asyncio.to_thread(_remove_files, paths)


def _who_and_how_long(result: JobResult) -> tuple[str | None, float | None]:
    """The worker and GPU seconds columns: NULL where a result does not say (usage then
    falls back to the run's wall time)."""
    return result.worker or None, result.timings.get("gpu_s")


def _origin_json(job: Job) -> str:
    return json.dumps(job.origin.to_json() if job.origin is not None else {})


def _write_failure(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "The pictures were made but could not be saved: the bot's disk is full."
    return f"The pictures were made but could not be saved ({exc.strerror or exc})."


# The reason a job born finished carries until its picture is recorded (see above).
_UNFINISHED_BIRTH = "The picture could not be recorded (the bot stopped while saving it)."


def _copy_file(source: Path, path: Path) -> None:
    """Copy beside the target, then rename: never a half-written file behind a button."""
    tmp = path.with_suffix(".part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, tmp)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _remove_files(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _job_from_row(row: aiosqlite.Row) -> Job:
    params = params_from_json(JobKind(row["kind"]), json.loads(row["params"]))
    return Job(
        id=row["id"],
        user_id=row["user_id"],
        user_name=row["user_name"],
        params=params,
        origin=origin_from_json(json.loads(row["origin"] or "{}")),
        attempts=row["attempts"],
        created_at=row["created_at"],
    )
