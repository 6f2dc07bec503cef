"""The cast in SQLite: one character per name whatever its case, kept across a restart,
gone with its story."""

from __future__ import annotations

from pathlib import Path

from bot.db.connection import open_database
from bot.story.cast_repository import CastRepository
from bot.story.models import Author
from bot.story.repository import StoryRepository

ALICE, BOB = Author(1, "alice"), Author(2, "bob")


async def test_the_cast_is_kept_by_name_in_any_case_and_survives_a_restart(
        tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    db = await open_database(path)
    try:
        stories, cast = StoryRepository(db), CastRepository(db)
        story = await stories.create(title="T", style=None, author=ALICE)
        other = await stories.create(title="U", style=None, author=ALICE)
        mira = await cast.put(story.id, "Mira", "red hair", ALICE)
        assert (mira.name, mira.look, mira.added_by) == ("Mira", "red hair", ALICE)
        await cast.put(story.id, "Tom", "a grey beard", BOB)
        await cast.put(other.id, "Mira", "someone else", BOB)
        # The same name in another case is the same character: a new look and spelling,
        # still added by who added it.
        again = await cast.put(story.id, "MIRA", "short black hair", BOB)
        assert (again.name, again.look, again.added_by) == ("MIRA", "short black hair", ALICE)
        assert again.added_at == mira.added_at and again.updated_at >= mira.updated_at
    finally:
        await db.close()
    db = await open_database(path)  # a restart: the same file
    try:
        stories, cast = StoryRepository(db), CastRepository(db)
        members = await cast.of_story(story.id)
        assert [(m.name, m.look) for m in members] == [("MIRA", "short black hair"),
                                                       ("Tom", "a grey beard")]
        assert (await cast.get(story.id, "mira")) == members[0]
        assert await cast.remove(story.id, "tom")
        assert not await cast.remove(story.id, "tom")
        assert await cast.get(story.id, "Tom") is None
        await stories.delete(story.id)
        assert await cast.of_story(story.id) == []  # gone with its story
        assert [m.look for m in await cast.of_story(other.id)] == ["someone else"]
    finally:
        await db.close()
