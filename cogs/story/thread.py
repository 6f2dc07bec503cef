"""Everything the bot writes into a story's thread: line messages (posted, then edited on a
rewrite or redraw), their buttons, the export, and errors everyone should see.

Sent through the thread with the bot token, never the interaction token: a line may wait in
the queue for longer than an interaction token lives.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Sequence

import discord

from bot.db.jobs import JobRepository
from bot.story import Story, StoryLine, StoryRepository
from bot.story.export import ExportFile, authors
from cogs.common import is_nsfw
from cogs.story.buttons import line_view
from cogs.story.messages import ended_content, line_content

log = logging.getLogger(__name__)

NO_PINGS = discord.AllowedMentions.none()


class StoryThread:
    def __init__(self, client: discord.Client, stories: StoryRepository,
                 jobs: JobRepository) -> None:
        self.client = client
        self.stories = stories
        self.jobs = jobs

    def channel(self, story: Story) -> discord.PartialMessageable | None:
        if story.thread_id is None:
            return None
        # A partial messageable needs no cache or fetch, so it works right after a restart.
        return self.client.get_partial_messageable(
            story.thread_id, guild_id=story.guild_id, type=discord.ChannelType.public_thread)

    async def publish(self, story: Story, line: StoryLine) -> None:
        """Post a new line, or edit the message of a rewritten or redrawn one."""
        thread = self.channel(story)
        if thread is None:
            log.warning("story %d has no thread; line %d is not posted", story.id, line.number)
            return
        current = await self.stories.get(story.id) or story
        latest = line.number == await self.stories.count_lines(story.id)
        content = line_content(current, line)
        view = line_view(current, line, latest=latest)
        picture = await _picture(line, spoiler=line.image_nsfw and not self._nsfw(current))
        if line.message_id is not None:
            try:
                await thread.get_partial_message(line.message_id).edit(
                    content=content, attachments=[picture] if picture else [], view=view,
                    allowed_mentions=NO_PINGS)
                await self._delivered(line, thread.id, line.message_id)
                return
            except discord.NotFound:
                pass  # the message was deleted: post the line again
        message = await thread.send(
            content, file=picture or discord.utils.MISSING,
            view=view or discord.utils.MISSING, allowed_mentions=NO_PINGS)
        await self.stories.set_message(story.id, line.number, message.id)
        await self._delivered(line, thread.id, message.id)
        if latest and line.number > 1:
            await self.retire(current, line.number - 1)

    async def _delivered(self, line: StoryLine, thread_id: int, message_id: int) -> None:
        """The line's jobs (its text, its picture) reached the thread in this message."""
        for job_id in (line.text_job_id, line.image_job_id):
            if job_id:
                await self.jobs.mark_delivered(job_id, thread_id, message_id)

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
                          files: Sequence[ExportFile], shrunk: bool) -> discord.Message:
        thread = self.channel(story)
        assert thread is not None
        return await thread.send(
            ended_content(story, lines, authors(story, lines), shrunk=shrunk, files=len(files)),
            files=[discord.File(io.BytesIO(f.data), filename=f.name) for f in files],
            allowed_mentions=NO_PINGS)

    async def say(self, story: Story, text: str) -> None:
        thread = self.channel(story)
        if thread is None:
            return
        try:
            await thread.send(text, allowed_mentions=NO_PINGS)
        except discord.HTTPException:
            log.exception("could not say something in the thread of story %d", story.id)

    async def show_typing(self, story: Story) -> None:
        """"Greenheart is typing…" while a line is made; never fails the operation."""
        thread = self.channel(story)
        if thread is not None:
            with contextlib.suppress(discord.HTTPException):
                await thread.typing()  # once: Discord shows it for ~10 s or until we post

    def _nsfw(self, story: Story) -> bool:
        return is_nsfw(self.client.get_channel(story.channel_id)) if story.channel_id else False


async def _picture(line: StoryLine, *, spoiler: bool) -> discord.File | None:
    if line.image_path is None:
        return None
    try:
        data = await asyncio.to_thread(line.image_path.read_bytes)
    except OSError:
        return None
    # A picture the safety checker flagged is hidden behind a spoiler outside NSFW channels.
    return discord.File(io.BytesIO(data), filename=f"line-{line.number}.png", spoiler=spoiler,
                        description=f"Picture for line {line.number}")
