"""migrate(): migrations in order, from empty and from every intermediate version, one
transaction each (a failing one leaves the previous version), and refusing a newer file."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from bot.db import migrations
from bot.db.migrations import MIGRATIONS, migrate, schema_version


async def schema(db: aiosqlite.Connection) -> list[tuple[str, str, str]]:
    async with db.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
    ) as cur:
        return [tuple(row) for row in await cur.fetchall()]


async def tables(db: aiosqlite.Connection) -> set[str]:
    return {name for kind, name, _ in await schema(db) if kind == "table"}


async def user_version(db: aiosqlite.Connection) -> int:
    async with db.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    # The way open_database connects: autocommit, migrate() manages its transactions.
    conn = await aiosqlite.connect(tmp_path / "m.db", isolation_level=None)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def reference_schema(tmp_path: Path) -> list[tuple[str, str, str]]:
    async with aiosqlite.connect(tmp_path / "ref.db", isolation_level=None) as ref:
        await migrate(ref)
        return await schema(ref)


async def test_empty_database_is_version_0(db: aiosqlite.Connection) -> None:
    assert await schema_version(db) == 0
    assert await tables(db) == set()


async def test_from_empty_to_latest(db: aiosqlite.Connection) -> None:
    assert await migrate(db) == len(MIGRATIONS) == 10
    assert await schema_version(db) == 10
    assert await tables(db) == {"jobs", "images", "kv", "stories", "story_lines",
                                "expired_jobs", "member_settings", "guild_settings",
                                "stars", "telephone_games", "telephone_rounds",
                                "story_branches", "story_choices", "story_candidates",
                                "story_cast"}
    assert not db.in_transaction


async def test_migrate_twice_is_a_no_op(db: aiosqlite.Connection) -> None:
    await migrate(db)
    before = await schema(db)
    assert await migrate(db) == len(MIGRATIONS)
    assert await schema(db) == before
    assert await schema_version(db) == len(MIGRATIONS)


async def test_the_first_migration_alone(db: aiosqlite.Connection) -> None:
    await db.executescript(MIGRATIONS[0])
    assert await tables(db) == {"jobs", "images", "kv"}


@pytest.mark.parametrize("start", range(len(MIGRATIONS) + 1))
async def test_from_each_intermediate_version(
    db: aiosqlite.Connection, reference_schema: list[tuple[str, str, str]], start: int
) -> None:
    # A database as an older bot left it: the first `start` migrations and their version.
    for version, sql in enumerate(MIGRATIONS[:start], start=1):
        await db.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version = {version};\nCOMMIT;")
    await db.execute("CREATE TABLE marker (x)")  # data from before the upgrade survives it
    assert await schema_version(db) == start

    assert await migrate(db) == len(MIGRATIONS)
    assert await schema_version(db) == len(MIGRATIONS)
    assert [s for s in await schema(db) if s[1] != "marker"] == reference_schema
    assert "marker" in await tables(db)


async def test_applied_in_order_each_once(
    db: aiosqlite.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = [
        "CREATE TABLE log (n INTEGER, v INTEGER);",
        "INSERT INTO log SELECT 2, (SELECT user_version FROM pragma_user_version);",
        "INSERT INTO log SELECT 3, (SELECT user_version FROM pragma_user_version);",
    ]
    monkeypatch.setattr(migrations, "MIGRATIONS", steps[:2])
    assert await migrate(db) == 2
    monkeypatch.setattr(migrations, "MIGRATIONS", steps)
    assert await migrate(db) == 3
    assert await migrate(db) == 3
    async with db.execute("SELECT n, v FROM log ORDER BY rowid") as cur:
        # Each ran once, in order, seeing the version left by the one before it.
        assert [tuple(r) for r in await cur.fetchall()] == [(2, 1), (3, 2)]
    assert await schema_version(db) == 3


async def test_a_failing_migration_leaves_the_previous_version(
    db: aiosqlite.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = "CREATE TABLE one (x);"
    broken = "CREATE TABLE two (x); INSERT INTO two VALUES (1); INSERT INTO nowhere VALUES (1);"
    later = "CREATE TABLE three (x);"
    monkeypatch.setattr(migrations, "MIGRATIONS", [good, broken, later])

    with pytest.raises(sqlite3.OperationalError, match="nowhere"):
        await migrate(db)
    # Migration 1 committed; migration 2 rolled back whole (its table too); 3 never ran.
    assert await user_version(db) == 1
    assert await tables(db) == {"one"}
    assert not db.in_transaction

    # Fixed, it resumes from version 1.
    monkeypatch.setattr(migrations, "MIGRATIONS", [good, "CREATE TABLE two (x);", later])
    assert await migrate(db) == 3
    assert await tables(db) == {"one", "two", "three"}


async def test_failure_in_the_first_migration_leaves_an_empty_database(
    db: aiosqlite.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(migrations, "MIGRATIONS", ["CREATE TABLE a (x); SELECT * FROM nope;"])
    with pytest.raises(sqlite3.OperationalError):
        await migrate(db)
    assert await user_version(db) == 0
    assert await tables(db) == set()
    assert not db.in_transaction


async def test_failure_is_rolled_back_on_a_default_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sqlite3 default (implicit transactions) must not change the all-or-nothing rule.
    monkeypatch.setattr(migrations, "MIGRATIONS", ["CREATE TABLE one (x);",
                                                   "CREATE TABLE two (x); SELECT * FROM nope;"])
    async with aiosqlite.connect(tmp_path / "d.db") as conn:
        with pytest.raises(sqlite3.OperationalError):
            await migrate(conn)
        assert await user_version(conn) == 1
        assert await tables(conn) == {"one"}


async def test_a_newer_database_is_refused_untouched(db: aiosqlite.Connection) -> None:
    newer = len(MIGRATIONS) + 1
    await db.execute(f"PRAGMA user_version = {newer}")
    known = len(MIGRATIONS)
    with pytest.raises(RuntimeError, match=rf"schema version {newer}, newer than .*\({known}\)"):
        await migrate(db)
    assert await schema_version(db) == newer
    assert await tables(db) == set()


async def test_the_version_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "v.db"
    async with aiosqlite.connect(path, isolation_level=None) as conn:
        await migrate(conn)
    async with aiosqlite.connect(path, isolation_level=None) as conn:
        assert await schema_version(conn) == len(MIGRATIONS)
        assert await migrate(conn) == len(MIGRATIONS)


async def test_done_splits_into_delivered_rendered_and_failed(db: aiosqlite.Connection,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    # A database of the version before: "done" meant rendered and maybe posted.
    monkeypatch.setattr(migrations, "MIGRATIONS", MIGRATIONS[:2])
    await migrate(db)
    now = time.time()
    rows = [  # id, origin, message_id, finished_at
        ("posted", '{"kind": "imagine"}', 5, now - 7200),
        ("story", '{"kind": "story", "story_id": 1}', None, now - 7200),
        ("cli", "{}", None, now - 7200),
        ("recent", '{"kind": "imagine"}', None, now - 60),
        ("old", '{"kind": "imagine"}', None, now - 7200),
        ("failed", '{"kind": "imagine"}', None, now - 60),
    ]
    for job_id, origin, message_id, finished in rows:
        await db.execute(
            "INSERT INTO jobs (id, user_id, kind, params, origin, state, created_at,"
            " finished_at, message_id) VALUES (?, 1, 'image', '{}', ?, ?, 0, ?, ?)",
            (job_id, origin, "failed" if job_id == "failed" else "done", finished, message_id))
    monkeypatch.setattr(migrations, "MIGRATIONS", MIGRATIONS)
    await migrate(db)
    async with db.execute("SELECT id, state, reason FROM jobs ORDER BY id") as cur:
        states = {row[0]: (row[1], row[2]) for row in await cur.fetchall()}
    assert states == {
        "posted": ("delivered", None), "story": ("delivered", None), "cli": ("delivered", None),
        "recent": ("rendered", None),  # still owed: the bot posts it at its next start
        "old": ("failed", "The result could not be posted."),
        "failed": ("failed", None),
    }
