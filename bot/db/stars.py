"""Stars: members star results (⭐ under an /imagine result), one star per member per result;
/top ranks a server's results by them.

A star is for a whole result (a job: every picture of its grid), keyed (job_id, user_id), so
a member has one per result and a second press takes it back (`toggle`). The job's server and
channel are copied into the star when it is given: /top filters a server by `guild_id`, and a
conversation outside servers (a DM, guild NULL) by `channel_id`. Stars go with their job's
row (ON DELETE CASCADE; the bot's connection has foreign keys on): 🗑 and the retention sweep
remove them without knowing about them.

/top ranks the results *made* in its period (by the job's `finished_at`) by their stars, ties
by newest: an old picture does not climb into "this week" because someone found it today.
Only delivered results with a stored message count, since each entry links to it.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

import aiosqlite

from bot.executor.jobs import JobState

TOP_LIMIT = 10  # results /top lists

_MADE_AT = "COALESCE(j.finished_at, j.created_at)"


@dataclass(frozen=True)
class Starred:
    """A toggle's outcome: whether the member's star is now there, and the result's total."""

    starred: bool
    count: int


@dataclass(frozen=True)
class TopResult:
    job_id: str
    user_id: int  # who made it
    user_name: str
    subject: str
    stars: int
    guild_id: int | None
    channel_id: int  # where its result message is
    message_id: int
    made_at: float


class StarRepository:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def toggle(self, job_id: str, user_id: int, *, guild_id: int | None,
                     channel_id: int | None, now: float | None = None) -> Starred | None:
        """Give the member's star to the job, or take it back if they had given it; None
        when the job's row is gone (deleted or swept meanwhile)."""
        now = time.time() if now is None else now
        try:
            # The primary key makes it one per member: a second press inserts nothing.
            async with self.db.execute(
                "INSERT INTO stars (job_id, user_id, guild_id, channel_id, starred_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (job_id, user_id) DO NOTHING",
                (job_id, user_id, guild_id, channel_id, now),
            ) as cur:
                added = cur.rowcount > 0
        except sqlite3.IntegrityError:  # the foreign key: no such job any more
            return None
        if not added:
            await self.db.execute("DELETE FROM stars WHERE job_id = ? AND user_id = ?",
                                  (job_id, user_id))
        return Starred(starred=added, count=await self.count(job_id))

    async def count(self, job_id: str) -> int:
        async with self.db.execute("SELECT COUNT(*) FROM stars WHERE job_id = ?",
                                   (job_id,)) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def top(self, *, guild_id: int | None, channel_id: int | None,
                  since: float | None = None, limit: int = TOP_LIMIT) -> list[TopResult]:
        """The most-starred delivered results of a server (or, with `guild_id` None, of the
        conversation `channel_id`) made since `since` (None: ever), most stars first, ties
        by newest."""
        place: str = "s.guild_id = ?"
        where: int | None = guild_id
        if guild_id is None:
            place, where = "s.guild_id IS NULL AND s.channel_id = ?", channel_id
        async with self.db.execute(
            f"SELECT j.id, j.user_id, j.user_name, json_extract(j.params, '$.subject') AS"
            f" subject, j.channel_id, j.message_id, COUNT(*) AS stars, {_MADE_AT} AS made_at,"
            f" s.guild_id AS guild_id"
            f" FROM stars s JOIN jobs j ON j.id = s.job_id"
            f" WHERE {place} AND j.state = ? AND j.message_id IS NOT NULL"
            f" AND j.channel_id IS NOT NULL AND {_MADE_AT} >= ?"
            f" GROUP BY j.id ORDER BY stars DESC, made_at DESC, j.id LIMIT ?",
            (where, JobState.DELIVERED.value, since if since is not None else float("-inf"),
             limit),
        ) as cur:
            rows = await cur.fetchall()
        return [TopResult(job_id=row["id"], user_id=int(row["user_id"]),
                          user_name=str(row["user_name"] or ""),
                          subject=str(row["subject"] or ""), stars=int(row["stars"]),
                          guild_id=row["guild_id"], channel_id=int(row["channel_id"]),
                          message_id=int(row["message_id"]), made_at=float(row["made_at"]))
                for row in rows]
