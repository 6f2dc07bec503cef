"""Stars on a real SQLite file: one per member per result (a second press takes it back, the
key refuses a second row), /top's ranking, period, place and what it leaves out, and stars
going with their job (🗑 and the retention sweep)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import aiosqlite
import pytest
from PIL import Image

from bot.db.jobs import JobRepository
from bot.db.retention import DAY_S, sweep
from bot.db.stars import Starred, StarRepository
from bot.executor.jobs import (
    Done,
    GeneratedImage,
    ImageParams,
    ImageResult,
    ImagineOrigin,
    Job,
)

GUILD, CHANNEL, DM = 1, 2, 9
ALICE, BOB, CAROL = 11, 12, 13


class World:
    def __init__(self, db: aiosqlite.Connection, images: Path) -> None:
        self.db = db
        self.jobs = JobRepository(db, images)
        self.stars = StarRepository(db)
        self._messages = 100

    async def picture(self, subject: str = "a fox", *, guild: int | None = GUILD,
                      channel: int = CHANNEL, ago_days: float = 0.0, delivered: bool = True,
                      user_id: int = ALICE) -> Job:
        """A rendered /imagine result (posted, with a message id, unless `delivered` is
        False), finished `ago_days` ago."""
        job = Job(user_id=user_id, user_name="alice", params=ImageParams(
            prompt=subject, negative="", subject=subject, style=None, seeds=(1,), steps=2,
            guidance=7.0, width=8, height=8),
            origin=ImagineOrigin(guild_id=guild, channel_id=channel))
        await self.jobs.job_accepted(job)
        await self.jobs.job_started(job)
        await self.jobs.job_finished(job, Done(ImageResult(
            (GeneratedImage(Image.new("RGB", (8, 8), (0, 160, 0)), 1),), {}, "tiny", "Euler a")))
        if delivered:
            self._messages += 1
            assert await self.jobs.mark_delivered(job.id, channel, self._messages)
        await self.db.execute("UPDATE jobs SET finished_at = ? WHERE id = ?",
                              (time.time() - ago_days * DAY_S, job.id))
        return job

    async def star(self, job: Job, *users: int) -> None:
        origin = job.origin
        assert isinstance(origin, ImagineOrigin)
        for user in users:
            starred = await self.stars.toggle(job.id, user, guild_id=origin.guild_id,
                                              channel_id=origin.channel_id)
            assert starred is not None and starred.starred

    async def rows(self) -> list[tuple[str, int, int | None, int | None]]:
        async with self.db.execute(
            "SELECT job_id, user_id, guild_id, channel_id FROM stars ORDER BY job_id, user_id"
        ) as cur:
            return [tuple(row) for row in await cur.fetchall()]  # type: ignore[misc]


@pytest.fixture
def world(db: aiosqlite.Connection, tmp_path: Path) -> World:
    return World(db, tmp_path / "images")


async def test_one_star_per_member_a_second_press_takes_it_back(world: World) -> None:
    job = await world.picture()
    toggle = world.stars.toggle
    assert await toggle(job.id, ALICE, guild_id=GUILD, channel_id=CHANNEL) == Starred(True, 1)
    assert await toggle(job.id, BOB, guild_id=GUILD, channel_id=CHANNEL) == Starred(True, 2)
    assert await world.rows() == [(job.id, ALICE, GUILD, CHANNEL), (job.id, BOB, GUILD, CHANNEL)]
    assert await toggle(job.id, ALICE, guild_id=GUILD, channel_id=CHANNEL) == Starred(False, 1)
    assert await world.rows() == [(job.id, BOB, GUILD, CHANNEL)]
    assert await toggle(job.id, ALICE, guild_id=GUILD, channel_id=CHANNEL) == Starred(True, 2)
    assert await world.stars.count(job.id) == 2


async def test_the_key_refuses_a_second_star_of_a_member(world: World) -> None:
    job = await world.picture()
    await world.star(job, ALICE)
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        await world.db.execute("INSERT INTO stars (job_id, user_id, starred_at)"
                               " VALUES (?, ?, 0)", (job.id, ALICE))


async def test_a_job_that_is_gone_cannot_be_starred(world: World) -> None:
    assert await world.stars.toggle("0123456789ab", ALICE, guild_id=GUILD,
                                    channel_id=CHANNEL) is None
    assert await world.rows() == []


async def test_top_ranks_by_stars_then_newest_and_links_the_message(world: World) -> None:
    one = await world.picture("one star", ago_days=1)
    older_two = await world.picture("two stars, older", ago_days=3)
    newer_two = await world.picture("two stars, newer", ago_days=2)
    three = await world.picture("three stars", ago_days=5)
    await world.picture("no stars")
    await world.star(one, ALICE)
    await world.star(older_two, ALICE, BOB)
    await world.star(newer_two, BOB, CAROL)
    await world.star(three, ALICE, BOB, CAROL)
    top = await world.stars.top(guild_id=GUILD, channel_id=CHANNEL)
    assert [(t.subject, t.stars) for t in top] == [
        ("three stars", 3), ("two stars, newer", 2), ("two stars, older", 2), ("one star", 1)]
    record = await world.jobs.get(three.id)
    assert record is not None
    assert (top[0].job_id, top[0].guild_id, top[0].channel_id, top[0].message_id,
            top[0].user_id) == (three.id, GUILD, record.channel_id, record.message_id, ALICE)
    assert [t.subject for t in await world.stars.top(guild_id=GUILD, channel_id=CHANNEL,
                                                      limit=2)] == ["three stars",
                                                                    "two stars, newer"]


async def test_the_period_counts_pictures_made_in_it(world: World) -> None:
    today = await world.picture("today")
    last_week = await world.picture("ten days ago", ago_days=10)
    long_ago = await world.picture("long ago", ago_days=200)
    await world.star(today, ALICE)
    await world.star(last_week, ALICE, BOB)
    await world.star(long_ago, ALICE, BOB, CAROL)
    now = time.time()

    async def subjects(days: float | None) -> list[str]:
        since = None if days is None else now - days * DAY_S
        return [t.subject for t in await world.stars.top(guild_id=GUILD, channel_id=CHANNEL,
                                                         since=since)]

    assert await subjects(7) == ["today"]
    assert await subjects(30) == ["ten days ago", "today"]
    assert await subjects(None) == ["long ago", "ten days ago", "today"]


async def test_a_server_sees_its_own_and_a_conversation_its_own(world: World) -> None:
    here = await world.picture("here")
    elsewhere = await world.picture("another server", guild=GUILD + 1, channel=CHANNEL + 1)
    in_dm = await world.picture("in a DM", guild=None, channel=DM)
    other_dm = await world.picture("another DM", guild=None, channel=DM + 1)
    for job in (here, elsewhere, in_dm, other_dm):
        await world.star(job, ALICE)
    assert [t.subject for t in await world.stars.top(guild_id=GUILD, channel_id=CHANNEL)] \
        == ["here"]
    dm = await world.stars.top(guild_id=None, channel_id=DM)
    assert [(t.subject, t.guild_id) for t in dm] == [("in a DM", None)]


async def test_results_without_a_message_are_left_out(world: World) -> None:
    unposted = await world.picture("never posted", delivered=False)
    await world.star(unposted, ALICE)
    assert await world.stars.top(guild_id=GUILD, channel_id=CHANNEL) == []


async def test_stars_go_with_a_deleted_job(world: World) -> None:
    kept, deleted = await world.picture("kept"), await world.picture("deleted")
    await world.star(kept, ALICE)
    await world.star(deleted, ALICE, BOB)
    await world.jobs.delete(deleted.id)  # 🗑
    assert await world.rows() == [(kept.id, ALICE, GUILD, CHANNEL)]
    assert [t.subject for t in await world.stars.top(guild_id=GUILD, channel_id=CHANNEL)] \
        == ["kept"]


async def test_stars_go_with_a_swept_job(world: World, tmp_path: Path) -> None:
    old, recent = await world.picture("old", ago_days=40), await world.picture("recent")
    await world.star(old, ALICE, BOB)
    await world.star(recent, BOB)
    counts = await sweep(world.db, tmp_path / "images", keep_days=30)
    assert counts.jobs == 1
    assert await world.rows() == [(recent.id, BOB, GUILD, CHANNEL)]
