"""Stories and their lines in SQLite. Every state change is one statement (autocommit), or
one script where two rows must change together (a rewind).

Lines belong to branches (`Branch`): the line queries read the story's current branch, its
own lines and those it shares with its parents up to each fork, so the rest of the bot never
has to know about branches."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import aiosqlite

from bot.story.models import Author, Branch, LineSource, Story, StoryLine, StoryState

# The branches whose rows a branch reads: itself, then each parent up to the fork below it.
# `:story` and `:branch` are bound; every line query selects from this chain.
_CHAIN = """
    WITH RECURSIVE chain(branch, upto) AS (
        SELECT :branch, 1000000000
        UNION ALL
        SELECT b.parent, MIN(chain.upto, b.fork_line) FROM chain
        JOIN story_branches b ON b.story_id = :story AND b.id = chain.branch
        WHERE b.parent IS NOT NULL
    )
"""
_VISIBLE = (f"{_CHAIN} SELECT l.* FROM story_lines l JOIN chain c"
            " ON l.story_id = :story AND l.branch = c.branch AND l.number <= c.upto")
_CURRENT = "(SELECT branch FROM stories WHERE id = :story)"


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
        await self.db.execute(
            "INSERT INTO story_branches (story_id, id, parent, fork_line, created_at)"
            " VALUES (?, 1, NULL, 0, ?)", (story_id, now))
        return Story(id=story_id, title=title, style=style, author=author,
                     state=StoryState.OPEN, created_at=now, guild_id=guild_id,
                     channel_id=channel_id, thread_id=thread_id)

    async def get(self, story_id: int) -> Story | None:
        return await self._one("SELECT * FROM stories WHERE id = ?", story_id)

    async def by_thread(self, thread_id: int) -> Story | None:
        return await self._one("SELECT * FROM stories WHERE thread_id = ?", thread_id)

    async def in_conversation(self, channel_id: int) -> Story | None:
        """The newest story told in a DM or group DM (no thread: the conversation is it)."""
        return await self._one("SELECT * FROM stories WHERE channel_id = ? AND thread_id IS NULL"
                               " ORDER BY id DESC LIMIT 1", channel_id)

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

    # ----- lines (of the current branch) ---------------------------------------------------

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
        message_id: int | None = None,
        chosen_by: Author | None = None,
    ) -> StoryLine:
        """Insert line `number` into the current branch; a number it already tells (its own
        or a shared one) is refused with sqlite3.IntegrityError."""
        now = time.time()
        if await self.line(story_id, number) is not None:
            raise sqlite3.IntegrityError(f"story {story_id} already has a line {number}")
        await self.db.execute(
            "INSERT INTO story_lines (story_id, branch, number, source, text, author_id,"
            " author_name, model, text_job_id, message_id, chosen_by_id, chosen_by_name,"
            " created_at, updated_at) SELECT :story, branch, :number, :source, :text, :aid,"
            " :aname, :model, :job, :message, :cid, :cname, :now, :now"
            " FROM stories WHERE id = :story",
            {"story": story_id, "number": number, "source": source.value, "text": text,
             "aid": author.id, "aname": author.name, "model": model, "job": text_job_id,
             "message": message_id, "cid": chosen_by.id if chosen_by else None,
             "cname": chosen_by.name if chosen_by else None, "now": now},
        )
        line = await self.line(story_id, number)
        assert line is not None
        return line

    async def lines(self, story_id: int, branch: int | None = None) -> list[StoryLine]:
        """The lines the current branch (or `branch`) tells, in order."""
        return await self._visible(story_id, branch, "ORDER BY l.number")

    async def line(self, story_id: int, number: int) -> StoryLine | None:
        found = await self._visible(story_id, None, "WHERE l.number = :number",
                                    number=number)
        return found[0] if found else None

    async def count_lines(self, story_id: int, branch: int | None = None) -> int:
        async with self.db.execute(
            f"{_CHAIN} SELECT COUNT(*) FROM story_lines l JOIN chain c ON l.story_id = :story"
            " AND l.branch = c.branch AND l.number <= c.upto",
            await self._args(story_id, branch),
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def rewrite_line(
        self, story_id: int, number: int, *, text: str, author: Author, model: str | None,
        text_job_id: str | None,
    ) -> None:
        """New text for a line; its old picture no longer matches, so it is cleared."""
        branch = await self._owner(story_id, number)
        await self.db.execute(
            "UPDATE story_lines SET text = ?, author_id = ?, author_name = ?, model = ?,"
            " text_job_id = ?, revision = revision + 1, image_job_id = NULL, image_path = NULL,"
            " image_seed = NULL, image_error = NULL, chosen_by_id = NULL,"
            " chosen_by_name = NULL, updated_at = ?"
            " WHERE story_id = ? AND branch = ? AND number = ?",
            (text, author.id, author.name, model, text_job_id, time.time(), story_id, branch,
             number),
        )

    async def delete_line(self, story_id: int, number: int) -> None:
        branch = await self._owner(story_id, number)
        await self.db.execute(
            "DELETE FROM story_lines WHERE story_id = ? AND branch = ? AND number = ?",
            (story_id, branch, number))

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
        branch = await self._owner(story_id, number)
        await self.db.execute(
            "UPDATE story_lines SET redraws = redraws + 1, updated_at = ?"
            " WHERE story_id = ? AND branch = ? AND number = ?",
            (time.time(), story_id, branch, number),
        )
        line = await self.line(story_id, number)
        return line.redraws if line else 0

    async def set_message(self, story_id: int, number: int, message_id: int) -> None:
        await self._update_line(story_id, number, message_id=message_id)

    async def unposted_lines(self, story_id: int) -> list[StoryLine]:
        return await self._visible(story_id, None,
                                   "WHERE l.message_id IS NULL ORDER BY l.number")

    async def unfinished_lines(self, story_id: int) -> list[StoryLine]:
        """Lines of the current branch whose operation a stop cut short: never posted, or
        without a picture or a reason for none (a kept candidate has its message at once,
        the choice's)."""
        return await self._visible(
            story_id, None, "WHERE l.message_id IS NULL OR (l.image_path IS NULL"
            " AND l.image_error IS NULL) ORDER BY l.number")

    async def _update_line(self, story_id: int, number: int, **values: Any) -> None:
        columns = ", ".join(f"{name} = ?" for name in values)  # names come from this module
        branch = await self._owner(story_id, number)
        await self.db.execute(
            f"UPDATE story_lines SET {columns}, updated_at = ?"
            " WHERE story_id = ? AND branch = ? AND number = ?",
            (*values.values(), time.time(), story_id, branch, number),
        )

    async def _owner(self, story_id: int, number: int) -> int:
        """The branch whose row line `number` of the current branch is (-1: none)."""
        line = await self.line(story_id, number)
        return line.branch if line is not None else -1

    async def _args(self, story_id: int, branch: int | None, **more: Any) -> dict[str, Any]:
        if branch is None:
            story = await self.get(story_id)
            branch = story.branch if story is not None else 1
        return {"story": story_id, "branch": branch, **more}

    async def _visible(self, story_id: int, branch: int | None, tail: str,
                       **more: Any) -> list[StoryLine]:
        async with self.db.execute(f"{_VISIBLE} {tail}",
                                   await self._args(story_id, branch, **more)) as cur:
            return [_line(row) for row in await cur.fetchall()]

    # ----- branches -----------------------------------------------------------------------

    async def branches(self, story_id: int) -> list[Branch]:
        """Every branch of the story, oldest first, with its length and latest line."""
        async with self.db.execute(
            "SELECT * FROM story_branches WHERE story_id = ? ORDER BY id", (story_id,)
        ) as cur:
            rows = list(await cur.fetchall())
        found = []
        for row in rows:
            lines = await self.lines(story_id, row["id"])
            found.append(Branch(story_id=story_id, id=row["id"], parent=row["parent"],
                                fork_line=row["fork_line"], created_at=row["created_at"],
                                lines=len(lines), last_text=lines[-1].text if lines else ""))
        return found

    async def rewind(self, story_id: int, number: int) -> int:
        """Tell the story from line `number` on anew: a new branch from the current one,
        sharing its lines up to `number`, becomes current; the later lines stay in the
        branch they were told in. Returns the branch now told. A current branch with no
        line of its own yet just moves its fork (no empty branch piles up)."""
        story = await self.get(story_id)
        assert story is not None
        async with self.db.execute(
            "SELECT fork_line, (SELECT MAX(id) FROM story_branches WHERE story_id = :story)"
            " AS top, (SELECT COUNT(*) FROM story_lines WHERE story_id = :story AND"
            " branch = :branch) AS own FROM story_branches WHERE story_id = :story"
            " AND id = :branch", {"story": story_id, "branch": story.branch},
        ) as cur:
            row = await cur.fetchone()
        if row is not None and row["own"] == 0 and story.branch != 1:
            await self.db.execute(
                "UPDATE story_branches SET fork_line = ? WHERE story_id = ? AND id = ?",
                (number, story_id, story.branch))
            return story.branch
        new = int(row["top"] if row is not None and row["top"] else 1) + 1
        # One script: the branch and the story's pointer to it change together. Only ints
        # from this code are formatted in.
        await self.db.executescript(
            f"BEGIN; INSERT INTO story_branches (story_id, id, parent, fork_line, created_at)"
            f" VALUES ({int(story_id)}, {new}, {int(story.branch)}, {int(number)},"
            f" {time.time()!r}); UPDATE stories SET branch = {new} WHERE id = {int(story_id)};"
            " COMMIT;")
        return new

    async def switch(self, story_id: int, branch: int) -> bool:
        """Make `branch` the current one; False when the story has no such branch. A branch
        left without a line of its own (rewound and not continued) is dropped."""
        story = await self.get(story_id)
        async with self.db.execute(
            "SELECT 1 FROM story_branches WHERE story_id = ? AND id = ?", (story_id, branch)
        ) as cur:
            if story is None or await cur.fetchone() is None:
                return False
        await self.db.execute("UPDATE stories SET branch = ? WHERE id = ?", (branch, story_id))
        if story.branch not in (1, branch):
            await self.db.execute(
                "DELETE FROM story_branches WHERE story_id = :story AND id = :old AND NOT"
                " EXISTS (SELECT 1 FROM story_lines WHERE story_id = :story AND branch = :old)"
                " AND NOT EXISTS (SELECT 1 FROM story_branches WHERE story_id = :story AND"
                " parent = :old)", {"story": story_id, "old": story.branch})
        return True


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
        branch=row["branch"],
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
        branch=row["branch"],
        chosen_by=(Author(row["chosen_by_id"], row["chosen_by_name"] or "")
                   if row["chosen_by_id"] is not None else None),
    )
