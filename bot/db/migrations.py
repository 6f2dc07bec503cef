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
    # 7: ⭐ stars (bot/db/stars.py): one per member per result, going with the job's row.
    # The job's server and channel are copied in, so /top filters on the stars alone.
    """
    CREATE TABLE stars (
        job_id     TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        user_id    INTEGER NOT NULL,
        guild_id   INTEGER,                     -- NULL outside servers: then by channel
        channel_id INTEGER,
        starred_at REAL NOT NULL,
        PRIMARY KEY (job_id, user_id)
    );
    CREATE INDEX stars_by_guild ON stars(guild_id, job_id);
    CREATE INDEX stars_by_channel ON stars(channel_id, job_id);
    """,
    # Story branches (⏪ Rewind, /story branches) and choices (Continue ▶ offers candidate
    # lines). A line row belongs to the branch that wrote it; a branch reads the lines up to
    # its fork from its parent. The line table is rebuilt: its key gains the branch.
    """
    CREATE TABLE story_branches (
        story_id   INTEGER NOT NULL REFERENCES stories(id) ON DELETE CASCADE,
        id         INTEGER NOT NULL,            -- 1 = the story as it began; per story
        parent     INTEGER,                     -- the branch it was rewound from
        fork_line  INTEGER NOT NULL DEFAULT 0,  -- lines up to this are the parent's
        created_at REAL NOT NULL,
        PRIMARY KEY (story_id, id)
    );
    INSERT INTO story_branches (story_id, id, parent, fork_line, created_at)
        SELECT id, 1, NULL, 0, created_at FROM stories;
    ALTER TABLE stories ADD COLUMN branch INTEGER NOT NULL DEFAULT 1;  -- the one told now
    CREATE TABLE story_lines_new (
        story_id       INTEGER NOT NULL REFERENCES stories(id) ON DELETE CASCADE,
        branch         INTEGER NOT NULL DEFAULT 1,
        number         INTEGER NOT NULL,
        source         TEXT NOT NULL,
        text           TEXT NOT NULL,
        author_id      INTEGER NOT NULL,
        author_name    TEXT NOT NULL DEFAULT '',
        model          TEXT,
        text_job_id    TEXT,
        image_job_id   TEXT,
        image_path     TEXT,
        image_seed     INTEGER,
        image_error    TEXT,
        image_nsfw     INTEGER NOT NULL DEFAULT 0,
        revision       INTEGER NOT NULL DEFAULT 0,
        redraws        INTEGER NOT NULL DEFAULT 0,
        message_id     INTEGER,
        chosen_by_id   INTEGER,                 -- who kept it among candidates (✅)
        chosen_by_name TEXT,
        created_at     REAL NOT NULL,
        updated_at     REAL NOT NULL,
        PRIMARY KEY (story_id, branch, number)
    );
    INSERT INTO story_lines_new (story_id, number, source, text, author_id, author_name,
            model, text_job_id, image_job_id, image_path, image_seed, image_error,
            image_nsfw, revision, redraws, message_id, created_at, updated_at)
        SELECT story_id, number, source, text, author_id, author_name, model, text_job_id,
            image_job_id, image_path, image_seed, image_error, image_nsfw, revision,
            redraws, message_id, created_at, updated_at FROM story_lines;
    DROP TABLE story_lines;
    ALTER TABLE story_lines_new RENAME TO story_lines;
    CREATE INDEX story_lines_by_message ON story_lines(message_id);
    -- The open choice of a story (one at most) and its candidates, until one is kept.
    CREATE TABLE story_choices (
        story_id      INTEGER PRIMARY KEY REFERENCES stories(id) ON DELETE CASCADE,
        branch        INTEGER NOT NULL,
        number        INTEGER NOT NULL,         -- the line the candidates are for
        shown         INTEGER NOT NULL DEFAULT 0,  -- the candidate its message shows
        asked_by_id   INTEGER NOT NULL,         -- who pressed Continue ▶
        asked_by_name TEXT NOT NULL DEFAULT '',
        message_id    INTEGER,
        created_at    REAL NOT NULL
    );
    CREATE TABLE story_candidates (
        story_id INTEGER NOT NULL REFERENCES story_choices(story_id) ON DELETE CASCADE,
        idx      INTEGER NOT NULL,              -- in the order written; ↻ appends
        text     TEXT NOT NULL,
        job_id   TEXT NOT NULL,                 -- the text job that wrote it
        model    TEXT,
        PRIMARY KEY (story_id, idx)
    );
    """,
    # A story's cast (/story cast, bot/story/cast_repository.py): a character's look goes
    # into the pictures of the lines that name it. `key` is the name casefolded, so a story
    # has one character per name whatever its case (SQLite's NOCASE folds ASCII only).
    """
    CREATE TABLE story_cast (
        story_id      INTEGER NOT NULL REFERENCES stories(id) ON DELETE CASCADE,
        key           TEXT NOT NULL,
        name          TEXT NOT NULL,            -- as last spelled
        look          TEXT NOT NULL,
        added_by_id   INTEGER NOT NULL,
        added_by_name TEXT NOT NULL DEFAULT '',
        added_at      REAL NOT NULL,
        updated_at    REAL NOT NULL,
        PRIMARY KEY (story_id, key)
    );
    """,
    # AI telephone (/telephone, bot/telephone/): a game, and its rounds in order. Round 1's
    # text is the prompt; each later one describes the round before's picture (the caption
    # model's in "ai" mode, a member's in "players" mode). A round's row is written before
    # its picture is asked for; its jobs' ids before they are waited on.
    """
    CREATE TABLE telephone_games (
        id                INTEGER PRIMARY KEY AUTOINCREMENT,
        guild_id          INTEGER,
        channel_id        INTEGER NOT NULL,
        started_by        INTEGER NOT NULL,
        started_by_name   TEXT NOT NULL DEFAULT '',
        mode              TEXT NOT NULL,            -- ai or players
        rounds            INTEGER NOT NULL,
        state             TEXT NOT NULL,            -- playing, ended or stopped (early)
        reason            TEXT,                     -- why it stopped early
        nsfw              INTEGER NOT NULL DEFAULT 0,  -- the channel allows NSFW terms
        upload_limit      INTEGER NOT NULL,
        status_message_id INTEGER,
        chain_message_id  INTEGER,                  -- the chain and export, once posted
        chain_error       TEXT,                     -- why they could not be posted
        created_at        REAL NOT NULL,
        ended_at          REAL
    );
    CREATE INDEX telephone_games_by_state ON telephone_games(state);
    CREATE TABLE telephone_rounds (
        game_id         INTEGER NOT NULL REFERENCES telephone_games(id) ON DELETE CASCADE,
        round           INTEGER NOT NULL,         -- 1 = the prompt
        text            TEXT NOT NULL,
        author_id       INTEGER NOT NULL,         -- the member who wrote it (or asked)
        author_name     TEXT NOT NULL DEFAULT '',
        model           TEXT,                     -- the caption model that wrote it, or NULL
        text_job_id     TEXT,                     -- the describe job that wrote it
        image_job_id    TEXT,
        image_path      TEXT,
        image_nsfw      INTEGER NOT NULL DEFAULT 0,
        image_error     TEXT,
        describe_job_id TEXT,                     -- the job describing this round's picture
        message_id      INTEGER,                  -- the round's post
        created_at      REAL NOT NULL,
        PRIMARY KEY (game_id, round)
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
