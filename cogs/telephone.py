"""/telephone prompt [rounds] [mode]: AI telephone. The prompt is drawn, the picture
described, the description drawn, and so on (bot/telephone/game.py plays it); this cog is
the game's table: the command's reply is the game's status, each round is posted as it is
drawn, and the end posts the whole chain side by side with the story-style export.

In "players" mode each round's post has ✍️ Describe it: it opens a form whose custom_id
names the game and the round, and its submit is taken from the interaction itself (as the
Remix form's), so a form opened before a restart still works. First come first served; the
writer of a round can't describe its picture (nobody writes two rounds in a row), and who
presses too late is told who was quicker. Posts carry nonces from the game and round.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import time
from collections.abc import Awaitable, Sequence
from typing import Any, Literal, Self

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import GreenheartBot, PartKey
from bot.executor.handle import JobHandle
from bot.executor.jobs import ImageParams, Progress, Queued, Started
from bot.images.upload import fit_under
from bot.story.models import Author
from bot.story.requests import shorten
from bot.telephone import (
    DEFAULT_ROUNDS,
    MAX_ROUNDS,
    MIN_ROUNDS,
    Game,
    GameState,
    Mode,
    Round,
    Telephone,
    TelephoneError,
    TelephoneRepository,
    is_telephone_job,
)
from bot.telephone.chain import chain_png
from bot.telephone.export import export_files
from cogs.common import bot_of, is_nsfw, upload_limit
from cogs.delivery import DeliveryFailed, deliver
from cogs.imagine.buttons import form_values
from cogs.imagine.status import (
    EditPacer,
    StatusMessage,
    ThrottledEditor,
    progress_text,
    queued_text,
)

log = logging.getLogger(__name__)

NO_PINGS = discord.AllowedMentions.none()
TABLE: PartKey[TelephoneTable] = PartKey("telephone table")
WRITE_FORM = re.compile(r"gh:telw:(?P<game>[0-9]{1,18}):(?P<round>[0-9]{1,2})")
TEXT_FIELD = "text"
SHOWN_CHARS = 300  # of a round's text in a status line


def author_of(user: discord.abc.User) -> Author:
    return Author(user.id, getattr(user, "display_name", None) or user.name)


class DescribeIt(discord.ui.DynamicItem[discord.ui.Button[Any]],
                 template=r"gh:tel:(?P<game>[0-9]{1,18}):(?P<round>[0-9]{1,2})"):
    """✍️ Describe it, under the picture of round `round - 1`: write round `round`. Shown
    disabled, naming the writer, once someone took the round."""

    def __init__(self, game_id: int, number: int, taken_by: str | None = None) -> None:
        label = (f"Round {number}: {taken_by[:40]} describes it" if taken_by
                 else "Describe it")
        super().__init__(discord.ui.Button(
            emoji="✍️", label=label, style=discord.ButtonStyle.primary,
            disabled=taken_by is not None, custom_id=f"gh:tel:{game_id}:{number}"))
        self.game_id, self.number = game_id, number

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction[Any],
                             item: discord.ui.Item[Any], match: re.Match[str], /) -> Self:
        return cls(int(match["game"]), int(match["round"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        bot = bot_of(interaction)
        try:
            await bot.part(TABLE).describe_pressed(interaction, self.game_id, self.number)
        except Exception as exc:
            await bot.report_interaction_error(interaction, exc)


class WriteForm(discord.ui.Modal):
    """The description form. Its submit is taken by the cog from the interaction (not by
    this object, which a restart forgets)."""

    def __init__(self, game_id: int, number: int, max_chars: int) -> None:
        super().__init__(title=f"✍️ Round {number}: describe the picture",
                         custom_id=f"gh:telw:{game_id}:{number}", timeout=None)
        self.add_item(discord.ui.TextInput(
            label="What does the picture show?", custom_id=TEXT_FIELD,
            style=discord.TextStyle.paragraph, max_length=min(4000, max_chars),
            placeholder="Your description is drawn next, as a prompt"))


def view_of(game: Game, round_: Round, taken_by: str | None = None) -> discord.ui.View | None:
    """A players-mode round's button for the next round (none after the last)."""
    if game.mode is not Mode.PLAYERS or round_.number >= game.rounds:
        return None
    view = discord.ui.View(timeout=None)
    view.add_item(DescribeIt(game.id, round_.number + 1, taken_by))
    return view


def round_content(game: Game, round_: Round) -> str:
    if round_.number == 1:
        by = f"the prompt, by **{_md(round_.author.name)}**"
    elif round_.by_model:
        by = f"described by **{_md(round_.writer)}** (the caption model)"
    else:
        by = f"described by **{_md(round_.author.name)}**"
    text = f"**Round {round_.number} of {game.rounds}** · {by}\n>>> {_md(round_.text)}"
    if game.mode is Mode.PLAYERS and round_.number < game.rounds:
        text += (f"\n-# ✍️ Round {round_.number + 1}: who describes this picture? Anyone but "
                 f"{_md(round_.writer)}; the first description counts.")
    return text


def chain_content(game: Game, rounds: Sequence[Round], *, shrunk: bool) -> str:
    writers = list(dict.fromkeys(r.writer for r in rounds))
    first, last = (rounds[0].text, rounds[-1].text) if rounds else ("", "")
    head = (f"📞 **Telephone**, {len(rounds)} round{'s' * (len(rounds) != 1)}: "
            f"“{_md(shorten(first, 200))}” → “{_md(shorten(last, 200))}”\n"
            f"-# By {_md(', '.join(writers))}. The whole chain, and the game as a web page "
            "and Markdown.")
    if game.state is GameState.STOPPED:
        head += f"\n⏹ The game stopped early: {_md(game.reason or 'it could not go on.')}"
    if shrunk:
        head += "\n-# The export's pictures were made smaller to fit the upload limit."
    return head


class TelephoneTable:
    """The game's `Table` in Discord: status edits, round posts, the chain, the buttons."""

    def __init__(self, bot: GreenheartBot, telephone: Telephone) -> None:
        self.bot = bot
        self.telephone = telephone
        self.settings = bot.services.settings
        self.pacer = EditPacer()
        self._editors: dict[int, ThrottledEditor] = {}
        self._taken: set[tuple[int, int]] = set()  # rounds whose button shows who took them
        self._tasks: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        for editor in self._editors.values():
            editor.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def spawn(self, work: Awaitable[None], name: str) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("%s failed", name)

        task = asyncio.create_task(run(), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def play(self, game_id: int) -> None:
        self.spawn(self.telephone.play(game_id, self), f"telephone-{game_id}")

    # ----- the command, the button and the form ---------------------------------------------

    async def start(self, interaction: discord.Interaction[Any], prompt: str, rounds: int,
                    mode: Mode) -> None:
        nsfw = is_nsfw(interaction.channel)
        channel_id = interaction.channel_id
        assert channel_id is not None
        try:
            text = self.telephone.check_text(prompt, nsfw_allowed=nsfw)
            game = await self.telephone.start(
                prompt=text, rounds=rounds, mode=mode, author=author_of(interaction.user),
                guild_id=interaction.guild_id, channel_id=channel_id, nsfw=nsfw,
                upload_limit=upload_limit(interaction))
        except TelephoneError as exc:
            await interaction.response.send_message(f"⚠️ {exc.reason}", ephemeral=True)
            return
        how = ("the caption model describes each picture" if mode is Mode.AI else
               "members describe the pictures in turn (✍️ under each picture)")
        try:
            await interaction.response.send_message(
                f"📞 **Telephone** by {_md(game.started_by.name)}: {rounds} rounds; {how}.\n"
                f"⏳ Round 1 of {rounds}: drawing “{_md(shorten(text, SHOWN_CHARS))}”…",
                allowed_mentions=NO_PINGS)
            message = await interaction.original_response()
        except discord.HTTPException:
            # Nobody saw it start: it must not play for nobody.
            await self.telephone.games.end(game.id, GameState.STOPPED, "not acknowledged")
            await self.telephone.games.set_chain(game.id, None, "not acknowledged")
            log.warning("telephone game %d could not be acknowledged; stopped", game.id)
            return
        await self.telephone.games.set_status_message(game.id, message.id)
        self._editors[game.id] = ThrottledEditor(
            StatusMessage(message, interaction), self.settings.discord.status_edit_interval,
            self.pacer)
        self.play(game.id)

    async def describe_pressed(self, interaction: discord.Interaction[Any], game_id: int,
                               number: int) -> None:
        try:
            await self.telephone.writable(game_id, number, interaction.user.id)
        except TelephoneError as exc:
            await interaction.response.send_message(f"⚠️ {exc.reason}", ephemeral=True,
                                                    allowed_mentions=NO_PINGS)
            return
        await interaction.response.send_modal(
            WriteForm(game_id, number, self.settings.image.max_prompt_chars))

    async def written(self, interaction: discord.Interaction[Any], game_id: int, number: int,
                      text: str) -> None:
        """The form came back (before or after a restart): the round, if still free."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            round_ = await self.telephone.write(game_id, number, text,
                                                author_of(interaction.user))
        except TelephoneError as exc:
            await interaction.followup.send(f"⚠️ {exc.reason}", ephemeral=True,
                                            allowed_mentions=NO_PINGS)
            return
        await interaction.followup.send(f"✍️ Your description is round {number}; it is being "
                                        "drawn now.", ephemeral=True)
        game = await self.telephone.games.get(game_id)
        before = await self.telephone.games.round(game_id, number - 1)
        if game is not None and before is not None:
            self._taken.add((game_id, number))
            await self._show_button(game, before, round_.author.name)
        self.play(game_id)

    # ----- Table ----------------------------------------------------------------------------

    def follow(self, game: Game, number: int, step: str, handle: JobHandle) -> None:
        editor = self._editor(game)
        if editor is None:
            return
        params = handle.job.params
        what = (f"Round {number} of {game.rounds}: drawing “"
                f"{_md(shorten(params.subject, SHOWN_CHARS))}”"
                if isinstance(params, ImageParams) else
                f"Round {number} of {game.rounds}: the caption model describes round "
                f"{number - 1}'s picture")
        self.spawn(self._follow(editor, what, handle), f"telephone-follow-{handle.job.id}")

    async def _follow(self, editor: ThrottledEditor, what: str, handle: JobHandle) -> None:
        started = time.monotonic()
        async for event in handle.events():
            if isinstance(event, Queued):
                editor.show(queued_text(what, event), low_priority=True)
            elif isinstance(event, Started):
                started = time.monotonic()
                editor.show(f"🎨 {what}\nStarting…")
            elif isinstance(event, Progress):
                editor.show(progress_text(what, event, started))

    async def waiting(self, game: Game, number: int) -> None:
        editor = self._editor(game)
        if editor is not None:
            editor.show(f"✍️ Round {number} of {game.rounds}: waiting for someone to describe "
                        f"round {number - 1}'s picture (✍️ Describe it, under it).")
        if (game.id, number) in self._taken:  # given back: the button works again
            self._taken.discard((game.id, number))
            before = await self.telephone.games.round(game.id, number - 1)
            if before is not None:
                await self._show_button(game, before, None)

    async def notice(self, game: Game, text: str) -> None:
        try:
            await self._channel(game).send(text, allowed_mentions=NO_PINGS)
        except discord.HTTPException as exc:
            log.warning("telephone game %d: could not say %r: %s", game.id, text, exc)

    async def post_round(self, game: Game, round_: Round) -> int | str:
        channel = self._channel(game)
        picture = await asyncio.to_thread(_picture_bytes, round_, game.upload_limit)
        content = round_content(game, round_)
        view = view_of(game, round_)
        spoiler = round_.image_nsfw and not game.nsfw

        async def post() -> discord.Message:
            # A new File each try: a failed upload has consumed the last one's stream.
            file = (discord.File(io.BytesIO(picture[0]),
                                 filename=f"round-{round_.number}.{picture[1]}",
                                 spoiler=spoiler,
                                 description=f"Round {round_.number}: {round_.text[:900]}")
                    if picture is not None else discord.utils.MISSING)
            return await channel.send(content, file=file, view=view or discord.utils.MISSING,
                                      nonce=f"gh:t{game.id}.{round_.number}",
                                      allowed_mentions=NO_PINGS)

        try:
            message = await deliver(post, what=f"round {round_.number} of game {game.id}",
                                    give_up_after=self.settings.discord.delivery_retry_s,
                                    on_retry=self.bot.services.metrics.delivery_retried)
        except DeliveryFailed as exc:
            return exc.reason
        return message.id

    async def post_chain(self, game: Game, rounds: Sequence[Round]) -> int | str:
        task = asyncio.current_task()
        if task is not None:
            self.bot.delivering(task)  # a clean stop lets it land first
        limit = game.upload_limit
        chain = await asyncio.to_thread(chain_png, rounds, limit // 2)
        files, shrunk = await asyncio.to_thread(export_files, game, rounds, limit - len(chain))
        content = chain_content(game, rounds, shrunk=shrunk)

        async def post() -> discord.Message:
            return await self._channel(game).send(
                content, files=[discord.File(io.BytesIO(chain), filename="telephone-chain.png",
                                             description="Every round side by side"),
                                *(discord.File(io.BytesIO(f.data), filename=f.name)
                                  for f in files)],
                nonce=f"gh:tc{game.id}", allowed_mentions=NO_PINGS)

        try:
            message = await deliver(post, what=f"the chain of game {game.id}",
                                    give_up_after=self.settings.discord.delivery_retry_s,
                                    on_retry=self.bot.services.metrics.delivery_retried)
        except DeliveryFailed as exc:
            await self._close_status(game, f"⚠️ The game is over, but its chain could not be "
                                     f"posted ({exc.reason}).")
            return exc.reason
        done = ("✅ Over" if game.state is GameState.ENDED else "⏹ Stopped early")
        await self._close_status(game, f"📞 **Telephone** by {_md(game.started_by.name)}: "
                                 f"{done}. The chain: {message.jump_url}")
        return message.id

    # ----- helpers --------------------------------------------------------------------------

    def _channel(self, game: Game) -> discord.PartialMessageable:
        # Needs no cache or fetch, so it works right after a restart.
        return self.bot.get_partial_messageable(game.channel_id, guild_id=game.guild_id)

    def _editor(self, game: Game) -> ThrottledEditor | None:
        """The game's status editor; after a restart, one on its stored status message."""
        editor = self._editors.get(game.id)
        if editor is None and game.status_message_id is not None:
            message = self._channel(game).get_partial_message(game.status_message_id)
            editor = ThrottledEditor(StatusMessage(message),
                                     self.settings.discord.status_edit_interval, self.pacer)
            self._editors[game.id] = editor
        return editor

    async def _close_status(self, game: Game, text: str) -> None:
        editor = self._editor(game)
        self._editors.pop(game.id, None)
        if editor is not None:
            await editor.close(text)

    async def _show_button(self, game: Game, round_: Round, taken_by: str | None) -> None:
        if round_.message_id is None:
            return
        message = self._channel(game).get_partial_message(round_.message_id)
        try:
            await message.edit(view=view_of(game, round_, taken_by))
        except discord.HTTPException as exc:
            log.warning("telephone game %d: round %d's button not updated: %s", game.id,
                        round_.number, exc)


class TelephoneCog(commands.Cog, name="Telephone"):
    def __init__(self, bot: GreenheartBot, table: TelephoneTable) -> None:
        self.bot = bot
        self.table = table

    async def cog_load(self) -> None:
        # Jobs restored from the last run are adopted before any of them can be waited on;
        # then every game that was playing (or whose chain is owed) goes on.
        services = self.bot.services
        mine = [h for h in services.restored if is_telephone_job(h.job)]
        owed = [r for r in await services.jobs.undelivered() if is_telephone_job(r.job)]
        await self.table.telephone.adopt(mine, owed)
        games = await self.table.telephone.unfinished()
        if games:
            self.table.spawn(self._resume([g.id for g in games]), "telephone-resume")

    async def cog_unload(self) -> None:
        await self.table.close()

    async def _resume(self, game_ids: list[int]) -> None:
        await self.bot.wait_until_ready()
        for game_id in game_ids:
            self.table.play(game_id)

    @app_commands.command(name="telephone", description="AI telephone: a prompt is drawn, "
                          "the picture described, that drawn… round after round")
    @app_commands.describe(
        prompt="What the first picture shows",
        rounds=f"How many pictures ({MIN_ROUNDS}-{MAX_ROUNDS})",
        mode="ai: the caption model describes each picture; players: members do, in turn")
    @app_commands.guild_only()
    async def telephone(self, interaction: discord.Interaction,
                        prompt: app_commands.Range[str, 1, 2000],
                        rounds: app_commands.Range[int, MIN_ROUNDS, MAX_ROUNDS] = DEFAULT_ROUNDS,
                        mode: Literal["ai", "players"] = "ai") -> None:
        await self.table.start(interaction, prompt, rounds, Mode(mode))

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """A submitted description form (named by its custom_id, so it survives restarts)."""
        if interaction.type is not discord.InteractionType.modal_submit:
            return
        data: Any = interaction.data or {}
        match = WRITE_FORM.fullmatch(str(data.get("custom_id", "")))
        if match is None:
            return
        try:
            await self.table.written(interaction, int(match["game"]), int(match["round"]),
                                     form_values(data).get(TEXT_FIELD, ""))
        except Exception as exc:
            await self.bot.report_interaction_error(interaction, exc)


def _picture_bytes(round_: Round, limit: int) -> tuple[bytes, str] | None:
    """The round's picture fitted under the upload limit, and its file extension."""
    if round_.image_path is None:
        return None
    try:
        data = round_.image_path.read_bytes()
    except OSError:
        return None  # deleted meanwhile: the round is posted without it
    return fit_under(data, limit)


def _md(text: str) -> str:
    return discord.utils.escape_markdown(text)


async def setup(bot: GreenheartBot) -> None:
    services = bot.services
    telephone = Telephone(TelephoneRepository(services.db), services.images, services.jobs,
                          services.settings)
    table = TelephoneTable(bot, telephone)
    bot.provide(TABLE, table)
    bot.add_dynamic_items(DescribeIt)
    await bot.add_cog(TelephoneCog(bot, table))
