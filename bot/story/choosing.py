"""Continue ▶ with a choice: the model writes `story.candidates` lines for the next line in
one batched job, members browse them, ✅ keeps one (it becomes the line and is illustrated),
↻ asks for more (appended, so an earlier one can still be kept).

Part of the story teller (its checks, jobs and pictures), kept in its own module. The
candidates are stored the moment their job is done (`bot.story.choices`); `recover` stores
them for a job that finished while the bot was stopping, and the cog shows the choice.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from bot.db.jobs import JobRecord
from bot.executor.handle import JobHandle
from bot.executor.jobs import Done, TextResult
from bot.story.choices import ChoiceRepository
from bot.story.models import Author, Choice, LineSource, Story, StoryLine
from bot.story.requests import text_params
from bot.story.teller import StoryBusy, StoryError, StoryTeller, _reason, story_origin

# The operations of a choice's text jobs, as their StoryOrigin names them.
OFFER, MORE = "choose", "more"
CHOICE_OPS = frozenset({OFFER, MORE})
DEFAULT_CANDIDATES = 3


def choice_open_text(choice: Choice) -> str:
    return (f"Line {choice.number} is waiting for a choice: browse the candidates with ◀ ▶, "
            "keep one with ✅, or ask for more with ↻.")


def candidates_wanted(teller: StoryTeller) -> int:
    """How many candidates Continue ▶ offers (story.candidates; 1: no choice)."""
    return int(getattr(teller.settings.story, "candidates", DEFAULT_CANDIDATES))


@dataclass(frozen=True)
class Offered:
    """A choice as it now stands, after a job added to it."""

    story: Story
    choice: Choice
    job_id: str  # the job whose candidates were just added


class StoryChooser:
    def __init__(self, teller: StoryTeller) -> None:
        self.teller = teller
        self.stories = teller.stories
        self.choices = ChoiceRepository(teller.stories.db)

    async def open_choice(self, story: Story) -> Choice | None:
        """The story's open choice, or None. One whose candidate was kept already (a stop
        came between saving the line and closing the choice) is closed now."""
        choice = await self.choices.get(story.id)
        if choice is None:
            return None
        line = await self.stories.line(story.id, choice.number)
        if choice.branch != story.branch or (line is not None
                                             and line.text_job_id in choice.job_ids):
            await self.choices.close(story.id)
            return None
        return choice

    async def offer(self, story: Story, asked_by: Author, *,
                    resume: JobHandle | None = None) -> Offered:
        """The candidates for the next line, in one job; a choice open already is refused
        (StoryBusy)."""
        story = await self.teller._open(story)
        if resume is None:
            current = await self.open_choice(story)
            if current is not None:
                raise StoryBusy(choice_open_text(current))
            lines = await self.stories.lines(story.id)
            self.teller._check_room(len(lines))
            number = len(lines) + 1
            params = text_params(story.id, [line.text for line in lines], number, 0,
                                 self.teller.settings, branch=story.branch,
                                 candidates=candidates_wanted(self.teller))
            handle = await self.teller._submit(asked_by, params, story, OFFER, number, "text")
        else:
            handle = resume
            number = story_origin(handle.job).line
        texts, model = await self._texts_of(handle, number)
        choice = await self.choices.offer(story.id, story.branch, number, asked_by,
                                          handle.job.id, texts, model)
        return Offered(story, choice, handle.job.id)

    async def more(self, story: Story, number: int, asked_by: Author, *,
                   resume: JobHandle | None = None) -> Offered:
        """↻: more candidates for the open choice of line `number`, added after the others."""
        story = await self.teller._open(story)
        choice = await self._the_choice(story, number)
        if resume is None:
            lines = await self.stories.lines(story.id)
            # Each round its own seeds: the context is the same, the lines must not be.
            params = text_params(story.id, [line.text for line in lines], number,
                                 len(choice.candidates), self.teller.settings,
                                 branch=story.branch, candidates=candidates_wanted(self.teller))
            handle = await self.teller._submit(asked_by, params, story, MORE, number, "text")
        else:
            handle = resume
        texts, model = await self._texts_of(handle, number)
        choice = await self.choices.offer(story.id, story.branch, number, choice.asked_by,
                                          handle.job.id, texts, model)
        return Offered(story, choice, handle.job.id)

    async def show(self, story_id: int, number: int, idx: int) -> Choice:
        """◀ ▶: show candidate `idx` (wrapping around) of the open choice of line `number`."""
        story = await self.stories.get(story_id)
        if story is None:
            raise StoryError("This story no longer exists.")
        choice = await self._the_choice(story, number)
        await self.choices.show(story_id, idx % len(choice.candidates))
        shown = await self.choices.get(story_id)
        assert shown is not None
        return shown

    async def keep(self, story: Story, number: int, idx: int, kept_by: Author) -> StoryLine:
        """✅: candidate `idx` becomes the story's next line (written by the model, asked
        for by whoever pressed Continue ▶, kept by `kept_by`), in the choice's message; the
        choice ends; then the line is illustrated. The line is saved before the choice is
        closed, so a stop in between finds it kept (`open_choice`)."""
        story = await self.teller._open(story)
        choice = await self._the_choice(story, number)
        if not 0 <= idx < len(choice.candidates):
            raise StoryError("That candidate is not part of this choice.")
        candidate = choice.candidates[idx]
        count = await self.stories.count_lines(story.id)
        taken = await self.stories.line(story.id, choice.number) is not None
        target = count + 1 if taken else choice.number  # a member's line came in between
        if taken:
            self.teller._check_room(count)
        try:
            await self.stories.add_line(story.id, target, source=LineSource.MODEL,
                                        text=candidate.text, author=choice.asked_by,
                                        model=candidate.model, text_job_id=candidate.job_id,
                                        message_id=choice.message_id, chosen_by=kept_by)
        except sqlite3.IntegrityError as exc:
            raise StoryError("That line was just taken; press ✅ again.") from exc
        await self.choices.close(story.id)
        return await self.teller.illustrate(story, target, kept_by, op="keep")

    async def drop(self, story: Story) -> Choice | None:
        """End the open choice without keeping a candidate (a rewind, a branch switch);
        returns it, so its message can say so."""
        choice = await self.choices.get(story.id)
        if choice is not None:
            await self.choices.close(story.id)
        return choice

    async def recover(self, record: JobRecord) -> Offered | None:
        """A choice's text job that was written (its text stored) when the bot stopped,
        before its candidates were: store what the record holds (its first candidate; ↻
        writes more), or find them stored already. None when there is nothing to show."""
        job = record.job
        origin = story_origin(job)
        story = await self.stories.get(origin.story_id)
        if story is None or record.result_text is None or not story.open:
            await self.teller.jobs.mark_undeliverable(job.id, "its story or its text is gone")
            return None
        stored = await self.choices.get(story.id)
        if stored is not None and job.id in stored.job_ids:
            return Offered(story, stored, job.id)
        lines = await self.stories.lines(story.id)
        if any(line.text_job_id == job.id for line in lines) or (
                origin.op == MORE and stored is None):
            await self.teller.jobs.mark_undeliverable(job.id, "its choice was made already")
            return None
        asked_by = stored.asked_by if stored is not None else Author(job.user_id, job.user_name)
        choice = await self.choices.offer(story.id, story.branch, origin.line, asked_by,
                                          job.id, (record.result_text,), record.model)
        return Offered(story, choice, job.id)

    async def _the_choice(self, story: Story, number: int) -> Choice:
        choice = await self.open_choice(story)
        if choice is None or choice.number != number:
            raise StoryError(f"The choice for line {number} is over: a line was kept, or "
                             "the story was rewound.")
        return choice

    async def _texts_of(self, handle: JobHandle, number: int) -> tuple[tuple[str, ...], str]:
        final = await handle.wait()
        if isinstance(final, Done) and isinstance(final.result, TextResult):
            result = final.result
            # A runner that writes one line only (no candidates) offered that one.
            texts = tuple(t for t in result.candidates if t.strip()) or (result.text,)
            return texts, result.model
        raise StoryError(f"Line {number} could not be written. {_reason(final, 'line')}",
                         public=True)
