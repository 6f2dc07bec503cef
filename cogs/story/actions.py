"""What the story commands, buttons and thread messages do, in Discord terms.

Every request takes its turn on the story's thread the moment it arrives (see
`bot.story.turns`), is acknowledged at once, and posts its line through the thread with the
bot token: a line may wait in the queue for longer than an interaction token lives. Before it
waits, it is registered with the teller (`bot.story.pending`): a request the story already has
in progress is answered at once, one past the member's per-person limit is refused, and
/queue and /cancel see the ones that wait.

In a DM or group DM (or a server only the member installed the app to) the bot can't post:
the story is told in the conversation itself, each message the answer to the command or
click that asked for it (`cogs.story.conversation`); work still unfinished shortly before
that interaction's token expires is cancelled while the member can still be told.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal, TypeVar

import discord

from bot.db.jobs import JobRecord
from bot.executor.handle import JobHandle
from bot.executor.jobs import ImageParams, Job, StoryOrigin, TextParams
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
from bot.story.choosing import CHOICE_OPS, OFFER, Offered, StoryChooser, candidates_wanted
from bot.story.export import export_for_upload, other_endings
from cogs.common import is_nsfw, upload_limit
from cogs.delivery import DeliveryFailed, describe
from cogs.imagine.via_interaction import answers_through_interaction, token_of, too_late
from cogs.story.branch_view import (
    branches_content,
    branches_view,
    jump,
    rewind_question,
    rewind_view,
    rewound_note,
    switched_note,
)
from cogs.story.choice_view import choice_content, choice_view
from cogs.story.conversation import answer_of, story_key
from cogs.story.live import LiveLines
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
NOT_TOLD = ("This line is not part of the story as it is told now (it was rewound, or "
            "another branch is told); `/story branches` switches back to its branch.")
BUSY_NOW = "A line is being written for this story; try again once it is in."
EXPIRED = ("cancelled: its interaction token expired while the bot was down, so nothing "
           "could reach the conversation")
LATE_POLL_S = 0.5
LATE = ("This would not be ready within Discord's 15 minutes for answering here, so it was "
        "cancelled. Try again when the queue is shorter (/queue).")
NO_STORY_HERE = "No story is told in this conversation; start one with `/story start`."
T = TypeVar("T")


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
        self.chooser = StoryChooser(self.teller)
        self.live = LiveLines(client, self.settings, self.thread.channel)
        self.teller.on_text_job = self.live.watch

    # ----- slash commands -------------------------------------------------------------------

    async def start(self, interaction: discord.Interaction, seed: str, style: str | None,
                    title: str | None) -> None:
        here = answers_through_interaction(interaction)
        await interaction.response.defer(ephemeral=not here, thinking=True)
        channel = interaction.channel
        if not here and not isinstance(channel, discord.TextChannel):
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
        if here:
            await self._start_here(interaction, seed_text, style_name, title_text, author)
            return
        assert isinstance(channel, discord.TextChannel)
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

    async def _start_here(self, interaction: discord.Interaction, seed: str, style: str | None,
                          title: str, author: Author) -> None:
        """/story start in a conversation: the story is told in it, line 1 (and its
        picture) the command's answer; one story at a time per conversation."""
        place = interaction.channel_id or 0
        async with self.turns.take(place):
            told = await self.stories.in_conversation(place)
            if told is not None and told.open:
                await self._say(interaction, f"⚠️ “{told.title}” is still being told here; "
                                "`/story end` it before starting another.")
                return
            refusal = self._too_late(interaction, author.id)
            if refusal is not None:
                await self._say(interaction, refusal)
                return
            story, _ = await self.teller.start(
                seed=seed, title=title, style=style, author=author,
                guild_id=interaction.guild_id, channel_id=place, thread_id=None)
            async with self._answering(interaction, story):
                await self._run(interaction, story,
                                lambda: self.teller.illustrate(story, 1, author, op="seed"))

    def _too_late(self, interaction: discord.Interaction, user_id: int) -> str | None:
        """Why a line (its text, then its picture) asked for in a conversation could not
        be answered while the interaction's token lives, judged before anything is queued;
        None when it fits, or when the queue has no measured speed yet."""
        image = self.settings.image
        steps = self.settings.story.steps or image.steps
        # Stand-ins for the work a line makes, priced like real jobs (never submitted).
        text = Job(user_id=user_id, params=TextParams(seed_line="", lines=(), rng_seed=0))
        picture = Job(user_id=user_id, params=ImageParams(
            prompt="", negative="", subject="", style=None, seeds=(0,), steps=steps,
            guidance=image.guidance, width=64, height=64))
        estimate = self.services.executor.finish_estimate_s(text, picture)
        token = token_of(interaction, self.settings.discord.interaction_token_s)
        return too_late(estimate, token, self.settings.discord.token_margin_s)

    @contextlib.asynccontextmanager
    async def _answering(self, interaction: discord.Interaction,
                         story: Story) -> AsyncIterator[None]:
        """A conversation story's operation answers through `interaction`: its token is
        stored first (a restart within its life still delivers), and work unfinished
        `token_margin_s` before it expires is cancelled while it can still say so."""
        if not story.in_conversation:
            yield
            return
        token = token_of(interaction, self.settings.discord.interaction_token_s)
        await self.thread.tokens.put(story_key(story.id), token)
        answer = answer_of(self.client, token,
                           interaction.message.id if interaction.message else None)
        self.thread.answers[story.id] = answer
        late = asyncio.ensure_future(self._give_up_when_late(
            story, token.left_s() - self.settings.discord.token_margin_s))
        try:
            yield
        finally:
            late.cancel()
            if self.thread.answers.get(story.id) is answer:
                del self.thread.answers[story.id]

    async def _give_up_when_late(self, story: Story, after_s: float) -> None:
        """From `after_s` on, until the operation ends (this task is cancelled then), its
        jobs are cancelled, the ones it submits later too; said once."""
        await asyncio.sleep(max(0.0, after_s))
        executor, told = self.services.executor, False
        while True:
            for entry in executor.snapshot():
                origin = entry.job.origin
                if (isinstance(origin, StoryOrigin) and origin.story_id == story.id
                        and executor.cancel(entry.job.id, reason=LATE)):
                    log.info("story %d: job %s would not be ready within its interaction "
                             "token's life; cancelled", story.id, entry.job.id)
                    if not told:  # while the token still carries it
                        told = True
                        await self.thread.say(story, f"⏳ {LATE}")
            await asyncio.sleep(LATE_POLL_S)

    async def add(self, interaction: discord.Interaction, text: str) -> None:
        turn = self.turns.take(interaction.channel_id or 0)
        pending: PendingOp | None = None
        here = answers_through_interaction(interaction)
        try:
            await interaction.response.defer(ephemeral=not here, thinking=True)
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
            refusal = self._too_late(interaction, author.id) if story.in_conversation else None
            if refusal is not None:
                await self._say(interaction, refusal)
                return
            async with self._answering(interaction, story):
                line = await self._run(interaction, story,
                                       lambda: self.teller.add_line(story, line_text, author),
                                       pending)
            if line is not None and not here:  # in a conversation the line is the answer
                await self._say(interaction, f"✅ Your line is line {line.number} of the story.")
        finally:
            if pending is not None:
                self.pending.finish(pending)
            turn.end()

    async def end(self, interaction: discord.Interaction) -> None:
        """Close the story, then post its export. The story is closed even when the export
        can't be posted (the member is told why); `/story export` posts it again."""
        turn = self.turns.take(interaction.channel_id or 0)
        here = answers_through_interaction(interaction)
        try:
            await interaction.response.defer(ephemeral=not here, thinking=True)
            story = await self._story_here(interaction, "end")
            if story is None:
                return
            if not _may_end(interaction, story):
                await self._say(interaction, f"⚠️ Only {story.author.name}, who started this "
                                "story, or members with Manage Threads can end it.")
                return
            await turn.wait()  # lines already asked for are finished first
            async with self._answering(interaction, story):
                ended = await self._close(story)
                if ended is None:
                    await self._say(interaction, "This story has already ended.")
                    return
                try:
                    message = await self._post_export(interaction, ended)
                except DeliveryFailed as exc:
                    await self._say(interaction, "⚠️ The story is closed, but its export "
                                    f"could not be posted ({exc.reason}). `/story export` "
                                    "posts it once that is fixed.")
                    return
            if here:
                return  # the export is the answer
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
        here = answers_through_interaction(interaction)
        await interaction.response.defer(ephemeral=not here, thinking=True)
        # In a conversation it answers through its own interaction: after the work before.
        turn = self.turns.take(interaction.channel_id or 0) if here else None
        try:
            story = await self._story_here(interaction, "export", ended_too=True)
            if story is None:
                return
            if turn is not None:
                await turn.wait()
            try:
                async with self._answering(interaction, story):
                    message = await self._post_export(interaction, story)
            except DeliveryFailed as exc:
                await self._say(interaction, f"⚠️ The export could not be posted ({exc.reason}).")
                return
            if here:
                return  # the export is the answer
            what = "The story so far" if story.open else "The story's export"
            await self._say(interaction, f"📖 {what}: {message.jump_url}")
        except Exception:  # never leave the member looking at "thinking…"
            log.exception("/story export failed")
            await self._say(interaction, "⚠️ Something went wrong on my side while making the "
                            "export; please try again.")
        finally:
            if turn is not None:
                turn.end()

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
        if candidates_wanted(self.teller) <= 1:
            await self._button(interaction, story_id, "continue",
                               number + 1 if number else None,
                               lambda story: self.teller.continue_story(story, author),
                               on_line=number)
            return
        await self._button(interaction, story_id, OFFER, number + 1 if number else None,
                           lambda story: self.chooser.offer(story, author), on_line=number,
                           post=self._post_offer, check=self._open_choice)

    async def rewrite(self, interaction: discord.Interaction, story_id: int,
                      number: int) -> None:
        author = author_of(interaction.user)
        await self._button(interaction, story_id, "rewrite", number,
                           lambda story: self.teller.rewrite(story, number, author),
                           on_line=number)

    async def redraw(self, interaction: discord.Interaction, story_id: int, number: int) -> None:
        author = author_of(interaction.user)
        await self._button(interaction, story_id, "redraw", number,
                           lambda story: self.teller.redraw(story, number, author),
                           on_line=number)

    async def _button(self, interaction: discord.Interaction, story_id: int, op: str,
                      number: int | None, work: Callable[[Story], Awaitable[T]], *,
                      on_line: int = 0,
                      post: Callable[[Story, T, Callable[[], None] | None],
                                     Awaitable[None]] | None = None,
                      check: Callable[[Story], Awaitable[str | None]] | None = None) -> None:
        """A button's operation in its turn. `on_line`: the line whose message the button is
        on (0: not known), which must be one the story tells now; `check` may answer the
        press at once instead (a reason), `post` shows the result (default: a line)."""
        turn = self.turns.take(interaction.channel_id or 0)
        pending: PendingOp | None = None
        try:
            await interaction.response.defer()  # silent: the thread shows the result
            story = await self._usable(interaction, story_id, on_line)
            if story is None:
                return
            refusal = await check(story) if check is not None else None
            if refusal is not None:
                await self._say(interaction, f"⏳ {refusal}")
                return
            pending = await self._request(interaction, story, op, author_of(interaction.user),
                                          number)
            if pending is None:
                return
            if not await self.pending.wait_turn(pending, turn):
                await self._say(interaction, _cancelled_text(pending))
                return
            refusal = (self._too_late(interaction, interaction.user.id)
                       if story.in_conversation else None)
            if refusal is not None:
                await self._say(interaction, refusal)
                return
            async with self._answering(interaction, story):
                await self._run(interaction, story, lambda: work(story), pending, post=post)
        finally:
            if pending is not None:
                self.pending.finish(pending)
            turn.end()

    # ----- choices (Continue ▶ with story.candidates > 1) ------------------------------------

    async def browse(self, interaction: discord.Interaction, story_id: int, number: int,
                     idx: int) -> None:
        """◀ ▶: the choice message shows another candidate (updated in place)."""
        story = await self.stories.get(story_id)
        choice = None
        if story is not None and story.open:
            with contextlib.suppress(StoryError):
                choice = await self.chooser.show(story_id, number, idx)
        if choice is None:
            await interaction.response.send_message(
                f"⚠️ The choice for line {number} is over: a line was kept, the story was "
                "rewound, or it has ended.", ephemeral=True, allowed_mentions=NO_PINGS)
            return
        await interaction.response.edit_message(content=choice_content(choice),
                                                view=choice_view(choice),
                                                allowed_mentions=NO_PINGS)

    async def keep(self, interaction: discord.Interaction, story_id: int, number: int,
                   idx: int) -> None:
        """✅: the candidate shown becomes the line, in the choice's message."""
        kept_by = author_of(interaction.user)
        await self._button(interaction, story_id, "keep", number,
                           lambda story: self.chooser.keep(story, number, idx, kept_by))

    async def more(self, interaction: discord.Interaction, story_id: int, number: int) -> None:
        """↻: more candidates, added after the others."""
        author = author_of(interaction.user)
        await self._button(interaction, story_id, "more", number,
                           lambda story: self.chooser.more(story, number, author),
                           post=self._post_offer)

    async def _open_choice(self, story: Story) -> str | None:
        choice = await self.chooser.open_choice(story)
        if choice is None:
            return None
        where = (f" It is here: {jump(story.guild_id, story.place, choice.message_id)}"
                 if choice.message_id else "")
        return (f"Line {choice.number} is waiting for a choice: browse the candidates with "
                f"◀ ▶, keep one with ✅, or ask for more with ↻.{where}")

    async def _post_offer(self, story: Story, offered: Offered,
                          shown: Callable[[], None] | None) -> None:
        writing = await self.live.take(offered.job_id)
        await self.thread.publish_choice(offered.story, offered.choice, offered.job_id,
                                         writing, self.chooser.choices)
        if shown is not None:
            shown()

    async def _post_line(self, story: Story, line: StoryLine,
                         shown: Callable[[], None] | None) -> None:
        await self.thread.publish(story, line, shown)
        await self.live.finish(story, line.text_job_id)  # its writing message, if any

    # ----- branches (⏪ Rewind, /story branches) ---------------------------------------------

    async def rewind(self, interaction: discord.Interaction, story_id: int,
                     number: int) -> None:
        """⏪ on line `number`: asks first (only the presser sees it)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        story = await self._usable(interaction, story_id, number)
        if story is None:
            return
        count = await self.stories.count_lines(story.id)
        if number >= count:
            await self._say(interaction, f"Line {number} is the story's latest line already.")
            return
        try:
            await interaction.followup.send(rewind_question(story, number, count),
                                            view=rewind_view(story, number), ephemeral=True,
                                            allowed_mentions=NO_PINGS)
        except discord.HTTPException as exc:
            log.info("could not answer interaction %s: %s", interaction.id, exc)

    async def rewind_confirmed(self, interaction: discord.Interaction, story_id: int,
                               number: int, branch: int) -> None:
        async def work(story: Story) -> str:
            if story.branch != branch:
                return ("⚠️ The story changed since you asked (it was rewound, or another "
                        "branch is told); press ⏪ again.")
            lines = await self.stories.lines(story.id)
            if number >= len(lines):
                return f"Line {number} is the story's latest line already."
            dropped = await self.chooser.drop(story)
            old = story.branch
            await self.stories.rewind(story.id, number)
            now = await self.stories.get(story.id)
            assert now is not None
            if dropped is not None:
                await self.thread.end_choice(now, dropped, "the story was rewound")
            await self.thread.set_buttons(now, lines[-1], latest=None)
            await self.thread.set_buttons(now, lines[number - 1], latest=True)
            await self.thread.say(now, rewound_note(
                author_of(interaction.user).name, number, old, len(lines) - number,
                lines[number - 1], now.guild_id, now.thread_id))
            return f"⏪ Rewound to line {number}."

        await self._in_story_turn(interaction, story_id, work)

    async def branches(self, interaction: discord.Interaction) -> None:
        """/story branches: the story's branches, with a menu to switch (only the asker
        sees it)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        story = await self._story_here(interaction, "branches", ended_too=True)
        if story is None:
            return
        branches = await self.stories.branches(story.id)
        view = branches_view(story, branches) if story.open else None
        try:
            await interaction.followup.send(branches_content(story, branches),
                                            view=view or discord.utils.MISSING,
                                            ephemeral=True, allowed_mentions=NO_PINGS)
        except discord.HTTPException as exc:
            log.info("could not answer interaction %s: %s", interaction.id, exc)

    async def switch_branch(self, interaction: discord.Interaction, story_id: int,
                            branch: int) -> None:
        async def work(story: Story) -> str:
            if branch == story.branch:
                return "That branch is the one told now."
            before = await self.stories.lines(story.id)
            dropped = await self.chooser.drop(story)
            if not await self.stories.switch(story.id, branch):
                return "That branch is gone."
            now = await self.stories.get(story.id)
            assert now is not None
            lines = await self.stories.lines(now.id)
            if dropped is not None:
                await self.thread.end_choice(now, dropped, "another branch is told now")
            told = {(line.branch, line.number) for line in lines}
            old = before[-1]
            await self.thread.set_buttons(
                now, old, latest=False if (old.branch, old.number) in told else None)
            await self.thread.set_buttons(now, lines[-1], latest=True)
            shown = next(b for b in await self.stories.branches(now.id) if b.id == branch)
            await self.thread.say(now, switched_note(author_of(interaction.user).name, shown,
                                                     lines[shown.fork_line:], now.guild_id,
                                                     now.thread_id))
            return f"🔀 Branch #{branch} is told now."

        await self._in_story_turn(interaction, story_id, work)

    async def _in_story_turn(self, interaction: discord.Interaction, story_id: int,
                             work: Callable[[Story], Awaitable[str]]) -> None:
        """A change of the story's branches, from a component on an ephemeral message: in
        the story's turn, refused while a line is being written; the message then says how
        it went (its buttons gone)."""
        turn = self.turns.take(interaction.channel_id or 0)
        try:
            await interaction.response.defer()
            story = await self._usable(interaction, story_id)
            if story is None:
                return
            if self.pending.of_story(story.id):
                await self._say(interaction, f"⏳ {BUSY_NOW}")
                return
            await turn.wait()
            story = await self.stories.get(story_id)
            if story is None or not story.open:
                return
            async with self._answering(interaction, story):
                answer = await work(story)
            try:
                await interaction.edit_original_response(content=answer, view=None)
            except discord.HTTPException as exc:
                log.info("could not answer interaction %s: %s", interaction.id, exc)
        finally:
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

    async def _usable(self, interaction: discord.Interaction, story_id: int,
                      on_line: int = 0) -> Story | None:
        """The button's story, or None after telling the member plainly why not. A button
        on the message of line `on_line` must be on a line the story tells now."""
        story = await self.stories.get(story_id)
        if story is not None and story.open and on_line and interaction.message is not None:
            line = await self.stories.line(story.id, on_line)
            if line is None or line.message_id not in (None, interaction.message.id):
                await self._say(interaction, f"⚠️ {NOT_TOLD}")
                return None
        if story is None:
            problem = "This story no longer exists, so its buttons do nothing."
        elif story.place != interaction.channel_id:
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
            if story is None or story.place is None:
                continue
            if not await self._reachable(story):
                self.services.executor.cancel(handle.job.id, reason=EXPIRED)
                continue
            number = origin.line
            covered.add((story.id, number))
            pending = self._resuming(story, origin.op, handle.job.user_id,
                                     handle.job.user_name, number)
            resume = self._resume_choice if origin.op in CHOICE_OPS else self._resume_job
            work.append((story.place, number, _bind(resume, handle, pending)))
        for record in await self.services.jobs.undelivered():
            if not is_story_job(record.job) or story_origin(record.job).step != "text":
                continue
            origin = story_origin(record.job)
            story = await self.stories.get(origin.story_id)
            if story is None or story.place is None or not await self._reachable(story):
                continue
            pending = self._resuming(story, origin.op, record.job.user_id,
                                     record.job.user_name, origin.line)
            recover = self._recover_choice if origin.op in CHOICE_OPS else self._recover
            work.append((story.place, origin.line, _bind(recover, record, pending)))
        for story in await self.stories.open_stories():
            if story.place is None or not await self._reachable(story):
                continue
            for line in await self.stories.unfinished_lines(story.id):
                if (story.id, line.number) not in covered:
                    pending = self._resuming(story, "settle", line.author.id, line.author.name,
                                             line.number)
                    work.append((story.place, line.number,
                                 _bind(self._settle, story, line, pending)))
        work.sort(key=lambda item: item[:2])  # stable: jobs of one line keep their order
        return [(self.turns.take(thread), run) for thread, _, run in work]

    async def _reachable(self, story: Story) -> bool:
        """Whether a restart's work for the story can still be shown: a thread always; a
        conversation while the stored token of the interaction that asked lives (then it
        answers through it)."""
        if not story.in_conversation:
            return True
        token = await self.thread.tokens.get(story_key(story.id))
        if token is None or token.left_s() <= self.settings.discord.token_margin_s:
            return False
        self.thread.answers.setdefault(story.id, answer_of(self.client, token))
        return True

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
            await self._post_line(resumed.story, resumed.line,
                                  lambda: self.pending.finish(pending))
        elif resumed.error is not None and resumed.story.open:
            await self._report(None, resumed.story, resumed.error)

    async def _resume_choice(self, handle: JobHandle, pending: PendingOp) -> None:
        """A choice's text job restored after a restart: its candidates are shown once it
        is done."""
        try:
            origin = story_origin(handle.job)
            story = await self.stories.get(origin.story_id)
            if story is None:
                return
            self.live.watch(story, handle)
            asked_by = Author(handle.job.user_id, handle.job.user_name)
            try:
                offered = (await self.chooser.offer(story, asked_by, resume=handle)
                           if origin.op == OFFER else
                           await self.chooser.more(story, origin.line, asked_by,
                                                   resume=handle))
            except StoryError as exc:
                if story.open:
                    await self._report(None, story, exc)
                return
            await self._post_offer(offered.story, offered, lambda: self.pending.finish(pending))
        finally:
            self.pending.finish(pending)

    async def _recover_choice(self, record: JobRecord, pending: PendingOp) -> None:
        try:
            offered = await self.chooser.recover(record)
            if offered is not None:
                await self._post_offer(offered.story, offered,
                                       lambda: self.pending.finish(pending))
        finally:
            self.pending.finish(pending)

    async def _settle(self, story: Story, line: StoryLine, pending: PendingOp) -> None:
        try:
            await self._post_line(story, await self.teller.settle(story, line),
                                  lambda: self.pending.finish(pending))
        finally:
            self.pending.finish(pending)

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ----- posting ----------------------------------------------------------------------------

    async def _run(self, interaction: discord.Interaction | None, story: Story,
                   work: Callable[[], Awaitable[T]], pending: PendingOp | None = None, *,
                   post: Callable[[Story, T, Callable[[], None] | None],
                                  Awaitable[None]] | None = None) -> T | None:
        """Do one story operation and show what it made (`post`; by default it made a
        line, which is posted); failures are told to whom they concern. Its `pending`
        registration ends once the thread shows it: a button on it may be pressed from
        then on."""
        await self.thread.show_typing(story)
        try:
            result = await work()
        except StoryError as exc:
            await self._report(interaction, story, exc)
            return None
        shown = None if pending is None else lambda: self.pending.finish(pending)
        try:
            if post is not None:
                await post(story, result, shown)
            else:
                assert isinstance(result, StoryLine)
                await self._post_line(story, result, shown)
        except (DeliveryFailed, discord.HTTPException) as exc:
            what = (f"Line {result.number}" if isinstance(result, StoryLine)
                    else "The line's candidates")
            log.exception("posting %s of story %d failed", what, story.id)
            reason = exc.reason if isinstance(exc, DeliveryFailed) else describe(exc)
            await self._report(interaction, story, StoryError(
                f"{what} was written but could not be posted ({reason}).",
            ))
        return result

    async def _close(self, story: Story) -> Story | None:
        """End the story and take its buttons away; None when it had ended already."""
        if not await self.stories.end(story.id):
            return None
        ended = await self.stories.get(story.id)
        assert ended is not None
        dropped = await self.chooser.drop(ended)
        if dropped is not None:
            await self.thread.end_choice(ended, dropped, "the story has ended")
        count = await self.stories.count_lines(story.id)
        if count:
            await self.thread.retire(ended, count)  # an ended story has no buttons
        return ended

    async def _post_export(self, interaction: discord.Interaction,
                           story: Story) -> discord.Message:
        """Post the story's export in its thread, retried while the member can still be
        answered; raises DeliveryFailed saying why it could not be."""
        lines = await self.stories.lines(story.id)
        others = other_endings(lines, {
            branch.id: await self.stories.lines(story.id, branch.id)
            for branch in await self.stories.branches(story.id) if branch.id != story.branch})
        files, shrunk = await asyncio.to_thread(export_for_upload, story, lines,
                                                upload_limit(interaction), others)
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
        here = answers_through_interaction(interaction)
        if here:  # a conversation: its own story
            story = await self.stories.in_conversation(interaction.channel_id or 0)
        elif isinstance(interaction.channel, discord.Thread):
            story = await self.stories.by_thread(interaction.channel.id)
        if story is None:
            await self._say(interaction, f"⚠️ {NO_STORY_HERE if here else NOT_A_STORY}"
                            .format(command=command))
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
