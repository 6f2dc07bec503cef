"""What the story commands, buttons and thread messages do, in Discord terms.

Every request takes its turn on the story's thread the moment it arrives (see
`bot.story.turns`), is acknowledged at once, and posts its line through the thread with the
bot token: a line may wait in the queue for longer than an interaction token lives.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import discord

from bot.executor.handle import JobHandle
from bot.services import Services
from bot.story import (
    Author,
    Story,
    StoryError,
    StoryLine,
    StoryOptionError,
    StoryRepository,
    StoryTeller,
    Turn,
    Turns,
    clean_line,
    clean_title,
    is_story_job,
    resolve_style,
    story_origin,
)
from bot.story.export import export_for_upload
from cogs.common import is_nsfw, upload_limit
from cogs.story.messages import LIST_LIMIT, intro_content, list_content
from cogs.story.thread import NO_PINGS, StoryThread

log = logging.getLogger(__name__)

THREAD_ARCHIVE_MINUTES: Literal[10080] = 10080  # a week: stories are slow conversations
NOT_A_STORY = ("`/story {command}` works inside a story's thread. Open the thread of a story "
               "(see `/story list`), or start one with `/story start`.")


def author_of(user: discord.abc.User) -> Author:
    return Author(user.id, getattr(user, "display_name", None) or user.name)


class StoryActions:
    def __init__(self, client: discord.Client, services: Services) -> None:
        self.client = client
        self.services = services
        self.settings = services.settings
        self.stories: StoryRepository = services.stories
        self.teller: StoryTeller = services.teller
        self.turns = Turns()
        self.thread = StoryThread(client, self.stories, services.jobs)
        self._tasks: set[asyncio.Task[None]] = set()

    # ----- slash commands -------------------------------------------------------------------

    async def start(self, interaction: discord.Interaction, seed: str, style: str | None,
                    title: str | None) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        channel = interaction.channel
        if not isinstance(channel, discord.TextChannel):
            await self._say(interaction, "⚠️ `/story start` opens a thread from a text channel; "
                            "use it in a channel, not inside a thread.")
            return
        nsfw = is_nsfw(channel)
        try:
            seed_text = clean_line(seed, self.settings, option="seed", nsfw_allowed=nsfw)
            style_name = resolve_style(style, self.settings)
            title_text = clean_title(title, seed_text, self.settings, nsfw_allowed=nsfw)
        except StoryOptionError as exc:
            await self._say(interaction, f"⚠️ {exc}")
            return
        try:
            thread = await channel.create_thread(
                name=title_text, type=discord.ChannelType.public_thread,
                auto_archive_duration=THREAD_ARCHIVE_MINUTES,
                reason=f"story started by {interaction.user}")
        except discord.HTTPException as exc:
            await self._say(interaction, "⚠️ I could not open a thread here "
                            f"({exc.text or exc.status}). I need the Create Public Threads "
                            "permission in this channel.")
            return
        author = author_of(interaction.user)
        async with self.turns.take(thread.id):
            story, _ = await self.teller.start(
                seed=seed_text, title=title_text, style=style_name, author=author,
                guild_id=interaction.guild_id, channel_id=channel.id, thread_id=thread.id)
            await self._say(interaction, f"📖 Your story **{title_text}** begins in "
                            f"{thread.mention}.")
            await thread.send(
                intro_content(story, message_content=self.settings.discord.message_content),
                allowed_mentions=NO_PINGS)
            await self._run(interaction, story,
                            lambda: self.teller.illustrate(story, 1, author, op="seed"))

    async def add(self, interaction: discord.Interaction, text: str) -> None:
        turn = self.turns.take(interaction.channel_id or 0)
        try:
            await interaction.response.defer(ephemeral=True, thinking=True)
            story = await self._story_here(interaction, "add")
            if story is None:
                return
            try:
                line_text = clean_line(text, self.settings, option="text",
                                       nsfw_allowed=is_nsfw(interaction.channel))
            except StoryOptionError as exc:
                await self._say(interaction, f"⚠️ {exc}")
                return
            await turn.wait()
            author = author_of(interaction.user)
            line = await self._run(interaction, story,
                                   lambda: self.teller.add_line(story, line_text, author))
            if line is not None:
                await self._say(interaction, f"✅ Your line is line {line.number} of the story.")
        finally:
            turn.end()

    async def end(self, interaction: discord.Interaction) -> None:
        turn = self.turns.take(interaction.channel_id or 0)
        try:
            await interaction.response.defer(ephemeral=True, thinking=True)
            story = await self._story_here(interaction, "end")
            if story is None:
                return
            if not _may_end(interaction, story):
                await self._say(interaction, f"⚠️ Only {story.author.name}, who started this "
                                "story, or members with Manage Threads can end it.")
                return
            await turn.wait()  # lines already asked for are finished first
            message = await self._close(story, upload_limit(interaction))
            if message is None:
                await self._say(interaction, "This story has already ended.")
            else:
                await self._say(interaction, f"📕 The story is closed; its export: "
                                f"{message.jump_url}")
        finally:
            turn.end()

    async def list_stories(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        guild_id = interaction.guild_id or 0
        stories = await self.stories.in_guild(guild_id, limit=LIST_LIMIT)
        counts = [await self.stories.count_lines(story.id) for story in stories]
        await self._say(interaction, list_content(stories, counts, guild_id))

    # ----- buttons ----------------------------------------------------------------------------

    async def continue_story(self, interaction: discord.Interaction, story_id: int) -> None:
        author = author_of(interaction.user)
        await self._button(interaction, story_id,
                           lambda story: self.teller.continue_story(story, author))

    async def rewrite(self, interaction: discord.Interaction, story_id: int,
                      number: int) -> None:
        author = author_of(interaction.user)
        await self._button(interaction, story_id,
                           lambda story: self.teller.rewrite(story, number, author))

    async def redraw(self, interaction: discord.Interaction, story_id: int, number: int) -> None:
        author = author_of(interaction.user)
        await self._button(interaction, story_id,
                           lambda story: self.teller.redraw(story, number, author))

    async def _button(self, interaction: discord.Interaction, story_id: int,
                      work: Callable[[Story], Awaitable[StoryLine]]) -> None:
        turn = self.turns.take(interaction.channel_id or 0)
        try:
            await interaction.response.defer()  # silent: the thread shows the result
            story = await self._usable(interaction, story_id)
            if story is None:
                return
            await turn.wait()
            await self._run(interaction, story, lambda: work(story))
        finally:
            turn.end()

    async def _usable(self, interaction: discord.Interaction, story_id: int) -> Story | None:
        """The button's story, or None after telling the member plainly why not."""
        story = await self.stories.get(story_id)
        if story is None:
            problem = "This story no longer exists, so its buttons do nothing."
        elif story.thread_id != interaction.channel_id:
            problem = "This button belongs to a story in another thread."
        elif not story.open:
            problem = (f"“{story.title}” has ended, so its buttons do nothing any more. "
                       "Start a new story with `/story start`.")
        else:
            return story
        await self._say(interaction, f"⚠️ {problem}")
        return None

    # ----- plain messages in a story thread (needs the message content intent) -------------

    async def on_message(self, message: discord.Message) -> None:
        if (not self.settings.discord.message_content or message.author.bot
                or message.guild is None or not isinstance(message.channel, discord.Thread)
                or message.type not in (discord.MessageType.default, discord.MessageType.reply)
                or not message.content.strip()):
            return
        turn = self.turns.take(message.channel.id)
        try:
            story = await self.stories.by_thread(message.channel.id)
            if story is None or not story.open:
                return
            try:
                text = clean_line(message.content, self.settings, option="message",
                                  nsfw_allowed=is_nsfw(message.channel))
            except StoryOptionError as exc:
                await message.reply(f"⚠️ Not added to the story: {exc}", mention_author=False,
                                    allowed_mentions=NO_PINGS)
                return
            await turn.wait()
            author = author_of(message.author)
            await self._run(None, story, lambda: self.teller.add_line(story, text, author))
        finally:
            turn.end()

    # ----- after a restart ------------------------------------------------------------------

    async def plan_resume(self) -> list[tuple[Turn, Callable[[], Awaitable[None]]]]:
        """Before any interaction can arrive: take turns for the work a restart left, per
        story in line order (restored jobs, and lines whose post was lost)."""
        work: list[tuple[int, int, Callable[[], Awaitable[None]]]] = []  # thread, line, work
        covered: set[tuple[int, int]] = set()
        for handle in self.services.restored:
            if not is_story_job(handle.job):
                continue
            origin = story_origin(handle.job)
            story = await self.stories.get(origin.story_id)
            if story is None or story.thread_id is None:
                continue
            number = origin.line
            covered.add((story.id, number))
            work.append((story.thread_id, number, _bind(self._resume_job, handle)))
        for story in await self.stories.open_stories():
            if story.thread_id is None:
                continue
            for line in await self.stories.unposted_lines(story.id):
                if (story.id, line.number) not in covered:
                    work.append((story.thread_id, line.number, _bind(self._settle, story, line)))
        work.sort(key=lambda item: item[:2])  # stable: jobs of one line keep their order
        return [(self.turns.take(thread), run) for thread, _, run in work]

    def run_plan(self, plan: list[tuple[Turn, Callable[[], Awaitable[None]]]]) -> None:
        for turn, work in plan:
            self._spawn(self._in_turn(turn, work))

    async def _in_turn(self, turn: Turn, work: Callable[[], Awaitable[None]]) -> None:
        try:
            await turn.wait()
            await self.client.wait_until_ready()
            await work()
        except Exception:
            log.exception("finishing story work after a restart failed")
        finally:
            turn.end()

    async def _resume_job(self, handle: JobHandle) -> None:
        resumed = await self.teller.resume(handle)
        if resumed is None:
            return
        if resumed.line is not None:
            await self.thread.publish(resumed.story, resumed.line)
        elif resumed.error is not None and resumed.story.open:
            await self._report(None, resumed.story, resumed.error)

    async def _settle(self, story: Story, line: StoryLine) -> None:
        await self.thread.publish(story, await self.teller.settle(story, line))

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ----- posting ----------------------------------------------------------------------------

    async def _run(self, interaction: discord.Interaction | None, story: Story,
                   work: Callable[[], Awaitable[StoryLine]]) -> StoryLine | None:
        """Do one story operation and post its line; failures are told to whom they concern."""
        await self.thread.show_typing(story)
        try:
            line = await work()
        except StoryError as exc:
            await self._report(interaction, story, exc)
            return None
        try:
            await self.thread.publish(story, line)
        except discord.HTTPException as exc:
            log.exception("posting line %d of story %d failed", line.number, story.id)
            await self._report(interaction, story, StoryError(
                f"Line {line.number} was written but could not be posted ({exc.text or exc}).",
            ))
        return line

    async def _close(self, story: Story, limit: int) -> discord.Message | None:
        if not await self.stories.end(story.id):
            return None
        ended = await self.stories.get(story.id)
        assert ended is not None
        lines = await self.stories.lines(story.id)
        if lines:
            await self.thread.retire(ended, lines[-1].number)  # an ended story has no buttons
        files, shrunk = await asyncio.to_thread(export_for_upload, ended, lines, limit)
        return await self.thread.post_export(ended, lines, files, shrunk)

    async def _report(self, interaction: discord.Interaction | None, story: Story,
                      error: StoryError) -> None:
        if interaction is not None and not error.public:
            await self._say(interaction, f"⚠️ {error.reason}")
            return
        await self.thread.say(story, f"⚠️ {error.reason}")

    async def _say(self, interaction: discord.Interaction, text: str) -> None:
        """An ephemeral answer; after a long wait the token may have expired: log it."""
        try:
            await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_PINGS)
        except discord.HTTPException as exc:
            log.info("could not answer interaction %s: %s", interaction.id, exc)

    async def _story_here(self, interaction: discord.Interaction, command: str) -> Story | None:
        story = None
        if isinstance(interaction.channel, discord.Thread):
            story = await self.stories.by_thread(interaction.channel.id)
        if story is None:
            await self._say(interaction, f"⚠️ {NOT_A_STORY.format(command=command)}")
        elif not story.open:
            await self._say(interaction, f"⚠️ “{story.title}” has already ended; start a new "
                            "story with `/story start`.")
            return None
        return story


def _may_end(interaction: discord.Interaction, story: Story) -> bool:
    if interaction.user.id == story.author.id:
        return True
    permissions = getattr(interaction, "permissions", None)
    return bool(permissions and permissions.manage_threads)


def _bind(fn: Callable[..., Awaitable[None]], *args: Any) -> Callable[[], Awaitable[None]]:
    return lambda: fn(*args)
