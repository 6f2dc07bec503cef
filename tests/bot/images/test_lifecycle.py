"""The image job's life without Discord: what counts towards a member's limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import settings_from_mapping
from bot.db.connection import open_database
from bot.db.jobs import JobRepository
from bot.executor.executor import Executor, ExecutorLimits, Refused
from bot.images.lifecycle import ImageJobs
from testkit.executor import ScriptedRunner, text_job


async def test_story_requests_waiting_their_turn_count_towards_the_picture_limit(
    tmp_path: Path,
) -> None:
    db = await open_database(tmp_path / "db.sqlite3")
    runner = ScriptedRunner()
    runner.gate.clear()  # nothing finishes during the test
    try:
        async with Executor(runner, ExecutorLimits(per_user_limit=2),
                            store=JobRepository(db, tmp_path / "img")) as executor:
            images = ImageJobs(settings_from_mapping({}), executor, JobRepository(db, tmp_path),
                               64, story_waiting=lambda user_id: 1 if user_id == 1 else 0)
            await images.submit(text_job(1, "a picture"))  # 1 here + 1 story op waiting
            with pytest.raises(Refused, match="waiting for their turn in a story; the limit is 2"):
                await images.submit(text_job(1, "one too many"))
            await images.submit(text_job(2, "someone else's"))  # not counted for others
            runner.gate.set()
    finally:
        await db.close()
