"""The database the bot/db tests share: a real SQLite file, opened as the bot opens it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from bot.db.connection import open_database


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    conn = await open_database(tmp_path / "db" / "bot.db")
    try:
        yield conn
    finally:
        await conn.close()
