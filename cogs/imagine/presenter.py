"""Starting image jobs, following them in a status message and posting their results.

Shared by /imagine and by every button on a result, so they all behave the same way.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from typing import Any

import discord

from bot.executor.executor import JobHandle, Refused
from bot.executor.jobs import (
    Cancelled,
    Done,
    Failed,
    ImageMode,
    ImageParams,
    ImageResult,
    Job,
    Progress,
    Queued,
    Started,
)
from bot.image_requests import derived, rerolled, restyled
from bot.images import (
    DISCORD_UPLOAD_LIMIT,
    GenerationParameters,
    format_parameters,
    read_png_parameters,
)
from bot.prompts import find_blocked_term, find_style
from bot.services import Services
from cogs.common import is_nsfw, upload_limit
from cogs.imagine.buttons import ImagineButtons, job_is_usable
from cogs.imagine.results import result_content, result_embed, result_file
from cogs.imagine.status import (
    EditPacer,
    StatusMessage,
    ThrottledEditor,
    progress_text,
    queued_text,
)

log = logging.getLogger(__name__)

ORIGIN_KIND = "imagine"


def safety_refusal(services: Services, text: str, channel: Any) -> str | None:
    """Why a prompt may not be rendered in this channel, or None."""
    safety = services.settings.safety
    term = find_blocked_term(text, safety.blocked_terms)
    if term:
        return f"Your prompt contains a blocked term ({term!r}); nothing was queued."
    term = find_blocked_term(text, safety.nsfw_terms)
    if term and not is_nsfw(channel):
        return (f"{term!r} is only allowed in channels marked NSFW; nothing was queued. "
                "Try again in an NSFW channel.")
    return None


def describe(params: ImageParams) -> str:
    subject = params.subject if len(params.subject) <= 200 else params.subject[:199] + "…"
    if params.mode is ImageMode.UPSCALE:
        return f"Upscaling image {params.source_index + 1} of **{subject}**"
    if params.mode is ImageMode.VARIATION:
        return f"Variations of image {params.source_index + 1} of **{subject}**"
    style = f" · {params.style}" if params.style else ""
    return f"**{subject}**{style}"


class ChannelGone(RuntimeError):
    pass


class ImagineActions:
    def __init__(self, client: discord.Client, services: Services) -> None:
        self.client = client
        self.services = services
        self.buttons = ImagineButtons(self)
        self.pacer = EditPacer()  # shared by every status message's queue-position edits
        self._tasks: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        """Stop following jobs (the bot is shutting down; they resume after a restart)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # ----- starting jobs --------------------------------------------------------------------

    def new_job(self, user: discord.abc.User, params: ImageParams,
                channel: discord.abc.Messageable, interaction: discord.Interaction,
                parent_id: int | None = None) -> Job:
        return Job(
            user_id=user.id,
            user_name=getattr(user, "display_name", user.name),
            params=params,
            origin={
                "kind": ORIGIN_KIND,
                "guild_id": interaction.guild_id,
                "channel_id": getattr(channel, "id", None),
                "parent_message_id": parent_id,
                "upload_limit": upload_limit(interaction),
                "nsfw": is_nsfw(channel),
            },
        )

    async def start_from_command(self, interaction: discord.Interaction, job: Job) -> None:
        """Queue and acknowledge in one step: the status message is the interaction reply."""
        try:
            handle = await self.services.executor.submit(job)
        except Refused as exc:
            await interaction.response.send_message(exc.reason, ephemeral=True)
            return
        await interaction.response.send_message(
            queued_text(describe(_image(job)), _first_queued(handle)),
            view=self.buttons.cancel_view(job.id),
            allowed_mentions=discord.AllowedMentions.none(),
        )
        message = await interaction.original_response()
        self._remember_status(job, message.id)
        self.follow(handle, StatusMessage(message, interaction))

    async def start_from_button(self, interaction: discord.Interaction, job: Job,
                                parent: discord.Message | None) -> None:
        """A button's job: acknowledged silently, its status is a reply to the parent."""
        try:
            handle = await self.services.executor.submit(job)
        except Refused as exc:
            await _ephemeral(interaction, exc.reason)
            return
        if not interaction.response.is_done():
            await interaction.response.defer()
        channel = interaction.channel
        assert isinstance(channel, discord.abc.Messageable)
        try:
            status = await channel.send(
                queued_text(describe(_image(job)), _first_queued(handle)),
                view=self.buttons.cancel_view(job.id),
                reference=parent.to_reference(fail_if_not_exists=False) if parent
                else discord.utils.MISSING,
                allowed_mentions=discord.AllowedMentions.none(),
            )
        except discord.HTTPException as exc:
            # No status message, so no place for the result: don't render it for nobody.
            self.services.executor.cancel(job.id)
            await _ephemeral(interaction, "I could not post in this channel "
                             f"({exc.text or exc.status}), so nothing was queued.")
            return
        self._remember_status(job, status.id)
        self.follow(handle, StatusMessage(status))

    def _remember_status(self, job: Job, message_id: int) -> None:
        job.origin["status_message_id"] = message_id
        self.services.executor.store_after(self.services.jobs.update_origin(job.id, job.origin))

    def follow(self, handle: JobHandle, status: StatusMessage) -> None:
        task = asyncio.create_task(self._follow(handle, status), name=f"job-{handle.job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def resume(self, handle: JobHandle) -> None:
        """Pick up a job restored after a restart: edit its old status message."""
        origin = handle.job.origin
        channel = await self._channel(origin.get("channel_id"))
        if channel is None or not origin.get("status_message_id"):
            log.warning("job %s: its channel is gone; it runs but can't be posted", handle.job.id)
            return
        status = StatusMessage(channel.get_partial_message(origin["status_message_id"]))
        self.follow(handle, status)

    async def _channel(self, channel_id: int | None) -> Any:
        if channel_id is None:
            return None
        channel = self.client.get_channel(channel_id)
        if channel is None:
            try:
                channel = await self.client.fetch_channel(channel_id)
            except discord.HTTPException:
                return None
        return channel

    # ----- following a job ------------------------------------------------------------------

    async def _follow(self, handle: JobHandle, status: StatusMessage) -> None:
        job = handle.job
        what = describe(_image(job))
        editor = ThrottledEditor(status, self.services.settings.discord.status_edit_interval,
                                 self.pacer)
        try:
            await self._present(handle, status, editor, what)
        finally:  # cancelled at shutdown: no edit may outlive the bot's HTTP session
            editor.stop()

    async def _present(self, handle: JobHandle, status: StatusMessage, editor: ThrottledEditor,
                       what: str) -> None:
        job = handle.job
        started = time.monotonic()
        cancel_view = self.buttons.cancel_view(job.id)
        async for event in handle.events():
            if isinstance(event, Queued):
                editor.show(queued_text(what, event), view=cancel_view, low_priority=True)
            elif isinstance(event, Started):
                started = time.monotonic()
                editor.show(f"🎨 {what}\nStarting…", view=cancel_view)
            elif isinstance(event, Progress):
                editor.show(progress_text(what, event, started), event.preview)
            elif isinstance(event, Done):
                seconds = time.monotonic() - started
                try:
                    message = await self._post_result(handle, event, status, seconds)
                except (discord.HTTPException, ChannelGone) as exc:
                    log.exception("posting the result of job %s failed", job.id)
                    await editor.close(f"❌ {what}\nThe pictures were made but could not be "
                                       f"posted ({exc}).")
                    return
                await editor.close(f"✅ {what}\nDone in {seconds:.1f} s → {message.jump_url}")
            elif isinstance(event, Failed):
                await editor.close(f"❌ {what}\nFailed: {event.reason}")
            elif isinstance(event, Cancelled):
                await editor.close(f"✖️ {what}\nCancelled.")

    async def _post_result(self, handle: JobHandle, done: Done, status: StatusMessage,
                           seconds: float) -> discord.Message:
        job = handle.job
        result = done.result
        assert isinstance(result, ImageResult)
        origin = job.origin
        channel = await self._channel(origin.get("channel_id"))
        if channel is None:
            raise ChannelGone("the channel is gone or the bot can't see it")
        spoiler = any(g.nsfw for g in result.images) and not origin.get("nsfw", False)
        upload = await asyncio.to_thread(
            result_file, job, result,
            upload_limit=int(origin.get("upload_limit") or DISCORD_UPLOAD_LIMIT), spoiler=spoiler)
        record = await self._stored_record(handle)
        view = self.buttons.result_view(record, self.services.settings.image.styles) \
            if record else None
        parent_id = origin.get("parent_message_id") or status.id
        message = await channel.send(
            result_content(job),
            embed=result_embed(job, result, upload.filename, seconds),
            file=discord.File(io.BytesIO(upload.data), filename=upload.filename),
            view=view or discord.utils.MISSING,
            reference=discord.MessageReference(message_id=parent_id, channel_id=channel.id,
                                               fail_if_not_exists=False),
            allowed_mentions=discord.AllowedMentions.none(),
        )
        await self.services.jobs.set_posted(job.id, channel.id, message.id)
        return message

    async def _stored_record(self, handle: JobHandle) -> Any:
        """The stored job once the store has written its images (the buttons need them)."""
        await handle.recorded()
        return await self.services.jobs.get(handle.job.id)

    # ----- buttons ----------------------------------------------------------------------------

    async def _usable(self, interaction: discord.Interaction, job_id: str) -> Any:
        record = await self.services.jobs.get(job_id)
        problem = job_is_usable(record)
        if problem:
            await _ephemeral(interaction, problem)
            return None
        return record

    async def _start_derived(self, interaction: discord.Interaction, params: ImageParams) -> None:
        refusal = safety_refusal(self.services, params.prompt, interaction.channel)
        if refusal:
            await _ephemeral(interaction, refusal)
            return
        channel = interaction.channel
        assert channel is not None
        job = self.new_job(interaction.user, params, channel, interaction,  # type: ignore[arg-type]
                           parent_id=interaction.message.id if interaction.message else None)
        await self.start_from_button(interaction, job, interaction.message)

    async def reroll(self, interaction: discord.Interaction, job_id: str) -> None:
        record = await self._usable(interaction, job_id)
        if record:
            await self._start_derived(interaction, rerolled(record.job.params))

    async def derive(self, interaction: discord.Interaction, job_id: str, mode: ImageMode,
                     index: int) -> None:
        record = await self._usable(interaction, job_id)
        if not record:
            return
        if index >= len(record.images):
            await _ephemeral(interaction, f"That job has only {len(record.images)} picture(s).")
            return
        image = record.images[index]
        settings = self.services.settings.image
        strength = settings.variation_strength if mode is ImageMode.VARIATION \
            else settings.upscale_strength
        params = derived(record.job.params, mode, index, job_id, str(image.path), strength)
        await self._start_derived(interaction, params)

    async def restyle(self, interaction: discord.Interaction, job_id: str, style: str) -> None:
        record = await self._usable(interaction, job_id)
        if not record:
            return
        preset = find_style(self.services.settings.image.styles, style)
        if preset is None:
            await _ephemeral(interaction, f"The style {style!r} is no longer offered.")
            return
        await self._start_derived(
            interaction, restyled(record.job.params, preset, self.services.settings.image))

    async def show_parameters(self, interaction: discord.Interaction, job_id: str) -> None:
        record = await self._usable(interaction, job_id)
        if not record:
            return
        texts = []
        for image in record.images:
            params = await asyncio.to_thread(_read_parameters, image.path)
            if params is not None:
                texts.append(format_parameters(params))
        body = "\n\n".join(f"```\n{t.replace('```', '`​``')}\n```" for t in texts)
        if not body:
            await _ephemeral(interaction, "The picture files of this job are gone.")
        elif len(body) <= 2000:
            await _ephemeral(interaction, body)
        else:
            plain = "\n\n".join(texts).encode()
            await interaction.response.send_message(
                "The parameters are long, so here they are as a file:",
                file=discord.File(io.BytesIO(plain), filename=f"parameters-{job_id}.txt"),
                ephemeral=True)

    async def delete(self, interaction: discord.Interaction, job_id: str) -> None:
        record = await self.services.jobs.get(job_id)
        owner = record.job.user_id if record else None
        if not _may_moderate(interaction, owner):
            await _ephemeral(interaction, "Only the person who made this picture, or members "
                             "with Manage Messages, can delete it.")
            return
        await interaction.response.defer()
        if record is not None:
            await self.services.jobs.delete(job_id)
        if interaction.message is not None:
            try:
                await interaction.message.delete()
            except discord.HTTPException as exc:
                await interaction.followup.send(f"Could not delete the message: {exc.text}",
                                                ephemeral=True)

    async def cancel(self, interaction: discord.Interaction, job_id: str) -> None:
        record = await self.services.jobs.get(job_id)
        owner = record.job.user_id if record else None
        if owner is not None and interaction.user.id != owner and \
                not _may_moderate(interaction, None):
            await _ephemeral(interaction, "Only the person who asked for this job can cancel it.")
            return
        if self.services.executor.cancel(job_id, by_user=interaction.user.id):
            await interaction.response.defer()  # the status message will say "Cancelled"
        else:
            await _ephemeral(interaction, "That job has already finished.")


def _may_moderate(interaction: discord.Interaction, owner: int | None) -> bool:
    if owner is not None and interaction.user.id == owner:
        return True
    permissions = getattr(interaction, "permissions", None)
    return bool(permissions and permissions.manage_messages)


def _read_parameters(path: Any) -> GenerationParameters | None:
    try:
        with open(path, "rb") as f:
            return read_png_parameters(f.read())
    except OSError:
        return None


def _image(job: Job) -> ImageParams:
    assert isinstance(job.params, ImageParams)
    return job.params


def _first_queued(handle: JobHandle) -> Queued:
    return Queued(handle.position or 1, None)


async def _ephemeral(interaction: discord.Interaction, text: str) -> None:
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=True)
    else:
        await interaction.response.send_message(text, ephemeral=True)

