"""/describe image:<picture>: prompt ideas from the caption model (describe.model), each
with a 🎨 Imagine this button that starts an /imagine of it for whoever presses it.

The job runs in the same executor as pictures (same per-person limit, queue, cancel and
restart recovery): the command saves the member's picture as the job's input file (removed
with the job), queues a DescribeParams job and follows it in its reply, which finally
becomes the numbered suggestions. The result is stored (a TextResult, one suggestion per
line) before it is shown, and a button holds only its job id and index: the suggestion is
read from SQLite when pressed, so the buttons work after a restart. At start, describe jobs
the last run left queued or running continue in their old reply, and rendered ones whose
suggestions were never shown are shown then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from dataclasses import replace
from typing import Any, Self

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from bot.client import GreenheartBot
from bot.db.jobs import JobRecord
from bot.db.retention import expired_job
from bot.executor.executor import Refused
from bot.executor.handle import JobHandle
from bot.executor.jobs import (
    Cancelled,
    DescribeOrigin,
    DescribeParams,
    Done,
    Failed,
    Job,
    JobState,
    Progress,
    Queued,
    Started,
    new_job_id,
)
from bot.images.inputs import InputPictureError, check_upload, read_picture, save_input
from bot.images.requests import random_seed
from bot.services import Services
from cogs.common import bot_of
from cogs.delivery import DeliveryFailed, deliver
from cogs.imagine.buttons import ACTIONS, cancel_view
from cogs.imagine.presenter import ImaginePresenter
from cogs.imagine.status import (
    EditPacer,
    StatusMessage,
    ThrottledEditor,
    progress_text,
    queued_text,
)

log = logging.getLogger(__name__)

WHAT = "Describing your picture"


def suggestions_of(record: JobRecord) -> list[str]:
    """A rendered describe job's suggestions (its TextResult: one per line)."""
    return [line for line in (record.result_text or "").splitlines() if line.strip()]


def suggestions_text(record: JobRecord) -> str:
    lines = [f"🔎 **Prompt ideas** for <@{record.job.user_id}>'s picture:"]
    lines += [f"**{n}.** {discord.utils.escape_markdown(text)}"
              for n, text in enumerate(suggestions_of(record), start=1)]
    lines.append("-# Press 🎨 to imagine one of them.")
    return "\n".join(lines)


class ImagineThis(discord.ui.DynamicItem[discord.ui.Button[Any]],
                  template=r"gh:describe:(?P<job>[0-9a-f]{6,32}):(?P<index>[0-4])"):
    """🎨 Imagine this, under suggestion `index` of a describe job."""

    def __init__(self, job_id: str, index: int) -> None:
        super().__init__(discord.ui.Button(
            emoji="🎨", label=f"Imagine this #{index + 1}",
            style=discord.ButtonStyle.primary, custom_id=f"gh:describe:{job_id}:{index}"))
        self.job_id, self.index = job_id, index

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction[Any],
                             item: discord.ui.Item[Any], match: re.Match[str], /) -> Self:
        return cls(match["job"], int(match["index"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        bot = bot_of(interaction)
        try:
            await self._imagine(interaction, bot)
        except Exception as exc:
            await bot.report_interaction_error(interaction, exc)

    async def _imagine(self, interaction: discord.Interaction[Any], bot: GreenheartBot) -> None:
        services = bot.services
        record = await services.jobs.get(self.job_id)
        if record is None:
            gone = ("have expired" if await expired_job(services.db, self.job_id)
                    else "are no longer stored (they were deleted)")
            await _ephemeral(interaction, f"These suggestions {gone}, so this button can't "
                             "do anything any more. Run /describe again.")
            return
        found = suggestions_of(record) if record.state.has_result else []
        if self.index >= len(found):
            await _ephemeral(interaction, "That suggestion is not there any more.")
            return
        presenter = bot.part(ACTIONS)
        if not isinstance(presenter, ImaginePresenter):
            raise TypeError(f"the imagine actions are a {type(presenter).__name__}")
        await presenter.imagine_text(interaction, found[self.index])


def suggestions_view(record: JobRecord) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for index, _ in enumerate(suggestions_of(record)):
        view.add_item(ImagineThis(record.job.id, index))
    return view


class DescribeCog(commands.Cog, name="Describe"):
    def __init__(self, bot: GreenheartBot) -> None:
        self.bot = bot
        self.services: Services = bot.services
        self.pacer = EditPacer()
        self._tasks: set[asyncio.Task[None]] = set()

    async def cog_load(self) -> None:
        # Describe jobs restored from the last run continue in their old reply; suggestions
        # made but never shown (a stop or crash came between) are shown now.
        mine = [h for h in self.services.restored if isinstance(h.job.origin, DescribeOrigin)]
        owed = [r for r in await self.services.jobs.undelivered()
                if isinstance(r.job.origin, DescribeOrigin)]
        if mine or owed:
            self._spawn(self._resume(mine, owed), "describe-resume")

    async def cog_unload(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @app_commands.command(name="describe", description="Prompt ideas for a picture, each "
                          "one ready to imagine")
    @app_commands.describe(image="The picture to describe (PNG, JPEG, WebP, GIF or BMP)")
    @app_commands.guild_only()
    async def describe(self, interaction: discord.Interaction,
                       image: discord.Attachment) -> None:
        images = self.services.images
        settings = self.services.settings
        try:
            check_upload(image.filename, image.size, image.content_type, settings.image)
        except InputPictureError as exc:
            await interaction.response.send_message(f"⚠️ {exc}", ephemeral=True)
            return
        if images.room_for(interaction.user.id) < 1:  # before fetching anything
            await interaction.response.send_message(
                f"⚠️ You can't queue more now: the limit is {settings.executor.per_user_limit} "
                "per person, queued or running. Wait for one to finish or /cancel one.",
                ephemeral=True)
            return
        # Fetching may take longer than Discord's 3 s to answer: acknowledge first.
        await interaction.response.defer(thinking=True)
        job_id = new_job_id()
        try:
            data = await image.read()
            picture = await asyncio.to_thread(read_picture, data, image.filename,
                                              settings.image, images.native_size)
        except (discord.HTTPException, aiohttp.ClientError, TimeoutError):
            await _refuse_deferred(interaction, f"⚠️ image: {image.filename} could not be "
                                   "fetched from Discord; try attaching it again.")
            return
        except InputPictureError as exc:
            await _refuse_deferred(interaction, f"⚠️ {exc}")
            return
        path = await asyncio.to_thread(save_input, picture, images.jobs.images_dir, job_id)
        user = interaction.user
        job = Job(id=job_id, user_id=user.id, user_name=getattr(user, "display_name", user.name),
                  params=DescribeParams(source_path=str(path),
                                        count=settings.describe.suggestions,
                                        max_new_tokens=settings.describe.max_new_tokens,
                                        seed=random_seed()),
                  origin=DescribeOrigin(guild_id=interaction.guild_id,
                                        channel_id=getattr(interaction.channel, "id", None)))
        try:
            handle = await images.submit(job)
        except Refused as exc:
            images.forget_inputs([job])
            await _refuse_deferred(interaction, f"⚠️ {exc.reason}")
            return
        try:
            message = await interaction.edit_original_response(
                content=queued_text(WHAT, Queued(handle.position or 1, None)),
                view=cancel_view(job.id), allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException:
            # Not acknowledged: nobody would see the suggestions, so don't make them.
            images.cancel(job.id)
            log.warning("job %s: its /describe could not be acknowledged; cancelled", job.id)
            return
        assert isinstance(job.origin, DescribeOrigin)
        job.origin = replace(job.origin, status_message_id=message.id)
        # After the write that inserts the job's row (a restart edits the same reply).
        self.services.executor.store_after(self.services.jobs.update_origin(job))
        self._spawn(self._follow(handle, StatusMessage(message, interaction)),
                    f"describe-{job.id}")

    # ----- following a job ------------------------------------------------------------------

    def _spawn(self, work: Any, name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resume(self, handles: list[JobHandle], owed: list[JobRecord]) -> None:
        await self.bot.wait_until_ready()
        for record in owed:
            self._spawn(self._show(record, self._status_of(record.job)),
                        f"describe-owed-{record.job.id}")
        for handle in handles:
            self._spawn(self._follow(handle, self._status_of(handle.job)),
                        f"describe-{handle.job.id}")

    def _status_of(self, job: Job) -> StatusMessage | None:
        origin = job.origin
        assert isinstance(origin, DescribeOrigin)
        if origin.channel_id is None or origin.status_message_id is None:
            return None
        channel = self.bot.get_partial_messageable(origin.channel_id, guild_id=origin.guild_id)
        return StatusMessage(channel.get_partial_message(origin.status_message_id))

    async def _follow(self, handle: JobHandle, status: StatusMessage | None) -> None:
        job = handle.job
        editor = (ThrottledEditor(status, self.services.settings.discord.status_edit_interval,
                                  self.pacer) if status is not None else None)
        started = time.monotonic()
        cancel = cancel_view(job.id)
        try:
            async for event in handle.events():
                if isinstance(event, Done):
                    stored = await handle.stored()
                    if isinstance(stored, JobRecord) and stored.state is JobState.FAILED:
                        if editor is not None:
                            await editor.close(f"❌ {WHAT}\nFailed: {stored.reason}")
                            editor = None
                        continue
                    if editor is not None:
                        editor.stop()  # the suggestions replace the status at once
                        editor = None
                    if isinstance(stored, JobRecord):
                        await self._show(stored, status)
                elif editor is None:
                    continue
                elif isinstance(event, Queued):
                    editor.show(queued_text(WHAT, event), view=cancel, low_priority=True)
                elif isinstance(event, Started):
                    started = time.monotonic()
                    editor.show(f"🔎 {WHAT}\nStarting…", view=cancel)
                elif isinstance(event, Progress):
                    editor.show(progress_text(WHAT, event, started), view=cancel)
                elif isinstance(event, Failed):
                    await editor.close(f"❌ {WHAT}\nFailed: {event.reason}")
                elif isinstance(event, Cancelled):
                    await editor.close(f"✖️ {WHAT}\nCancelled.")
        finally:  # cancelled at shutdown: no edit may outlive the bot's HTTP session
            if editor is not None:
                editor.stop()

    async def _show(self, record: JobRecord, status: StatusMessage | None) -> None:
        """The suggestions, with their buttons, in the job's reply (a new message in its
        channel when the reply is gone); delivered once that is stored."""
        task = asyncio.current_task()
        if task is not None:
            self.bot.delivering(task)  # a clean stop lets it land first
        job = record.job
        if record.state is not JobState.RENDERED:
            return  # failed while being stored, or shown already
        fields: dict[str, Any] = {"content": suggestions_text(record),
                                  "view": suggestions_view(record),
                                  "allowed_mentions": discord.AllowedMentions.none()}

        async def show() -> discord.Message:
            if status is not None:
                try:
                    return await status.message.channel.get_partial_message(  # type: ignore[union-attr, no-any-return]
                        status.id).edit(**fields, attachments=[])
                except discord.NotFound:
                    pass  # the reply was deleted: post the suggestions instead
            channel = await self._channel(job)
            if channel is None:
                raise DeliveryFailed("the channel is gone or the bot can't see it")
            return await channel.send(**fields, nonce=f"gh:d{job.id}")  # type: ignore[no-any-return]

        try:
            message = await deliver(show, what=f"the suggestions of job {job.id}",
                                    give_up_after=self.services.settings.discord.delivery_retry_s,
                                    on_retry=self.services.metrics.delivery_retried)
        except DeliveryFailed as exc:
            log.error("job %s: its suggestions could not be shown: %s", job.id, exc.reason)
            await self.services.jobs.mark_undeliverable(
                job.id, f"The suggestions could not be posted ({exc.reason}).")
            return
        await self.services.jobs.mark_delivered(job.id, message.channel.id, message.id)

    async def _channel(self, job: Job) -> Any:
        origin = job.origin
        assert isinstance(origin, DescribeOrigin)
        if origin.channel_id is None:
            return None
        channel = self.bot.get_channel(origin.channel_id)
        if channel is None:
            try:
                channel = await self.bot.fetch_channel(origin.channel_id)
            except (discord.NotFound, discord.Forbidden):
                return None
        return channel


async def _refuse_deferred(interaction: discord.Interaction[Any], text: str) -> None:
    """A refusal only the member sees, after the command was deferred (its public
    "thinking…" reply is removed)."""
    with contextlib.suppress(discord.HTTPException):
        await interaction.delete_original_response()
    await interaction.followup.send(text, ephemeral=True)


async def _ephemeral(interaction: discord.Interaction[Any], text: str) -> None:
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=True)
    else:
        await interaction.response.send_message(text, ephemeral=True)


async def setup(bot: GreenheartBot) -> None:
    bot.add_dynamic_items(ImagineThis)
    await bot.add_cog(DescribeCog(bot))
