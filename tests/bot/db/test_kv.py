"""KeyValues: missing keys, set/get, overwrite, persistence across a reopen."""

from __future__ import annotations

from pathlib import Path

import aiosqlite

from bot.db.connection import open_database
from bot.db.kv import KeyValues


async def test_missing_key_is_none(db: aiosqlite.Connection) -> None:
    assert await KeyValues(db).get("commands-hash") is None


async def test_set_then_get(db: aiosqlite.Connection) -> None:
    kv = KeyValues(db)
    await kv.set("commands-hash", "abc123")
    assert await kv.get("commands-hash") == "abc123"
    assert await kv.get("other") is None


async def test_overwrite_keeps_one_row(db: aiosqlite.Connection) -> None:
    kv = KeyValues(db)
    await kv.set("k", "first")
    await kv.set("k", "second")
    assert await kv.get("k") == "second"
    async with db.execute("SELECT key, value FROM kv") as cur:
        assert [tuple(r) for r in await cur.fetchall()] == [("k", "second")]


async def test_keys_are_independent_and_exact(db: aiosqlite.Connection) -> None:
    kv = KeyValues(db)
    await kv.set("a", "1")
    await kv.set("A", "2")
    await kv.set("a ", "3")
    assert [await kv.get(k) for k in ("a", "A", "a ", "b")] == ["1", "2", "3", None]


async def test_empty_and_unicode_values(db: aiosqlite.Connection) -> None:
    kv = KeyValues(db)
    await kv.set("empty", "")
    await kv.set("ключ 🌿", "値 ✓\nline two")
    assert await kv.get("empty") == ""
    assert await kv.get("ключ 🌿") == "値 ✓\nline two"


async def test_persists_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    db = await open_database(path)
    try:
        await KeyValues(db).set("commands-hash", "h1")
        await KeyValues(db).set("other", "x")
        await KeyValues(db).set("other", "y")
    finally:
        await db.close()
    db = await open_database(path)
    try:
        kv = KeyValues(db)
        assert await kv.get("commands-hash") == "h1"
        assert await kv.get("other") == "y"
    finally:
        await db.close()


async def test_two_instances_share_the_table(db: aiosqlite.Connection) -> None:
    await KeyValues(db).set("k", "v")
    assert await KeyValues(db).get("k") == "v"
