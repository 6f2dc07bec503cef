"""The composition root runs the retention sweep: `open_services` starts the daily task
(which sweeps at once) after the services are built, and cancels it when they close."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bot.app import open_services
from bot.config import settings_from_mapping
from bot.db.connection import open_database
from bot.db.jobs import JobRepository
from bot.db.retention import DAY_S, TASK_NAME, expired_job
from bot.executor.jobs import Failed, ImageParams, Job
from bot.pipelines.tiny import TinyModelPaths


def retention_tasks() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == TASK_NAME]


async def test_open_services_starts_and_cancels_the_daily_sweep(
    tiny_models: TinyModelPaths, tmp_path: Path,
) -> None:
    settings = settings_from_mapping({
        "image": {"model": str(tiny_models.image)}, "story": {"model": str(tiny_models.story)},
        "storage": {"database": str(tmp_path / "db.sqlite3"), "images": str(tmp_path / "img"),
                    "keep_days": 7}})
    # A job that failed 8 days ago, left by an earlier run.
    db = await open_database(settings.storage.database)
    old = Job(user_id=5, params=ImageParams(prompt="x", negative="", subject="x", style=None,
                                            seeds=(1,), steps=1, guidance=7, width=8, height=8))
    jobs = JobRepository(db, settings.storage.images)
    await jobs.job_accepted(old)
    await jobs.job_finished(old, Failed("no"))
    await db.execute("UPDATE jobs SET finished_at = ? WHERE id = ?",
                     (time.time() - 8 * DAY_S, old.id))
    await db.close()

    async with open_services(settings) as services:
        [task] = retention_tasks()
        for _ in range(500):  # the first sweep runs at start
            if await services.jobs.get(old.id) is None:
                break
            await asyncio.sleep(0.01)
        assert await services.jobs.get(old.id) is None
        tombstone = await expired_job(services.db, old.id)
        assert tombstone is not None and tombstone.keep_days == 7
        assert not task.done()  # asleep until tomorrow's sweep
    assert task.cancelled()
    assert retention_tasks() == []


async def test_keep_days_0_starts_no_sweep(tiny_models: TinyModelPaths, tmp_path: Path) -> None:
    settings = settings_from_mapping({
        "image": {"model": str(tiny_models.image)}, "story": {"model": str(tiny_models.story)},
        "storage": {"database": str(tmp_path / "db.sqlite3"), "images": str(tmp_path / "img"),
                    "keep_days": 0}})
    async with open_services(settings):
        assert retention_tasks() == []
