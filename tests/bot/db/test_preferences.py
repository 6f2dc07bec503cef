"""PreferenceRepository: members' and servers' /imagine defaults and servers' limits, per
field, on a real SQLite file; what is stored survives reopening."""

from __future__ import annotations

from pathlib import Path

import aiosqlite
import pytest

from bot.db.connection import open_database
from bot.db.preferences import (
    GuildLimits,
    GuildPreferences,
    ImagePreferences,
    PreferenceRepository,
)


async def test_nothing_stored_reads_as_nothing_set(db: aiosqlite.Connection) -> None:
    repo = PreferenceRepository(db)
    assert await repo.member(1) == ImagePreferences()
    assert (await repo.member(1)).is_empty
    assert await repo.guild(9) == GuildPreferences()
    assert (await repo.guild(9)).limits.allow_private is True


async def test_member_fields_are_set_one_at_a_time_and_typed(db: aiosqlite.Connection) -> None:
    repo = PreferenceRepository(db)
    await repo.set_member(1, "style", "watercolor")
    await repo.set_member(1, "count", 2)
    now = await repo.set_member(1, "private", True)
    assert now == ImagePreferences(style="watercolor", count=2, private=True)
    assert isinstance(now.private, bool)
    assert not now.is_empty
    # Another member's row is their own.
    assert await repo.member(2) == ImagePreferences()
    await repo.set_member(2, "private", False)
    assert (await repo.member(2)).private is False


async def test_clearing_a_field_and_resetting_everything(db: aiosqlite.Connection) -> None:
    repo = PreferenceRepository(db)
    for field, value in (("style", "fantasy"), ("steps", 12), ("negative", "fog")):
        await repo.set_member(1, field, value)
    assert await repo.clear_member(1, "steps") == ImagePreferences(style="fantasy",
                                                                   negative="fog")
    await repo.reset_member(1)
    assert await repo.member(1) == ImagePreferences()


async def test_guild_defaults_and_limits(db: aiosqlite.Connection) -> None:
    repo = PreferenceRepository(db)
    await repo.set_guild(9, "aspect", "16:9")
    await repo.set_guild(9, "max_steps", 30)
    now = await repo.set_guild(9, "allow_private", False)
    assert now == GuildPreferences(ImagePreferences(aspect="16:9"),
                                   GuildLimits(max_steps=30, allow_private=False))
    assert (await repo.clear_guild(9, "allow_private")).limits.allow_private is True
    await repo.reset_guild(9)
    assert await repo.guild(9) == GuildPreferences()


async def test_an_unknown_field_is_refused_before_any_sql(db: aiosqlite.Connection) -> None:
    repo = PreferenceRepository(db)
    with pytest.raises(ValueError, match="'user_id; DROP' is not a setting"):
        await repo.set_member(1, "user_id; DROP", 1)
    with pytest.raises(ValueError, match="not a setting"):
        await repo.set_member(1, "max_steps", 3)  # a limit is a server's, not a member's
    assert await repo.member(1) == ImagePreferences()


async def test_stored_values_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    db = await open_database(path)
    try:
        await PreferenceRepository(db).set_member(1, "model", "tiny")
        await PreferenceRepository(db).set_guild(9, "max_count", 2)
    finally:
        await db.close()
    db = await open_database(path)
    try:
        assert (await PreferenceRepository(db).member(1)).model == "tiny"
        assert (await PreferenceRepository(db).guild(9)).limits.max_count == 2
    finally:
        await db.close()
