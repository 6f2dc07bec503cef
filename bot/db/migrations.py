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
    # 2: story threads: one row per story, one per line (text, author, picture, message)
    """
    CREATE TABLE stories (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        guild_id    INTEGER,                    -- NULL for stories written by the CLI
        channel_id  INTEGER,                    -- the channel the thread was opened from
        thread_id   INTEGER UNIQUE,
        title       TEXT NOT NULL,
        style       TEXT,                       -- style preset name of the illustrations
        author_id   INTEGER NOT NULL,
        author_name TEXT NOT NULL DEFAULT '',
        state       TEXT NOT NULL DEFAULT 'open',  -- open | ended
        created_at  REAL NOT NULL,
        ended_at    REAL
    );
    CREATE INDEX stories_by_guild ON stories(guild_id, created_at);
    CREATE TABLE story_lines (
        story_id     INTEGER NOT NULL REFERENCES stories(id) ON DELETE CASCADE,
        number       INTEGER NOT NULL,          -- 1 = the seed
        source       TEXT NOT NULL,             -- seed | model | member
        text         TEXT NOT NULL,
        author_id    INTEGER NOT NULL,          -- who wrote it, or asked the model for it
        author_name  TEXT NOT NULL DEFAULT '',
        model        TEXT,                      -- the text model, for model lines
        text_job_id  TEXT,                      -- no foreign keys to jobs: a job row may be
        image_job_id TEXT,                      -- deleted, the story keeps its picture
        image_path   TEXT,
        image_seed   INTEGER,
        image_error  TEXT,                      -- why the line has no picture
        image_nsfw   INTEGER NOT NULL DEFAULT 0,  -- flagged by the safety checker
        revision     INTEGER NOT NULL DEFAULT 0,  -- times rewritten
        redraws      INTEGER NOT NULL DEFAULT 0,  -- times re-illustrated
        message_id   INTEGER,
        created_at   REAL NOT NULL,
        updated_at   REAL NOT NULL,
        PRIMARY KEY (story_id, number)
    );
    CREATE INDEX story_lines_by_message ON story_lines(message_id);
    """,
    # 3: "done" splits into rendered (files written) and delivered (result message stored).
    # A posted job was delivered; a story's jobs were taken into their story; an /imagine
    # result that never got its message is owed one if it is recent, else given up.
    """
    UPDATE jobs SET state = 'delivered'
        WHERE state = 'done' AND (message_id IS NOT NULL
                                  OR json_extract(origin, '$.kind') IS NOT 'imagine');
    UPDATE jobs SET state = 'rendered'
        WHERE state = 'done' AND finished_at >= CAST(strftime('%s', 'now') AS REAL) - 3600;
    UPDATE jobs SET state = 'failed', reason = 'The result could not be posted.'
        WHERE state = 'done';
    """,
    # 4: jobs the retention sweep removed (bot/db/retention.py), so a button on one says its
    # picture expired rather than that it was deleted; each row is pruned after a year
    """
    CREATE TABLE expired_jobs (
        id         TEXT PRIMARY KEY,
        user_id    INTEGER NOT NULL,            -- who asked: they may still 🗑 the message
        keep_days  INTEGER NOT NULL,            -- storage.keep_days when it was swept
        expired_at REAL NOT NULL
    );
    """,
    """
    -- worker: who ran the job ("local" or a remote worker's name); gpu_s: its share of its
    -- batch's render seconds (by images); dispatch: the remote batch it was last sent in.
    ALTER TABLE jobs ADD COLUMN worker TEXT;
    ALTER TABLE jobs ADD COLUMN gpu_s REAL;
    ALTER TABLE jobs ADD COLUMN dispatch TEXT;
    CREATE INDEX jobs_by_finish ON jobs(finished_at);
    """,
    # 6: /settings: a member's /imagine defaults (one row per member, for every server, as
    # Midjourney keeps them), and a server's defaults and limits. NULL = not set.
    """
    CREATE TABLE member_settings (
        user_id    INTEGER PRIMARY KEY,
        style      TEXT,
        model      TEXT,
        aspect     TEXT,
        count      INTEGER,
        steps      INTEGER,
        negative   TEXT,
        private    INTEGER,                     -- 1: results only the member sees
        updated_at REAL NOT NULL
    );
    CREATE TABLE guild_settings (
        guild_id      INTEGER PRIMARY KEY,
        style         TEXT,
        model         TEXT,
        aspect        TEXT,
        count         INTEGER,
        steps         INTEGER,
        negative      TEXT,
        private       INTEGER,
        max_steps     INTEGER,                  -- limits moderators set for everyone
        max_count     INTEGER,
        allow_private INTEGER,                  -- 0: private results are turned off
        updated_at    REAL NOT NULL
    );
    """,
]


class NewerSchemaError(RuntimeError):
    """The database was written by a newer bot: its version is past the last migration here."""

    def __init__(self, version: int, known: int) -> None:
        super().__init__(
            f"the database is at schema version {version}, newer than this bot knows "
            f"({known}); upgrade the bot or use another database file"
        )
        self.version, self.known = version, known


async def schema_version(db: aiosqlite.Connection) -> int:
    async with db.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def migrate(db: aiosqlite.Connection) -> int:
    """Apply pending migrations; returns the resulting version."""
    current = await schema_version(db)
    if current > len(MIGRATIONS):
        raise NewerSchemaError(current, len(MIGRATIONS))
    for version, sql in enumerate(MIGRATIONS[current:], start=current + 1):
        try:
            await db.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version = {version};\nCOMMIT;")
        except Exception:
            if db.in_transaction:
                await db.execute("ROLLBACK")
            raise
    return len(MIGRATIONS)
