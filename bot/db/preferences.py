"""Members' and servers' /imagine defaults (/settings), and servers' limits, in SQLite.

A member's defaults are one row for every server (as Midjourney keeps them); a server's row
holds its defaults for everyone and the limits its moderators set. Every field is optional:
NULL means "not set", so the next layer (the server's, then the config's) applies. Values
are stored as given; whether one is still valid (a style or model removed from the config)
is decided when it is used (bot.images.preferences), so nothing here blocks /imagine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from typing import Any

import aiosqlite

Value = str | int | bool | None


@dataclass(frozen=True)
class ImagePreferences:
    """Defaults for /imagine options; None: not set."""

    style: str | None = None
    model: str | None = None
    aspect: str | None = None
    count: int | None = None
    steps: int | None = None
    negative: str | None = None
    private: bool | None = None  # results only the member sees (ephemeral)

    @property
    def is_empty(self) -> bool:
        return all(getattr(self, f) is None for f in DEFAULT_FIELDS)


@dataclass(frozen=True)
class GuildLimits:
    """What a server's moderators allow: None (and True) mean no limit beyond the config's."""

    max_steps: int | None = None
    max_count: int | None = None
    allow_private: bool = True


@dataclass(frozen=True)
class GuildPreferences:
    defaults: ImagePreferences = ImagePreferences()
    limits: GuildLimits = GuildLimits()


DEFAULT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(ImagePreferences))
LIMIT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(GuildLimits))
_BOOLS = {"private", "allow_private"}


def _from_row(names: tuple[str, ...], row: Any) -> dict[str, Value]:
    out: dict[str, Value] = {}
    for name, value in zip(names, row, strict=True):
        out[name] = bool(value) if name in _BOOLS and value is not None else value
    return out


def _to_column(name: str, value: Value) -> Value:
    return int(value) if name in _BOOLS and value is not None else value


class PreferenceRepository:
    """Typed reads and per-field writes of `member_settings` and `guild_settings`.

    Column names only ever come from the dataclass fields above (checked), never from a
    caller's text, so they are safe to put into the SQL."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    # ----- a member's defaults ---------------------------------------------------------------

    async def member(self, user_id: int) -> ImagePreferences:
        columns = ", ".join(DEFAULT_FIELDS)
        async with self.db.execute(
                f"SELECT {columns} FROM member_settings WHERE user_id = ?",
                (user_id,)) as cur:
            row = await cur.fetchone()
        if row is None:
            return ImagePreferences()
        return ImagePreferences(**_from_row(DEFAULT_FIELDS, row))  # type: ignore[arg-type]

    async def set_member(self, user_id: int, field: str, value: Value) -> ImagePreferences:
        """Store one default (None clears it); returns the member's defaults now."""
        _check(field, DEFAULT_FIELDS)
        await self._upsert("member_settings", "user_id", user_id, field, value)
        return await self.member(user_id)

    async def clear_member(self, user_id: int, field: str) -> ImagePreferences:
        return await self.set_member(user_id, field, None)

    async def reset_member(self, user_id: int) -> None:
        await self.db.execute("DELETE FROM member_settings WHERE user_id = ?", (user_id,))

    # ----- a server's defaults and limits ----------------------------------------------------

    async def guild(self, guild_id: int) -> GuildPreferences:
        names = DEFAULT_FIELDS + LIMIT_FIELDS
        async with self.db.execute(
                f"SELECT {', '.join(names)} FROM guild_settings WHERE guild_id = ?",
                (guild_id,)) as cur:
            row = await cur.fetchone()
        if row is None:
            return GuildPreferences()
        values = _from_row(names, row)
        limits = {k: values.pop(k) for k in LIMIT_FIELDS}
        if limits["allow_private"] is None:
            limits["allow_private"] = True
        return GuildPreferences(ImagePreferences(**values),  # type: ignore[arg-type]
                                GuildLimits(**limits))  # type: ignore[arg-type]

    async def set_guild(self, guild_id: int, field: str, value: Value) -> GuildPreferences:
        """Store one default or limit (None clears it); returns the server's row now."""
        _check(field, DEFAULT_FIELDS + LIMIT_FIELDS)
        await self._upsert("guild_settings", "guild_id", guild_id, field, value)
        return await self.guild(guild_id)

    async def clear_guild(self, guild_id: int, field: str) -> GuildPreferences:
        return await self.set_guild(guild_id, field, None)

    async def reset_guild(self, guild_id: int) -> None:
        await self.db.execute("DELETE FROM guild_settings WHERE guild_id = ?", (guild_id,))

    async def _upsert(self, table: str, key: str, key_value: int, field: str,
                      value: Value) -> None:
        await self.db.execute(
            f"INSERT INTO {table} ({key}, {field}, updated_at) VALUES (?, ?, ?) "
            f"ON CONFLICT({key}) DO UPDATE SET {field} = excluded.{field}, "
            "updated_at = excluded.updated_at",
            (key_value, _to_column(field, value), time.time()))


def _check(field: str, allowed: tuple[str, ...]) -> None:
    if field not in allowed:
        raise ValueError(f"{field!r} is not a setting; the settings are {', '.join(allowed)}")

