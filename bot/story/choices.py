"""A story's open choice in SQLite: the candidate lines the model offered for the next line,
which one its message shows, and that message. One open choice per story at most; it ends
when a candidate is kept (the line is saved first), or when the story is rewound or
switched to another branch. Stored as soon as the candidates exist, so its buttons and
message survive a restart."""

from __future__ import annotations

import time
from collections.abc import Sequence

import aiosqlite

from bot.story.models import Author, Candidate, Choice


class ChoiceRepository:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def get(self, story_id: int) -> Choice | None:
        async with self.db.execute(
            "SELECT * FROM story_choices WHERE story_id = ?", (story_id,)
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        async with self.db.execute(
            "SELECT * FROM story_candidates WHERE story_id = ? ORDER BY idx", (story_id,)
        ) as cur:
            candidates = tuple(Candidate(r["idx"], r["text"], r["job_id"], r["model"])
                               for r in await cur.fetchall())
        if not candidates:
            return None  # cut off between its two inserts: as if never offered
        return Choice(story_id=story_id, branch=row["branch"], number=row["number"],
                      shown=row["shown"], asked_by=Author(row["asked_by_id"],
                                                          row["asked_by_name"]),
                      message_id=row["message_id"], created_at=row["created_at"],
                      candidates=candidates)

    async def offer(self, story_id: int, branch: int, number: int, asked_by: Author,
                    job_id: str, texts: Sequence[str], model: str | None) -> Choice:
        """Open the story's choice for line `number` with the texts one job wrote, or add
        them to the open one (↻): the first new candidate is then the one shown. A job's
        candidates are stored once (a repeated call changes nothing)."""
        choice = await self.get(story_id)
        if choice is not None and job_id in choice.job_ids:
            return choice
        if choice is None:
            await self.db.execute("DELETE FROM story_candidates WHERE story_id = ?", (story_id,))
            await self.db.execute(
                "INSERT OR REPLACE INTO story_choices (story_id, branch, number, shown,"
                " asked_by_id, asked_by_name, created_at) VALUES (?, ?, ?, 0, ?, ?, ?)",
                (story_id, branch, number, asked_by.id, asked_by.name, time.time()))
            first = 0
        else:
            first = len(choice.candidates)
        await self.db.executemany(
            "INSERT INTO story_candidates (story_id, idx, text, job_id, model)"
            " VALUES (?, ?, ?, ?, ?)",
            [(story_id, first + i, text, job_id, model) for i, text in enumerate(texts)])
        await self.show(story_id, first)
        found = await self.get(story_id)
        assert found is not None
        return found

    async def show(self, story_id: int, idx: int) -> None:
        await self.db.execute("UPDATE story_choices SET shown = ? WHERE story_id = ?",
                              (idx, story_id))

    async def set_message(self, story_id: int, message_id: int) -> None:
        await self.db.execute("UPDATE story_choices SET message_id = ? WHERE story_id = ?",
                              (message_id, story_id))

    async def close(self, story_id: int) -> None:
        """The choice is over (its candidates go with it)."""
        await self.db.execute("DELETE FROM story_choices WHERE story_id = ?", (story_id,))
        await self.db.execute("DELETE FROM story_candidates WHERE story_id = ?", (story_id,))
