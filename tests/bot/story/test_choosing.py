"""Choices and branches on the real executor, job store and SQLite, with instant fake models:
the candidates of a job are stored once, ✅ saves the line before the choice closes, a
rewind shares the lines up to its fork, and the retention sweep keeps every branch's
pictures while the story is open."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiosqlite
import pytest

from bot.config import Settings, settings_from_mapping
from bot.db.connection import open_database
from bot.db.jobs import JobRepository
from bot.db.migrations import MIGRATIONS, migrate
from bot.db.retention import sweep
from bot.executor.executor import Executor, ExecutorLimits, RunContext
from bot.executor.jobs import Job, JobResult, TextParams, TextResult
from bot.story import Author, LineSource, StoryBusy, StoryError, StoryRepository, StoryTeller
from bot.story.choosing import StoryChooser
from bot.story.export import other_endings
from testkit.fakes import FakeRunner

ALICE = Author(1, "alice")
BOB = Author(2, "bob")


class CandidateRunner(FakeRunner):
    """Writes `params.candidates` numbered lines for a text job, in one result."""

    def run(self, jobs: Sequence[Job], ctx: RunContext) -> list[JobResult | Exception]:
        results = super().run(jobs, ctx)
        out: list[JobResult | Exception] = []
        for job, result in zip(jobs, results, strict=True):
            if isinstance(result, TextResult) and isinstance(job.params, TextParams):
                texts = tuple(f"{result.text} ({i})" for i in range(job.params.candidates))
                result = TextResult(texts[0], {}, result.model, candidates=texts)
            out.append(result)
        return out


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return settings_from_mapping({
        "image": {"width": 64, "height": 64, "max_side": 64, "steps": 4},
        "storage": {"database": str(tmp_path / "db.sqlite3"), "images": str(tmp_path / "img")},
    })


@pytest.fixture
async def teller(settings: Settings) -> AsyncIterator[StoryTeller]:
    db = await open_database(settings.storage.database)
    jobs = JobRepository(db, settings.storage.images)
    async with Executor(CandidateRunner(), ExecutorLimits(per_user_limit=5),
                        store=jobs) as executor:
        yield StoryTeller(StoryRepository(db), jobs, executor, settings)
    await db.close()


async def test_offer_more_and_keep(teller: StoryTeller) -> None:
    chooser = StoryChooser(teller)
    story, _ = await teller.start(seed="The sky", title="Sky", style=None, author=ALICE)
    offered = await chooser.offer(story, BOB)
    choice = offered.choice
    assert (choice.number, choice.shown, choice.asked_by) == (2, 0, BOB)
    assert len(choice.candidates) == 3 == len({c.text for c in choice.candidates})
    assert {c.job_id for c in choice.candidates} == {offered.job_id}
    with pytest.raises(StoryBusy, match="waiting for a choice"):
        await chooser.offer(story, ALICE)  # one open choice per story
    # Storing the same job's candidates again changes nothing.
    again = await chooser.choices.offer(story.id, 1, 2, BOB, offered.job_id, ("x",), None)
    assert again == choice

    more = (await chooser.more(story, 2, ALICE)).choice
    assert len(more.candidates) == 6 and more.shown == 3 and more.asked_by == BOB
    assert (await chooser.show(story.id, 2, -1)).shown == 5  # ◀ from the first wraps
    line = await chooser.keep(story, 2, 1, ALICE)
    assert line.text == choice.candidates[1].text and line.author == BOB
    assert line.chosen_by == ALICE and line.image_path is not None
    assert line.byline() == "gpt-neo-125M, asked by bob, chosen by alice"
    assert await chooser.open_choice(story) is None
    with pytest.raises(StoryError, match="is over"):
        await chooser.keep(story, 2, 0, ALICE)


async def test_a_line_kept_but_not_closed_closes_its_choice(teller: StoryTeller) -> None:
    chooser = StoryChooser(teller)
    story, _ = await teller.start(seed="The sky", title="Sky", style=None, author=ALICE)
    choice = (await chooser.offer(story, BOB)).choice
    # A stop came between saving the kept line and closing the choice.
    await teller.stories.add_line(story.id, 2, source=LineSource.MODEL,
                                  text=choice.current.text, author=BOB,
                                  text_job_id=choice.current.job_id)
    assert await chooser.open_choice(story) is None
    assert await chooser.choices.get(story.id) is None


async def test_rewind_shares_the_lines_before_its_fork(teller: StoryTeller,
                                                       settings: Settings) -> None:
    stories = teller.stories
    story, _ = await teller.start(seed="The sky", title="Sky", style=None, author=ALICE)
    for _ in range(3):
        await teller.continue_story(story, BOB)
    first = await stories.lines(story.id)
    assert await stories.rewind(story.id, 2) == 2
    assert [line.number for line in await stories.lines(story.id)] == [1, 2]
    assert await stories.count_lines(story.id) == 2
    # Rewinding a branch with no line of its own moves its fork, adds no branch.
    assert await stories.rewind(story.id, 1) == 2
    assert await stories.rewind(story.id, 2) == 2
    story = await stories.get(story.id)  # type: ignore[assignment]
    new3 = await teller.continue_story(story, ALICE)
    assert (new3.number, new3.branch) == (3, 2) and new3.text != first[2].text
    # A redraw of a shared line changes the row both branches read.
    await stories.set_image_error(story.id, 1, "just a note")
    assert (await stories.lines(story.id, 1))[0].image_error == "just a note"
    branches = await stories.branches(story.id)
    assert [(b.id, b.parent, b.fork_line, b.lines) for b in branches] == [
        (1, None, 0, 4), (2, 1, 2, 3)]
    assert branches[1].last_text == new3.text
    endings = other_endings(await stories.lines(story.id),
                            {1: await stories.lines(story.id, 1)})
    assert [(e.id, e.after, [line.number for line in e.lines]) for e in endings] == [
        (1, 2, [3, 4])]
    # Switching back; the later lines are the first branch's again.
    assert await stories.switch(story.id, 1)
    assert [line.text for line in await stories.lines(story.id)] == [x.text for x in first]
    assert not await stories.switch(story.id, 9)

    # Retention keeps the pictures of every branch of an open story.
    await stories.db.execute("UPDATE jobs SET state = 'delivered', finished_at = 0,"
                             " created_at = 0")
    counts = await sweep(stories.db, settings.storage.images, keep_days=1, now=time.time())
    assert counts.files == counts.images == 0 and counts.kept > 0  # only text jobs went
    for branch in (1, 2):
        for line in (await stories.lines(story.id, branch))[1:]:  # the seed has none here
            assert line.image_path is not None and line.image_path.exists()


async def test_the_migration_keeps_old_lines_in_the_first_branch(tmp_path: Path) -> None:
    ours = next(i for i, sql in enumerate(MIGRATIONS) if "story_branches" in sql)
    async with aiosqlite.connect(tmp_path / "old.sqlite3", isolation_level=None) as db:
        db.row_factory = aiosqlite.Row
        for version, sql in enumerate(MIGRATIONS[:ours], start=1):
            await db.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version = {version};\nCOMMIT;")
        await db.execute("INSERT INTO stories (id, title, author_id, created_at) "
                         "VALUES (1, 'Old', 1, 0)")
        await db.execute("INSERT INTO story_lines (story_id, number, source, text, author_id,"
                         " message_id, created_at, updated_at) VALUES (1, 1, 'seed', 'Hi', 1,"
                         " 55, 0, 0)")
        await migrate(db)
        stories = StoryRepository(db)
        story = await stories.get(1)
        assert story is not None and story.branch == 1
        lines = await stories.lines(1)
        assert [(line.text, line.branch, line.message_id) for line in lines] == [("Hi", 1, 55)]
        assert [b.id for b in await stories.branches(1)] == [1]
