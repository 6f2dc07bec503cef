"""Story operations on the real executor, job store and SQLite, with instant fake models."""

from __future__ import annotations

import asyncio
import errno
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image

from bot.config import Settings, settings_from_mapping
from bot.db.connection import open_database
from bot.db.jobs import JobRepository
from bot.db.migrations import MIGRATIONS, schema_version
from bot.executor.executor import Executor, ExecutorLimits
from bot.executor.handle import JobHandle
from bot.executor.jobs import (
    Done,
    ImageParams,
    Job,
    JobState,
    StoryOrigin,
    TextParams,
    TextResult,
)
from bot.images import files
from bot.story import (
    Author,
    LineSource,
    StoryBusy,
    StoryError,
    StoryRepository,
    StoryTeller,
    derive_seed,
    is_story_job,
    story_origin,
)
from testkit.fakes import FakeRunner

ALICE = Author(1, "alice")
BOB = Author(2, "bob")


class World:
    def __init__(self, settings: Settings, runner: FakeRunner, executor: Executor,
                 stories: StoryRepository, jobs: JobRepository) -> None:
        self.settings, self.runner, self.executor = settings, runner, executor
        self.stories, self.jobs = stories, jobs
        self.teller = StoryTeller(stories, jobs, executor, settings)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return settings_from_mapping({
        "image": {"width": 64, "height": 64, "max_side": 64, "steps": 4},
        "story": {"max_lines": 6},
        "storage": {"database": str(tmp_path / "db.sqlite3"), "images": str(tmp_path / "img")},
    })


@pytest.fixture
async def world(settings: Settings) -> AsyncIterator[World]:
    db = await open_database(settings.storage.database)
    jobs = JobRepository(db, settings.storage.images)
    runner = FakeRunner()
    async with Executor(runner, ExecutorLimits(per_user_limit=1), store=jobs) as executor:
        yield World(settings, runner, executor, StoryRepository(db), jobs)
    await db.close()


async def test_migration_adds_the_story_tables(world: World) -> None:
    assert await schema_version(world.stories.db) == len(MIGRATIONS)
    async with world.stories.db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'") as cur:
        tables = {row[0] for row in await cur.fetchall()}
    assert {"stories", "story_lines"} <= tables


async def test_start_continue_add_and_their_pictures(world: World) -> None:
    story, seed = await world.teller.start(seed="The sky", title="Sky", style="painting",
                                           author=ALICE, guild_id=10, thread_id=20)
    assert (seed.number, seed.source, seed.image_path) == (1, LineSource.SEED, None)
    line1 = await world.teller.illustrate(story, 1, ALICE, op="seed")
    assert line1.image_path is not None and line1.image_path.is_file()
    assert line1.image_seed == derive_seed(story.id, 1, 0, "image")

    line2 = await world.teller.continue_story(story, BOB)
    assert line2.number == 2 and line2.by_model and line2.author == BOB
    assert line2.model == "EleutherAI/gpt-neo-125M"
    assert line2.byline() == "gpt-neo-125M, asked by bob"
    text_job = world.runner.jobs[-2]
    assert isinstance(text_job.params, TextParams) and text_job.params.seed_line == "The sky"
    assert text_job.origin == StoryOrigin(story_id=story.id, op="continue", line=2,
                                          step="text", guild_id=10, channel_id=20)
    assert is_story_job(text_job)
    image_job = world.runner.jobs[-1]
    assert isinstance(image_job.params, ImageParams)
    assert image_job.params.subject == line2.text and image_job.params.style == "painting"
    # The picture is the very file the job store wrote for the job.
    record = await world.jobs.get(image_job.id)
    assert record is not None and record.images[0].path == line2.image_path

    line3 = await world.teller.add_line(story, "Then it rained.", ALICE)
    assert (line3.number, line3.source, line3.text) == (3, LineSource.MEMBER, "Then it rained.")
    lines = await world.stories.lines(story.id)
    assert [line.number for line in lines] == [1, 2, 3]
    assert all(line.image_path and line.image_path.is_file() for line in lines)
    # The model sees the whole story so far.
    await world.teller.continue_story(story, ALICE)
    params = world.runner.jobs[-2].params
    assert isinstance(params, TextParams)
    assert params.lines == (line2.text, "Then it rained.")


async def test_a_picture_the_store_could_not_save_is_the_lines_image_error(
    world: World, monkeypatch: pytest.MonkeyPatch,
) -> None:
    story, _ = await world.teller.start(seed="The sky", title="Sky", style=None,
                                        author=ALICE, guild_id=10, thread_id=20)

    def disk_full(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(files, "write_file", disk_full)
    line = await world.teller.illustrate(story, 1, ALICE, op="seed")  # no OSError escapes
    assert line.image_path is None
    assert line.image_error is not None and "disk is full" in line.image_error
    record = await world.jobs.get(world.runner.jobs[-1].id)
    assert record is not None and record.state is JobState.FAILED
    assert not list(world.settings.storage.images.glob("*.png"))


async def test_rewrite_replaces_only_the_models_latest_line(world: World) -> None:
    story, _ = await world.teller.start(seed="The sky", title="Sky", style=None, author=ALICE)
    line2 = await world.teller.continue_story(story, ALICE)
    old_path = line2.image_path
    rewritten = await world.teller.rewrite(story, 2, BOB)
    assert rewritten.text != line2.text and rewritten.revision == 1
    assert rewritten.author == BOB and rewritten.image_path != old_path
    with pytest.raises(StoryError, match="latest"):
        await world.teller.rewrite(story, 1, BOB)
    await world.teller.add_line(story, "A member's line.", ALICE)
    with pytest.raises(StoryError, match="not by the story model"):
        await world.teller.rewrite(story, 3, BOB)
    with pytest.raises(StoryError, match="latest"):
        await world.teller.rewrite(story, 2, BOB)


async def test_redraw_uses_the_next_seed_of_the_line(world: World) -> None:
    story, _ = await world.teller.start(seed="The sky", title="Sky", style=None, author=ALICE)
    first = await world.teller.illustrate(story, 1, ALICE, op="seed")
    again = await world.teller.redraw(story, 1, BOB)
    assert again.redraws == 1 and again.image_seed == derive_seed(story.id, 1, 1, "image")
    assert again.image_path != first.image_path
    with Image.open(again.image_path) as a, Image.open(first.image_path) as b:  # type: ignore[arg-type]
        assert a.getpixel((0, 0)) != b.getpixel((0, 0))
    with pytest.raises(StoryError, match="Line 9"):
        await world.teller.redraw(story, 9, BOB)


async def test_failed_text_is_a_public_error_and_adds_no_line(world: World) -> None:
    world.runner.blocked = lambda text: "sky"
    story, _ = await world.teller.start(seed="The sky", title="Sky", style=None, author=ALICE)
    with pytest.raises(StoryError) as caught:
        await world.teller.continue_story(story, ALICE)
    assert caught.value.public and "Line 2 could not be written" in caught.value.reason
    assert await world.stories.count_lines(story.id) == 1


async def test_ended_and_full_stories_refuse(world: World) -> None:
    story, _ = await world.teller.start(seed="The sky", title="Sky", style=None, author=ALICE)
    for i in range(5):
        await world.teller.add_line(story, f"Line {i}.", ALICE)
    with pytest.raises(StoryError, match="reached its 6 lines") as caught:
        await world.teller.continue_story(story, ALICE)
    assert not caught.value.public
    assert await world.stories.end(story.id)
    assert not await world.stories.end(story.id)
    with pytest.raises(StoryError, match="has ended"):
        await world.teller.add_line(story, "Too late.", ALICE)


async def test_a_refused_member_line_is_not_kept(world: World) -> None:
    story, _ = await world.teller.start(seed="The sky", title="Sky", style=None, author=ALICE)
    world.runner.text_gate.clear()  # alice's continue sits in the queue...
    pending = asyncio.ensure_future(world.teller.continue_story(story, ALICE))
    await asyncio.sleep(0.05)
    # ...so her next job is over the per-user limit of 1 (callers serialise one story; a
    # second story is the realistic case).
    other, _ = await world.teller.start(seed="Another", title="B", style=None, author=ALICE)
    with pytest.raises(StoryError, match="limit"):
        await world.teller.add_line(other, "Refused.", ALICE)
    assert await world.stories.count_lines(other.id) == 1
    world.runner.text_gate.set()
    assert (await pending).number == 2


async def test_resume_finishes_a_restored_text_job(settings: Settings) -> None:
    db = await open_database(settings.storage.database)
    jobs = JobRepository(db, settings.storage.images)
    stories = StoryRepository(db)
    runner = FakeRunner()
    runner.text_gate.clear()
    executor = Executor(runner, store=jobs)
    await executor.start()
    teller = StoryTeller(stories, jobs, executor, settings)
    story, _ = await teller.start(seed="The sky", title="Sky", style=None, author=ALICE)
    pending = asyncio.ensure_future(teller.continue_story(story, BOB))
    await asyncio.sleep(0.05)
    await executor.stop()  # the bot stops while the line is being written
    pending.cancel()

    runner.text_gate.set()
    executor = Executor(runner, store=jobs)
    await executor.start()
    restored = await executor.restore()
    assert [story_origin(h.job).step for h in restored] == ["text"]
    resumed = await StoryTeller(stories, jobs, executor, settings).resume(restored[0])
    assert resumed is not None and resumed.line is not None
    assert resumed.line.number == 2 and resumed.line.author == BOB
    assert resumed.line.image_path is not None
    await executor.stop()
    await db.close()


async def test_settle_gives_an_unposted_line_its_stored_picture(world: World) -> None:
    story, _ = await world.teller.start(seed="The sky", title="Sky", style=None, author=ALICE)
    line = await world.teller.illustrate(story, 1, ALICE, op="seed")
    await world.stories.db.execute("UPDATE story_lines SET image_path = NULL")
    settled = await world.teller.settle(story, (await world.stories.line(story.id, 1)))  # type: ignore[arg-type]
    assert settled.image_path == line.image_path
    await world.stories.db.execute("UPDATE story_lines SET image_path = NULL, image_job_id = 'x'")
    gone = await world.teller.settle(story, (await world.stories.line(story.id, 1)))  # type: ignore[arg-type]
    assert gone.image_path is None and "Redraw" in (gone.image_error or "")


async def test_repository_lookups(world: World) -> None:
    a = await world.stories.create(title="A", style=None, author=ALICE, guild_id=5, thread_id=50)
    b = await world.stories.create(title="B", style="watercolor", author=BOB, guild_id=5,
                                   thread_id=51)
    await world.stories.create(title="C", style=None, author=BOB, guild_id=6, thread_id=52)
    assert [s.title for s in await world.stories.in_guild(5)] == ["B", "A"]
    assert (await world.stories.by_thread(51)) == b
    assert await world.stories.by_thread(99) is None
    await world.stories.end(a.id)
    assert [s.id for s in await world.stories.open_stories()] == [b.id, b.id + 1]
    await world.stories.add_line(b.id, 1, source=LineSource.SEED, text="x", author=BOB)
    await world.stories.set_message(b.id, 1, 777)
    await world.stories.add_line(b.id, 2, source=LineSource.MEMBER, text="y", author=ALICE)
    assert [line.number for line in await world.stories.unposted_lines(b.id)] == [2]
    with pytest.raises(sqlite3.IntegrityError):
        await world.stories.add_line(b.id, 2, source=LineSource.MEMBER, text="z", author=ALICE)
    await world.stories.delete(b.id)
    assert await world.stories.lines(b.id) == []  # lines go with their story


async def test_a_failed_redraw_keeps_the_old_picture(world: World) -> None:
    story, _ = await world.teller.start(seed="The sky", title="Sky", style=None, author=ALICE)
    first = await world.teller.illustrate(story, 1, ALICE, op="seed")
    original_submit = world.executor.submit

    async def submit_then_cancel(job: Job) -> JobHandle:  # the redraw is cancelled at once
        handle = await original_submit(job)
        world.executor.cancel(job.id)
        return handle

    world.executor.submit = submit_then_cancel  # type: ignore[method-assign]
    with pytest.raises(StoryError, match=r"could not be redrawn\. The picture was cancelled"):
        await world.teller.redraw(story, 1, BOB)
    line = await world.stories.line(story.id, 1)
    assert line is not None and line.image_path == first.image_path and not line.image_error


async def test_recover_saves_a_rendered_line_once(world: World) -> None:
    story, _ = await world.teller.start(seed="The sky", title="Sky", style=None, author=ALICE,
                                        guild_id=10, thread_id=20)
    # The text job finished (rendered, its text stored) and the bot died before the line
    # was saved.
    job = Job(user_id=BOB.id, user_name=BOB.name,
              params=TextParams(seed_line="The sky", lines=(), rng_seed=1),
              origin=StoryOrigin(story_id=story.id, op="continue", line=2, step="text"))
    await world.jobs.job_accepted(job)
    await world.jobs.job_finished(job, Done(TextResult("A kite rose.", {}, "kite-model")))
    [record] = [r for r in await world.jobs.undelivered() if r.job.id == job.id]
    resumed = await world.teller.recover(record)
    assert resumed is not None and resumed.line is not None
    line = resumed.line
    assert (line.number, line.text, line.author, line.model) == (2, "A kite rose.", BOB,
                                                                 "kite-model")
    assert line.text_job_id == job.id and line.image_path is not None
    # Once: the line is saved now; when the thread shows it, the job is delivered.
    assert await world.teller.recover(record) is None
    assert await world.stories.count_lines(story.id) == 2
    await world.stories.set_message(story.id, 2, 555)
    assert await world.teller.recover(record) is None
    stored = await world.jobs.get(job.id)
    assert stored is not None and stored.state is JobState.DELIVERED
    assert stored.message_id == 555


async def test_requests_count_against_the_per_person_limit(world: World) -> None:
    story, _ = await world.teller.start(seed="The sky", title="Sky", style=None, author=ALICE)
    other, _ = await world.teller.start(seed="The sea", title="Sea", style=None, author=BOB)
    first = world.teller.request(story, "continue", ALICE, 2)  # waiting for its turn
    with pytest.raises(StoryBusy, match="already being written"):
        world.teller.request(story, "continue", BOB, 2)
    # The per-user limit is 1 here: her waiting operation is her one.
    with pytest.raises(StoryError, match="limit is 1 per person") as caught:
        world.teller.request(other, "add", ALICE)
    assert not isinstance(caught.value, StoryBusy)
    assert world.teller.load_of(ALICE.id) == 1
    world.teller.request(other, "add", BOB)  # bob's count is his own
    world.teller.pending.finish(first)
    assert world.teller.load_of(ALICE.id) == 0
    world.teller.request(other, "add", ALICE)


async def test_a_picture_refused_by_a_clean_stop_is_made_at_the_next_start(
    world: World, settings: Settings,
) -> None:
    story, _ = await world.teller.start(seed="The sky", title="Sky", style=None, author=ALICE)
    await world.executor.drain(0)  # the bot is stopping cleanly
    with pytest.raises(StoryError, match="restarting") as refused:
        await world.teller.illustrate(story, 1, ALICE, op="seed")
    assert refused.value.restarting
    line = await world.stories.line(story.id, 1)
    assert line is not None and line.image_error is None and line.image_path is None
    # The next start: a fresh executor on the same database settles the unposted line.
    async with Executor(world.runner, ExecutorLimits(), store=world.jobs) as executor:
        teller = StoryTeller(world.stories, world.jobs, executor, settings)
        settled = await teller.settle(story, line)
    assert settled.image_path is not None and settled.image_error is None
