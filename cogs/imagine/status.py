"""The status message of a job: what it says at each event, and edits that respect Discord.

Edits are throttled (one per `interval`, only the latest state is sent) and back off when an
edit was slow, which is what a 429 looks like from here: discord.py sleeps out `retry_after`
inside the call. While the interaction token lives, edits use it; after ~14 minutes they go
through the channel with the bot token, so a job that waited long still updates.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from dataclasses import dataclass
from typing import Any

import discord
from PIL.Image import Image

from bot.executor.jobs import ImageMode, ImageParams, Progress, Queued
from bot.images.outpaint import Outpaint

log = logging.getLogger(__name__)

TOKEN_LIFETIME_S = 14 * 60  # interaction tokens live 15 minutes; keep a margin
PREVIEW_SIDE = 384
QUEUE_EDITS_PER_SECOND = 10.0  # queue-position edits of all status messages together


def describe(params: ImageParams) -> str:
    """What a status message is about: the subject, its style or what was done to it."""
    subject = params.subject if len(params.subject) <= 200 else params.subject[:199] + "…"
    if params.mode is ImageMode.UPSCALE:
        return f"Upscaling image {params.source_index + 1} of **{subject}**"
    if params.mode is ImageMode.VARIATION:
        return f"Variations of image {params.source_index + 1} of **{subject}**"
    if params.mode is ImageMode.OUTPAINT:
        return f"{Outpaint.of(params).doing}: image {params.source_index + 1} of **{subject}**"
    if params.mode is ImageMode.JOURNEY:
        return f"🎞️ The journey of image {params.source_index + 1} of **{subject}**"
    style = f" · {params.style}" if params.style else ""
    return f"**{subject}**{style}"


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "ETA unknown"
    if seconds < 60:
        return f"ETA ~{max(1, round(seconds))} s"
    return f"ETA ~{round(seconds / 60)} min"


def progress_bar(step: int, total: int, width: int = 12) -> str:
    filled = round(width * step / max(1, total))
    return "▰" * filled + "▱" * (width - filled)


def queued_text(what: str, event: Queued) -> str:
    when = event.note if event.note else format_eta(event.eta_s)
    return f"⏳ {what}\nQueued **#{event.position}** · {when}"


def progress_text(what: str, event: Progress, started: float) -> str:
    elapsed = time.monotonic() - started
    if event.note and event.step == 0:  # before the first step, e.g. "loading model X"
        return f"🎨 {what}\n{event.note[:1].upper()}{event.note[1:]}… · {elapsed:.0f} s"
    return (f"🎨 {what}\n{progress_bar(event.step, event.total)} "
            f"{event.step}/{event.total} · {elapsed:.0f} s")


def preview_file(image: Image) -> discord.File:
    small = image.copy()
    small.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
    buffer = io.BytesIO()
    small.convert("RGB").save(buffer, format="JPEG", quality=80)
    buffer.seek(0)
    return discord.File(buffer, filename="preview.jpg")


class StatusMessage:
    """One message we keep editing: an interaction response or a plain channel message."""

    def __init__(
        self,
        message: discord.PartialMessage | discord.Message,
        interaction: discord.Interaction | None = None,
        *,
        private: bool = False,
        followup: bool = False,
    ) -> None:
        self.message = message
        self.interaction = interaction
        self.created = time.monotonic()
        # Ephemeral: only the interaction's token reaches it, never the bot token.
        self.private = private
        self.followup = followup  # a followup of `interaction`, not its original reply

    @property
    def id(self) -> int:
        return self.message.id

    async def edit(self, **fields: Any) -> None:
        fields.setdefault("allowed_mentions", discord.AllowedMentions.none())
        if self.interaction and time.monotonic() - self.created < TOKEN_LIFETIME_S:
            try:
                if self.followup:
                    await self.interaction.followup.edit_message(self.message.id, **fields)
                else:
                    await self.interaction.edit_original_response(**fields)
                return
            except discord.HTTPException as exc:
                if exc.status not in (401, 404):
                    raise
                self.interaction = None  # token gone: use the bot token from now on
        if self.private:
            return  # its token is gone, and the bot token can't reach an ephemeral message
        partial = self.message.channel.get_partial_message(self.message.id)  # type: ignore[union-attr]
        await partial.edit(**fields)


@dataclass
class _State:
    content: str
    preview: Image | None = None
    view: discord.ui.View | None = None
    low_priority: bool = False


class EditPacer:
    """Spreads low-priority edits (queue positions) of all status messages over time.

    When a batch finishes, every waiting job's place changes at once; with a hundred jobs
    waiting that was a hundred edits in one burst, and while the event loop worked through
    them an /imagine waited half a second for its acknowledgement (and Discord's rate limits
    came close). Each low-priority edit takes the next free slot, at most `per_second`
    across the bot; the editor sends whatever is newest when its slot comes.
    """

    def __init__(self, per_second: float = QUEUE_EDITS_PER_SECOND) -> None:
        self.gap = 1.0 / per_second
        self._next = 0.0

    def reserve(self) -> float:
        """Take the next free slot; returns the seconds until it."""
        now = time.monotonic()
        slot = max(now, self._next)
        self._next = slot + self.gap
        return slot - now


class ThrottledEditor:
    """Keeps a status message showing the latest state, at most one edit per interval;
    low-priority states also wait for a slot of the shared `pacer`."""

    def __init__(self, status: StatusMessage, interval: float,
                 pacer: EditPacer | None = None) -> None:
        self.status = status
        self.interval = interval
        self._base_interval = interval
        self._pacer = pacer
        self._pending: _State | None = None
        self._wake = asyncio.Event()
        self._urgent = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name=f"status-{status.id}")

    def show(self, content: str, preview: Image | None = None,
             view: discord.ui.View | None = None, *, low_priority: bool = False) -> None:
        pending = self._pending
        # A newer state without a preview must not drop a preview that was never shown,
        # nor make a waiting urgent state wait for the pacer.
        if preview is None and pending is not None:
            preview = pending.preview
        low_priority = low_priority and (pending is None or pending.low_priority)
        self._pending = _State(content, preview, view, low_priority)
        if not low_priority:
            self._urgent.set()
        self._wake.set()

    def stop(self) -> None:
        """Stop the updates without a final edit (the bot is shutting down)."""
        self._task.cancel()

    async def _wait_for_slot(self) -> None:
        """Wait for a pacer slot, or less if an urgent state arrives meanwhile."""
        if self._pacer is None:
            return
        self._urgent.clear()
        delay = self._pacer.reserve()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._urgent.wait(), delay)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._pending is not None and self._pending.low_priority:
                await self._wait_for_slot()
            state, self._pending = self._pending, None
            if state is None:
                continue
            started = time.monotonic()
            try:
                await self._apply(state)
            except discord.HTTPException as exc:
                log.warning("status edit failed (%s); will retry with the next update", exc)
            took = time.monotonic() - started
            # A slow edit means we were rate limited: space the next ones out.
            if took > self.interval:
                self.interval = min(self.interval * 2, 30.0)
            else:
                self.interval = max(self._base_interval, self.interval * 0.75)
            await asyncio.sleep(self.interval)

    async def _apply(self, state: _State) -> None:
        fields: dict[str, Any] = {"content": state.content}
        if state.preview is not None:
            # JPEG encoding off the event loop (a tiny-VAE preview can be full size).
            fields["attachments"] = [await asyncio.to_thread(preview_file, state.preview)]
        if state.view is not None:
            fields["view"] = state.view
        await self.status.edit(**fields)

    async def quiet(self) -> None:
        """Stop the updates and wait for the one in flight (what comes next replaces the
        message, and no late status edit may land on top of it)."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def close(self, content: str) -> None:
        """Stop the updates and show a final state at once (no preview, no buttons)."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        try:
            await self.status.edit(content=content, attachments=[], view=None)
        except discord.HTTPException as exc:
            log.warning("final status edit failed: %s", exc)
