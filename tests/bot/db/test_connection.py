"""open_database: pragmas, the schema at the latest migration, re-opening, ":memory:"; and
a file it cannot use (not SQLite, cut short, locked, from a newer bot) refused clearly."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import threading
import time
from pathlib import Path

import aiosqlite
import pytest

from bot.db.connection import DatabaseOpenError, open_database
from bot.db.migrations import MIGRATIONS, schema_version

TABLES = {"jobs", "images", "kv", "stories", "story_lines", "expired_jobs", "member_settings",
          "guild_settings", "stars", "story_branches", "story_choices", "story_candidates",
          "story_cast", "telephone_games", "telephone_rounds"}
INDEXES = {"jobs_by_state", "jobs_by_message", "jobs_by_finish", "stories_by_guild",
           "story_lines_by_message", "stars_by_guild", "stars_by_channel",
           "telephone_games_by_state"}


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
    assert len(MIGRATIONS) == 10
    assert await schema_version(db) == len(MIGRATIONS)
    assert await pragma(db, "user_version") == 10
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


# ----- a file open_database cannot use ---------------------------------------------------


async def sqlite_file(path: Path) -> bytes:
    """A real database with some rows, as the bot leaves it (checkpointed): its bytes."""
    db = await open_database(path)
    try:
        for i in range(400):
            await db.execute("INSERT INTO kv (key, value) VALUES (?, ?)", (f"k{i}", "v" * 300))
        await db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        await db.close()
    return await asyncio.to_thread(path.read_bytes)


def sqlite_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if "_connection_worker_thread" in t.name]


async def refused(path: Path, **options: float) -> DatabaseOpenError:
    """open_database's refusal; it leaves no connection thread to keep the process alive."""
    before = set(sqlite_threads())
    with pytest.raises(DatabaseOpenError) as caught:
        db = await open_database(path, **options)
        await db.close()
    for _ in range(100):
        if set(sqlite_threads()) <= before:
            break
        await asyncio.sleep(0.01)
    assert set(sqlite_threads()) <= before
    message = str(caught.value)
    assert "\n" not in message
    return caught.value


CORRUPT = {
    "random bytes": lambda good: random.Random(7).randbytes(5000),
    "a text file": lambda good: b"name,score\nada,3\n" * 200,
    "cut after the header": lambda good: good[:100],
    "cut in half": lambda good: good[: len(good) // 2],
}


@pytest.mark.parametrize("kind", list(CORRUPT))
async def test_a_corrupt_file_is_refused_untouched(tmp_path: Path, kind: str) -> None:
    good = await sqlite_file(tmp_path / "good.sqlite3")
    path = tmp_path / "data" / "greenheart.sqlite3"
    path.parent.mkdir()
    path.write_bytes(content := CORRUPT[kind](good))
    error = await refused(path)
    assert str(error).startswith(f"the database {path} is not a valid SQLite database (")
    assert str(error).endswith("); move it away to start with an empty one, or restore a backup")
    assert isinstance(error.__cause__, sqlite3.DatabaseError)
    assert path.read_bytes() == content  # nothing written into what may yet be recovered


@pytest.mark.parametrize("wal", [True, False], ids=["wal", "rollback journal"])
async def test_a_file_locked_by_another_program_is_refused_in_bounded_time(
    tmp_path: Path, wal: bool
) -> None:
    path = tmp_path / "greenheart.sqlite3"
    if wal:
        await sqlite_file(path)  # the bot's own file, held by e.g. a database browser
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        if not wal:
            holder.execute("CREATE TABLE theirs (x)")
        holder.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()
        error = await refused(path, busy_timeout=0.2)
        assert 0.15 <= time.monotonic() - started < 3
        assert str(error) == (
            f"the database {path} is locked by another program (database is locked, for more "
            f"than 0.2 s); close whatever holds it (another bot, a database browser with "
            f"unsaved changes) and start again")
    finally:
        holder.close()
    db = await open_database(path)  # let go: opens
    await db.close()


async def test_a_database_from_a_newer_bot_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "greenheart.sqlite3"
    newer = len(MIGRATIONS) + 1
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {newer}")
    error = await refused(path)
    assert str(error) == (
        f"the database {path} is at schema version {newer}, newer than this bot knows "
        f"({len(MIGRATIONS)}); upgrade the bot, or point storage.database at another file")
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (newer,)
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)


async def test_a_path_that_cannot_be_a_database_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a folder").mkdir()
    error = await refused(tmp_path / "a folder")
    assert str(error).startswith(f"the database {tmp_path / 'a folder'} could not be opened (")
    (tmp_path / "a file").write_text("")
    error = await refused(tmp_path / "a file" / "db.sqlite3")
    assert "could not be created" in str(error)
