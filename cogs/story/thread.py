"""Everything the bot writes into a story's thread: line messages (posted, then edited on a
rewrite or redraw), their buttons, the export, and errors everyone should see.

Sent through the thread with the bot token, never the interaction token: a line may wait in
the queue for longer than an interaction token lives. A story told in a DM or group DM has
no thread: there `channel` is its `Conversation` (cogs/story/conversation.py), which sends
and edits through the interaction that asked (`answers`, by story) instead. Line posts and
exports go through `cogs.delivery.deliver` (transient failures are retried) with a nonce
derived from what they show, so a retry, or a repost after a restart that came between the
post and its record, returns the message Discord already made instead of making a twin.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
from collections.abc import Callable, Sequence

import discord

from bot.db.interaction_tokens import InteractionTokens
from bot.db.jobs import JobRepository
from bot.story import Story, StoryLine, StoryRepository
from bot.story.choices import ChoiceRepository
from bot.story.export import ExportFile, authors
from bot.story.models import Choice
from cogs.common import is_nsfw
from cogs.delivery import DeliveryFailed, deliver
from cogs.story.buttons import line_view
from cogs.story.choice_view import choice_content, choice_view
from cogs.story.conversation import Answer, Conversation
from cogs.story.messages import ended_content, line_content

log = logging.getLogger(__name__)

NO_PINGS = discord.AllowedMentions.none()
NONCE_CHARS = 25  # Discord's limit


def line_nonce(story_id: int, number: int, revision: int, replacing: int | None = None,
               branch: int = 1) -> str:
    """The same for every try of posting one version of one line; a post that replaces a
    deleted message (`replacing` its id) gets its own, so Discord cannot answer with that.
    A line of a later branch gets its own too: its number was another line's before."""
    plain = f"gh:l{story_id}.{number}.{revision}"
    if replacing is None and branch == 1 and len(plain) <= NONCE_CHARS:
        return plain
    return "gh:l" + _digest(f"{story_id}.{number}.{revision}.{replacing}"
                            + (f".b{branch}" if branch != 1 else ""))


def choice_nonce(choice: Choice, replacing: int | None = None) -> str:
    """The same for every try of posting one choice (named by its first job)."""
    return "gh:c" + _digest(f"{choice.story_id}.{choice.branch}.{choice.number}."
                            f"{choice.candidates[0].job_id}.{replacing}")


def export_nonce(story: Story, lines: Sequence[StoryLine]) -> str:
    """The same for every try of posting the export of the story as it now stands: asked
    for again before anything changed (within Discord's few minutes), the earlier post is
    the answer; a story that changed, or ended, is posted anew."""
    state = ";".join(f"{line.number}.{line.revision}.{line.redraws}.{line.image_path}"
                     for line in lines)
    return "gh:x" + _digest(f"{story.id}|{story.state.value}|{state}")


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


class StoryThread:
    def __init__(self, client: discord.Client, stories: StoryRepository,
                 jobs: JobRepository, *, retry_s: float = 3600.0,
                 on_retry: Callable[[], None] | None = None,
                 tokens: InteractionTokens | None = None) -> None:
        self.client = client
        self.stories = stories
        self.jobs = jobs
        self.tokens = tokens or InteractionTokens(stories.db)
        # A conversation story's operation in progress: the interaction it answers through.
        self.answers: dict[int, Answer] = {}
        self.retry_s = retry_s  # how long a line post is retried (discord.delivery_retry_s)
        self.on_retry = on_retry  # told of each post tried again (the metrics count them)

    def channel(self, story: Story) -> discord.PartialMessageable | Conversation | None:
        if story.in_conversation:
            assert story.channel_id is not None
            return Conversation(self.client, story.channel_id, self.answers.get(story.id),
                                self.tokens)
        if story.thread_id is None:
            return None
        # A partial messageable needs no cache or fetch, so it works right after a restart.
        return self.client.get_partial_messageable(
            story.thread_id, guild_id=story.guild_id, type=discord.ChannelType.public_thread)

    async def publish(self, story: Story, line: StoryLine,
                      shown: Callable[[], None] | None = None) -> None:
        """Post a new line, or edit the message of a rewritten or redrawn one; `shown` is
        called once the thread shows it (before the older line's buttons are updated)."""
        thread = self.channel(story)
        if thread is None:
            log.warning("story %d has no thread; line %d is not posted", story.id, line.number)
            return
        current = await self.stories.get(story.id) or story
        latest = line.number == await self.stories.count_lines(story.id)
        content = line_content(current, line)
        view = line_view(current, line, latest=latest)
        picture = await _picture(line, spoiler=line.image_nsfw and not self._nsfw(current))
        what = f"line {line.number} of story {story.id}"
        if line.message_id is not None:
            old = thread.get_partial_message(line.message_id)

            async def edit() -> bool:
                try:
                    await old.edit(content=content, attachments=[picture()] if picture else [],
                                   view=view, allowed_mentions=NO_PINGS)
                except discord.NotFound:
                    return False  # the message was deleted: post the line again
                return True

            if await deliver(edit, what=what, give_up_after=self.retry_s,
                             on_retry=self.on_retry):
                await self._delivered(line, thread.id, line.message_id)
                if shown is not None:
                    shown()
                if latest and line.number > 1 and _new_in_its_choice(line):
                    await self.retire(current, line.number - 1)
                return
        nonce = line_nonce(story.id, line.number, line.revision, line.message_id, line.branch)

        async def post() -> discord.Message:
            # A new File each try: a failed upload has consumed the last one's stream.
            return await thread.send(
                content, file=picture() if picture else discord.utils.MISSING,
                view=view or discord.utils.MISSING, nonce=nonce, allowed_mentions=NO_PINGS)

        message = await deliver(post, what=what, give_up_after=self.retry_s,
                                on_retry=self.on_retry)
        await self.stories.set_message(story.id, line.number, message.id)
        await self._delivered(line, thread.id, message.id)
        if shown is not None:
            shown()
        if latest and line.number > 1:
            await self.retire(current, line.number - 1)

    async def _delivered(self, line: StoryLine, thread_id: int, message_id: int) -> None:
        """The line's jobs (its text, its picture) reached the thread in this message."""
        for job_id in (line.text_job_id, line.image_job_id):
            if job_id:
                await self.jobs.mark_delivered(job_id, thread_id, message_id)

    async def publish_choice(self, story: Story, choice: Choice, job_id: str,
                             writing: int | None, choices: ChoiceRepository) -> None:
        """Show the choice: in its message (edited), else in the job's writing message
        (recorded as the choice's first), else in a new post; then its job is delivered."""
        thread = self.channel(story)
        if thread is None:
            return
        content, view = choice_content(choice), choice_view(choice)
        message_id = choice.message_id
        if message_id is None and writing is not None:
            await choices.set_message(story.id, writing)
            message_id = writing
        what = f"the choice for line {choice.number} of story {story.id}"
        replacing = message_id  # a new post must not be answered with a deleted message
        if message_id is not None:
            old = thread.get_partial_message(message_id)

            async def edit() -> bool:
                try:
                    await old.edit(content=content, view=view, attachments=[],
                                   allowed_mentions=NO_PINGS)
                except discord.NotFound:
                    return False
                return True

            if not await deliver(edit, what=what, give_up_after=self.retry_s,
                                 on_retry=self.on_retry):
                message_id = None
        if message_id is None:
            nonce = choice_nonce(choice, replacing)

            async def post() -> discord.Message:
                return await thread.send(content, view=view, nonce=nonce,
                                         allowed_mentions=NO_PINGS)

            message_id = (await deliver(post, what=what, give_up_after=self.retry_s,
                                        on_retry=self.on_retry)).id
            await choices.set_message(story.id, message_id)
        await self.jobs.mark_delivered(job_id, thread.id, message_id)

    async def end_choice(self, story: Story, choice: Choice, why: str) -> None:
        """A choice that ended without a kept line: its message says so, without buttons."""
        thread = self.channel(story)
        if thread is None or choice.message_id is None:
            return
        try:
            await thread.get_partial_message(choice.message_id).edit(
                content=f"🪄 ~~Line {choice.number}~~: no candidate was kept ({why}).",
                view=None, allowed_mentions=NO_PINGS)
        except discord.HTTPException:
            log.warning("could not close the choice message of story %d", story.id)

    async def set_buttons(self, story: Story, line: StoryLine, *, latest: bool | None) -> None:
        """Redraw a line's buttons: as the latest line, as an older one, or (None) none at
        all (a line the story no longer tells: it was rewound, or another branch is told)."""
        thread = self.channel(story)
        if line.message_id is None or thread is None:
            return
        view = None if latest is None else line_view(story, line, latest=latest)
        try:
            await thread.get_partial_message(line.message_id).edit(view=view)
        except discord.HTTPException:
            log.warning("could not update the buttons of line %d of story %d", line.number,
                        story.id)

    async def retire(self, story: Story, number: int) -> None:
        """The buttons of a line that is no longer the latest: only 🎨 Redraw stays (none
        once the story has ended)."""
        line = await self.stories.line(story.id, number)
        thread = self.channel(story)
        if line is None or line.message_id is None or thread is None:
            return
        try:
            await thread.get_partial_message(line.message_id).edit(
                view=line_view(story, line, latest=False))
        except discord.HTTPException:
            log.warning("could not update the buttons of line %d of story %d", number, story.id)

    async def post_export(self, story: Story, lines: Sequence[StoryLine],
                          files: Sequence[ExportFile], shrunk: bool, *,
                          give_up_after: float | None = None) -> discord.Message:
        """Post the export (retried while Discord fails transiently for `give_up_after`
        seconds); raises DeliveryFailed when it can't be posted."""
        thread = self.channel(story)
        assert thread is not None
        content = ended_content(story, lines, authors(story, lines), shrunk=shrunk,
                                files=len(files))
        nonce = export_nonce(story, lines)

        async def post() -> discord.Message:
            return await thread.send(
                content, files=[discord.File(io.BytesIO(f.data), filename=f.name) for f in files],
                nonce=nonce, allowed_mentions=NO_PINGS)

        return await deliver(post, what=f"the export of story {story.id}",
                             give_up_after=self.retry_s if give_up_after is None
                             else give_up_after, on_retry=self.on_retry)

    async def say(self, story: Story, text: str) -> None:
        thread = self.channel(story)
        if thread is None:
            return
        try:
            await thread.send(text, allowed_mentions=NO_PINGS)
        except (discord.HTTPException, DeliveryFailed):
            log.exception("could not say something in the thread of story %d", story.id)

    async def show_typing(self, story: Story) -> None:
        """"Greenheart is typing…" while a line is made; never fails the operation."""
        thread = self.channel(story)
        if thread is not None:
            with contextlib.suppress(discord.HTTPException):
                await thread.typing()  # once: Discord shows it for ~10 s or until we post

    def _nsfw(self, story: Story) -> bool:
        return is_nsfw(self.client.get_channel(story.channel_id)) if story.channel_id else False


def _new_in_its_choice(line: StoryLine) -> bool:
    """A kept candidate shown for the first time, in its choice's message: a new line."""
    return line.chosen_by is not None and not line.revision and not line.redraws


async def _picture(line: StoryLine, *, spoiler: bool) -> Callable[[], discord.File] | None:
    """The line's picture as a maker of upload files (one per try), or None."""
    if line.image_path is None:
        return None
    try:
        data = await asyncio.to_thread(line.image_path.read_bytes)
    except OSError:
        return None
    # A picture the safety checker flagged is hidden behind a spoiler outside NSFW channels.
    return lambda: discord.File(io.BytesIO(data), filename=f"line-{line.number}.png",
                                spoiler=spoiler, description=f"Picture for line {line.number}")
