"""JobRepository on a real SQLite file: every state change, results (PNG files and image
rows, text), the look-ups the buttons use, and deleting a job with its files."""

from __future__ import annotations

import errno
import json
import time
from pathlib import Path

import aiosqlite
import pytest
from PIL import Image

from bot.db.connection import open_database
from bot.db.jobs import JobRecord, JobRepository, StoredImage
from bot.executor.jobs import (
    Cancelled,
    DescribeOrigin,
    DescribeParams,
    Done,
    Failed,
    GeneratedImage,
    ImageMode,
    ImageParams,
    ImageResult,
    ImagineOrigin,
    Job,
    JobState,
    StoryOrigin,
    TextParams,
    TextResult,
)
from bot.images import files

RED = (255, 0, 0)
BLUE = (0, 0, 255)
GREEN = (0, 160, 0)


def image_params(**overrides: object) -> ImageParams:
    values: dict[str, object] = dict(
        prompt="灯台 at dusk, Zoë's watercolor 🌊", negative="blurry, ぼやけ",
        subject="灯台 at dusk", style="watercolor", seeds=(11, 22), steps=20, guidance=7.5,
        width=8, height=8,
    )
    values.update(overrides)
    return ImageParams(**values)  # type: ignore[arg-type]


def variation_params() -> ImageParams:
    return image_params(
        mode=ImageMode.VARIATION, strength=0.55, source_job="abc123def456", source_index=1,
        source_path="/data/images/abc123def456-1.png", labels=("ink", "oil"),
        prompts=("a fox, ink", "a fox, oil"), negatives=("smudge", ""), seeds=(5, 4_294_967_295),
    )


def text_params() -> TextParams:
    return TextParams(seed_line="Il était une fois… 🌙", lines=("昔々", "Жили-были"),
                      rng_seed=1234, max_chars=600)


def describe_params() -> DescribeParams:
    return DescribeParams(source_path="/data/images/inputs/abc123def456.png", count=3,
                          max_new_tokens=40, seed=4_294_967_295)


def make_job(params: ImageParams | TextParams | DescribeParams, *,
             created_at: float = 1_700_000_000.25, **overrides: object) -> Job:
    job = Job(user_id=42, user_name="Zoë 🌿", params=params, created_at=created_at,
              origin=ImagineOrigin(guild_id=1, channel_id=2, nsfw=True, upload_limit=8_000_000,
                                   parent_message_id=3, status_message_id=4))
    for key, value in overrides.items():
        setattr(job, key, value)
    return job


def files_in(folder: Path) -> list[Path] | None:
    """The folder's entries, sorted; None when there is no such folder."""
    return sorted(folder.iterdir()) if folder.is_dir() else None


def solid(colour: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGB", (8, 8), colour)


def image_result() -> ImageResult:
    return ImageResult(
        images=(GeneratedImage(solid(RED), seed=11, nsfw=False, label="watercolor"),
                GeneratedImage(solid(BLUE), seed=22, nsfw=True, label="ink ✒")),
        timings={"load": 0.5, "denoise": 2.25},
        model="tiny-sd",
        sampler="Euler a",
    )


@pytest.fixture
def images_dir(tmp_path: Path) -> Path:
    return tmp_path / "images"


@pytest.fixture
def repo(db: aiosqlite.Connection, images_dir: Path) -> JobRepository:
    return JobRepository(db, images_dir)


async def record(repo: JobRepository, job_id: str) -> JobRecord:
    rec = await repo.get(job_id)
    assert rec is not None
    return rec


async def image_rows(db: aiosqlite.Connection, job_id: str) -> list[tuple[object, ...]]:
    async with db.execute(
        "SELECT idx, seed, path, nsfw, label FROM images WHERE job_id = ? ORDER BY idx",
        (job_id,),
    ) as cur:
        return [tuple(r) for r in await cur.fetchall()]


# ----- accepted --------------------------------------------------------------------------------


@pytest.mark.parametrize("params", [image_params(), variation_params(), text_params(),
                                    describe_params()],
                         ids=["image", "variation", "text", "describe"])
async def test_accepted_round_trips(
        repo: JobRepository, params: ImageParams | TextParams | DescribeParams) -> None:
    job = make_job(params)
    await repo.job_accepted(job)
    rec = await record(repo, job.id)
    assert rec.job == job
    assert rec.job is not job
    assert rec.job.params == params
    assert type(rec.job.params) is type(params)
    assert rec.job.kind is job.kind
    assert rec.state is JobState.QUEUED
    assert (rec.reason, rec.model, rec.sampler, rec.result_text) == (None, None, None, None)
    assert rec.timings == {}
    assert rec.images == ()
    assert (rec.channel_id, rec.message_id) == (None, None)
    assert rec.created_at == 1_700_000_000.25
    assert (rec.started_at, rec.finished_at) == (None, None)


async def test_accepted_row(repo: JobRepository, db: aiosqlite.Connection) -> None:
    job = make_job(image_params(), attempts=1)
    await repo.job_accepted(job)
    async with db.execute("SELECT * FROM jobs WHERE id = ?", (job.id,)) as cur:
        row = await cur.fetchone()
    assert row is not None
    assert (row["user_id"], row["user_name"], row["kind"], row["state"], row["attempts"]) == (
        42, "Zoë 🌿", "image", "queued", 1)
    assert "灯台" in row["params"]  # stored readable, not \u-escaped
    params = json.loads(row["params"])
    assert params["seeds"] == [11, 22]
    assert params["mode"] == "txt2img"
    assert json.loads(row["origin"]) == {
        "kind": "imagine", "guild_id": 1, "channel_id": 2, "nsfw": True, "upload_limit": 8_000_000,
        "parent_message_id": 3, "status_message_id": 4, "private": False,
        "via_interaction": False}


async def test_accepting_the_same_id_twice_fails(repo: JobRepository) -> None:
    job = make_job(text_params())
    await repo.job_accepted(job)
    with pytest.raises(aiosqlite.IntegrityError):
        await repo.job_accepted(job)


# ----- started / interrupted ------------------------------------------------------------------


async def test_started(repo: JobRepository) -> None:
    job = make_job(image_params())
    await repo.job_accepted(job)
    job.attempts = 1  # the executor counts the run before reporting it
    before = time.time()
    await repo.job_started(job)
    after = time.time()
    rec = await record(repo, job.id)
    assert rec.state is JobState.RUNNING
    assert rec.job.attempts == 1
    assert rec.started_at is not None
    assert before <= rec.started_at <= after
    assert rec.finished_at is None


@pytest.mark.parametrize(("attempts", "left"), [(0, 0), (1, 0), (2, 1), (3, 2)])
async def test_interrupted_requeues_without_counting_the_run(
    repo: JobRepository, attempts: int, left: int
) -> None:
    job = make_job(text_params())
    await repo.job_accepted(job)
    if attempts:
        job.attempts = attempts
        await repo.job_started(job)
    await repo.job_interrupted(job)
    rec = await record(repo, job.id)
    assert rec.state is JobState.QUEUED
    assert rec.job.attempts == left
    assert [(j.id, s) for j, s in await repo.unfinished_jobs()] == [(job.id, JobState.QUEUED)]


async def test_started_counts_the_rerun_of_a_job_left_running_by_a_crash(
    repo: JobRepository,
) -> None:
    job = make_job(text_params(), attempts=1)
    await repo.job_accepted(job)
    await repo.job_started(job)
    job.attempts = 2  # restored as running, run again
    await repo.job_started(job)
    rec = await record(repo, job.id)
    assert (rec.state, rec.job.attempts) == (JobState.RUNNING, 2)


async def test_started_and_interrupted_leave_a_finished_job_alone(repo: JobRepository) -> None:
    # A late "started" or "interrupted" must not bring a finished job back to life.
    cancelled = make_job(text_params(), attempts=1)
    await repo.job_accepted(cancelled)
    await repo.job_finished(cancelled, Cancelled(by_user=1))
    cancelled.attempts = 2
    await repo.job_started(cancelled)
    rec = await record(repo, cancelled.id)
    assert (rec.state, rec.job.attempts, rec.started_at) == (JobState.CANCELLED, 1, None)

    rendered = make_job(image_params(), attempts=2)
    await repo.job_accepted(rendered)
    await repo.job_started(rendered)
    await repo.job_finished(rendered, Done(image_result()))
    await repo.job_interrupted(rendered)
    rec = await record(repo, rendered.id)
    assert (rec.state, rec.job.attempts) == (JobState.RENDERED, 2)
    assert await repo.unfinished_jobs() == []


# ----- finished -------------------------------------------------------------------------------


async def test_done_with_images(repo: JobRepository, db: aiosqlite.Connection,
                                images_dir: Path) -> None:
    job = make_job(image_params(), attempts=1)
    await repo.job_accepted(job)
    await repo.job_started(job)
    assert files_in(images_dir) is None
    before = time.time()
    await repo.job_finished(job, Done(image_result()))
    after = time.time()

    paths = [images_dir / f"{job.id}-0.png", images_dir / f"{job.id}-1.png"]
    assert files_in(images_dir) == sorted(paths)  # no .part files left behind
    for path, colour, seed in zip(paths, (RED, BLUE), (11, 22), strict=True):
        with Image.open(path) as img:
            assert img.format == "PNG"
            assert img.size == (8, 8)
            assert img.convert("RGB").getpixel((3, 3)) == colour
            text = img.info["parameters"]
        assert text.startswith("灯台 at dusk, Zoë's watercolor 🌊")
        assert f"Seed: {seed}" in text
        assert "Sampler: Euler a" in text

    assert await image_rows(db, job.id) == [
        (0, 11, str(paths[0]), 0, "watercolor"),
        (1, 22, str(paths[1]), 1, "ink ✒"),
    ]
    rec = await record(repo, job.id)
    assert rec.state is JobState.RENDERED
    assert rec.images == (StoredImage(0, 11, paths[0], False, "watercolor"),
                          StoredImage(1, 22, paths[1], True, "ink ✒"))
    assert (rec.model, rec.sampler) == ("tiny-sd", "Euler a")
    assert rec.timings == {"load": 0.5, "denoise": 2.25}
    assert (rec.reason, rec.result_text) == (None, None)
    assert rec.finished_at is not None
    assert before <= rec.finished_at <= after
    assert rec.started_at is not None
    assert rec.started_at <= rec.finished_at
    assert await repo.unfinished_jobs() == []


async def test_done_again_replaces_the_images(repo: JobRepository, db: aiosqlite.Connection,
                                              images_dir: Path) -> None:
    # A crash between the image rows and the state re-runs the job: no duplicate rows.
    job = make_job(image_params())
    await repo.job_accepted(job)
    await repo.job_finished(job, Done(image_result()))
    # As such a crash leaves it: the image rows written, the state still running.
    await db.execute("UPDATE jobs SET state = 'running' WHERE id = ?", (job.id,))
    second = ImageResult(
        images=(GeneratedImage(solid(GREEN), seed=33), GeneratedImage(solid(GREEN), seed=44)),
        timings={"denoise": 1.0}, model="tiny-sd-2", sampler="DPM++ 2M",
    )
    await repo.job_finished(job, Done(second))
    assert [(r[0], r[1], r[4]) for r in await image_rows(db, job.id)] == [(0, 33, ""), (1, 44, "")]
    with Image.open(images_dir / f"{job.id}-0.png") as img:
        assert img.convert("RGB").getpixel((0, 0)) == GREEN
    rec = await record(repo, job.id)
    assert (rec.model, rec.sampler, rec.timings) == ("tiny-sd-2", "DPM++ 2M", {"denoise": 1.0})


async def test_done_with_text(repo: JobRepository, db: aiosqlite.Connection,
                              images_dir: Path) -> None:
    job = make_job(text_params(), attempts=1)
    await repo.job_accepted(job)
    await repo.job_started(job)
    text = "Et puis le dragon 🐉 s'endormit.\n二行目"
    await repo.job_finished(job, Done(TextResult(text=text, timings={"generate": 0.75},
                                                 model="tiny-gpt")))
    rec = await record(repo, job.id)
    assert rec.state is JobState.RENDERED
    assert rec.result_text == text
    assert rec.model == "tiny-gpt"
    assert rec.sampler is None
    assert rec.timings == {"generate": 0.75}
    assert rec.images == ()
    assert rec.reason is None
    assert rec.finished_at is not None
    assert rec.job == job
    assert await image_rows(db, job.id) == []
    assert files_in(images_dir) is None


async def worker_and_gpu_s(db: aiosqlite.Connection, job_id: str) -> tuple[object, object]:
    async with db.execute("SELECT worker, gpu_s FROM jobs WHERE id = ?", (job_id,)) as cur:
        row = await cur.fetchone()
    assert row is not None
    return row["worker"], row["gpu_s"]


async def test_results_store_who_ran_them_and_their_gpu_seconds(
    repo: JobRepository, db: aiosqlite.Connection,
) -> None:
    seen: list[tuple[str, str]] = []
    repo.on_result = lambda job, result: seen.append((job.id, result.model))
    picture = make_job(image_params())
    await repo.job_accepted(picture)
    result = image_result()
    await repo.job_finished(picture, Done(ImageResult(
        result.images, {**result.timings, "gpu_s": 1.5}, result.model, result.sampler,
        worker="gpu-box-2")))
    assert await worker_and_gpu_s(db, picture.id) == ("gpu-box-2", 1.5)
    line = make_job(text_params())
    await repo.job_accepted(line)
    await repo.job_finished(line, Done(TextResult("x", {"gpu_s": 0.25}, "tiny-gpt",
                                                  worker="local")))
    assert await worker_and_gpu_s(db, line.id) == ("local", 0.25)
    # A result that does not say (a runner outside the executor) leaves both NULL.
    silent = make_job(text_params())
    await repo.job_accepted(silent)
    await repo.job_finished(silent, Done(TextResult("x", {}, "tiny-gpt")))
    assert await worker_and_gpu_s(db, silent.id) == (None, None)
    assert seen == [(picture.id, "tiny-sd"), (line.id, "tiny-gpt"), (silent.id, "tiny-gpt")]


async def test_a_failing_result_observer_does_not_keep_the_result_from_its_record(
    repo: JobRepository, caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(job: Job, result: object) -> None:
        raise RuntimeError("observer bug")

    repo.on_result = broken
    job = make_job(text_params())
    await repo.job_accepted(job)
    await repo.job_finished(job, Done(TextResult("kept", {}, "tiny-gpt")))
    rec = await record(repo, job.id)
    assert (rec.state, rec.result_text) == (JobState.RENDERED, "kept")
    assert "the result observer failed" in caplog.text


async def test_failed(repo: JobRepository) -> None:
    job = make_job(image_params(), attempts=1)
    await repo.job_accepted(job)
    await repo.job_started(job)
    before = time.time()
    await repo.job_finished(job, Failed("CUDA out of memory — try fewer images"))
    rec = await record(repo, job.id)
    assert rec.state is JobState.FAILED
    assert rec.reason == "CUDA out of memory — try fewer images"
    assert rec.finished_at is not None
    assert rec.finished_at >= before
    assert (rec.model, rec.sampler, rec.result_text, rec.images) == (None, None, None, ())
    assert rec.timings == {}


async def test_cancelled(repo: JobRepository) -> None:
    job = make_job(text_params())
    await repo.job_accepted(job)
    await repo.job_finished(job, Cancelled(by_user=42))
    rec = await record(repo, job.id)
    assert rec.state is JobState.CANCELLED
    assert rec.state.finished
    assert rec.reason == "cancelled"
    assert rec.finished_at is not None
    assert rec.started_at is None
    assert await repo.unfinished_jobs() == []


# ----- unfinished jobs ------------------------------------------------------------------------


async def test_unfinished_jobs_in_created_order(repo: JobRepository) -> None:
    # Neither the ids nor the order of acceptance follow the created order.
    running = make_job(image_params(), created_at=100.0, id="job-c")
    done = make_job(text_params(), created_at=200.0, id="job-d")
    queued_text = make_job(text_params(), created_at=250.0, id="job-a")
    queued_image = make_job(variation_params(), created_at=300.0, id="job-b")
    failed = make_job(image_params(), created_at=400.0, id="job-e")
    cancelled = make_job(text_params(), created_at=50.0, id="job-f")
    for job in (queued_image, failed, done, cancelled, queued_text, running):
        await repo.job_accepted(job)
    running.attempts = 1
    await repo.job_started(running)
    await repo.job_started(done)
    await repo.job_finished(done, Done(TextResult("the end", {}, "tiny-gpt")))
    await repo.job_finished(failed, Failed("boom"))
    await repo.job_finished(cancelled, Cancelled())

    unfinished = await repo.unfinished_jobs()
    assert [(j.id, s) for j, s in unfinished] == [
        (running.id, JobState.RUNNING),
        (queued_text.id, JobState.QUEUED),
        (queued_image.id, JobState.QUEUED),
    ]
    assert [j for j, _ in unfinished] == [running, queued_text, queued_image]
    assert unfinished[0][0].attempts == 1


async def test_no_unfinished_jobs_in_an_empty_database(repo: JobRepository) -> None:
    assert await repo.unfinished_jobs() == []


# ----- look-ups -------------------------------------------------------------------------------


async def test_mark_delivered(repo: JobRepository) -> None:
    job, other = make_job(image_params()), make_job(image_params())
    await repo.job_accepted(job)
    await repo.job_accepted(other)
    await repo.job_finished(job, Done(image_result()))
    assert await repo.mark_delivered(job.id, 1_234_567_890_123_456_789, 987_654_321_098_765_432)
    rec = await record(repo, job.id)
    assert (rec.channel_id, rec.message_id) == (1_234_567_890_123_456_789,
                                                987_654_321_098_765_432)
    assert rec.state is JobState.DELIVERED
    # Delivered once: a second delivery (a duplicate post) does not move the ids.
    assert not await repo.mark_delivered(job.id, 5, 6)
    assert (await record(repo, job.id)).message_id == 987_654_321_098_765_432
    # Only a rendered job can be delivered.
    assert not await repo.mark_delivered(other.id, 5, 6)
    other_rec = await record(repo, other.id)
    assert (other_rec.state, other_rec.channel_id, other_rec.message_id) == (
        JobState.QUEUED, None, None)


async def test_undelivered_and_undeliverable(repo: JobRepository) -> None:
    first, second, queued = (make_job(image_params(), created_at=t) for t in (1.0, 2.0, 3.0))
    for job in (second, first, queued):
        await repo.job_accepted(job)
    for job in (second, first):
        await repo.job_finished(job, Done(image_result()))
    assert [r.job.id for r in await repo.undelivered()] == [first.id, second.id]
    assert await repo.mark_undeliverable(first.id, "The channel is gone.")
    assert await repo.mark_delivered(second.id, 1, 2)
    assert await repo.undelivered() == []
    rec = await record(repo, first.id)
    assert (rec.state, rec.reason) == (JobState.FAILED, "The channel is gone.")
    assert not await repo.mark_undeliverable(second.id, "late")  # delivered stays delivered
    assert (await record(repo, second.id)).state is JobState.DELIVERED


async def test_a_full_disk_fails_the_job_and_leaves_no_files(
    repo: JobRepository, images_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[Path] = []

    def write_then_fill_up(path: Path, data: bytes) -> None:
        if written:  # the second picture: half written, then the disk is full
            path.write_bytes(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        path.write_bytes(data)
        written.append(path)

    monkeypatch.setattr(files, "write_file", write_then_fill_up)
    job = make_job(image_params())
    await repo.job_accepted(job)
    await repo.job_started(job)
    stored = await repo.job_finished(job, Done(image_result()))
    assert stored is not None and stored.state is JobState.FAILED
    assert stored.reason is not None and "disk is full" in stored.reason
    assert stored.images == ()
    assert files_in(images_dir) == []  # neither the first PNG nor the .part of the second
    assert await repo.unfinished_jobs() == []  # so a restart does not render it again


async def test_update_origin(repo: JobRepository) -> None:
    job, other = make_job(text_params()), make_job(text_params())
    await repo.job_accepted(job)
    await repo.job_accepted(other)
    job.origin = StoryOrigin(story_id=7, op="continue", line=3, step="text", guild_id=1,
                             channel_id=99)
    await repo.update_origin(job)
    assert (await record(repo, job.id)).job.origin == job.origin
    assert (await record(repo, other.id)).job.origin == other.origin
    assert [j.origin for j, _ in await repo.unfinished_jobs() if j.id == job.id] == [job.origin]


async def test_get_unknown_id(repo: JobRepository) -> None:
    assert await repo.get("nope") is None
    await repo.job_accepted(make_job(text_params()))
    assert await repo.get("000000000000") is None


async def test_updates_of_an_unknown_id_change_nothing(repo: JobRepository) -> None:
    job = make_job(text_params())
    await repo.job_accepted(job)
    assert not await repo.mark_delivered("unknown", 1, 2)
    await repo.update_origin(make_job(text_params(), id="unknown"))
    await repo.delete("unknown")
    rec = await record(repo, job.id)
    assert (rec.channel_id, rec.job.origin) == (None, job.origin)


# ----- delete ---------------------------------------------------------------------------------


async def test_delete_removes_row_images_and_files(repo: JobRepository, db: aiosqlite.Connection,
                                                   images_dir: Path) -> None:
    job, kept = make_job(image_params()), make_job(image_params())
    for j in (job, kept):
        await repo.job_accepted(j)
        await repo.job_finished(j, Done(image_result()))
    assert len(files_in(images_dir) or []) == 4
    gone = [images_dir / f"{job.id}-0.png", images_dir / f"{job.id}-1.png"]
    stays = [images_dir / f"{kept.id}-0.png", images_dir / f"{kept.id}-1.png"]

    await repo.delete(job.id)
    assert await repo.get(job.id) is None
    assert await image_rows(db, job.id) == []  # ON DELETE CASCADE
    assert not any(p.exists() for p in gone)
    assert all(p.exists() for p in stays)
    assert files_in(images_dir) == sorted(stays)
    kept_rec = await record(repo, kept.id)
    assert [i.path for i in kept_rec.images] == stays
    async with db.execute("SELECT job_id FROM images") as cur:
        assert sorted(r[0] for r in await cur.fetchall()) == [kept.id, kept.id]


async def test_delete_tolerates_files_already_gone(repo: JobRepository, db: aiosqlite.Connection,
                                                   images_dir: Path) -> None:
    job = make_job(image_params())
    await repo.job_accepted(job)
    await repo.job_finished(job, Done(image_result()))
    (images_dir / f"{job.id}-0.png").unlink()
    await repo.delete(job.id)
    assert await repo.get(job.id) is None
    assert files_in(images_dir) == []
    assert await image_rows(db, job.id) == []


async def test_delete_a_job_without_images(repo: JobRepository) -> None:
    job, kept = make_job(text_params()), make_job(text_params())
    await repo.job_accepted(job)
    await repo.job_accepted(kept)
    await repo.delete(job.id)
    assert await repo.get(job.id) is None
    assert (await record(repo, kept.id)).job == kept


# ----- persistence ----------------------------------------------------------------------------


async def test_everything_survives_reopening(tmp_path: Path) -> None:
    path, images = tmp_path / "bot.db", tmp_path / "images"
    db = await open_database(path)
    try:
        repo = JobRepository(db, images)
        image_job, text_job = make_job(image_params()), make_job(text_params(), created_at=1.0)
        await repo.job_accepted(image_job)
        await repo.job_finished(image_job, Done(image_result()))
        assert await repo.mark_delivered(image_job.id, 10, 20)
        await repo.job_accepted(text_job)
    finally:
        await db.close()

    db = await open_database(path)
    try:
        repo = JobRepository(db, images)
        rec = await record(repo, image_job.id)
        assert rec.state is JobState.DELIVERED
        assert rec.job == image_job
        assert [(i.seed, i.path.exists()) for i in rec.images] == [(11, True), (22, True)]
        assert (rec.channel_id, rec.message_id) == (10, 20)
        assert await repo.unfinished_jobs() == [(text_job, JobState.QUEUED)]
    finally:
        await db.close()


async def test_a_describe_job_round_trips_with_its_suggestions(repo: JobRepository) -> None:
    job = make_job(describe_params(), origin=DescribeOrigin(guild_id=1, channel_id=2,
                                                            status_message_id=3))
    await repo.job_accepted(job)
    await repo.job_started(job)
    await repo.job_finished(job, Done(TextResult("A fox\nA painting of a fox", {}, "blip")))
    rec = await record(repo, job.id)
    assert rec.job == job and rec.job.kind.value == "describe"
    assert rec.state is JobState.RENDERED and rec in await repo.undelivered()
    assert rec.result_text == "A fox\nA painting of a fox"
