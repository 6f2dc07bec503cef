"""TelephoneRepository on a real SQLite file: a game with its prompt as round 1, first come
first served rounds, a game that ends once, and which games a restart must go on with."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from bot.db.connection import open_database
from bot.story.models import Author
from bot.telephone import GameState, Mode, TelephoneRepository

ALICE, BOB = Author(1, "alice"), Author(2, "bob")


@pytest.fixture
async def games(tmp_path: Path) -> AsyncIterator[TelephoneRepository]:
    db: aiosqlite.Connection = await open_database(tmp_path / "bot.db")
    try:
        yield TelephoneRepository(db)
    finally:
        await db.close()


async def new_game(games: TelephoneRepository, mode: Mode = Mode.PLAYERS):
    return await games.create(guild_id=5, channel_id=6, started_by=ALICE, mode=mode,
                              rounds=3, nsfw=True, upload_limit=1000, prompt="a fox")


async def test_a_game_starts_with_its_prompt_as_round_1(games: TelephoneRepository) -> None:
    game = await new_game(games)
    assert (game.mode, game.rounds, game.state, game.nsfw) == (Mode.PLAYERS, 3,
                                                                GameState.PLAYING, True)
    [first] = await games.rounds(game.id)
    assert (first.number, first.text, first.author, first.by_model) == (1, "a fox", ALICE,
                                                                         False)
    assert first.writer == "alice" and not first.settled


async def test_the_first_writer_of_a_round_keeps_it(games: TelephoneRepository) -> None:
    game = await new_game(games)
    assert await games.add_round(game.id, 2, "a red fox", BOB)
    assert not await games.add_round(game.id, 2, "a dog", ALICE)
    taken = await games.round(game.id, 2)
    assert taken is not None and (taken.text, taken.author) == ("a red fox", BOB)
    await games.delete_round(game.id, 2)
    assert await games.add_round(game.id, 2, "a dog", ALICE, model="org/blip-large",
                                 text_job_id="abc123")
    again = await games.round(game.id, 2)
    assert again is not None and again.by_model and again.writer == "blip-large"


async def test_a_game_ends_once_and_its_chain_is_owed_until_posted(
        games: TelephoneRepository) -> None:
    playing, ended, failed = [await new_game(games) for _ in range(3)]
    assert await games.end(ended.id, GameState.ENDED)
    assert not await games.end(ended.id, GameState.STOPPED, "late"), "ended once"
    assert await games.end(failed.id, GameState.STOPPED, "no picture")
    assert [g.id for g in await games.unfinished()] == [playing.id, ended.id, failed.id]
    await games.set_chain(ended.id, 77)
    await games.set_chain(failed.id, None, "the channel is gone")
    assert [g.id for g in await games.unfinished()] == [playing.id]
    stopped = await games.get(failed.id)
    assert stopped is not None and stopped.reason == "no picture" and not stopped.chain_owed


async def test_a_rounds_picture_and_post(games: TelephoneRepository, tmp_path: Path) -> None:
    game = await new_game(games)
    await games.set_image_job(game.id, 1, "job1")
    await games.set_image(game.id, 1, tmp_path / "0.png", nsfw=True)
    await games.set_describe_job(game.id, 1, "job2")
    await games.set_message(game.id, 1, 88)
    [first] = await games.rounds(game.id)
    assert (first.image_job_id, first.image_path, first.image_nsfw, first.describe_job_id,
            first.message_id) == ("job1", tmp_path / "0.png", True, "job2", 88)
    assert first.settled
