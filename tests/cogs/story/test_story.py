"""/story end to end: the real bot on the tiny models, against the local Discord double."""

from __future__ import annotations

import asyncio
import re
import threading
import time
import zipfile
from collections.abc import Sequence
from io import BytesIO
from typing import Any

from bot.executor.executor import RunContext
from bot.executor.jobs import Job, JobResult, TextParams
from bot.pipelines.runner import ModelRunner
from testkit.discord_double import Message
from testkit.story import StoryBot


def custom_id(message: Message, prefix: str) -> str:
    found = [c for c in message.custom_ids if c.startswith(prefix)]
    assert found, f"no {prefix} button on {message.content!r}: {message.custom_ids}"
    return found[0]


async def test_a_whole_story(story_bot: StoryBot) -> None:
    h = story_bot
    alice, bob, studio = h.world.alice.id, h.world.bob.id, h.world.studio.id
    async with h.running():
        start = await h.slash(alice, studio, "start", seed="The sky", style="watercolor",
                              title="Sky story")
        thread = await h.story_thread()
        assert "Sky story" in await h.answer(start, "begins in")
        first = await h.line(thread, 1)
        assert first.content.startswith("**1.** The sky\n")
        assert first.attachments[0].content_type == "image/png"
        assert first.attachments[0].width == 64
        assert custom_id(first, "gh:story:cont:") and custom_id(first, "gh:story:redraw:")
        assert not [c for c in first.custom_ids if c.startswith("gh:story:rewrite:")]

        # Continue ×3: each from the latest line's button, by different members.
        latest = first
        for number, who in ((2, bob), (3, alice), (4, bob)):
            latest = await h.continue_line(who, latest, number)
            assert "✍️" in latest.content and latest.attachments
            assert custom_id(latest, "gh:story:rewrite:").endswith(f":{number}")
        # Older lines keep only 🎨 Redraw and ⏪ Rewind.
        second = await h.line(thread, 2)
        assert [c.split(":")[2] for c in second.custom_ids] == ["redraw", "rewind"]

        # A member's line arrives while the model writes the candidates: order of arrival
        # is kept, so the candidate kept afterwards comes after it.
        await h.click(alice, latest, custom_id(latest, "gh:story:cont:"))
        add = await h.slash(bob, thread, "add", text="Then a green bird sang.")
        fifth = await h.line(thread, 5)
        assert fifth.content.startswith("**5.** Then a green bird sang.\n-# 🖋️ bob")
        assert "line 5" in await h.answer(add, "line 5")
        choice = await h.choice(thread, 5)
        await h.click(alice, choice, custom_id(choice, "gh:choice:keep:"))
        sixth = await h.double.wait_for_message(
            lambda m: m.id == choice.id and m.content.startswith("**6.** ")
            and bool(m.attachments), 30)
        assert "✍️" in sixth.content
        await h.idle()
        assert not [c for c in fifth.custom_ids if "rewrite" in c]  # a member's line

        # ↻ Rewrite is offered on the model's latest line only: line 4 lost it.
        fourth = await h.line(thread, 4)
        assert [c.split(":")[2] for c in fourth.custom_ids] == ["redraw", "rewind"]
        seventh = await h.continue_line(alice, sixth, 7)
        before, edits = seventh.content, seventh.edits
        old_picture = seventh.attachments[0].data
        await h.click(bob, seventh, custom_id(seventh, "gh:story:rewrite:"))
        rewritten = await h.line(thread, 7, edited_after=edits)
        assert rewritten.id == seventh.id and rewritten.content != before
        assert "rewritten ×1" in rewritten.content
        assert rewritten.attachments[0].data != old_picture

        # 🎨 Redraw an older line: same text, a new picture, in place.
        second = await h.line(thread, 2)
        text, picture, edits = second.content, second.attachments[0].data, second.edits
        await h.click(alice, second, custom_id(second, "gh:story:redraw:"))
        redrawn = await h.line(thread, 2, edited_after=edits)
        assert redrawn.content == text and len(redrawn.attachments) == 1
        assert redrawn.attachments[0].data != picture

        # /story list links the thread.
        listing = await h.slash(bob, studio, "list")
        assert f"/channels/{h.world.guild.id}/{thread})" in await h.answer(listing, "Sky story")

        # /story end: only the starter (or a moderator); then the export.
        denied = await h.slash(bob, thread, "end")
        assert "Only alice" in await h.answer(denied, "Only")
        end = await h.slash(alice, thread, "end")
        export = await h.double.wait_for_message(
            lambda m: m.channel_id == thread and m.content.startswith("📕"), 30)
        assert "closed" in await h.answer(end, "closed")

    names = [a.filename for a in export.attachments]
    assert names == ["sky-story.html", "sky-story.md", "sky-story-markdown.zip"]
    page = export.attachments[0].data.decode()
    markdown = export.attachments[1].data.decode()
    messages = {int(m.content.split(".")[0].strip("*")): m for m in h.thread_messages(thread)
                if re.match(r"\*\*\d+\.\*\* ", m.content)}
    assert sorted(messages) == list(range(1, 8))
    assert page.count('src="data:image/png;base64,') == 7
    assert markdown.count("](images/") == 7
    for number, message in messages.items():
        text = message.content.split("\n")[0].removeprefix(f"**{number}.** ")
        assert f'id="line-{number}"' in page
        assert text.split()[0].replace("&", "&amp;").replace("<", "&lt;") in page
    assert "Then a green bird sang." in page and "Then a green bird sang." in markdown
    assert 'authors: ["alice"' in markdown and "bob" in markdown
    with zipfile.ZipFile(BytesIO(export.attachments[2].data)) as archive:
        assert len([n for n in archive.namelist() if n.startswith("images/")]) == 7
        # The zip's pictures are the ones posted (the redrawn one included).
        assert archive.read("images/02.png") == messages[2].attachments[0].data
    # Every line message lost its buttons... except 🎨 on older lines, which now say so.
    assert not messages[7].custom_ids
    h.double.assert_clean()


async def test_buttons_of_an_ended_story_say_so(story_bot: StoryBot) -> None:
    h = story_bot
    alice = h.world.alice.id
    async with h.running():
        await h.slash(alice, h.world.studio.id, "start", seed="A quiet lake")
        thread = await h.story_thread()
        await h.line(thread, 1)
        await h.slash(alice, thread, "add", text="A heron waited.")
        second = await h.line(thread, 2)
        await h.slash(alice, thread, "end")
        await h.double.wait_for_message(lambda m: m.content.startswith("📕"), 30)
        assert not second.custom_ids  # the latest line lost all its buttons
        first = await h.line(thread, 1)  # older lines keep 🎨, which now says why not
        rec = await h.click(alice, first, custom_id(first, "gh:story:redraw:"))
        assert "has ended" in await h.answer(rec, "has ended")
        again = await h.slash(alice, thread, "end")
        assert "already ended" in await h.answer(again, "already ended")
        late = await h.slash(alice, thread, "add", text="Too late.")
        assert "already ended" in await h.answer(late, "already ended")
        # A button whose story is gone (deleted from the database) says so too.
        await h.bot.services.db.execute("DELETE FROM stories")  # type: ignore[union-attr]
        gone = await h.click(alice, first, custom_id(first, "gh:story:redraw:"))
        assert "no longer exists" in await h.answer(gone, "no longer exists")
    h.double.assert_clean()


async def test_add_outside_a_story_thread_and_bad_input(story_bot: StoryBot) -> None:
    h = story_bot
    alice, studio = h.world.alice.id, h.world.studio.id
    async with h.running():
        outside = await h.slash(alice, studio, "add", text="Hello")
        answer = await h.answer(outside, "/story add")
        assert "inside a story's thread" in answer and "/story start" in answer
        bad_style = await h.slash(alice, studio, "start", seed="The sky", style="crayon")
        answer = await h.answer(bad_style, "style")
        assert "`style`" in answer and "watercolor" in answer
        blocked = await h.slash(alice, studio, "start", seed="A forbidden door")
        assert "`seed`" in await h.answer(blocked, "blocked")
        assert not h.double.world.threads(h.world.guild.id)  # nothing was opened or queued

        await h.slash(alice, studio, "start", seed="The sky")
        thread = await h.story_thread()
        await h.line(thread, 1)
        blocked_line = await h.slash(alice, thread, "add", text="the forbidden word")
        assert "`text`" in await h.answer(blocked_line, "blocked")
        assert h.story_jobs() == []
    h.double.assert_clean()


async def test_blocked_words_in_generated_text(story_bot: StoryBot) -> None:
    h = story_bot
    alice = h.world.alice.id
    h.runner.blocked_term = lambda text: "forbidden"  # the model "always" writes it
    async with h.running():
        await h.slash(alice, h.world.studio.id, "start", seed="The sky")
        thread = await h.story_thread()
        first = await h.line(thread, 1)
        await h.click(alice, first, custom_id(first, "gh:story:cont:"))
        warning = await h.double.wait_for_message(
            lambda m: m.channel_id == thread and m.content.startswith("⚠️"), 30)
        assert "Line 2 could not be written" in warning.content
        assert "blocked term" in warning.content and "3 attempt" in warning.content
        assert not [m for m in h.thread_messages(thread) if m.content.startswith("**2.**")]


async def test_plain_messages_become_lines_with_the_intent(story_bot: StoryBot) -> None:
    h = story_bot
    h.discord["message_content"] = True
    alice, bob = h.world.alice.id, h.world.bob.id
    async with h.running():
        await h.slash(alice, h.world.studio.id, "start", seed="The sky")
        thread = await h.story_thread()
        await h.line(thread, 1)
        await h.double.user_message(thread, bob, "A kite rose over the hill.")
        await h.double.user_message(thread, alice, "It was red.")
        second = await h.line(thread, 2)
        third = await h.line(thread, 3)
        assert "A kite rose over the hill." in second.content and "🖋️ bob" in second.content
        assert "It was red." in third.content and third.attachments
        await h.double.user_message(thread, bob, "A forbidden thing.")
        reply = await h.double.wait_for_message(
            lambda m: m.channel_id == thread and "Not added" in m.content, 30)
        assert "`message`" in reply.content
    h.double.assert_clean()


async def test_a_restart_in_the_middle_of_a_story(story_bot: StoryBot) -> None:
    h = story_bot
    alice, bob = h.world.alice.id, h.world.bob.id
    gate = GatedRunner(h.runner)
    h.runner = gate
    async with h.running(drain=False) as bot:
        await h.slash(alice, h.world.studio.id, "start", seed="The sky")
        thread = await h.story_thread()
        first = await h.line(thread, 1)
        await h.idle()
        gate.hold.set()  # the next line is being written when the bot stops
        await h.click(bob, first, custom_id(first, "gh:story:cont:"))
        await asyncio.wait_for(asyncio.to_thread(gate.entered.wait), 30)
        stories = bot.services.db
        # And line 1's post is "lost" in the crash: it must be posted again.
        await stories.execute("UPDATE story_lines SET message_id = NULL WHERE number = 1")
    gate.hold.clear()
    async with h.running() as bot:
        # The restored job finishes and its line is posted; the lost post is redone first,
        # and its nonce makes Discord answer with the message it already made: line 1 is in
        # the thread once, and its message id is stored again.
        choice = await h.choice(thread, 2)
        await h.click(bob, choice, custom_id(choice, "gh:choice:keep:"))
        second = await h.line(thread, 2)
        assert "for bob" in second.content and second.id == choice.id
        await h.idle()
        ones = [m for m in h.thread_messages(thread) if m.content.startswith("**1.** ")]
        assert [m.id for m in ones] == [first.id]
        story = await bot.services.stories.by_thread(thread)
        assert story is not None
        line1 = await bot.services.stories.line(story.id, 1)
        assert line1 is not None and line1.message_id == first.id
        nonces = [r.json.get("nonce") for r in
                  h.double.requests_matching("POST", rf"^/channels/{thread}/messages$")
                  if r.json is not None]
        assert nonces.count(f"gh:l{story.id}.1.0") == 2  # the first post, and the repost
        # The restored job's choice came after line 1's repost, in its writing message.
        writes = [i for i, n in enumerate(nonces) if str(n).startswith("gh:w")]
        assert writes and writes[-1] > nonces.index(f"gh:l{story.id}.1.0", 1)
        # Buttons work after the restart: Continue on the restored line.
        third = await h.continue_line(alice, second, 3)
        assert "for alice" in third.content
        await h.idle()
        assert [c.split(":")[2] for c in second.custom_ids] == ["redraw", "rewind"]
    h.double.assert_clean()


class GatedRunner:
    """The session's runner, made to hold text jobs while `hold` is set, until the executor
    stops (a bot stopped while a line is being written)."""

    def __init__(self, inner: ModelRunner) -> None:
        self.inner = inner
        self.hold = threading.Event()
        self.entered = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def run(self, jobs: Sequence[Job], ctx: RunContext) -> list[JobResult | Exception]:
        if self.hold.is_set() and isinstance(jobs[0].params, TextParams):
            self.entered.set()
            while not ctx.cancelled(jobs[0].id):
                time.sleep(0.01)
            return [RuntimeError("interrupted")] * len(jobs)
        return self.inner.run(jobs, ctx)
