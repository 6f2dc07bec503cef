"""Story operations on top of the executor: start, continue, add, rewrite, redraw.

Discord-free, so the cog and `python -m bot story` run the same code. Each operation returns
the line as it now stands; the caller posts it. Callers serialise operations on one story
(see `bot.story.turns`): the line numbers and the model's context assume nobody else writes
in between.

Jobs carry their story in a `StoryOrigin` (story, operation, line, step), so after a restart
`resume` can finish what a restored job started, and `recover` saves the line of a text job
that finished when the bot died before its line was saved. A job's result is delivered once
the story holds it (the line's text, or its picture) and the thread shows it.

`request` registers an operation the moment a member asks for it (`pending`): waiting for
its turn, it counts towards the member's per-person limit like their executor jobs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bot.config import Settings
from bot.db.jobs import JobRecord, JobRepository
from bot.executor.executor import Executor, Refused
from bot.executor.handle import JobHandle
from bot.executor.jobs import (
    Cancelled,
    Done,
    Failed,
    ImageParams,
    ImageResult,
    Job,
    JobEvent,
    JobState,
    StoryOrigin,
    TextParams,
    TextResult,
)
from bot.images.files import save_images
from bot.prompts import PromptError
from bot.story.cast_repository import CastRepository
from bot.story.clip_tokens import PromptTokens
from bot.story.models import Author, LineSource, Story, StoryLine
from bot.story.pending import PendingOp, PendingWork
from bot.story.repository import StoryRepository
from bot.story.requests import illustration_params, text_params

log = logging.getLogger(__name__)

class StoryError(Exception):
    """An operation could not be done; `reason` is meant for the members. `public` errors
    concern everyone in the story (the model could not write a line); the others only the
    member who asked (the story has ended, the queue is full)."""

    def __init__(self, reason: str, *, public: bool = False, restarting: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.public = public
        # Refused only because the bot is stopping cleanly: the next start finishes it.
        self.restarting = restarting


class StoryBusy(StoryError):
    """The story already has the same kind of work in progress: the request is answered
    at once (the line or picture asked for is on its way), not stacked."""


@dataclass(frozen=True)
class Resumed:
    """A story operation finished after a restart."""

    story: Story
    line: StoryLine | None  # None when it failed (see `error`)
    error: StoryError | None = None


def is_story_job(job: Job) -> bool:
    return isinstance(job.origin, StoryOrigin)


def story_origin(job: Job) -> StoryOrigin:
    assert isinstance(job.origin, StoryOrigin), f"job {job.id} is not a story job"
    return job.origin


class StoryTeller:
    def __init__(self, stories: StoryRepository, jobs: JobRepository, executor: Executor,
                 settings: Settings, native_size: int = 512) -> None:
        self.native_size = native_size  # the image model's own side in pixels
        self.stories = stories
        self.jobs = jobs
        self.executor = executor
        self.settings = settings
        self.pending = PendingWork()  # operations asked for and not finished (see `request`)
        # Told of every text job as it is submitted or resumed (the cog shows its live text).
        self.on_text_job: Callable[[Story, JobHandle], None] | None = None
        # The characters whose looks go into the pictures (/story cast), and the image
        # model's CLIP tokenizer that fits those prompts.
        self.cast = CastRepository(stories.db)
        self.prompt_tokens = PromptTokens(settings.image)

    # ----- requests -----------------------------------------------------------------------------

    def request(self, story: Story, op: str, asked_by: Author, line: int | None = None
                ) -> PendingOp:
        """Register operation `op` the moment it is asked for, before it waits for its turn;
        `pending.finish` it when it ends. Raises StoryBusy when the story already has the
        same work in progress, StoryError when the member is at the per-person limit."""
        busy = self.pending.busy(story.id, op, line)
        if busy is not None:
            raise StoryBusy(busy)
        self.check_limit(asked_by)
        return self.pending.add(story_id=story.id, title=story.title, op=op, line=line,
                                user_id=asked_by.id, user_name=asked_by.name)

    def check_limit(self, asked_by: Author) -> None:
        """Refuse (StoryError) a member whose queued and running jobs and waiting story
        operations together reach the executor's per-person limit."""
        limit = self.executor.limits.per_user_limit
        mine = self.load_of(asked_by.id)
        if mine >= limit:
            raise StoryError(
                f"You already have {mine} jobs queued, running or waiting for their turn in a "
                f"story; the limit is {limit} per person. Wait for one to finish or /cancel "
                "one.")

    def waiting_of(self, user_id: int) -> int:
        """The member's story operations with no job in the executor now (waiting for
        their turn, or between two jobs of one operation)."""
        jobs = [e.job for e in self.executor.snapshot() if e.job.user_id == user_id]
        return self.load_of(user_id) - len(jobs)

    def load_of(self, user_id: int) -> int:
        """The member's jobs in the executor plus their story operations that have none
        there now (waiting for their turn, or between two jobs of one operation)."""
        jobs = [e.job for e in self.executor.snapshot() if e.job.user_id == user_id]
        in_executor = {j.origin.story_id for j in jobs if isinstance(j.origin, StoryOrigin)}
        ops = [op for op in self.pending.of_user(user_id)
               if not (op.running and op.story_id in in_executor)]
        return len(jobs) + len(ops)

    # ----- operations ---------------------------------------------------------------------------

    async def start(self, *, seed: str, title: str, style: str | None, author: Author,
                    guild_id: int | None = None, channel_id: int | None = None,
                    thread_id: int | None = None) -> tuple[Story, StoryLine]:
        """Create a story with its seed as line 1 (not illustrated yet: see `illustrate`)."""
        story = await self.stories.create(title=title, style=style, author=author,
                                          guild_id=guild_id, channel_id=channel_id,
                                          thread_id=thread_id)
        line = await self.stories.add_line(story.id, 1, source=LineSource.SEED, text=seed,
                                           author=author)
        return story, line

    async def continue_story(self, story: Story, asked_by: Author, *,
                             resume: JobHandle | None = None) -> StoryLine:
        """The model writes the next line; then it is illustrated."""
        story = await self._open(story)
        lines = await self.stories.lines(story.id)
        number = len(lines) + 1
        if resume is None:
            self._check_room(len(lines))
            params = text_params(story.id, [line.text for line in lines], number, 0,
                                 self.settings, branch=story.branch)
            handle = await self._submit(asked_by, params, story, "continue", number, "text")
        else:
            handle = resume
            number = story_origin(handle.job).line
        text, model = await self._text_of(handle, number)
        number = await self._keep_model_line(story, number, handle.job.id, text, model,
                                             asked_by)
        return await self.illustrate(story, number, asked_by, op="continue")

    async def _keep_model_line(self, story: Story, number: int, job_id: str, text: str,
                               model: str, asked_by: Author) -> int:
        """Save the model's new line as line `number` (unless it is saved already); returns
        the number it has."""
        existing = await self.stories.line(story.id, number)
        if existing is None or existing.text_job_id != job_id:
            if existing is not None:  # someone else's line took the number meanwhile
                number = await self.stories.count_lines(story.id) + 1
            await self.stories.add_line(story.id, number, source=LineSource.MODEL, text=text,
                                        author=asked_by, model=model, text_job_id=job_id)
        return number

    async def add_line(self, story: Story, text: str, author: Author) -> StoryLine:
        """A member's line (already validated with `clean_line`), then its picture."""
        story = await self._open(story)
        count = await self.stories.count_lines(story.id)
        self._check_room(count)
        number = count + 1
        await self.stories.add_line(story.id, number, source=LineSource.MEMBER, text=text,
                                    author=author)
        try:
            return await self.illustrate(story, number, author, op="add", refuse=True)
        except StoryError:
            # Refused by the queue: the member may try again, so the line is not kept.
            await self.stories.delete_line(story.id, number)
            raise

    async def rewrite(self, story: Story, number: int, asked_by: Author, *,
                      resume: JobHandle | None = None) -> StoryLine:
        """The model writes line `number` (the latest, a model line) again."""
        story = await self._open(story)
        lines = await self.stories.lines(story.id)
        if resume is None:
            latest = lines[-1] if lines else None
            if (latest is None or latest.number != number or not latest.by_model
                    or latest.branch != story.branch):
                raise StoryError(_why_not_rewrite(number, latest))
            params = text_params(story.id, [line.text for line in lines[:-1]], number,
                                 latest.revision + 1, self.settings, branch=story.branch)
            handle = await self._submit(asked_by, params, story, "rewrite", number, "text")
        else:
            handle = resume
        text, model = await self._text_of(handle, number)
        await self.stories.rewrite_line(story.id, number, text=text, author=asked_by,
                                        model=model, text_job_id=handle.job.id)
        return await self.illustrate(story, number, asked_by, op="rewrite")

    async def redraw(self, story: Story, number: int, asked_by: Author) -> StoryLine:
        """A new picture for line `number`, with the next seed of its series."""
        story = await self._open(story)
        line = await self.stories.line(story.id, number)
        if line is None:
            raise StoryError(f"Line {number} is not part of this story (anymore).")
        return await self.illustrate(story, number, asked_by, op="redraw", refuse=True,
                                     next_seed=True)

    async def illustrate(self, story: Story, number: int, asked_by: Author, *, op: str,
                         resume: JobHandle | None = None, refuse: bool = False,
                         next_seed: bool = False) -> StoryLine:
        """Render line `number`'s picture and record it (or why there is none).

        With `refuse`, a job the queue refuses raises StoryError; otherwise the line keeps
        the refusal as its `image_error` (the text stays, 🎨 Redraw can try again)."""
        handle = resume
        if handle is None:
            line = await self._line(story, number)
            redraws = line.redraws + 1 if next_seed else line.redraws
            try:
                params = illustration_params(
                    story.id, story.style, line.text, number, redraws, self.settings,
                    self.native_size, cast=await self.cast.of_story(story.id),
                    count_tokens=await self.prompt_tokens.counter())
                handle = await self._submit(asked_by, params, story, op, number, "image")
            except (StoryError, PromptError) as exc:
                reason = exc.reason if isinstance(exc, StoryError) else str(exc)
                if isinstance(exc, StoryError) and exc.restarting:
                    # Not a reason to go without a picture: the line stays saved and
                    # unposted, and the next start illustrates and posts it.
                    raise
                if refuse:
                    raise StoryError(reason) from exc
                await self.stories.set_image_error(story.id, number, reason)
                return await self._line(story, number)
            if next_seed:
                await self.stories.count_redraw(story.id, number)
            await self.stories.set_image_job(story.id, number, handle.job.id, params.seeds[0])
        final = await handle.wait()
        stored = None
        if isinstance(final, Done) and isinstance(final.result, ImageResult):
            stored = await self._stored_image(handle, final.result)
        if isinstance(stored, Path):
            assert isinstance(final, Done) and isinstance(final.result, ImageResult)
            await self.stories.set_image(story.id, number, stored,
                                         nsfw=final.result.images[0].nsfw)
        else:
            # Failed, cancelled, or rendered but failed by the store (a full disk).
            reason = stored if stored is not None else _reason(final, "picture")
            current = await self._line(story, number)
            if next_seed and current.image_path is not None:
                # A failed redraw leaves the old picture in place: say so, don't erase it.
                raise StoryError(f"Line {number} could not be redrawn. {reason}", public=True)
            await self.stories.set_image_error(story.id, number, reason)
        return await self._line(story, number)

    async def settle(self, story: Story, line: StoryLine) -> StoryLine:
        """A line a crash left unposted, with no job running for it: give it its picture
        from the job store, or render it now, or record why there is none."""
        if line.image_path is not None or line.image_error is not None:
            return line
        if line.image_job_id is None:
            return await self.illustrate(story, line.number, line.author, op="settle")
        record = await self.jobs.get(line.image_job_id)
        if record is not None and record.state.has_result and record.images:
            await self.stories.set_image(story.id, line.number, record.images[0].path,
                                         nsfw=record.images[0].nsfw)
        else:
            reason = record.reason if record is not None and record.reason else \
                "the picture was lost when the bot restarted; press 🎨 Redraw"
            await self.stories.set_image_error(story.id, line.number, reason)
        return await self._line(story, line.number)

    async def resume(self, handle: JobHandle) -> Resumed | None:
        """Finish the operation a restored job belongs to; None when its story is gone."""
        origin = story_origin(handle.job)
        story = await self.stories.get(origin.story_id)
        if story is None:
            return None
        number = origin.line
        asked_by = Author(handle.job.user_id, handle.job.user_name)
        if origin.step == "text" and self.on_text_job is not None:
            self.on_text_job(story, handle)
        try:
            if origin.step == "text" and origin.op == "rewrite":
                line = await self.rewrite(story, number, asked_by, resume=handle)
            elif origin.step == "text":
                line = await self.continue_story(story, asked_by, resume=handle)
            else:
                line = await self.illustrate(story, number, asked_by, op=origin.op,
                                             resume=handle)
        except StoryError as exc:
            return Resumed(story, None, exc)
        return Resumed(story, line)

    async def recover(self, record: JobRecord) -> Resumed | None:
        """A story text job that was rendered (its text stored) when the bot stopped, before
        its line was saved: save the line as its operation would have, then illustrate it.
        None when there is nothing to do: the line was saved after all (a line saved but not
        shown is settled with the other unposted lines), or the story is gone."""
        job = record.job
        origin = story_origin(job)
        story = await self.stories.get(origin.story_id)
        lines = [] if story is None else await self.stories.lines(story.id)
        saved = next((line for line in lines if line.text_job_id == job.id), None)
        if story is None or record.result_text is None:
            await self.jobs.mark_undeliverable(job.id, "its story or its text is gone")
            return None
        if saved is not None:
            if saved.message_id is not None and story.thread_id is not None:
                await self.jobs.mark_delivered(job.id, story.thread_id, saved.message_id)
            return None
        asked_by = Author(job.user_id, job.user_name)
        model = record.model or ""
        try:
            story = await self._open(story)
            number = origin.line
            if origin.op == "rewrite":
                await self._line(story, number)
                await self.stories.rewrite_line(story.id, number, text=record.result_text,
                                                author=asked_by, model=model,
                                                text_job_id=job.id)
            else:
                number = await self._keep_model_line(story, number, job.id,
                                                     record.result_text, model, asked_by)
            line = await self.illustrate(story, number, asked_by, op=origin.op)
        except StoryError as exc:
            await self.jobs.mark_undeliverable(job.id, exc.reason)
            return Resumed(story, None, exc)
        return Resumed(story, line)

    # ----- helpers ------------------------------------------------------------------------------

    async def _open(self, story: Story) -> Story:
        current = await self.stories.get(story.id)
        if current is None:
            raise StoryError("This story no longer exists.")
        if not current.open:
            raise StoryError(f"The story “{current.title}” has ended; start a new one with "
                             "/story start.")
        return current

    def _check_room(self, count: int) -> None:
        limit = self.settings.story.max_lines
        if count >= limit:
            raise StoryError(f"This story has reached its {limit} lines; end it with "
                             "/story end and start another.")

    async def _line(self, story: Story, number: int) -> StoryLine:
        line = await self.stories.line(story.id, number)
        if line is None:
            raise StoryError(f"Line {number} is not part of this story (anymore).")
        return line

    async def _submit(self, asked_by: Author, params: TextParams | ImageParams, story: Story,
                      op: str, number: int, step: str) -> JobHandle:
        origin = StoryOrigin(story_id=story.id, op=op, line=number, step=step,
                             guild_id=story.guild_id if story.thread_id is not None else None,
                             channel_id=story.thread_id)
        job = Job(user_id=asked_by.id, user_name=asked_by.name, params=params, origin=origin)
        try:
            handle = await self.executor.submit(job)
        except Refused as exc:
            raise StoryError(exc.reason, restarting=exc.restarting) from exc
        if step == "text" and self.on_text_job is not None:
            self.on_text_job(story, handle)
        return handle

    async def _text_of(self, handle: JobHandle, number: int) -> tuple[str, str]:
        final = await handle.wait()
        if isinstance(final, Done) and isinstance(final.result, TextResult):
            return final.result.text, final.result.model
        raise StoryError(f"Line {number} could not be written. {_reason(final, 'line')}",
                         public=True)

    async def _stored_image(self, handle: JobHandle, result: ImageResult) -> Path | str:
        """The PNG the job store wrote for a finished job; or why not, where the store
        failed the job (it could not save the pictures: a full disk); written here if the
        store did not record it at all (its failure is logged), so the line still gets it."""
        await handle.recorded()
        record = await self.jobs.get(handle.job.id)
        if record is not None and record.state.has_result and record.images:
            return record.images[0].path
        if record is not None and record.state is JobState.FAILED:
            return record.reason or "The picture could not be saved."
        log.warning("job %s: the store did not record its image; saving it here", handle.job.id)
        paths = await asyncio.to_thread(save_images, handle.job, result, self.jobs.images_dir)
        return paths[0]


def _reason(final: JobEvent, what: str) -> str:
    if isinstance(final, Failed):
        return final.reason
    if isinstance(final, Cancelled):
        return f"The {what} was cancelled."
    return f"The {what} job ended unexpectedly."


def _why_not_rewrite(number: int, latest: StoryLine | None) -> str:
    if latest is None or latest.number != number:
        return (f"Only the latest line can be rewritten, and line {number} is not the latest "
                "anymore.")
    if not latest.by_model:
        return (f"Line {number} was written by {latest.author.name}, not by the story "
                "model; only the model's lines can be rewritten.")
    return (f"Line {number} is shared with another branch of the story (it was rewound to "
            "it), so it stays as it is; press Continue ▶ for a new line after it.")
