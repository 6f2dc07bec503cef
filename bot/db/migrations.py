"""Numbered schema migrations; the version lives in the database (PRAGMA user_version).

Each migration runs in its own transaction together with the version bump, so a crash leaves
the database at the previous version, never half-migrated. Append new migrations; never edit
one that has shipped.
"""

from __future__ import annotations

import aiosqlite

MIGRATIONS: list[str] = [
    # 1: jobs and their images
    """
    CREATE TABLE jobs (
        id          TEXT PRIMARY KEY,
        user_id     INTEGER NOT NULL,
        user_name   TEXT NOT NULL DEFAULT '',
        kind        TEXT NOT NULL,
        params      TEXT NOT NULL,              -- JSON, see bot.executor.jobs
        origin      TEXT NOT NULL DEFAULT '{}', -- JSON: where the result goes
        state       TEXT NOT NULL,
        attempts    INTEGER NOT NULL DEFAULT 0,
        reason      TEXT,
        model       TEXT,
        sampler     TEXT,
        timings     TEXT,                       -- JSON: seconds per phase
        result_text TEXT,
        created_at  REAL NOT NULL,
        started_at  REAL,
        finished_at REAL,
        channel_id  INTEGER,                    -- where the result was posted
        message_id  INTEGER
    );
    CREATE INDEX jobs_by_state ON jobs(state, created_at);
    CREATE INDEX jobs_by_message ON jobs(message_id);
    CREATE TABLE images (
        job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        idx    INTEGER NOT NULL,
        seed   INTEGER NOT NULL,
        path   TEXT NOT NULL,
        nsfw   INTEGER NOT NULL DEFAULT 0,
        label  TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (job_id, idx)
    );
    CREATE TABLE kv (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
]


async def schema_version(db: aiosqlite.Connection) -> int:
    async with db.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def migrate(db: aiosqlite.Connection) -> int:
    """Apply pending migrations; returns the resulting version."""
    current = await schema_version(db)
    if current > len(MIGRATIONS):
        raise RuntimeError(
            f"the database is at schema version {current}, newer than this bot knows "
            f"({len(MIGRATIONS)}); upgrade the bot or use another database file"
        )
    for version, sql in enumerate(MIGRATIONS[current:], start=current + 1):
        try:
            await db.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version = {version};\nCOMMIT;")
        except Exception:
            if db.in_transaction:
                await db.execute("ROLLBACK")
            raise
    return len(MIGRATIONS)
