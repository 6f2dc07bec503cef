"""What the story commands, buttons and thread messages do, in Discord terms.

Every request takes its turn on the story's thread the moment it arrives (see
`bot.story.turns`), is acknowledged at once, and posts its line through the thread with the
bot token: a line may wait in the queue for longer than an interaction token lives. Before it
waits, it is registered with the teller (`bot.story.pending`): a request the story already has
in progress is answered at once, one past the member's per-person limit is refused, and
/queue and /cancel see the ones that wait.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import discord

from bot.db.jobs import JobRecord
from bot.executor.handle import JobHandle
from bot.services import Services
from bot.story import (
    Author,
    PendingOp,
    Resumed,
    Story,
    StoryBusy,
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
from cogs.delivery import DeliveryFailed, describe
from cogs.story.messages import LIST_LIMIT, intro_content, list_content
from cogs.story.thread import NO_PINGS, StoryThread

log = logging.getLogger(__name__)

THREAD_ARCHIVE_MINUTES: Literal[10080] = 10080  # a week: stories are slow conversations
NOT_A_STORY = ("`/story {command}` works inside a story's thread. Open the thread of a story "
               "(see `/story list`), or start one with `/story start`.")
# An interaction token lives 15 minutes: an answer that waits on Discord gives up in time to
# say so, with a little room.
ANSWER_WITHIN_S = 14 * 60.0
MIN_RETRY_S = 60.0


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
        self.pending = self.teller.pending
        self.thread = StoryThread(client, self.stories, services.jobs,
                                  retry_s=self.settings.discord.delivery_retry_s,
                                  on_retry=services.metrics.delivery_retried)
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
        author = author_of(interaction.user)
        try:
            self.teller.check_limit(author)  # the first line's picture is a job too
        except StoryError as exc:
            await self._say(interaction, f"⚠️ {exc.reason}")
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
        pending: PendingOp | None = None
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
            author = author_of(interaction.user)
            pending = await self._request(interaction, story, "add", author)
            if pending is None:
                return
            if not await self.pending.wait_turn(pending, turn):
                await self._say(interaction, _cancelled_text(pending))
                return
            line = await self._run(interaction, story,
                                   lambda: self.teller.add_line(story, line_text, author),
                                   pending)
            if line is not None:
                await self._say(interaction, f"✅ Your line is line {line.number} of the story.")
        finally:
            if pending is not None:
                self.pending.finish(pending)
            turn.end()

    async def end(self, interaction: discord.Interaction) -> None:
        """Close the story, then post its export. The story is closed even when the export
        can't be posted (the member is told why); `/story export` posts it again."""
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
            ended = await self._close(story)
            if ended is None:
                await self._say(interaction, "This story has already ended.")
                return
            try:
                message = await self._post_export(interaction, ended)
            except DeliveryFailed as exc:
                await self._say(interaction, "⚠️ The story is closed, but its export could not "
                                f"be posted ({exc.reason}). `/story export` posts it once "
                                "that is fixed.")
                return
            await self._say(interaction, f"📕 The story is closed; its export: "
                            f"{message.jump_url}")
        except Exception:  # never leave the member looking at "thinking…"
            log.exception("/story end failed")
            await self._say(interaction, "⚠️ Something went wrong on my side while closing the "
                            "story. If it is closed, `/story export` posts its export.")
        finally:
            turn.end()

    async def export(self, interaction: discord.Interaction) -> None:
        """Post the story's export (an open story's lines so far) in its thread, for
        whoever asks; an ended story's can be posted again."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            story = await self._story_here(interaction, "export", ended_too=True)
            if story is None:
                return
            try:
                message = await self._post_export(interaction, story)
            except DeliveryFailed as exc:
                await self._say(interaction, f"⚠️ The export could not be posted ({exc.reason}).")
                return
            what = "The story so far" if story.open else "The story's export"
            await self._say(interaction, f"📖 {what}: {message.jump_url}")
        except Exception:  # never leave the member looking at "thinking…"
            log.exception("/story export failed")
            await self._say(interaction, "⚠️ Something went wrong on my side while making the "
                            "export; please try again.")

    async def list_stories(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        guild_id = interaction.guild_id or 0
        stories = await self.stories.in_guild(guild_id, limit=LIST_LIMIT)
        counts = [await self.stories.count_lines(story.id) for story in stories]
        await self._say(interaction, list_content(stories, counts, guild_id))

    # ----- buttons ----------------------------------------------------------------------------

    async def continue_story(self, interaction: discord.Interaction, story_id: int,
                             number: int = 0) -> None:
        """Continue ▶ on line `number` (0: an older button that doesn't say) asks for the
        line after it."""
        author = author_of(interaction.user)
        await self._button(interaction, story_id, "continue", number + 1 if number else None,
                           lambda story: self.teller.continue_story(story, author))

    async def rewrite(self, interaction: discord.Interaction, story_id: int,
                      number: int) -> None:
        author = author_of(interaction.user)
        await self._button(interaction, story_id, "rewrite", number,
                           lambda story: self.teller.rewrite(story, number, author))

    async def redraw(self, interaction: discord.Interaction, story_id: int, number: int) -> None:
        author = author_of(interaction.user)
        await self._button(interaction, story_id, "redraw", number,
                           lambda story: self.teller.redraw(story, number, author))

    async def _button(self, interaction: discord.Interaction, story_id: int, op: str,
                      number: int | None, work: Callable[[Story], Awaitable[StoryLine]]
                      ) -> None:
        turn = self.turns.take(interaction.channel_id or 0)
        pending: PendingOp | None = None
        try:
            await interaction.response.defer()  # silent: the thread shows the result
            story = await self._usable(interaction, story_id)
            if story is None:
                return
            pending = await self._request(interaction, story, op, author_of(interaction.user),
                                          number)
            if pending is None:
                return
            if not await self.pending.wait_turn(pending, turn):
                await self._say(interaction, _cancelled_text(pending))
                return
            await self._run(interaction, story, lambda: work(story), pending)
        finally:
            if pending is not None:
                self.pending.finish(pending)
            turn.end()

    async def _request(self, interaction: discord.Interaction, story: Story, op: str,
                       author: Author, number: int | None = None) -> PendingOp | None:
        """Register the request (see `StoryTeller.request`), or tell the member at once why
        not: the story has it in progress already, or they are at their limit."""
        try:
            return self.teller.request(story, op, author, number)
        except StoryBusy as exc:
            await self._say(interaction, f"⏳ {exc.reason}")
        except StoryError as exc:
            await self._say(interaction, f"⚠️ {exc.reason}")
        return None

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
        pending: PendingOp | None = None
        try:
            story = await self.stories.by_thread(message.channel.id)
            if story is None or not story.open:
                return
            author = author_of(message.author)
            try:
                text = clean_line(message.content, self.settings, option="message",
                                  nsfw_allowed=is_nsfw(message.channel))
                pending = self.teller.request(story, "add", author)
            except (StoryOptionError, StoryError) as exc:
                reason = exc.reason if isinstance(exc, StoryError) else str(exc)
                await message.reply(f"⚠️ Not added to the story: {reason}",
                                    mention_author=False, allowed_mentions=NO_PINGS)
                return
            if not await self.pending.wait_turn(pending, turn):
                await message.reply("✖️ Not added to the story: it was cancelled before its "
                                    "turn.", mention_author=False, allowed_mentions=NO_PINGS)
                return
            await self._run(None, story, lambda: self.teller.add_line(story, text, author),
                            pending)
        finally:
            if pending is not None:
                self.pending.finish(pending)
            turn.end()

    # ----- after a restart ------------------------------------------------------------------

    async def plan_resume(self) -> list[tuple[Turn, Callable[[], Awaitable[None]]]]:
        """Before any interaction can arrive: take turns for the work a restart left, per
        story in line order (restored jobs, text jobs that finished before their line was
        saved, and lines whose post was lost), and register it as story work in progress."""
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
            pending = self._resuming(story, origin.op, handle.job.user_id,
                                     handle.job.user_name, number)
            work.append((story.thread_id, number, _bind(self._resume_job, handle, pending)))
        for record in await self.services.jobs.undelivered():
            if not is_story_job(record.job) or story_origin(record.job).step != "text":
                continue
            origin = story_origin(record.job)
            story = await self.stories.get(origin.story_id)
            if story is None or story.thread_id is None:
                continue
            pending = self._resuming(story, origin.op, record.job.user_id,
                                     record.job.user_name, origin.line)
            work.append((story.thread_id, origin.line,
                         _bind(self._recover, record, pending)))
        for story in await self.stories.open_stories():
            if story.thread_id is None:
                continue
            for line in await self.stories.unposted_lines(story.id):
                if (story.id, line.number) not in covered:
                    pending = self._resuming(story, "settle", line.author.id, line.author.name,
                                             line.number)
                    work.append((story.thread_id, line.number,
                                 _bind(self._settle, story, line, pending)))
        work.sort(key=lambda item: item[:2])  # stable: jobs of one line keep their order
        return [(self.turns.take(thread), run) for thread, _, run in work]

    def _resuming(self, story: Story, op: str, user_id: int, user_name: str,
                  number: int) -> PendingOp:
        """Work after a restart, registered as running: a Continue ▶ pressed meanwhile is
        answered instead of stacked; its jobs are the executor's to show and cancel."""
        return self.pending.add(story_id=story.id, title=story.title, op=op, line=number,
                                user_id=user_id, user_name=user_name, running=True)

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

    async def _resume_job(self, handle: JobHandle, pending: PendingOp) -> None:
        try:
            await self._publish_resumed(await self.teller.resume(handle), pending)
        finally:
            self.pending.finish(pending)

    async def _recover(self, record: JobRecord, pending: PendingOp) -> None:
        try:
            await self._publish_resumed(await self.teller.recover(record), pending)
        finally:
            self.pending.finish(pending)

    async def _publish_resumed(self, resumed: Resumed | None, pending: PendingOp) -> None:
        if resumed is None:
            return
        if resumed.line is not None:
            await self.thread.publish(resumed.story, resumed.line,
                                      lambda: self.pending.finish(pending))
        elif resumed.error is not None and resumed.story.open:
            await self._report(None, resumed.story, resumed.error)

    async def _settle(self, story: Story, line: StoryLine, pending: PendingOp) -> None:
        try:
            await self.thread.publish(story, await self.teller.settle(story, line),
                                      lambda: self.pending.finish(pending))
        finally:
            self.pending.finish(pending)

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ----- posting ----------------------------------------------------------------------------

    async def _run(self, interaction: discord.Interaction | None, story: Story,
                   work: Callable[[], Awaitable[StoryLine]],
                   pending: PendingOp | None = None) -> StoryLine | None:
        """Do one story operation and post its line; failures are told to whom they concern.
        Its `pending` registration ends once the thread shows the line: a button on it may
        be pressed from then on."""
        await self.thread.show_typing(story)
        try:
            line = await work()
        except StoryError as exc:
            await self._report(interaction, story, exc)
            return None
        try:
            await self.thread.publish(
                story, line, None if pending is None else lambda: self.pending.finish(pending))
        except (DeliveryFailed, discord.HTTPException) as exc:
            log.exception("posting line %d of story %d failed", line.number, story.id)
            reason = exc.reason if isinstance(exc, DeliveryFailed) else describe(exc)
            await self._report(interaction, story, StoryError(
                f"Line {line.number} was written but could not be posted ({reason}).",
            ))
        return line

    async def _close(self, story: Story) -> Story | None:
        """End the story and take its buttons away; None when it had ended already."""
        if not await self.stories.end(story.id):
            return None
        ended = await self.stories.get(story.id)
        assert ended is not None
        count = await self.stories.count_lines(story.id)
        if count:
            await self.thread.retire(ended, count)  # an ended story has no buttons
        return ended

    async def _post_export(self, interaction: discord.Interaction,
                           story: Story) -> discord.Message:
        """Post the story's export in its thread, retried while the member can still be
        answered; raises DeliveryFailed saying why it could not be."""
        lines = await self.stories.lines(story.id)
        files, shrunk = await asyncio.to_thread(export_for_upload, story, lines,
                                                upload_limit(interaction))
        return await self.thread.post_export(story, lines, files, shrunk,
                                             give_up_after=self._answer_window(interaction))

    def _answer_window(self, interaction: discord.Interaction) -> float:
        """How long a post may be retried so that its outcome still reaches the member
        through the interaction (at least a minute; never more than delivery_retry_s)."""
        age = time.time() - interaction.created_at.timestamp()
        return min(self.settings.discord.delivery_retry_s,
                   max(MIN_RETRY_S, ANSWER_WITHIN_S - age))

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

    async def _story_here(self, interaction: discord.Interaction, command: str, *,
                          ended_too: bool = False) -> Story | None:
        story = None
        if isinstance(interaction.channel, discord.Thread):
            story = await self.stories.by_thread(interaction.channel.id)
        if story is None:
            await self._say(interaction, f"⚠️ {NOT_A_STORY.format(command=command)}")
        elif not story.open and not ended_too:
            await self._say(interaction, f"⚠️ “{story.title}” has already ended; start a new "
                            "story with `/story start`.")
            return None
        return story


def _may_end(interaction: discord.Interaction, story: Story) -> bool:
    if interaction.user.id == story.author.id:
        return True
    permissions = getattr(interaction, "permissions", None)
    return bool(permissions and permissions.manage_threads)


def _cancelled_text(pending: PendingOp) -> str:
    by = "" if pending.cancelled_by in (None, pending.user_id) else " by a moderator"
    return (f"✖️ Your {pending.what} for “{pending.title}” was cancelled{by} before it "
            "started.")


def _bind(fn: Callable[..., Awaitable[None]], *args: Any) -> Callable[[], Awaitable[None]]:
    return lambda: fn(*args)
