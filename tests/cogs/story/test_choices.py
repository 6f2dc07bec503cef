"""Continue ▶ offers candidate lines: browse ◀ ▶ (edited in place), keep one ✅ (it becomes
the line, in the same message, and is illustrated), ↻ for more; a restart in between keeps
the choice, and a choice's job finished while the bot stopped is shown after the start."""

from __future__ import annotations

import re

from bot.executor.jobs import Done, Job, JobState, StoryOrigin, TextParams, TextResult
from testkit.discord_double import Message
from testkit.live_runner import LiveTextRunner
from testkit.story import StoryBot, button


def shown(message: Message) -> tuple[int, int]:
    found = re.search(r"candidate \*\*(\d+)/(\d+)\*\*", message.content)
    assert found, message.content
    return int(found[1]), int(found[2])


def candidate_text(message: Message) -> str:
    return message.content.split("\n")[1]


async def test_three_candidates_browse_more_and_keep(story_bot: StoryBot) -> None:
    h = story_bot
    runner = LiveTextRunner(h.runner)
    h.runner = runner
    alice, bob = h.world.alice.id, h.world.bob.id
    async with h.running() as bot:
        await h.slash(alice, h.world.studio.id, "start", seed="The sky")
        thread = await h.story_thread()
        first = await h.line(thread, 1)
        await h.idle()
        await h.click(bob, first, button(first, "gh:story:cont:"))
        choice = await h.choice(thread, 2)
        await h.idle()
        # One job wrote them all; the message offers what its result held.
        assert len(runner.results) == 1
        offered = runner.results[0].candidates or (runner.results[0].text,)
        assert shown(choice) == (1, len(offered))
        assert candidate_text(choice) == offered[0]

        # ▶ edits the message in place (a component update, answered at once). The double's
        # message objects are live: their edit counts are taken before each click.
        edits = choice.edits
        press = await h.click(alice, choice, button(choice, "gh:choice:next:"))
        assert (await press.wait_ack()).type == 7
        after = await h.choice(thread, 2, edited_after=edits)
        assert after.id == choice.id
        number = 2 if len(offered) > 1 else 1
        assert shown(after) == (number, len(offered))
        assert candidate_text(after) == offered[number - 1]

        # Continue ▶ while the choice is open is answered, not stacked.
        again = await h.click(alice, first, button(first, "gh:story:cont:"))
        assert "waiting for a choice" in await h.answer(again, "waiting for a choice")

        # ↻ asks for more: appended, and the first new one is shown.
        before = after.edits
        await h.click(alice, after, button(after, "gh:choice:more:"))
        await h.double.wait_until(lambda: len(runner.results) == 2 or None, 30, "↻'s job")
        await h.idle()
        more = await h.choice(thread, 2, edited_after=before)
        assert len(runner.results) == 2
        added = runner.results[1].candidates or (runner.results[1].text,)
        total = len(offered) + len(added)
        assert more.id == choice.id and shown(more) == (len(offered) + 1, total)
        # The earlier ones are still there: ◀ from the first new one is the last old one.
        edits = more.edits
        await h.click(bob, more, button(more, "gh:choice:prev:"))
        back = await h.choice(thread, 2, edited_after=edits)
        assert shown(back) == (len(offered), total)
        kept = candidate_text(back)
        assert kept == offered[-1]

        # ✅ keeps the one shown: the line, in the same message, illustrated.
        await h.click(alice, back, button(back, "gh:choice:keep:"))
        line = await h.line(thread, 2)
        assert line.id == choice.id
        assert line.content.startswith(f"**2.** {kept}\n")
        assert "for bob · chosen by alice" in line.content
        assert line.attachments and not [c for c in line.custom_ids if "choice" in c]
        await h.idle()
        story = await bot.services.stories.by_thread(thread)
        assert story is not None
        saved = await bot.services.stories.line(story.id, 2)
        assert saved is not None and saved.text == kept and saved.author.name == "bob"
        assert saved.chosen_by is not None and saved.chosen_by.name == "alice"
        assert saved.message_id == choice.id
        async with bot.services.db.execute("SELECT COUNT(*) FROM story_candidates") as cur:
            assert (await cur.fetchone())[0] == 0  # type: ignore[index]
        # Only the kept line was illustrated: one picture job for line 2.
        async with bot.services.db.execute(
                "SELECT COUNT(*) FROM jobs WHERE kind = 'image'") as cur:
            assert (await cur.fetchone())[0] == 2  # type: ignore[index]
        # The next Continue ▶ offers a new choice, for line 3.
        third = await h.continue_line(bob, line, 3)
        assert "for bob" in third.content and "chosen by" not in third.content
    assert len([m for m in h.thread_messages(thread) if m.content.startswith("**2.** ")]) == 1
    h.double.assert_clean()


async def test_a_restart_between_the_candidates_and_the_choice(story_bot: StoryBot) -> None:
    h = story_bot
    alice, bob = h.world.alice.id, h.world.bob.id
    async with h.running():
        await h.slash(alice, h.world.studio.id, "start", seed="The sky")
        thread = await h.story_thread()
        first = await h.line(thread, 1)
        await h.click(bob, first, button(first, "gh:story:cont:"))
        choice = await h.choice(thread, 2)
    async with h.running():
        # The buttons work after the restart: their state is in SQLite.
        edits = choice.edits
        await h.click(alice, choice, button(choice, "gh:choice:next:"))
        after = await h.choice(thread, 2, edited_after=edits)
        await h.click(alice, after, button(after, "gh:choice:keep:"))
        line = await h.line(thread, 2)
        assert line.id == choice.id and "for bob · chosen by alice" in line.content
    h.double.assert_clean()


async def test_a_choice_written_while_the_bot_stopped_is_shown_at_start(
        story_bot: StoryBot) -> None:
    h = story_bot
    alice, bob = h.world.alice.id, h.world.bob.id
    async with h.running() as bot:
        await h.slash(alice, h.world.studio.id, "start", seed="The sky")
        thread = await h.story_thread()
        await h.line(thread, 1)
        await h.idle()
        story = await bot.services.stories.by_thread(thread)
        assert story is not None
        # The model wrote the candidates for bob's Continue ▶ and the job store recorded
        # them ("rendered"); the bot stopped before the story stored them.
        job = Job(user_id=bob, user_name="bob",
                  params=TextParams(seed_line="The sky", lines=(), rng_seed=7, candidates=3),
                  origin=StoryOrigin(story_id=story.id, op="choose", line=2, step="text",
                                     guild_id=story.guild_id, channel_id=thread))
        jobs = bot.services.jobs
        await jobs.job_accepted(job)
        await jobs.job_started(job)
        await jobs.job_finished(job, Done(TextResult(
            "A kite rose.", {}, "kite", candidates=("A kite rose.", "A crow sang."))))

    async with h.running() as bot:
        choice = await h.choice(thread, 2)
        assert candidate_text(choice) == "A kite rose." and "for bob" in choice.content
        await h.idle()
        record = await bot.services.jobs.get(job.id)
        assert record is not None and record.state is JobState.DELIVERED
        assert record.message_id == choice.id
        await h.click(alice, choice, button(choice, "gh:choice:keep:"))
        line = await h.line(thread, 2)
        assert line.content.startswith("**2.** A kite rose.\n") and line.id == choice.id

    async with h.running():  # once: the next start has nothing left to do
        await h.idle()
    assert len([m for m in h.thread_messages(thread) if "A kite rose." in m.content]) == 1
    h.double.assert_clean()
