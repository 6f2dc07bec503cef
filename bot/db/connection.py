"""Opening the database: WAL, foreign keys, a busy timeout, migrations applied."""

from __future__ import annotations

from pathlib import Path

import aiosqlite

from bot.db.migrations import migrate


async def open_database(path: Path | str) -> aiosqlite.Connection:
    """Open (creating if needed) and migrate the database at `path` (":memory:" works)."""
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = await aiosqlite.connect(str(path), isolation_level=None)  # we manage transactions
    db.row_factory = aiosqlite.Row
    # WAL lets readers (e.g. /queue) run while a result is being written.
    await db.execute("PRAGMA journal_mode=WAL")
    await db.execute("PRAGMA foreign_keys=ON")
    await db.execute("PRAGMA busy_timeout=5000")
    await db.execute("PRAGMA synchronous=NORMAL")
    await migrate(db)
    return db
