"""open_database: pragmas, the schema at the latest migration, re-opening, ":memory:"."""

from __future__ import annotations

from pathlib import Path

import aiosqlite
import pytest

from bot.db.connection import open_database
from bot.db.migrations import MIGRATIONS, schema_version

TABLES = {"jobs", "images", "kv", "stories", "story_lines"}
INDEXES = {"jobs_by_state", "jobs_by_message", "stories_by_guild", "story_lines_by_message"}


async def pragma(db: aiosqlite.Connection, name: str) -> object:
    async with db.execute(f"PRAGMA {name}") as cur:
        row = await cur.fetchone()
    assert row is not None
    return row[0]


async def names(db: aiosqlite.Connection, kind: str) -> set[str]:
    async with db.execute(
        "SELECT name FROM sqlite_master WHERE type = ? AND name NOT LIKE 'sqlite_%'", (kind,)
    ) as cur:
        return {row[0] for row in await cur.fetchall()}


async def fetch_all(db: aiosqlite.Connection, sql: str) -> list[tuple[object, ...]]:
    async with db.execute(sql) as cur:
        return [tuple(row) for row in await cur.fetchall()]


def entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


async def test_wal_journal_mode(db: aiosqlite.Connection, tmp_path: Path) -> None:
    assert await pragma(db, "journal_mode") == "wal"
    await db.execute("INSERT INTO kv (key, value) VALUES ('a', 'b')")
    assert (tmp_path / "db" / "bot.db-wal").exists()


async def test_foreign_keys_on(db: aiosqlite.Connection) -> None:
    assert await pragma(db, "foreign_keys") == 1
    with pytest.raises(aiosqlite.IntegrityError):
        await db.execute(
            "INSERT INTO images (job_id, idx, seed, path) VALUES ('no-such-job', 0, 1, 'x.png')"
        )


async def test_busy_timeout_and_synchronous(db: aiosqlite.Connection) -> None:
    assert await pragma(db, "busy_timeout") == 5000
    assert await pragma(db, "synchronous") == 1  # NORMAL


async def test_rows_by_name_and_autocommit(db: aiosqlite.Connection, tmp_path: Path) -> None:
    assert db.row_factory is aiosqlite.Row
    await db.execute("INSERT INTO kv (key, value) VALUES ('k', 'v')")
    assert not db.in_transaction  # isolation_level=None: each statement commits
    async with db.execute("SELECT key, value FROM kv") as cur:
        row = await cur.fetchone()
    assert row is not None
    assert (row["key"], row["value"]) == ("k", "v")
    # Visible from another connection without an explicit commit.
    async with aiosqlite.connect(tmp_path / "db" / "bot.db") as other, \
            other.execute("SELECT value FROM kv WHERE key = 'k'") as cur:
        assert await cur.fetchone() == ("v",)


async def test_schema_at_latest_migration(db: aiosqlite.Connection) -> None:
    assert len(MIGRATIONS) == 3
    assert await schema_version(db) == len(MIGRATIONS)
    assert await pragma(db, "user_version") == 3
    assert await names(db, "table") == TABLES
    assert await names(db, "index") == INDEXES


async def test_reopen_is_idempotent_and_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    db = await open_database(path)
    try:
        await db.execute("INSERT INTO kv (key, value) VALUES ('kept', 'yes')")
        async with db.execute("SELECT sql FROM sqlite_master ORDER BY name") as cur:
            schema = [row[0] for row in await cur.fetchall()]
    finally:
        await db.close()

    for _ in range(2):
        db = await open_database(path)
        try:
            assert await schema_version(db) == len(MIGRATIONS)
            async with db.execute("SELECT sql FROM sqlite_master ORDER BY name") as cur:
                assert [row[0] for row in await cur.fetchall()] == schema
            async with db.execute("SELECT key, value FROM kv") as cur:
                assert [tuple(r) for r in await cur.fetchall()] == [("kept", "yes")]
            assert await pragma(db, "journal_mode") == "wal"
            assert await pragma(db, "foreign_keys") == 1
        finally:
            await db.close()


async def test_creates_parent_folders(tmp_path: Path) -> None:
    path = tmp_path / "data" / "nested" / "bot.db"
    assert not path.parent.exists()
    db = await open_database(path)
    try:
        assert path.parent.is_dir()
        assert path.is_file()
        assert await schema_version(db) == len(MIGRATIONS)
    finally:
        await db.close()


async def test_accepts_a_string_path(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "bot.db"
    db = await open_database(str(path))
    try:
        assert path.is_file()
        assert await names(db, "table") == TABLES
    finally:
        await db.close()


async def test_memory_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    db = await open_database(":memory:")
    try:
        assert await schema_version(db) == len(MIGRATIONS)
        assert await names(db, "table") == TABLES
        assert await pragma(db, "foreign_keys") == 1
        assert await pragma(db, "journal_mode") == "memory"  # WAL is not for in-memory files
        await db.execute("INSERT INTO kv (key, value) VALUES ('a', '1')")
        assert await fetch_all(db, "SELECT value FROM kv WHERE key = 'a'") == [("1",)]
    finally:
        await db.close()
    assert entries(tmp_path) == []  # no file called ":memory:" and no folder made


async def test_two_memory_databases_are_separate() -> None:
    first = await open_database(":memory:")
    second = await open_database(":memory:")
    try:
        await first.execute("INSERT INTO kv (key, value) VALUES ('only', 'first')")
        assert await fetch_all(second, "SELECT count(*) FROM kv") == [(0,)]
    finally:
        await first.close()
        await second.close()
