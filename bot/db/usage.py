"""What the GPU spent its time on: GPU seconds per member and per model over recent days,
read from the job table (/stats).

A job's GPU time is its share of its batch's render seconds (`jobs.gpu_s`, written since
schema 5); older rows, and results that did not say, count the wall time of their last run
(`finished_at - started_at`). Only jobs that rendered count: a failed or cancelled run has no
result to show for its time, and its seconds were not measured.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import aiosqlite

from bot.db.retention import DAY_S
from bot.executor.jobs import JobState
from bot.pipelines.errors import public_model_name

# The windows /stats shows: (label, seconds back from now).
PERIODS: tuple[tuple[str, float], ...] = (
    ("Last 24 hours", DAY_S),
    ("Last 7 days", 7 * DAY_S),
    ("Last 30 days", 30 * DAY_S),
)

# One job's GPU seconds; never negative (a clock step between start and finish).
_GPU_S = "MAX(0.0, COALESCE(gpu_s, finished_at - started_at, 0.0))"
_RENDERED = (JobState.RENDERED.value, JobState.DELIVERED.value)


@dataclass(frozen=True)
class MemberUsage:
    user_id: int
    user_name: str  # as of their latest job in the window
    gpu_s: float
    jobs: int


@dataclass(frozen=True)
class ModelUsage:
    model: str  # public name: a hub id, or a folder's own name (never a host path)
    gpu_s: float
    jobs: int


@dataclass(frozen=True)
class Usage:
    since: float  # unix time the window starts
    gpu_s: float
    jobs: int
    member_count: int  # all members with jobs in the window, listed or not
    members: tuple[MemberUsage, ...]  # most GPU time first
    models: tuple[ModelUsage, ...]  # most GPU time first


class UsageQueries:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def since(self, since: float, *, guild_id: int | None = None,
                    top: int | None = None) -> Usage:
        """GPU time of the jobs that rendered from `since` on (in `guild_id`'s channels
        only, when given); `top` limits how many members are listed (the total is all)."""
        where = f"finished_at >= ? AND state IN ({', '.join('?' * len(_RENDERED))})"
        args: list[object] = [since, *_RENDERED]
        if guild_id is not None:
            where += " AND json_extract(origin, '$.guild_id') = ?"
            args.append(guild_id)
        # SQLite takes the bare user_name from the row holding MAX(finished_at): the
        # member's latest name.
        members = await self._rows(
            f"SELECT user_id, user_name, MAX(finished_at), SUM({_GPU_S}) AS gpu, COUNT(*)"
            f" FROM jobs WHERE {where} GROUP BY user_id ORDER BY gpu DESC, user_id"
            + (" LIMIT ?" if top is not None else ""),
            (*args, top) if top is not None else tuple(args))
        models = await self._rows(
            f"SELECT COALESCE(model, ''), SUM({_GPU_S}), COUNT(*) FROM jobs WHERE {where}"
            " GROUP BY model", tuple(args))
        total = await self._rows(
            f"SELECT COALESCE(SUM({_GPU_S}), 0.0), COUNT(*), COUNT(DISTINCT user_id)"
            f" FROM jobs WHERE {where}", tuple(args))
        return Usage(
            since=since, gpu_s=float(total[0][0]), jobs=int(total[0][1]),
            member_count=int(total[0][2]),
            members=tuple(MemberUsage(int(r[0]), str(r[1]), float(r[3]), int(r[4]))
                          for r in members),
            models=_by_public_name(models),
        )

    async def periods(self, *, guild_id: int | None = None, top: int | None = None,
                      now: float | None = None) -> list[tuple[str, Usage]]:
        """`since` for each of PERIODS, ending `now`."""
        now = time.time() if now is None else now
        return [(label, await self.since(now - seconds, guild_id=guild_id, top=top))
                for label, seconds in PERIODS]

    async def _rows(self, sql: str, args: tuple[object, ...]) -> list[aiosqlite.Row]:
        async with self.db.execute(sql, args) as cur:
            return list(await cur.fetchall())


def _by_public_name(rows: list[aiosqlite.Row]) -> tuple[ModelUsage, ...]:
    """Rows per stored model name, merged by public name (rows stored before results
    stopped naming a folder by its full path say the path)."""
    merged: dict[str, tuple[float, int]] = {}
    for stored, gpu_s, jobs in rows:
        name = public_model_name(str(stored)) or "unknown model"
        seconds, count = merged.get(name, (0.0, 0))
        merged[name] = (seconds + float(gpu_s), count + int(jobs))
    ranked = sorted(merged.items(), key=lambda item: (-item[1][0], item[0]))
    return tuple(ModelUsage(name, seconds, count) for name, (seconds, count) in ranked)
