"""An image job's life without Discord: from a member's request to a queued job, from a
finished job to its stored record, and from a stored record to the jobs its buttons make
(re-roll, another style, variations, upscales).

`/imagine`, its buttons and `python -m bot render` share these rules and their messages; the
cog only presents (status message, result post, buttons). The order of a job's life:
`request` (bot.images.requests) → `new_job` → `submit` → executor events → `finished_record`
→ `mark_posted`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.config import Settings
from bot.db.jobs import JobRecord, JobRepository
from bot.executor.executor import Executor, JobHandle
from bot.executor.jobs import ImageMode, ImageParams, Job, JobState
from bot.images.pnginfo import format_parameters, read_png_parameters
from bot.images.requests import (
    ImageOptions,
    build_image_params,
    derived,
    rerolled,
    restyled,
)
from bot.prompts import find_blocked_term, find_style

ORIGIN_KIND = "imagine"


class ImageJobError(Exception):
    """A job can't be made or used; `reason` is meant for the member who asked."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Place:
    """Where a job was asked for and where its result goes (Discord ids, but no Discord)."""

    guild_id: int | None
    channel_id: int | None
    nsfw: bool  # the channel allows NSFW pictures unblurred
    upload_limit: int  # bytes one upload may have there
    parent_message_id: int | None = None  # the result a button was pressed on


def is_image_job(job: Job) -> bool:
    return job.origin.get("kind") == ORIGIN_KIND


class ImageJobs:
    def __init__(self, settings: Settings, executor: Executor, jobs: JobRepository,
                 native_size: int) -> None:
        self.settings = settings
        self.executor = executor
        self.jobs = jobs
        self.native_size = native_size  # the image model's own side in pixels

    # ----- from a request to a queued job ---------------------------------------------------

    def request(self, options: ImageOptions) -> ImageParams:
        """Validated parameters; raises OptionError or PromptError (messages for members)."""
        return build_image_params(options, self.settings.image, self.native_size)

    def refusal(self, params: ImageParams, *, nsfw_allowed: bool) -> str | None:
        """Why these pictures may not be made here (blocked or NSFW terms), or None."""
        safety = self.settings.safety
        text = f"{params.prompt}\n{params.subject}"
        term = find_blocked_term(text, safety.blocked_terms)
        if term:
            return f"Your prompt contains a blocked term ({term!r}); nothing was queued."
        term = find_blocked_term(text, safety.nsfw_terms)
        if term and not nsfw_allowed:
            return (f"{term!r} is only allowed in channels marked NSFW; nothing was queued. "
                    "Try again in an NSFW channel.")
        return None

    @staticmethod
    def new_job(user_id: int, user_name: str, params: ImageParams, place: Place) -> Job:
        return Job(
            user_id=user_id,
            user_name=user_name,
            params=params,
            origin={
                "kind": ORIGIN_KIND,
                "guild_id": place.guild_id,
                "channel_id": place.channel_id,
                "parent_message_id": place.parent_message_id,
                "upload_limit": place.upload_limit,
                "nsfw": place.nsfw,
            },
        )

    async def submit(self, job: Job) -> JobHandle:
        """Queue the job; raises Refused (with a reason for the member) at a limit."""
        return await self.executor.submit(job)

    def cancel(self, job_id: str, by_user: int | None = None) -> bool:
        return self.executor.cancel(job_id, by_user=by_user)

    def remember_status(self, job: Job, message_id: int) -> None:
        """Note the job's status message, so a restart edits the same one."""
        job.origin["status_message_id"] = message_id
        # After the write that inserts the job's row, which is still queued.
        self.executor.store_after(self.jobs.update_origin(job.id, job.origin))

    def restored(self, handles: list[JobHandle]) -> list[JobHandle]:
        """The image jobs among those a restart brought back."""
        return [h for h in handles if is_image_job(h.job)]

    # ----- from a finished job to its record ------------------------------------------------

    async def finished_record(self, handle: JobHandle) -> JobRecord | None:
        """The stored job once the store has written its images (the buttons need them)."""
        await handle.recorded()
        return await self.jobs.get(handle.job.id)

    async def mark_posted(self, job_id: str, channel_id: int, message_id: int) -> None:
        await self.jobs.set_posted(job_id, channel_id, message_id)

    # ----- from a stored record to the jobs its buttons make --------------------------------

    async def usable(self, job_id: str) -> JobRecord:
        """The finished job a button names; raises ImageJobError saying why it can't be used."""
        record = await self.jobs.get(job_id)
        if record is None:
            raise ImageJobError("That picture's job is no longer stored (it was deleted), so "
                                "this button can't do anything any more.")
        if record.state is not JobState.DONE or not record.images:
            raise ImageJobError("That job has no finished pictures.")
        return record

    @staticmethod
    def rerolled(record: JobRecord) -> ImageParams:
        """Same settings, new seeds."""
        return rerolled(_image_params(record))

    def derived(self, record: JobRecord, mode: ImageMode, index: int) -> ImageParams:
        """Variations (V) or an upscale (U) of picture `index` of a finished job."""
        if index >= len(record.images):
            raise ImageJobError(f"That job has only {len(record.images)} picture(s).")
        settings = self.settings.image
        strength = settings.variation_strength if mode is ImageMode.VARIATION \
            else settings.upscale_strength
        return derived(_image_params(record), mode, index, record.job.id,
                       str(record.images[index].path), strength)

    def restyled(self, record: JobRecord, style: str) -> ImageParams:
        """Same subject and seed in another preset (the style menu)."""
        preset = find_style(self.settings.image.styles, style)
        if preset is None:
            raise ImageJobError(f"The style {style!r} is no longer offered.")
        return restyled(_image_params(record), preset, self.settings.image)

    async def parameter_texts(self, record: JobRecord) -> list[str]:
        """Each picture's parameters as AUTOMATIC1111 writes them, read from its PNG (so
        what ℹ️ shows is what the file carries); pictures whose file is gone are left out."""
        texts = []
        for image in record.images:
            params = await asyncio.to_thread(_read_parameters, image.path)
            if params is not None:
                texts.append(format_parameters(params))
        return texts

    async def owner(self, job_id: str) -> int | None:
        record = await self.jobs.get(job_id)
        return record.job.user_id if record else None

    async def delete(self, job_id: str) -> None:
        """Forget a job and remove its files (🗑)."""
        await self.jobs.delete(job_id)


def _image_params(record: JobRecord) -> ImageParams:
    params = record.job.params
    if not isinstance(params, ImageParams):
        raise ImageJobError("That job is not a picture.")
    return params


def _read_parameters(path: Path) -> Any:
    try:
        with open(path, "rb") as f:
            return read_png_parameters(f.read())
    except OSError:
        return None
