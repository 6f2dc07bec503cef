"""Following image jobs in their status message and posting their results: the Discord
presentation of `bot.images.lifecycle`, shared by /imagine and every button on a result.

`/imagine` (cogs/imagine/__init__.py) makes the request and the job; `ImageJobs` queues it;
the executor's events come back here, where the status message is edited (throttled) and
the result is posted with its buttons (cogs/imagine/buttons.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from typing import Any

import aiohttp
import discord

from bot.client import GreenheartBot
from bot.db.interaction_tokens import InteractionToken, InteractionTokens
from bot.db.jobs import JobRecord
from bot.db.stars import StarRepository
from bot.executor.executor import Refused
from bot.executor.handle import JobHandle
from bot.executor.jobs import (
    Cancelled,
    Done,
    Failed,
    ImageMode,
    ImageParams,
    ImagineOrigin,
    Job,
    JobState,
    Progress,
    Queued,
    Started,
)
from bot.images.lifecycle import ImageJobError, ImageJobs, origin_of
from bot.images.outpaint import Outpaint
from bot.images.requests import MAX_SEED, ImageOptions, OptionError
from bot.prompts import PromptError
from bot.services import Services
from cogs.common import is_nsfw, upload_limit
from cogs.delivery import DeliveryFailed, deliver
from cogs.imagine.buttons import (
    NEGATIVE_FIELD,
    PROMPT_FIELD,
    SEED_FIELD,
    RemixForm,
    cancel_view,
    result_view,
)
from cogs.imagine.private import PrivateReplies
from cogs.imagine.result_message import (
    ResultFile,
    is_sweep,
    kept_step,
    result_content,
    result_embed,
    result_file,
    sweep_files,
)
from cogs.imagine.status import (
    EditPacer,
    StatusMessage,
    ThrottledEditor,
    describe,
    progress_text,
    queued_text,
)
from cogs.imagine.via_interaction import (
    EXPIRED,
    LATE,
    InteractionAnswers,
    answers_through_interaction,
)

log = logging.getLogger(__name__)


class ImaginePresenter:
    """One per bot: follows every image job in Discord and answers its buttons."""

    def __init__(self, client: discord.Client, services: Services) -> None:
        self.client = client
        self.settings = services.settings
        self.metrics = services.metrics
        self.images: ImageJobs = services.images
        self.pacer = EditPacer()  # shared by every status message's queue-position edits
        self._tasks: set[asyncio.Task[None]] = set()
        self.private = PrivateReplies(client)  # the tokens that reach private jobs' members
        # The tokens of jobs the bot can answer only through them (DMs, group DMs).
        self.answers = InteractionAnswers(
            client, InteractionTokens(services.db),
            lifetime_s=services.settings.discord.interaction_token_s,
            margin_s=services.settings.discord.token_margin_s)
        self.stars = StarRepository(services.db)  # ⭐ (bot/db/stars.py)

    async def close(self) -> None:
        """Stop following jobs (the bot is shutting down; they resume after a restart)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # ----- starting jobs --------------------------------------------------------------------

    def new_job(self, interaction: discord.Interaction[Any], params: ImageParams,
                parent_id: int | None = None, *, private: bool = False) -> Job:
        """The job for a member's interaction, with where its result goes."""
        user, channel = interaction.user, interaction.channel
        origin = ImagineOrigin(guild_id=interaction.guild_id,
                               channel_id=getattr(channel, "id", None), nsfw=is_nsfw(channel),
                               upload_limit=upload_limit(interaction),
                               parent_message_id=parent_id, private=private,
                               via_interaction=answers_through_interaction(interaction))
        return self.images.new_job(user.id, getattr(user, "display_name", user.name), params,
                                   origin)

    async def refuse_deferred(self, interaction: discord.Interaction[Any], text: str) -> None:
        """A refusal only the member sees, also after the command was deferred (its public
        "thinking…" reply is removed)."""
        if interaction.response.is_done():
            with contextlib.suppress(discord.HTTPException):
                await interaction.delete_original_response()
        await _ephemeral(interaction, text)

    async def _reply_status(self, interaction: discord.Interaction[Any], text: str,
                            view: discord.ui.View,
                            private: bool = False) -> discord.InteractionMessage:
        """The command's reply becomes the status message (an edit, once deferred); a
        private job's is ephemeral (a deferred one was deferred ephemeral)."""
        mentions = discord.AllowedMentions.none()
        if interaction.response.is_done():
            return await interaction.edit_original_response(content=text, view=view,
                                                            allowed_mentions=mentions)
        await interaction.response.send_message(text, view=view, allowed_mentions=mentions,
                                                ephemeral=private)
        return await interaction.original_response()

    async def start_from_command(self, interaction: discord.Interaction[Any],
                                 job: Job) -> None:
        """Queue and acknowledge in one step: the status message is the interaction reply."""
        if await self._refused_as_late(interaction, [job]):
            return
        try:
            handle = await self.images.submit(job)
        except Refused as exc:
            self.images.forget_inputs([job])
            await self.refuse_deferred(interaction, exc.reason)
            return
        token = await self._keep_token(interaction, [job])
        private = origin_of(job).private
        try:
            message = await self._reply_status(
                interaction, queued_text(describe(_image(job)), _first_queued(handle)),
                cancel_view(job.id), private)
        except discord.HTTPException:
            # Not acknowledged (too late, or Discord failed): the member saw an error and no
            # status message exists, so the job must not render for nobody.
            self.images.cancel(job.id)
            log.warning("job %s: its /imagine could not be acknowledged; cancelled", job.id)
            return
        self.images.remember_status(job, message.id)
        if token is not None:
            self.follow(handle, self.answers.status(message, token), token)
            return
        if private:
            self.private.remember(job.id, interaction)
        self.follow(handle, StatusMessage(message, interaction, private=private))

    async def start_many_from_command(self, interaction: discord.Interaction[Any],
                                      jobs: list[Job]) -> None:
        """Several jobs from one command ({a, b} permutations, repeat): all queued or none.
        The first one's status is the interaction reply, the others' follow in the channel."""
        room = self.images.room_for(interaction.user.id)
        if len(jobs) > room:
            self.images.forget_inputs(jobs)
            limit = self.settings.executor.per_user_limit
            await self.refuse_deferred(
                interaction,
                f"⚠️ This prompt makes {len(jobs)} jobs, but you can queue {room} more now "
                f"(the limit is {limit} per person, queued or running). Use fewer {{…}} "
                "options or a lower repeat, or wait for your jobs to finish; nothing was "
                "queued.")
            return
        if await self._refused_as_late(interaction, jobs):
            return
        handles: list[JobHandle] = []
        try:
            for job in jobs:
                handles.append(await self.images.submit(job))
        except Refused as exc:  # the queue filled up meanwhile: take back what was queued
            for handle in handles:
                self.images.cancel(handle.job.id)
            self.images.forget_inputs(jobs[len(handles):])  # cancelled ones go with their rows
            await self.refuse_deferred(interaction, exc.reason)
            return
        token = await self._keep_token(interaction, jobs)
        first, *rest = handles
        private = origin_of(first.job).private
        try:
            message = await self._reply_status(
                interaction, queued_text(describe(_image(first.job)), _first_queued(first))
                + f"\n-# 1 of {len(handles)} jobs from this prompt", cancel_view(first.job.id),
                private)
        except discord.HTTPException:
            for handle in handles:
                self.images.cancel(handle.job.id)
            log.warning("a %d-job /imagine could not be acknowledged; cancelled", len(handles))
            return
        self.images.remember_status(first.job, message.id)
        if token is not None:
            self.follow(first, self.answers.status(message, token), token)
            await self._start_more_via_interaction(interaction, rest, len(handles), token)
            return
        for handle in handles if private else ():
            self.private.remember(handle.job.id, interaction)
        self.follow(first, StatusMessage(message, interaction, private=private))
        channel = interaction.channel
        assert isinstance(channel, discord.abc.Messageable)
        for n, handle in enumerate(rest, start=2):
            text = (queued_text(describe(_image(handle.job)), _first_queued(handle))
                    + f"\n-# {n} of {len(handles)} jobs from this prompt")
            try:
                if private:  # more ephemeral messages of the same interaction
                    ephemeral = await interaction.followup.send(
                        text, view=cancel_view(handle.job.id), ephemeral=True, wait=True,
                        allowed_mentions=discord.AllowedMentions.none())
                    self.images.remember_status(handle.job, ephemeral.id)
                    self.follow(handle, StatusMessage(ephemeral, interaction, private=True,
                                                      followup=True))
                    continue
                status = await channel.send(
                    text, view=cancel_view(handle.job.id),
                    reference=message.to_reference(fail_if_not_exists=False),
                    allowed_mentions=discord.AllowedMentions.none())
            except discord.HTTPException as exc:
                # No status message: its result is posted in the channel all the same.
                log.warning("job %s: no status message (%s)", handle.job.id, exc)
                self.follow(handle, None)
                continue
            self.images.remember_status(handle.job, status.id)
            self.follow(handle, StatusMessage(status))

    async def start_from_button(self, interaction: discord.Interaction[Any],
                                params: ImageParams, *,
                                reply_to: discord.PartialMessage | None = None,
                                private: bool | None = None) -> None:
        """A button's job: acknowledged silently, its status is a reply to the result the
        button is on (or to `reply_to`, a result picked from an ephemeral menu, whose
        `private` then says whether that result was private)."""
        refusal = self.images.refusal(params, nsfw_allowed=is_nsfw(interaction.channel))
        if refusal:
            await _ephemeral(interaction, refusal)
            return
        parent: discord.Message | discord.PartialMessage | None = reply_to or interaction.message
        if private is None:
            # A button on a private (ephemeral) result makes a private job: only its member
            # could press it, and its answer must stay theirs.
            clicked = interaction.message
            private = bool(clicked is not None and clicked.flags.ephemeral)
        job = self.new_job(interaction, params, parent_id=parent.id if parent else None,
                           private=private)
        if await self._refused_as_late(interaction, [job]):
            return
        try:
            handle = await self.images.submit(job)
        except Refused as exc:
            await _ephemeral(interaction, exc.reason)
            return
        token = await self._keep_token(interaction, [job])
        if private or token is not None:
            await self._start_private_button(interaction, handle, token)
            return
        if not interaction.response.is_done():
            await interaction.response.defer()
        channel = interaction.channel
        assert isinstance(channel, discord.abc.Messageable)
        try:
            status = await channel.send(
                queued_text(describe(params), _first_queued(handle)),
                view=cancel_view(job.id),
                reference=parent.to_reference(fail_if_not_exists=False) if parent
                else discord.utils.MISSING,
                allowed_mentions=discord.AllowedMentions.none(),
            )
        except discord.HTTPException as exc:
            # No status message, so no place for the result: don't render it for nobody.
            self.images.cancel(job.id)
            await _ephemeral(interaction, "I could not post in this channel "
                             f"({exc.text or exc.status}), so nothing was queued.")
            return
        self.images.remember_status(job, status.id)
        self.follow(handle, StatusMessage(status))

    async def _start_private_button(self, interaction: discord.Interaction[Any],
                                    handle: JobHandle,
                                    token: InteractionToken | None = None) -> None:
        """The status of a button job answered through the click's own token: a private
        one's an ephemeral reply to the click; one where the bot can't post (`token`: a
        DM, a group DM), a reply to the click that everyone there sees."""
        job = handle.job
        text = queued_text(describe(_image(job)), _first_queued(handle))
        mentions = discord.AllowedMentions.none()
        ephemeral = origin_of(job).private
        try:
            if interaction.response.is_done():
                message: Any = await interaction.followup.send(
                    text, view=cancel_view(job.id), ephemeral=ephemeral, wait=True,
                    allowed_mentions=mentions)
                status = StatusMessage(message, interaction, private=True, followup=True)
            else:
                await interaction.response.send_message(
                    text, view=cancel_view(job.id), ephemeral=ephemeral,
                    allowed_mentions=mentions)
                message = await interaction.original_response()
                status = StatusMessage(message, interaction, private=True)
        except discord.HTTPException:
            self.images.cancel(job.id)  # not acknowledged: nobody would see the result
            log.warning("job %s: its button could not be acknowledged; cancelled", job.id)
            return
        self.images.remember_status(job, message.id)
        if token is not None:
            self.follow(handle, self.answers.status(message, token), token)
            return
        self.private.remember(job.id, interaction)
        self.follow(handle, status)

    # ----- jobs answered only through their interaction (cogs/imagine/via_interaction.py) --

    async def _refused_as_late(self, interaction: discord.Interaction[Any],
                               jobs: list[Job]) -> bool:
        """Refuse up front (nothing queued) jobs that depend on the interaction's token
        and would not be ready while it lives; True when refused."""
        if not any(origin_of(j).via_interaction or origin_of(j).private for j in jobs):
            return False
        refusal = self.answers.refusal(self.images.finish_estimate_s(*jobs), interaction)
        if refusal is None:
            return False
        self.images.forget_inputs(jobs)
        await self.refuse_deferred(interaction, refusal)
        return True

    async def _keep_token(self, interaction: discord.Interaction[Any],
                          jobs: list[Job]) -> InteractionToken | None:
        """Store the token of jobs answered only through it (before it is used, so that a
        restart finds it); None for jobs the bot token reaches."""
        if not origin_of(jobs[0]).via_interaction:
            return None
        token = self.answers.token(interaction)
        for job in jobs:
            await self.answers.remember(job.id, token)
        return token

    async def _start_more_via_interaction(self, interaction: discord.Interaction[Any],
                                          handles: list[JobHandle], total: int,
                                          token: InteractionToken) -> None:
        """The other jobs of one command, where the bot can't post: followups of it."""
        webhook = self.answers.webhook(token)
        for n, handle in enumerate(handles, start=2):
            text = (queued_text(describe(_image(handle.job)), _first_queued(handle))
                    + f"\n-# {n} of {total} jobs from this prompt")
            try:
                message = await webhook.send(
                    text, view=cancel_view(handle.job.id), wait=True,
                    ephemeral=origin_of(handle.job).private,
                    allowed_mentions=discord.AllowedMentions.none())
            except discord.HTTPException as exc:
                # No status, so no place for its result: don't render it for nobody.
                log.warning("job %s: no status message (%s); cancelled", handle.job.id, exc)
                self.images.cancel(handle.job.id, reason="its status could not be posted")
                continue
            self.images.remember_status(handle.job, message.id)
            self.follow(handle, self.answers.status(message, token), token)

    async def _give_up_when_late(self, handle: JobHandle, token: InteractionToken) -> None:
        """Cancel a job still unfinished when its token is about to expire, while the
        token can still carry the status saying so (a result for nobody is never made)."""
        await asyncio.sleep(max(0.0, self.answers.give_up_in_s(token)))
        if self.images.cancel(handle.job.id, reason=LATE):
            log.info("job %s: not ready within its interaction token's life; cancelled",
                     handle.job.id)

    def follow(self, handle: JobHandle, status: StatusMessage | None,
               token: InteractionToken | None = None) -> None:
        task = asyncio.create_task(self._follow(handle, status, token),
                                   name=f"job-{handle.job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def resume(self, handle: JobHandle) -> None:
        """Pick up a job restored after a restart: edit its old status message, or, if it
        never got one stored, just deliver its result to its channel. One answered only
        through its interaction goes on while its token lives; else it is cancelled."""
        job = handle.job
        if origin_of(job).via_interaction:
            token = await self.answers.stored(job.id)
            status = await self._status_of(job)
            if token is None or status is None or self.answers.give_up_in_s(token) <= 0:
                self.images.cancel(job.id, reason=EXPIRED)
                await self.answers.forget(job.id)
                return
            self.follow(handle, status, token)
            return
        self.follow(handle, await self._status_of(job))

    def deliver_owed(self, record: JobRecord) -> None:
        """Post the result of a job rendered before a stop or crash but never delivered."""
        task = asyncio.create_task(self._deliver_owed(record), name=f"owed-{record.job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _delivering(self) -> None:
        """This task now posts a finished result: a clean stop waits for it to land."""
        task = asyncio.current_task()
        if task is not None and isinstance(self.client, GreenheartBot):
            self.client.delivering(task)

    async def _deliver_owed(self, record: JobRecord) -> None:
        self._delivering()
        params = record.job.params
        assert isinstance(params, ImageParams)
        status = await self._status_of(record.job)
        editor = self._editor(status)
        try:
            await self._deliver(record, editor, describe(params),
                                float(record.timings.get("generate_s", 0.0)))
        finally:
            if editor is not None:
                editor.stop()

    async def _status_of(self, job: Job) -> StatusMessage | None:
        origin = origin_of(job)
        if origin.via_interaction:  # only its stored token reaches it, while it lives
            token = await self.answers.stored(job.id)
            if token is None or origin.channel_id is None or origin.status_message_id is None:
                return None
            return self.answers.status_by_id(origin.channel_id, origin.status_message_id,
                                             token)
        if origin.private:  # ephemeral: its token did not survive the restart
            return None
        channel = await self._status_channel(origin.channel_id)
        if channel is None or origin.status_message_id is None:
            return None
        return StatusMessage(channel.get_partial_message(origin.status_message_id))

    async def _channel(self, channel_id: int | None) -> Any:
        """The channel, or None when it is gone or hidden from the bot. A transient failure
        (5xx, a dropped connection) raises, so that a delivery retries it."""
        if channel_id is None:
            return None
        channel = self.client.get_channel(channel_id)
        if channel is None:
            try:
                channel = await self.client.fetch_channel(channel_id)
            except (discord.NotFound, discord.Forbidden):
                return None
        return channel

    async def _status_channel(self, channel_id: int | None) -> Any:
        try:
            return await self._channel(channel_id)
        except (discord.HTTPException, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("could not look up channel %s for a status message: %s", channel_id,
                        exc)
            return None

    # ----- following a job ------------------------------------------------------------------

    def _editor(self, status: StatusMessage | None) -> ThrottledEditor | None:
        if status is None:
            return None
        return ThrottledEditor(status, self.settings.discord.status_edit_interval, self.pacer)

    async def _follow(self, handle: JobHandle, status: StatusMessage | None,
                      token: InteractionToken | None = None) -> None:
        editor = self._editor(status)
        late = (asyncio.create_task(self._give_up_when_late(handle, token))
                if token is not None else None)
        try:
            await self._present(handle, editor, describe(_image(handle.job)))
            if token is not None:  # finished: nothing needs its token any more
                await self.answers.forget(handle.job.id)
        finally:  # cancelled at shutdown: no edit may outlive the bot's HTTP session
            if late is not None:
                late.cancel()
            if editor is not None:
                editor.stop()
            self.private.forget(handle.job.id)

    async def _present(self, handle: JobHandle, editor: ThrottledEditor | None,
                       what: str) -> None:
        """Show each event in the status message (if the job has one), deliver the result."""
        job = handle.job
        started = time.monotonic()
        cancel_button = cancel_view(job.id)
        async for event in handle.events():
            if isinstance(event, Done):
                self._delivering()
                record = await self.images.stored_record(handle)
                await self._deliver(record, editor, what, time.monotonic() - started)
            elif editor is None:
                continue
            elif isinstance(event, Queued):
                editor.show(queued_text(what, event), view=cancel_button, low_priority=True)
            elif isinstance(event, Started):
                started = time.monotonic()
                editor.show(f"🎨 {what}\nStarting…", view=cancel_button)
            elif isinstance(event, Progress):
                editor.show(progress_text(what, event, started), event.preview)
            elif isinstance(event, Failed):
                await editor.close(f"❌ {what}\nFailed: {event.reason}")
            elif isinstance(event, Cancelled):
                await editor.close(f"✖️ {what}\n{event.reason or 'Cancelled.'}")

    # ----- delivering a result --------------------------------------------------------------

    async def _deliver(self, record: JobRecord | None, editor: ThrottledEditor | None,
                       what: str, seconds: float) -> None:
        """Post a rendered job's result once (retrying what may pass), store where, and say
        so in the status message; a job whose files could not be written says why."""
        via = record is not None and origin_of(record.job).via_interaction
        if via and editor is not None:
            await editor.quiet()  # the result replaces the status: no edit may land after it
        final, delivered = await self._post_once(record, what, seconds)
        if editor is not None and not (via and delivered):
            await editor.close(final)

    async def _post_once(self, record: JobRecord | None, what: str,
                         seconds: float) -> tuple[str, bool]:
        """Deliver; returns the status message's last text, and whether it was delivered."""
        if record is None:  # the store could not write at all (logged there)
            return f"❌ {what}\nThe pictures were made but could not be saved.", False
        if record.state is JobState.FAILED:
            return f"❌ {what}\nFailed: {record.reason or 'unknown error'}", False
        job = record.job
        try:
            message = await self._post_result(record, seconds)
        except DeliveryFailed as exc:
            log.error("job %s: its result could not be posted: %s", job.id, exc.reason)
            await self.images.mark_undeliverable(
                job.id, f"The result could not be posted ({exc.reason}).")
            return (f"❌ {what}\nThe pictures were made but could not be posted "
                    f"({exc.reason})."), False
        await self.images.mark_delivered(job.id, message.channel.id, message.id)
        return f"✅ {what}\nDone in {seconds:.1f} s → {message.jump_url}", True

    async def post_finished(self, record: JobRecord, what: str) -> tuple[str, bool]:
        """Post a job recorded finished without a run (🎞 a kept step), once; returns what
        happened, for the member, and whether it was delivered."""
        self._delivering()
        return await self._post_once(record, what, 0.0)

    async def _post_result(self, record: JobRecord, seconds: float) -> discord.Message:
        job = record.job
        origin = origin_of(job)
        try:
            result = await self.images.stored_result(record)
        except OSError as exc:  # deleted (🗑) or removed from the disk meanwhile
            raise DeliveryFailed(f"its picture files are gone: {exc.strerror}") from exc
        spoiler = any(g.nsfw for g in result.images) and not origin.nsfw
        upload = await asyncio.to_thread(result_file, job, result,
                                         upload_limit=origin.upload_limit, spoiler=spoiler)
        embed = result_embed(job, result, upload.filename, seconds)
        step = kept_step(record)  # a 🎞 kept step says which step it shows
        view = self._result_view(record)
        parent_id = origin.parent_message_id or origin.status_message_id
        # A style sweep also attaches each preset's own picture, with its own PNG info.
        gallery: list[list[ResultFile]] = []
        if is_sweep(job):
            try:
                gallery = await asyncio.to_thread(sweep_files, record, origin.upload_limit)
            except OSError as exc:
                log.warning("job %s: its pictures can't be attached one by one: %s", job.id,
                            exc)
        first = gallery[0] if gallery else []

        token = await self.answers.stored(job.id) if origin.via_interaction else None

        async def post() -> discord.Message:
            if origin.via_interaction:  # the status's final edit, through the token alone
                return await self._answer_result(job, token, {
                    "content": result_content(job, step), "embed": embed, "view": view,
                    "attachments": [discord.File(io.BytesIO(upload.data),
                                                 filename=upload.filename),
                                    *_files(first, spoiler)]})
            if origin.private:  # never in the channel: an ephemeral followup, or a DM
                return await self.private.send(job.id, job.user_id, result_content(job, step),
                                               lambda: {"embed": embed, "view": view,
                                                        "files": [discord.File(
                                                            io.BytesIO(upload.data),
                                                            filename=upload.filename),
                                                            *_files(first, spoiler)]})
            channel = await self._channel(origin.channel_id)  # in the try: may be transient
            if channel is None:
                raise DeliveryFailed("the channel is gone or the bot can't see it")
            reference = discord.MessageReference(message_id=parent_id, channel_id=channel.id,
                                                 fail_if_not_exists=False) if parent_id else None
            # New Files each try: a failed upload has consumed the last one's streams.
            return await channel.send(  # type: ignore[no-any-return]
                result_content(job, step), embed=embed, view=view, reference=reference,
                files=[discord.File(io.BytesIO(upload.data), filename=upload.filename),
                       *_files(first, spoiler)],
                nonce=result_nonce(job.id), allowed_mentions=discord.AllowedMentions.none())

        message = await deliver(post, what=f"the result of job {job.id}",
                                give_up_after=self.settings.discord.delivery_retry_s,
                                on_retry=self.metrics.delivery_retried)
        for part, files in enumerate(gallery[1:], start=2):
            if origin.via_interaction:
                await self._post_more_via_interaction(job, token, part, files, spoiler)
            elif origin.private:
                await self._post_more_privately(job, part, files, spoiler)
            else:
                await self._post_more(message, job, part, files, spoiler)
        return message

    async def _answer_result(self, job: Job, token: InteractionToken | None,
                             fields: dict[str, Any]) -> discord.Message:
        """A result where the bot can't post: its status message, edited into it through
        the interaction's token (an edit: a retry never makes a second result)."""
        origin = origin_of(job)
        if token is None or origin.channel_id is None or origin.status_message_id is None:
            raise DeliveryFailed("Discord's 15 minutes for answering here were over")
        status = self.answers.status_by_id(origin.channel_id, origin.status_message_id, token)
        return await status.replace(**fields)

    async def _post_more_via_interaction(self, job: Job, token: InteractionToken | None,
                                         part: int, files: list[ResultFile],
                                         spoiler: bool) -> None:
        """A sweep's further pictures where the bot can't post: followups (best effort:
        a followup takes no nonce, so it is not retried; the grid shows them all)."""
        if token is None:
            return
        try:
            await self.answers.webhook(token).send(
                f"-# 🎨 More styles of **{_subject(job)}** (part {part})",
                files=_files(files, spoiler), wait=True, ephemeral=origin_of(job).private,
                allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException as exc:
            log.warning("job %s: part %d of its pictures was not sent: %s", job.id, part, exc)

    async def _post_more_privately(self, job: Job, part: int, files: list[ResultFile],
                                   spoiler: bool) -> None:
        """A private sweep's further pictures, the way its result went (best effort)."""
        try:
            await self.private.send(job.id, job.user_id,
                                    f"-# 🎨 More styles of **{_subject(job)}** (part {part})",
                                    lambda: {"files": _files(files, spoiler)})
        except discord.HTTPException as exc:
            log.warning("job %s: part %d of its pictures was not sent: %s", job.id, part, exc)

    async def _post_more(self, result: discord.Message, job: Job, part: int,
                         files: list[ResultFile], spoiler: bool) -> None:
        """More of a sweep's pictures, as a reply to its result (best effort: the grid in
        the result already shows them all)."""
        async def post() -> discord.Message:
            return await result.channel.send(  # type: ignore[no-any-return]
                f"-# 🎨 More styles of **{_subject(job)}** (part {part})",
                files=_files(files, spoiler), reference=result.to_reference(
                    fail_if_not_exists=False),
                nonce=result_nonce(f"{job.id}{part}"),
                allowed_mentions=discord.AllowedMentions.none())

        try:
            await deliver(post, what=f"more pictures of job {job.id}",
                          give_up_after=self.settings.discord.delivery_retry_s,
                          on_retry=self.metrics.delivery_retried)
        except DeliveryFailed as exc:
            log.warning("job %s: part %d of its pictures was not posted: %s", job.id, part,
                        exc.reason)

    # ----- buttons (ButtonActions) ----------------------------------------------------------

    async def imagine_text(self, interaction: discord.Interaction[Any], prompt: str) -> None:
        """An /imagine of `prompt` with the default options, for whoever pressed a button
        that holds it (🎨 Imagine this under /describe): the command's checks and limits,
        its status a reply to the message the button is on."""
        try:
            params = self.images.request(ImageOptions(prompt=prompt))
        except (OptionError, PromptError) as exc:
            await _ephemeral(interaction, f"⚠️ {exc}")
            return
        await self.start_from_button(interaction, params)

    async def reroll(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        try:
            params = self.images.rerolled(await self.images.usable(job_id))
        except ImageJobError as exc:
            await _ephemeral(interaction, exc.reason)
            return
        await self.start_from_button(interaction, params)

    async def derive(self, interaction: discord.Interaction[Any], job_id: str, mode: ImageMode,
                     index: int) -> None:
        try:
            params = self.images.derived(await self.images.usable(job_id), mode, index)
        except ImageJobError as exc:
            await _ephemeral(interaction, exc.reason)
            return
        await self.start_from_button(interaction, params)

    async def draft(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        """⚡ Drafts of a result: its prompt and seeds with the fast draft model."""
        try:
            params = self.images.drafted(await self.images.usable(job_id))
        except ImageJobError as exc:
            await _ephemeral(interaction, exc.reason)
            return
        await self.start_from_button(interaction, params)

    async def finalize(self, interaction: discord.Interaction[Any], job_id: str,
                       index: int) -> None:
        """✨ A draft picture, finalized by the full model from the draft itself."""
        try:
            params = self.images.finalized(await self.images.usable(job_id), index)
        except ImageJobError as exc:
            await _ephemeral(interaction, exc.reason)
            return
        await self.start_from_button(interaction, params)

    async def remix(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        """🖌 Remix: the form with the job's prompt, negative prompt and seed filled in."""
        try:
            prompt, negative, seed = self.images.remix_form(await self.images.usable(job_id))
        except ImageJobError as exc:
            await _ephemeral(interaction, exc.reason)
            return
        await interaction.response.send_modal(RemixForm(
            job_id, prompt, negative, seed, self.settings.image.max_prompt_chars))

    async def remix_submitted(self, interaction: discord.Interaction[Any], job_id: str,
                              values: dict[str, str]) -> None:
        """The Remix form came back (before or after a restart): render the edit."""
        seed_text = values.get(SEED_FIELD, "").strip()
        try:
            seed = int(seed_text) if seed_text else None
            if seed is not None and not 0 <= seed <= MAX_SEED:
                raise ValueError
        except ValueError:
            await _ephemeral(interaction, f"seed = {seed_text!r}: a seed is a whole number "
                             f"0-{MAX_SEED}, or empty for new seeds; nothing was queued.")
            return
        try:
            params = self.images.remixed(await self.images.usable(job_id),
                                         values.get(PROMPT_FIELD, ""),
                                         values.get(NEGATIVE_FIELD, ""), seed)
        except ImageJobError as exc:
            await _ephemeral(interaction, exc.reason)
            return
        except PromptError as exc:
            await _ephemeral(interaction, f"⚠️ {exc}")
            return
        await self.start_from_button(interaction, params)

    async def restyle(self, interaction: discord.Interaction[Any], job_id: str,
                      style: str) -> None:
        try:
            params = self.images.restyled(await self.images.usable(job_id), style)
        except ImageJobError as exc:
            await _ephemeral(interaction, exc.reason)
            return
        await self.start_from_button(interaction, params)

    async def outpaint(self, interaction: discord.Interaction[Any], job_id: str, index: int,
                       op: Outpaint) -> None:
        try:
            params = await self.images.outpainted(await self.images.usable(job_id), index, op)
        except ImageJobError as exc:
            await _ephemeral(interaction, exc.reason)
            return
        await self.start_from_button(interaction, params)

    async def show_parameters(self, interaction: discord.Interaction[Any],
                              job_id: str) -> None:
        try:
            texts = await self.images.parameter_texts(await self.images.usable(job_id))
        except ImageJobError as exc:
            await _ephemeral(interaction, exc.reason)
            return
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

    async def delete(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        owner = await self.images.owner(job_id)
        if not _may_moderate(interaction, owner):
            await _ephemeral(interaction, "Only the person who made this picture, or members "
                             "with Manage Messages, can delete it.")
            return
        await interaction.response.defer()
        if owner is not None:
            await self.images.delete(job_id)
        if interaction.message is not None:
            try:
                if interaction.message.flags.ephemeral or answers_through_interaction(
                        interaction):
                    # The bot token can't reach it: after the deferred update, the click's
                    # "original response" is the message the button is on.
                    await interaction.delete_original_response()
                else:
                    await interaction.message.delete()
            except discord.HTTPException as exc:
                await interaction.followup.send(f"Could not delete the message: {exc.text}",
                                                ephemeral=True)

    def _result_view(self, record: JobRecord, stars: int = 0) -> discord.ui.View:
        """A result's buttons: the same when posted and when ⭐ rebuilds them."""
        return result_view(record, self.settings.image.styles, drafts=self.images.drafts,
                           stars=stars)

    async def star(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        """⭐ Give the member's star, or take it back; their own picture too (a member has
        one star per result, so it weighs no more than anyone's). The count on the button is
        updated in place (the message's pictures are left as they are)."""
        try:
            record = await self.images.usable(job_id)
        except ImageJobError as exc:
            await _ephemeral(interaction, exc.reason)
            return
        origin = origin_of(record.job)
        if origin.private:  # never shown to anyone else: no ⭐ on it, nothing to rank
            await _ephemeral(interaction, "A private picture can't be starred.")
            return
        starred = await self.stars.toggle(job_id, interaction.user.id,
                                          guild_id=origin.guild_id,
                                          channel_id=origin.channel_id or record.channel_id)
        if starred is None:  # deleted between the look-up and the star
            await _ephemeral(interaction, "That picture's job is no longer stored (it was "
                             "deleted), so this button can't do anything any more.")
            return
        await interaction.response.edit_message(view=self._result_view(record, starred.count))

    async def cancel(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        job = self.images.unfinished(job_id)
        if job is None:
            await _ephemeral(interaction, "That job has already finished.")
            return
        if not _may_moderate(interaction, job.user_id):
            await _ephemeral(interaction, "Only the person who asked for this job can cancel it.")
            return
        if self.images.cancel(job_id, by_user=interaction.user.id):
            await interaction.response.defer()  # the status message will say "Cancelled"
        else:
            await _ephemeral(interaction, "That job has already finished.")


def _files(files: list[ResultFile], spoiler: bool) -> list[discord.File]:
    return [discord.File(io.BytesIO(f.data), filename=f"SPOILER_{f.filename}" if spoiler
                         else f.filename) for f in files]


def _subject(job: Job) -> str:
    params = job.params
    return discord.utils.escape_markdown(params.subject if isinstance(params, ImageParams)
                                         else "")


def result_nonce(job_id: str) -> str:
    """The same for every try of the same result (Discord's nonces are <= 25 characters)."""
    return f"gh:{job_id}"


def _may_moderate(interaction: discord.Interaction[Any], owner: int | None) -> bool:
    if owner is not None and interaction.user.id == owner:
        return True
    permissions = getattr(interaction, "permissions", None)
    return bool(permissions and permissions.manage_messages)


def _image(job: Job) -> ImageParams:
    assert isinstance(job.params, ImageParams)
    return job.params


def _first_queued(handle: JobHandle) -> Queued:
    return Queued(handle.position or 1, None)


async def _ephemeral(interaction: discord.Interaction[Any], text: str) -> None:
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=True)
    else:
        await interaction.response.send_message(text, ephemeral=True)
