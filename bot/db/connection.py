"""Opening the database: WAL, foreign keys, a busy timeout, migrations applied.

A database that cannot be used (not SQLite, corrupt, held by another program past the busy
timeout, written by a newer bot, not writable) is refused when opened with a
`DatabaseOpenError`: one sentence naming the file, what is wrong and what to do, which
`python -m bot` prints as its one line of error.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiosqlite

from bot.db.migrations import NewerSchemaError, migrate

BUSY_TIMEOUT_S = 5.0


class DatabaseOpenError(RuntimeError):
    """The database cannot be used; the message says which file, what is wrong and what to
    do, for the person starting the bot."""


async def open_database(
    path: Path | str, *, busy_timeout: float = BUSY_TIMEOUT_S
) -> aiosqlite.Connection:
    """Open (creating if needed) and migrate the database at `path` (":memory:" works).
    `busy_timeout` (seconds) is how long a statement waits for another connection's lock.
    Raises DatabaseOpenError when the file cannot be used."""
    if str(path) != ":memory:":
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseOpenError(
                f"the folder of the database {path} could not be created "
                f"({exc.strerror or exc}); check storage.database and its permissions"
            ) from exc
    try:
        db = await aiosqlite.connect(str(path), isolation_level=None)  # we manage transactions
    except sqlite3.Error as exc:
        raise _refusal(path, exc, busy_timeout) from exc
    try:
        db.row_factory = aiosqlite.Row
        await db.execute(f"PRAGMA busy_timeout={round(busy_timeout * 1000)}")
        # WAL lets readers (e.g. /queue) run while a result is being written.
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA foreign_keys=ON")
        await db.execute("PRAGMA synchronous=NORMAL")
        await migrate(db)
        # Reading the schema and taking the write lock once: a damaged schema, or a file
        # another program holds for writing, is refused now rather than at the first job.
        async with db.execute("SELECT count(*) FROM sqlite_master") as cur:
            await cur.fetchall()  # finished: an open read would make the next line fail at once
        await db.execute("BEGIN IMMEDIATE")
        await db.execute("ROLLBACK")
    except BaseException as exc:
        await db.close()  # its thread would keep the process alive
        if isinstance(exc, NewerSchemaError):
            raise DatabaseOpenError(
                f"the database {path} is at schema version {exc.version}, newer than this "
                f"bot knows ({exc.known}); upgrade the bot, or point storage.database at "
                f"another file"
            ) from exc
        if isinstance(exc, sqlite3.Error):
            raise _refusal(path, exc, busy_timeout) from exc
        raise
    return db


def _refusal(path: Path | str, exc: sqlite3.Error, busy_timeout: float) -> DatabaseOpenError:
    """SQLite's error, said for the person starting the bot."""
    code = getattr(exc, "sqlite_errorcode", -1) & 0xFF  # the primary result code
    if code in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
        return DatabaseOpenError(
            f"the database {path} is not a valid SQLite database ({exc}); move it away to "
            f"start with an empty one, or restore a backup"
        )
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return DatabaseOpenError(
            f"the database {path} is locked by another program ({exc}, for more than "
            f"{busy_timeout:g} s); close whatever holds it (another bot, a database browser "
            f"with unsaved changes) and start again"
        )
    return DatabaseOpenError(
        f"the database {path} could not be opened ({exc}); check that it is a file this "
        f"user may read and write, in a writable folder, on a disk with space left"
    )
