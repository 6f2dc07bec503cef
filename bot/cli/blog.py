"""`python -m bot blog DIR`: the finished stories in the bot's database as a static blog.

It only reads, and may run while the bot is up: the database is opened read-only and the
bot's lock (`bot/db/lock.py`, one bot per database) is not taken, so neither stops the
other. WAL lets a reader see the last committed state without blocking the bot's writes;
a story that ends meanwhile is in the next run. The schema must be this bot's own (no
migration runs here: that is the bot's job, and it writes).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path
from urllib.parse import quote

import aiosqlite

from bot.config import Settings
from bot.db.connection import BUSY_TIMEOUT_S
from bot.db.migrations import MIGRATIONS, schema_version
from bot.story.blog import Site, publish_blog
from bot.story.repository import StoryRepository


class CannotRead(Exception):
    """The database cannot be read for the blog; the message says why and what to do."""


async def write_blog(settings: Settings, args: argparse.Namespace) -> int:
    base_url = args.base_url or ""
    if base_url and not base_url.startswith(("http://", "https://")):
        print(f"error: --base-url {base_url}: must start with http:// or https://",
              file=sys.stderr)
        return 2
    database = settings.storage.database
    try:
        db = await open_read_only(database)
    except CannotRead as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        scope = "all" if args.guild is None else f"guild/{args.guild}"
        site = Site(settings.blog.title, base_url, scope=scope)
        published = await publish_blog(StoryRepository(db), Path(args.dir), site, args.guild)
    except sqlite3.Error as exc:
        print(f"error: reading {database} failed ({exc})", file=sys.stderr)
        return 1
    finally:
        await db.close()
    count = published.stories
    print(f"{count} {'story' if count == 1 else 'stories'} published: {published.index}")
    if base_url:
        print(f"served at {published.url}")
    return 0


async def open_read_only(path: Path) -> aiosqlite.Connection:
    """The database at `path` for reading only, or CannotRead saying why not."""
    try:
        db = await aiosqlite.connect(_read_only_uri(path), uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise CannotRead(f"the database {path} could not be opened ({exc})") from exc
    try:
        db.row_factory = aiosqlite.Row
        await db.execute(f"PRAGMA busy_timeout={round(BUSY_TIMEOUT_S * 1000)}")
        version = await schema_version(db)
    except sqlite3.Error as exc:
        await db.close()
        raise CannotRead(f"the database {path} could not be read ({exc}); is it a "
                         "Greenheart database?") from exc
    if version != len(MIGRATIONS):
        await db.close()
        which = "newer" if version > len(MIGRATIONS) else "older"
        advice = ("upgrade this copy of the bot" if which == "newer"
                  else "start the bot once, which upgrades it")
        raise CannotRead(f"the database {path} is at schema version {version}, {which} than "
                         f"this bot's ({len(MIGRATIONS)}); {advice}")
    return db


def _read_only_uri(path: Path) -> str:
    """SQLite's URI for `path`, read-only: a missing file is an error, not a new database."""
    if not path.is_file():
        raise CannotRead(f"there is no database at {path}; check storage.database (or "
                         "--config), or start the bot once to create it")
    return f"file:{quote(str(path.resolve()))}?mode=ro"
