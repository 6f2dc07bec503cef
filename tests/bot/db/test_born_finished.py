"""A job born finished (🎞 a kept step): its picture copied, its row rendered and owed a
post, then delivered; a picture that can't be copied leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import aiosqlite
import pytest
from PIL import Image

from bot.db.jobs import JobRepository
from bot.executor.jobs import ImageMode, ImageParams, ImagineOrigin, Job, JobState
from bot.images.pnginfo import GenerationParameters, encode_png, read_png_parameters


def kept_job() -> Job:
    params = ImageParams(prompt="a fox", negative="", subject="a fox", style=None, seeds=(9,),
                         steps=12, guidance=7.0, width=8, height=8)
    return Job(user_id=42, user_name="Zoë", params=params,
               origin=ImagineOrigin(guild_id=1, channel_id=2, parent_message_id=3))


@pytest.fixture
def repo(db: aiosqlite.Connection, tmp_path: Path) -> JobRepository:
    return JobRepository(db, tmp_path / "images")


async def test_a_kept_step_is_rendered_with_its_picture_and_owed_a_post(
    repo: JobRepository, tmp_path: Path,
) -> None:
    frame = tmp_path / "journey-4.png"
    info = GenerationParameters(prompt="a fox", negative="", steps=5, sampler="Euler a",
                                cfg_scale=7.0, seed=9, width=8, height=8, model="tiny",
                                extra={"Journey": "step 5/12"})
    frame.write_bytes(encode_png(Image.new("RGB", (8, 8), (0, 90, 0)), info))
    job = kept_job()
    record = await repo.job_born_finished(job, frame, seed=9, label="step 5/12", nsfw=False,
                                          model="tiny", sampler="Euler a")
    assert record is not None and record.state is JobState.RENDERED and record.reason is None
    assert record.job.params.mode is ImageMode.TXT2IMG and (record.model, record.sampler) == \
        ("tiny", "Euler a")
    [image] = record.images
    assert (image.seed, image.label, image.path.parent) == (9, "step 5/12", repo.images_dir)
    assert image.path.read_bytes() == frame.read_bytes()  # a copy: the frame's PNG info too
    stored = read_png_parameters(image.path.read_bytes())
    assert stored is not None and stored.steps == 5
    # Owed a post like any rendered job (a restart posts it), once delivered no more.
    assert [r.job.id for r in await repo.undelivered()] == [job.id]
    assert await repo.mark_delivered(job.id, 2, 77)
    assert await repo.undelivered() == []
    # Its own file: deleting the kept step leaves the journey's frame alone.
    await repo.delete(job.id)
    assert not image.path.exists() and frame.exists()


async def test_a_picture_that_is_gone_records_nothing(repo: JobRepository,
                                                      tmp_path: Path) -> None:
    job = kept_job()
    with pytest.raises(FileNotFoundError):
        await repo.job_born_finished(job, tmp_path / "gone.png", seed=9, label="step 1/4",
                                     nsfw=False, model=None, sampler=None)
    assert await repo.get(job.id) is None
    assert list(repo.images_dir.iterdir()) == []  # no half-copied file either
