"""Telephone games and their rounds in SQLite. Every state change is one statement
(autocommit), and the ones that may race (two members taking the same round, a game ending
twice) say in their WHERE clause what they expect, so only the first one counts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiosqlite

from bot.story.models import Author
from bot.telephone.models import Game, GameState, Mode, Round


class TelephoneRepository:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    # ----- games ------------------------------------------------------------------------------

    async def create(self, *, guild_id: int | None, channel_id: int, started_by: Author,
                     mode: Mode, rounds: int, nsfw: bool, upload_limit: int,
                     prompt: str) -> Game:
        """A new game with its prompt as round 1 (two statements: a crash between leaves a
        game without rounds, which `playing` skips and a resume stops)."""
        now = time.time()
        cur = await self.db.execute(
            "INSERT INTO telephone_games (guild_id, channel_id, started_by, started_by_name,"
            " mode, rounds, state, nsfw, upload_limit, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (guild_id, channel_id, started_by.id, started_by.name, mode.value, rounds,
             GameState.PLAYING.value, int(nsfw), upload_limit, now))
        game_id = cur.lastrowid
        assert game_id is not None
        await self.add_round(game_id, 1, prompt, started_by)
        game = await self.get(game_id)
        assert game is not None
        return game

    async def get(self, game_id: int) -> Game | None:
        async with self.db.execute("SELECT * FROM telephone_games WHERE id = ?",
                                   (game_id,)) as cur:
            row = await cur.fetchone()
        return _game(row) if row is not None else None

    async def unfinished(self) -> list[Game]:
        """Games still being played, and games over whose chain is still owed."""
        async with self.db.execute(
            "SELECT * FROM telephone_games WHERE state = ? OR"
            " (chain_message_id IS NULL AND chain_error IS NULL) ORDER BY id",
            (GameState.PLAYING.value,)) as cur:
            return [_game(row) for row in await cur.fetchall()]

    async def set_status_message(self, game_id: int, message_id: int) -> None:
        await self._update_game(game_id, status_message_id=message_id)

    async def end(self, game_id: int, state: GameState, reason: str | None = None) -> bool:
        """The game is over (all rounds played, or stopped); False if it was already."""
        cur = await self.db.execute(
            "UPDATE telephone_games SET state = ?, reason = ?, ended_at = ?"
            " WHERE id = ? AND state = ?",
            (state.value, reason, time.time(), game_id, GameState.PLAYING.value))
        return cur.rowcount == 1

    async def set_chain(self, game_id: int, message_id: int | None,
                        error: str | None = None) -> None:
        """The chain's post, or why it could not be posted (then it is not tried again)."""
        await self._update_game(game_id, chain_message_id=message_id, chain_error=error)

    # ----- rounds -----------------------------------------------------------------------------

    async def add_round(self, game_id: int, number: int, text: str, author: Author, *,
                        model: str | None = None, text_job_id: str | None = None) -> bool:
        """Write round `number`; False when someone wrote it first."""
        cur = await self.db.execute(
            "INSERT OR IGNORE INTO telephone_rounds (game_id, round, text, author_id,"
            " author_name, model, text_job_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (game_id, number, text, author.id, author.name, model, text_job_id, time.time()))
        return cur.rowcount == 1

    async def delete_round(self, game_id: int, number: int) -> None:
        """Give a round back (its picture could not even be queued)."""
        await self.db.execute("DELETE FROM telephone_rounds WHERE game_id = ? AND round = ?",
                              (game_id, number))

    async def rounds(self, game_id: int) -> list[Round]:
        async with self.db.execute(
            "SELECT * FROM telephone_rounds WHERE game_id = ? ORDER BY round",
            (game_id,)) as cur:
            return [_round(row) for row in await cur.fetchall()]

    async def round(self, game_id: int, number: int) -> Round | None:
        async with self.db.execute(
            "SELECT * FROM telephone_rounds WHERE game_id = ? AND round = ?",
            (game_id, number)) as cur:
            row = await cur.fetchone()
        return _round(row) if row is not None else None

    async def set_image_job(self, game_id: int, number: int, job_id: str | None) -> None:
        await self._update_round(game_id, number, image_job_id=job_id)

    async def set_image(self, game_id: int, number: int, path: Path, *, nsfw: bool) -> None:
        await self._update_round(game_id, number, image_path=str(path), image_nsfw=int(nsfw))

    async def set_image_error(self, game_id: int, number: int, reason: str) -> None:
        await self._update_round(game_id, number, image_error=reason)

    async def set_describe_job(self, game_id: int, number: int, job_id: str | None) -> None:
        await self._update_round(game_id, number, describe_job_id=job_id)

    async def set_message(self, game_id: int, number: int, message_id: int) -> None:
        await self._update_round(game_id, number, message_id=message_id)

    # ----- helpers ----------------------------------------------------------------------------

    async def _update_game(self, game_id: int, **values: Any) -> None:
        sets = ", ".join(f"{name} = ?" for name in values)
        await self.db.execute(f"UPDATE telephone_games SET {sets} WHERE id = ?",
                              (*values.values(), game_id))

    async def _update_round(self, game_id: int, number: int, **values: Any) -> None:
        sets = ", ".join(f"{name} = ?" for name in values)
        await self.db.execute(
            f"UPDATE telephone_rounds SET {sets} WHERE game_id = ? AND round = ?",
            (*values.values(), game_id, number))


def _game(row: aiosqlite.Row) -> Game:
    return Game(
        id=row["id"], guild_id=row["guild_id"], channel_id=row["channel_id"],
        started_by=Author(row["started_by"], row["started_by_name"]), mode=Mode(row["mode"]),
        rounds=row["rounds"], state=GameState(row["state"]), nsfw=bool(row["nsfw"]),
        upload_limit=row["upload_limit"], created_at=row["created_at"], reason=row["reason"],
        status_message_id=row["status_message_id"],
        chain_message_id=row["chain_message_id"], chain_error=row["chain_error"],
        ended_at=row["ended_at"])


def _round(row: aiosqlite.Row) -> Round:
    return Round(
        game_id=row["game_id"], number=row["round"], text=row["text"],
        author=Author(row["author_id"], row["author_name"]), created_at=row["created_at"],
        model=row["model"], text_job_id=row["text_job_id"],
        image_job_id=row["image_job_id"],
        image_path=Path(row["image_path"]) if row["image_path"] else None,
        image_nsfw=bool(row["image_nsfw"]), image_error=row["image_error"],
        describe_job_id=row["describe_job_id"], message_id=row["message_id"])
