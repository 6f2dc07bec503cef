"""Live writing: while the model writes a line, a "writing…" message in the thread shows it
as far as it got, edited at most once per `discord.status_edit_interval` by the editor the
picture status messages use.

The worker sends only text it checked against the blocked terms; each text is checked
again here before it is shown (cheap), and one that fails is skipped. The message is
posted with a nonce from the job, so a retry or a resumed job finds the same one. When the
job is done, the cog takes the message: a choice's message becomes the choice (the
candidates), and a single line's is deleted once the line is posted. In a DM or group DM
the message is a followup of the click that asked, edited through its token.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import discord

from bot.config import Settings
from bot.executor.handle import JobHandle
from bot.executor.jobs import Done, Progress, StoryOrigin
from bot.prompts import find_blocked_term
from bot.story import Story
from bot.story.requests import shorten
from cogs.delivery import DeliveryFailed, deliver
from cogs.imagine.status import StatusMessage, ThrottledEditor
from cogs.story.messages import MESSAGE_LIMIT

log = logging.getLogger(__name__)

NO_PINGS = discord.AllowedMentions.none()
SHOWN_OPS = frozenset({"continue", "rewrite", "choose"})  # ↻ More keeps its choice message
LIVE_RETRY_S = 60.0


def writing_nonce(job_id: str) -> str:
    return "gh:w" + hashlib.blake2b(job_id.encode(), digest_size=8).hexdigest()


def writing_content(number: int, text: str | None) -> str:
    if not text:
        return f"✍️ **{number}.** *writing…*"
    head, tail = f"✍️ **{number}.** ", " ✍️"
    return f"{head}{shorten(text, MESSAGE_LIMIT - len(head) - len(tail))}{tail}"


@dataclass
class _Live:
    task: asyncio.Task[None]
    message: asyncio.Future[int | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())


class LiveLines:
    def __init__(self, client: discord.Client, settings: Settings,
                 channel_of: Callable[[Story], Any]) -> None:
        self.client = client
        self.settings = settings
        self.channel_of = channel_of  # the story's thread, or its conversation
        self._live: dict[str, _Live] = {}

    def watch(self, story: Story, handle: JobHandle) -> None:
        """Follow a text job of `story` (the teller's `on_text_job`)."""
        origin = handle.job.origin
        if (not isinstance(origin, StoryOrigin) or origin.op not in SHOWN_OPS
                or story.place is None or handle.job.id in self._live):
            return
        self._live[handle.job.id] = live = _Live(asyncio.create_task(
            self._follow(story, handle, origin.line), name=f"live-{handle.job.id}"))
        live.task.add_done_callback(lambda _: _settle(live.message))

    async def take(self, job_id: str | None) -> int | None:
        """The writing message of a finished job, its edits over; None when it has none."""
        live = self._live.pop(job_id or "", None)
        if live is None:
            return None
        with contextlib.suppress(Exception):
            await live.task
        return live.message.result() if live.message.done() else None

    async def finish(self, story: Story, job_id: str | None) -> None:
        """The job's line is in the thread: its writing message goes."""
        message_id = await self.take(job_id)
        thread = self.channel_of(story)
        if message_id is None or thread is None:
            return
        with contextlib.suppress(discord.HTTPException):
            await thread.get_partial_message(message_id).delete()

    def stop(self) -> None:
        for live in self._live.values():
            live.task.cancel()
        self._live.clear()

    async def _follow(self, story: Story, handle: JobHandle, number: int) -> None:
        live = self._live[handle.job.id]
        thread = self.channel_of(story)
        nonce = writing_nonce(handle.job.id)

        async def post() -> discord.Message:
            return await thread.send(writing_content(number, None), nonce=nonce,
                                     allowed_mentions=NO_PINGS)

        try:
            # Retried briefly (the nonce makes a retry find a post whose answer was lost):
            # the choice waits for this message, and can do without it.
            message = await deliver(post, what=f"the live line of job {handle.job.id}",
                                    give_up_after=min(LIVE_RETRY_S,
                                                      self.settings.discord.delivery_retry_s))
        except (DeliveryFailed, discord.HTTPException) as exc:
            log.info("no live line for job %s: %s", handle.job.id, exc)
            live.message.set_result(None)
            return
        live.message.set_result(message.id)
        status = (_WebhookStatus(message) if isinstance(message, discord.WebhookMessage)
                  else StatusMessage(message))
        editor = ThrottledEditor(status,
                                 self.settings.discord.status_edit_interval)
        last, done = "", False
        try:
            async for event in handle.events():
                text = event.text if isinstance(event, Progress) else None
                if text and text != last and self._safe(text):
                    last = text
                    editor.show(writing_content(number, text))
                done = isinstance(event, Done)
        finally:
            # The last text stays; what the message becomes is the cog's to say.
            await editor.close(writing_content(number, last))
        if not done:  # failed or cancelled: the thread says why elsewhere
            with contextlib.suppress(discord.HTTPException):
                await message.delete()

    def _safe(self, text: str) -> bool:
        safety = self.settings.safety
        return (find_blocked_term(text, safety.blocked_terms) is None
                and find_blocked_term(text, safety.nsfw_terms) is None)


class _WebhookStatus(StatusMessage):
    """A followup in a conversation: edited through its own webhook, never the bot token."""

    async def edit(self, **fields: Any) -> None:
        fields.setdefault("allowed_mentions", NO_PINGS)
        await self.message.edit(**fields)


def _settle(future: asyncio.Future[int | None]) -> None:
    if not future.done():
        future.set_result(None)
