"""Stories and their lines in SQLite. Every state change is one statement (autocommit)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiosqlite

from bot.story.models import Author, LineSource, Story, StoryLine, StoryState


class StoryRepository:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    # ----- stories ------------------------------------------------------------------------------

    async def create(
        self,
        *,
        title: str,
        style: str | None,
        author: Author,
        guild_id: int | None = None,
        channel_id: int | None = None,
        thread_id: int | None = None,
    ) -> Story:
        now = time.time()
        cur = await self.db.execute(
            "INSERT INTO stories (guild_id, channel_id, thread_id, title, style, author_id,"
            " author_name, state, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (guild_id, channel_id, thread_id, title, style, author.id, author.name,
             StoryState.OPEN.value, now),
        )
        story_id = cur.lastrowid
        assert story_id is not None
        return Story(id=story_id, title=title, style=style, author=author,
                     state=StoryState.OPEN, created_at=now, guild_id=guild_id,
                     channel_id=channel_id, thread_id=thread_id)

    async def get(self, story_id: int) -> Story | None:
        return await self._one("SELECT * FROM stories WHERE id = ?", story_id)

    async def by_thread(self, thread_id: int) -> Story | None:
        return await self._one("SELECT * FROM stories WHERE thread_id = ?", thread_id)

    async def in_guild(self, guild_id: int, limit: int = 25) -> list[Story]:
        """The guild's stories, newest first."""
        async with self.db.execute(
            "SELECT * FROM stories WHERE guild_id = ? ORDER BY created_at DESC, id DESC LIMIT ?",
            (guild_id, limit),
        ) as cur:
            return [_story(row) for row in await cur.fetchall()]

    async def open_stories(self) -> list[Story]:
        async with self.db.execute(
            "SELECT * FROM stories WHERE state = ? ORDER BY id", (StoryState.OPEN.value,)
        ) as cur:
            return [_story(row) for row in await cur.fetchall()]

    async def ended_stories(self, guild_id: int | None = None) -> list[Story]:
        """Finished stories, the last to end first: one guild's, or (None) every one."""
        sql = "SELECT * FROM stories WHERE state = ?"
        args: list[str | int] = [StoryState.ENDED.value]
        if guild_id is not None:
            sql, args = f"{sql} AND guild_id = ?", [*args, guild_id]
        async with self.db.execute(f"{sql} ORDER BY ended_at DESC, id DESC", args) as cur:
            return [_story(row) for row in await cur.fetchall()]

    async def end(self, story_id: int) -> bool:
        """Close a story; False when it was already ended (or is gone)."""
        cur = await self.db.execute(
            "UPDATE stories SET state = ?, ended_at = ? WHERE id = ? AND state = ?",
            (StoryState.ENDED.value, time.time(), story_id, StoryState.OPEN.value),
        )
        return cur.rowcount == 1

    async def delete(self, story_id: int) -> None:
        await self.db.execute("DELETE FROM stories WHERE id = ?", (story_id,))

    async def _one(self, sql: str, *args: Any) -> Story | None:
        async with self.db.execute(sql, args) as cur:
            row = await cur.fetchone()
        return None if row is None else _story(row)

    # ----- lines --------------------------------------------------------------------------------

    async def add_line(
        self,
        story_id: int,
        number: int,
        *,
        source: LineSource,
        text: str,
        author: Author,
        model: str | None = None,
        text_job_id: str | None = None,
    ) -> StoryLine:
        """Insert line `number`; the primary key refuses a number that is already taken."""
        now = time.time()
        await self.db.execute(
            "INSERT INTO story_lines (story_id, number, source, text, author_id, author_name,"
            " model, text_job_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (story_id, number, source.value, text, author.id, author.name, model, text_job_id,
             now, now),
        )
        return StoryLine(story_id=story_id, number=number, source=source, text=text,
                         author=author, created_at=now, updated_at=now, model=model,
                         text_job_id=text_job_id)

    async def lines(self, story_id: int) -> list[StoryLine]:
        async with self.db.execute(
            "SELECT * FROM story_lines WHERE story_id = ? ORDER BY number", (story_id,)
        ) as cur:
            return [_line(row) for row in await cur.fetchall()]

    async def line(self, story_id: int, number: int) -> StoryLine | None:
        async with self.db.execute(
            "SELECT * FROM story_lines WHERE story_id = ? AND number = ?", (story_id, number)
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else _line(row)

    async def count_lines(self, story_id: int) -> int:
        async with self.db.execute(
            "SELECT COUNT(*) FROM story_lines WHERE story_id = ?", (story_id,)
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def rewrite_line(
        self, story_id: int, number: int, *, text: str, author: Author, model: str | None,
        text_job_id: str | None,
    ) -> None:
        """New text for a line; its old picture no longer matches, so it is cleared."""
        await self.db.execute(
            "UPDATE story_lines SET text = ?, author_id = ?, author_name = ?, model = ?,"
            " text_job_id = ?, revision = revision + 1, image_job_id = NULL, image_path = NULL,"
            " image_seed = NULL, image_error = NULL, updated_at = ?"
            " WHERE story_id = ? AND number = ?",
            (text, author.id, author.name, model, text_job_id, time.time(), story_id, number),
        )

    async def delete_line(self, story_id: int, number: int) -> None:
        await self.db.execute("DELETE FROM story_lines WHERE story_id = ? AND number = ?",
                              (story_id, number))

    async def set_image_job(self, story_id: int, number: int, job_id: str, seed: int) -> None:
        await self._update_line(story_id, number, image_job_id=job_id, image_seed=seed)

    async def set_image(self, story_id: int, number: int, path: Path, *,
                        nsfw: bool = False) -> None:
        await self._update_line(story_id, number, image_path=str(path), image_error=None,
                                image_nsfw=int(nsfw))

    async def set_image_error(self, story_id: int, number: int, reason: str) -> None:
        await self._update_line(story_id, number, image_error=reason)

    async def count_redraw(self, story_id: int, number: int) -> int:
        """Bump and return the line's redraw count (each redraw gets its own seed)."""
        await self.db.execute(
            "UPDATE story_lines SET redraws = redraws + 1, updated_at = ?"
            " WHERE story_id = ? AND number = ?",
            (time.time(), story_id, number),
        )
        line = await self.line(story_id, number)
        return line.redraws if line else 0

    async def set_message(self, story_id: int, number: int, message_id: int) -> None:
        await self._update_line(story_id, number, message_id=message_id)

    async def unposted_lines(self, story_id: int) -> list[StoryLine]:
        async with self.db.execute(
            "SELECT * FROM story_lines WHERE story_id = ? AND message_id IS NULL ORDER BY number",
            (story_id,),
        ) as cur:
            return [_line(row) for row in await cur.fetchall()]

    async def _update_line(self, story_id: int, number: int, **values: Any) -> None:
        columns = ", ".join(f"{name} = ?" for name in values)  # names come from this module
        await self.db.execute(
            f"UPDATE story_lines SET {columns}, updated_at = ? WHERE story_id = ? AND number = ?",
            (*values.values(), time.time(), story_id, number),
        )


def _story(row: aiosqlite.Row) -> Story:
    return Story(
        id=row["id"],
        title=row["title"],
        style=row["style"],
        author=Author(row["author_id"], row["author_name"]),
        state=StoryState(row["state"]),
        created_at=row["created_at"],
        ended_at=row["ended_at"],
        guild_id=row["guild_id"],
        channel_id=row["channel_id"],
        thread_id=row["thread_id"],
    )


def _line(row: aiosqlite.Row) -> StoryLine:
    return StoryLine(
        story_id=row["story_id"],
        number=row["number"],
        source=LineSource(row["source"]),
        text=row["text"],
        author=Author(row["author_id"], row["author_name"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        model=row["model"],
        text_job_id=row["text_job_id"],
        image_job_id=row["image_job_id"],
        image_path=Path(row["image_path"]) if row["image_path"] else None,
        image_seed=row["image_seed"],
        image_error=row["image_error"],
        image_nsfw=bool(row["image_nsfw"]),
        revision=row["revision"],
        redraws=row["redraws"],
        message_id=row["message_id"],
    )
