"""A story's cast in SQLite (table `story_cast`), one row per character, autocommitted."""

from __future__ import annotations

import time

import aiosqlite

from bot.story.cast import CastMember, name_key
from bot.story.models import Author


class CastRepository:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def of_story(self, story_id: int) -> list[CastMember]:
        """The story's characters, in the order they were added."""
        async with self.db.execute(
            "SELECT * FROM story_cast WHERE story_id = ? ORDER BY added_at, key", (story_id,)
        ) as cur:
            return [_member(row) for row in await cur.fetchall()]

    async def get(self, story_id: int, name: str) -> CastMember | None:
        async with self.db.execute(
            "SELECT * FROM story_cast WHERE story_id = ? AND key = ?", (story_id, name_key(name))
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else _member(row)

    async def put(self, story_id: int, name: str, look: str, by: Author) -> CastMember:
        """Add the character, or give the one of that name (in any case) this spelling and
        look; who added it first and when stay."""
        now = time.time()
        await self.db.execute(
            "INSERT INTO story_cast (story_id, key, name, look, added_by_id, added_by_name,"
            " added_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (story_id, key) DO UPDATE SET name = excluded.name,"
            " look = excluded.look, updated_at = excluded.updated_at",
            (story_id, name_key(name), name, look, by.id, by.name, now, now),
        )
        member = await self.get(story_id, name)
        assert member is not None
        return member

    async def remove(self, story_id: int, name: str) -> bool:
        """False when the story has no character of that name."""
        cur = await self.db.execute("DELETE FROM story_cast WHERE story_id = ? AND key = ?",
                                    (story_id, name_key(name)))
        return cur.rowcount == 1


def _member(row: aiosqlite.Row) -> CastMember:
    return CastMember(
        story_id=row["story_id"],
        name=row["name"],
        look=row["look"],
        added_by=Author(row["added_by_id"], row["added_by_name"]),
        added_at=row["added_at"],
        updated_at=row["updated_at"],
    )
