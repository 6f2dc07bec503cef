"""AI telephone on top of the executor: a prompt is drawn, the picture described, the
description drawn, and so on for the game's rounds.

Discord-free: the cog is the game's `Table` (it shows rounds, progress and the chain). The
game's state is its rows (bot/telephone/repository.py), and `play` reads them to decide the
next step each time, so the same code runs a new game, continues after a member's turn and
finishes a game a restart interrupted:

    round n has no picture  → an image job (TelephoneOrigin n, "image"), its id stored first
    its picture, not posted → the table posts it; the image job is delivered
    the last round posted   → the game ends; the table posts the chain and the export
    "ai" mode               → a describe job of the picture (TelephoneOrigin n+1,
                              "describe"), its id stored on round n; its first suggestion
                              that passes the checks is round n+1's text
    "players" mode          → wait: a member's description (`write`) is round n+1

The describe job's source is the image job's own PNG: it is not the describe job's input
file (`bot.images.inputs.input_path`, named by the describe job's id), so deleting or
expiring the describe job never removes it; the pictures go with their image jobs, which
retention keeps while the game is played (`bot/db/retention.py`).

Who a job counts for (the per-person limit): a round's picture, its text's writer (the
starter for the prompt and every "ai" round); a description, the starter.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol

from bot.config import Settings
from bot.db.jobs import JobRecord, JobRepository
from bot.executor.executor import Refused
from bot.executor.handle import JobHandle
from bot.executor.jobs import DescribeParams, Job, JobState, TelephoneOrigin
from bot.images.lifecycle import ImageJobs
from bot.images.requests import ImageOptions, OptionError, random_seed
from bot.prompts import PromptError, clean_prompt
from bot.story.models import Author
from bot.telephone.models import Game, GameState, Mode, Round
from bot.telephone.repository import TelephoneRepository

log = logging.getLogger(__name__)

IMAGE, DESCRIBE = "image", "describe"


class TelephoneError(Exception):
    """Something can't be done; `reason` is meant for the member who asked."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Table(Protocol):
    """Where a game is shown (the cog). Each call is told the game as it now stands."""

    def follow(self, game: Game, number: int, step: str, handle: JobHandle) -> None:
        """Show a job of round `number` (queued, progress) while the game waits for it."""

    async def waiting(self, game: Game, number: int) -> None:
        """Players mode: round `number` waits for a member to describe the picture before."""

    async def notice(self, game: Game, text: str) -> None:
        """Tell everyone at the table something (a description given back)."""

    async def post_round(self, game: Game, round_: Round) -> int | str:
        """Post a round (its picture, text and writer): the message id, or why not."""

    async def post_chain(self, game: Game, rounds: Sequence[Round]) -> int | str:
        """Post the chain and the export of a game that is over: the message id, or why not."""


def is_telephone_job(job: Job) -> bool:
    return isinstance(job.origin, TelephoneOrigin)


class Telephone:
    def __init__(self, games: TelephoneRepository, images: ImageJobs, jobs: JobRepository,
                 settings: Settings) -> None:
        self.games = games
        self.images = images
        self.jobs = jobs
        self.settings = settings
        self._handles: dict[str, JobHandle] = {}  # the game jobs this process can wait on
        self._locks: dict[int, asyncio.Lock] = {}  # one `play` at a time per game

    # ----- requests -------------------------------------------------------------------------

    def check_text(self, text: str, *, nsfw_allowed: bool, what: str = "prompt") -> str:
        """A prompt or description, cleaned and checked as /imagine checks a prompt (length,
        blocked terms, NSFW terms where they are not allowed); raises TelephoneError."""
        cleaned = clean_prompt(text)
        if not cleaned:
            raise TelephoneError(f"The {what} is empty: write what the picture should show.")
        try:
            params = self.images.request(ImageOptions(prompt=cleaned, count=1))
        except (OptionError, PromptError) as exc:
            raise TelephoneError(str(exc)) from exc
        refusal = self.images.refusal(params, nsfw_allowed=nsfw_allowed)
        if refusal:
            raise TelephoneError(refusal.replace("Your prompt", f"The {what}"))
        return cleaned

    def check_room(self, user_id: int) -> None:
        if self.images.room_for(user_id) < 1:
            raise TelephoneError(
                f"You can't queue more now: the limit is {self.settings.executor.per_user_limit}"
                " per person, queued or running. Wait for one to finish or /cancel one.")

    async def start(self, *, prompt: str, rounds: int, mode: Mode, author: Author,
                    guild_id: int | None, channel_id: int, nsfw: bool,
                    upload_limit: int) -> Game:
        """A new game (prompt already checked with `check_text`); `play` draws it."""
        self.check_room(author.id)
        return await self.games.create(guild_id=guild_id, channel_id=channel_id,
                                       started_by=author, mode=mode, rounds=rounds, nsfw=nsfw,
                                       upload_limit=upload_limit, prompt=prompt)

    async def writable(self, game_id: int, number: int, user_id: int) -> Game:
        """The game in which the member may write round `number` now (players mode);
        raises TelephoneError saying why not."""
        game = await self.games.get(game_id)
        if game is None:
            raise TelephoneError("This telephone game no longer exists.")
        if game.state.over:
            raise TelephoneError("This telephone game is over; start another with /telephone.")
        if game.mode is not Mode.PLAYERS:
            raise TelephoneError("In this game the caption model describes the pictures.")
        taken = await self.games.round(game_id, number)
        if taken is not None:
            raise TelephoneError(f"Round {number} was already written by {taken.author.name}"
                                 " — someone was quicker. Wait for its picture and describe "
                                 "that one.")
        before = await self.games.round(game_id, number - 1)
        # The previous picture must exist; not its post's id: the button is on that post,
        # which members see a moment before its id is stored (and a restart re-stores it).
        if before is None or before.image_path is None or number > game.rounds:
            raise TelephoneError(f"Round {number} can't be written yet.")
        if before.author.id == user_id and not before.by_model:
            raise TelephoneError(f"You wrote round {number - 1}, so someone else describes its"
                                 " picture: nobody writes two rounds in a row.")
        return game

    async def write(self, game_id: int, number: int, text: str, author: Author) -> Round:
        """A member's description as round `number`, first come first served; raises
        TelephoneError (the round was taken meanwhile, the text is refused, the limit)."""
        game = await self.writable(game_id, number, author.id)
        cleaned = self.check_text(text, nsfw_allowed=game.nsfw, what="description")
        self.check_room(author.id)
        if not await self.games.add_round(game_id, number, cleaned, author):
            await self.writable(game_id, number, author.id)  # says who took it
            raise TelephoneError(f"Round {number} was already written.")
        written = await self.games.round(game_id, number)
        assert written is not None
        return written

    # ----- after a restart ------------------------------------------------------------------

    async def adopt(self, handles: Sequence[JobHandle], owed: Sequence[JobRecord]) -> None:
        """Jobs a restart brought back (queued or running) or left rendered and unposted:
        waited on, and their ids stored where a crash came before that."""
        for handle in handles:
            self._handles[handle.job.id] = handle
        for job in [h.job for h in handles] + [r.job for r in owed]:
            origin = job.origin
            assert isinstance(origin, TelephoneOrigin)
            if origin.step == IMAGE:
                round_ = await self.games.round(origin.game_id, origin.round)
                if round_ is not None and round_.image_job_id is None:
                    await self.games.set_image_job(origin.game_id, origin.round, job.id)
            else:
                round_ = await self.games.round(origin.game_id, origin.round - 1)
                if round_ is not None and round_.describe_job_id is None:
                    await self.games.set_describe_job(origin.game_id, origin.round - 1, job.id)

    async def unfinished(self) -> list[Game]:
        return await self.games.unfinished()

    # ----- playing --------------------------------------------------------------------------

    async def play(self, game_id: int, table: Table) -> None:
        """Drive the game from its stored state until it waits for a member or is over and
        its chain is posted. Safe to call again at any time (one runs per game at once)."""
        lock = self._locks.setdefault(game_id, asyncio.Lock())
        async with lock:
            while await self._step(game_id, table):
                pass

    async def _step(self, game_id: int, table: Table) -> bool:
        """Do the game's next step; False when there is nothing more to do for now."""
        game = await self.games.get(game_id)
        if game is None:
            return False
        if game.state.over:
            if game.chain_owed:
                await self._post_chain(game, table)
            return False
        rounds = await self.games.rounds(game_id)
        if not rounds:
            return await self._stop(game, "Its prompt was lost.")
        last = rounds[-1]
        if not last.settled:
            return await self._draw(game, last, table)
        if last.image_error is not None:
            return await self._stop(game, f"Round {last.number}'s picture could not be made: "
                                    f"{last.image_error}")
        if last.message_id is None:
            return await self._post_round(game, last, table)
        if last.number >= game.rounds:
            await self.games.end(game.id, GameState.ENDED)
            return True
        if game.mode is Mode.AI:
            return await self._describe(game, last, table)
        await table.waiting(game, last.number + 1)
        return False

    async def _draw(self, game: Game, round_: Round, table: Table) -> bool:
        job_id = round_.image_job_id
        if job_id is None:
            try:
                params = self.images.request(ImageOptions(prompt=round_.text, count=1))
            except (OptionError, PromptError) as exc:
                await self.games.set_image_error(game.id, round_.number, str(exc))
                return True
            job = Job(user_id=round_.author.id, user_name=round_.author.name, params=params,
                      origin=self._origin(game, round_.number, IMAGE))
            queued = await self._submit(game, round_, job, table)
            if not isinstance(queued, JobHandle):
                return queued
            await self.games.set_image_job(game.id, round_.number, job.id)
            job_id = job.id
        record = await self._outcome(game, round_.number, IMAGE, job_id, table)
        if record is None:  # lost in a crash before its row was written: ask again
            await self.games.set_image_job(game.id, round_.number, None)
            return True
        if record.state.has_result and record.images:
            picture = record.images[0]
            await self.games.set_image(game.id, round_.number, picture.path, nsfw=picture.nsfw)
        else:
            await self.games.set_image_error(game.id, round_.number, _why(record))
        return True

    async def _submit(self, game: Game, round_: Round, job: Job,
                      table: Table) -> JobHandle | bool:
        """Queue a game's job. Refused: True once what that means is recorded (play goes
        on), False for a clean stop (nothing recorded: the next start asks again)."""
        try:
            handle = await self.images.submit(job)
        except Refused as exc:
            if exc.restarting:
                return False
            origin = job.origin
            assert isinstance(origin, TelephoneOrigin)
            if origin.step == IMAGE and round_.number > 1 and game.mode is Mode.PLAYERS:
                # The member may try again, or someone else: the round is open again.
                await self.games.delete_round(game.id, round_.number)
                await table.notice(game, f"⚠️ {round_.author.name}'s description could not be "
                                   f"drawn ({exc.reason}); round {round_.number} is open again.")
            elif origin.step == IMAGE:
                await self.games.set_image_error(game.id, round_.number, exc.reason)
            else:
                await self._stop(game, f"Round {round_.number}'s picture could not be "
                                 f"described: {exc.reason}")
            return True
        self._handles[job.id] = handle
        return handle

    async def _outcome(self, game: Game, number: int, step: str, job_id: str,
                       table: Table) -> JobRecord | None:
        """A game job's record once it is finished (waited on while this process runs it);
        None when its row is gone (lost in a crash before it was written)."""
        handle = self._handles.get(job_id)
        if handle is None:
            record = await self.jobs.get(job_id)
            if record is None or record.state.finished:
                return record
            # Not running here (a job this process never adopted): it can't finish.
            return None
        table.follow(game, number, step, handle)
        stored = await handle.stored()
        self._handles.pop(job_id, None)
        return stored if isinstance(stored, JobRecord) else await self.jobs.get(job_id)

    async def _post_round(self, game: Game, round_: Round, table: Table) -> bool:
        posted = await table.post_round(game, round_)
        if isinstance(posted, str):
            if round_.image_job_id:
                await self.jobs.mark_undeliverable(round_.image_job_id, posted)
            return await self._stop(game, f"Round {round_.number} could not be posted "
                                    f"({posted}).")
        await self.games.set_message(game.id, round_.number, posted)
        if round_.image_job_id:
            await self.jobs.mark_delivered(round_.image_job_id, game.channel_id, posted)
        return True

    async def _describe(self, game: Game, last: Round, table: Table) -> bool:
        """The caption model describes round `last`'s picture: round last+1's text."""
        job_id = last.describe_job_id
        if job_id is None:
            assert last.image_path is not None
            describe = self.settings.describe
            job = Job(user_id=game.started_by.id, user_name=game.started_by.name,
                      params=DescribeParams(source_path=str(last.image_path),
                                            count=describe.suggestions,
                                            max_new_tokens=describe.max_new_tokens,
                                            seed=random_seed()),
                      origin=self._origin(game, last.number + 1, DESCRIBE))
            queued = await self._submit(game, last, job, table)
            if not isinstance(queued, JobHandle):
                return queued
            await self.games.set_describe_job(game.id, last.number, job.id)
            job_id = job.id
        record = await self._outcome(game, last.number + 1, DESCRIBE, job_id, table)
        if record is None:  # lost in a crash: describe it again
            await self.games.set_describe_job(game.id, last.number, None)
            return True
        if not record.state.has_result:
            return await self._stop(game, f"Round {last.number}'s picture could not be "
                                    f"described: {_why(record)}")
        text = self._first_allowed(record, game)
        if text is None:
            await self.jobs.mark_undeliverable(job_id, "every description was refused")
            return await self._stop(game, f"Every description of round {last.number}'s "
                                    "picture was refused (blocked terms).")
        model = record.model or self.settings.describe.model
        await self.games.add_round(game.id, last.number + 1, text, game.started_by,
                                   model=model, text_job_id=job_id)
        assert last.message_id is not None
        await self.jobs.mark_delivered(job_id, game.channel_id, last.message_id)
        return True

    def _first_allowed(self, record: JobRecord, game: Game) -> str | None:
        """The first suggestion (the plain caption comes first) that passes the checks."""
        for line in (record.result_text or "").splitlines():
            try:
                return self.check_text(line, nsfw_allowed=game.nsfw, what="description")
            except TelephoneError:
                continue
        return None

    async def _stop(self, game: Game, reason: str) -> bool:
        log.info("telephone game %d stopped: %s", game.id, reason)
        await self.games.end(game.id, GameState.STOPPED, reason)
        return True

    async def _post_chain(self, game: Game, table: Table) -> None:
        posted = await table.post_chain(game, await self.games.rounds(game.id))
        if isinstance(posted, str):
            await self.games.set_chain(game.id, None, posted)
        else:
            await self.games.set_chain(game.id, posted)
        self._locks.pop(game.id, None)

    @staticmethod
    def _origin(game: Game, number: int, step: str) -> TelephoneOrigin:
        return TelephoneOrigin(game_id=game.id, round=number, step=step,
                               guild_id=game.guild_id, channel_id=game.channel_id)


def _why(record: JobRecord) -> str:
    if record.reason:
        return record.reason
    return "it was cancelled." if record.state is JobState.CANCELLED else "it failed."
