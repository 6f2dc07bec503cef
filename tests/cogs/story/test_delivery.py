"""Every line and export reaches its thread once, whatever the network or a restart does in
between, and a finished line the bot never saved is saved and posted at the next start."""

from __future__ import annotations

from bot.executor.jobs import Done, Job, JobState, StoryOrigin, TextParams, TextResult
from bot.story import StoryState
from testkit.discord_double import Message
from testkit.discord_double.errors import missing_permissions
from testkit.story import StoryBot


def custom_id(message: Message, prefix: str) -> str:
    found = [c for c in message.custom_ids if c.startswith(prefix)]
    assert found, f"no {prefix} button on {message.content!r}: {message.custom_ids}"
    return found[0]


def posts_to(thread: int) -> str:
    return rf"^/channels/{thread}/messages$"


def starting(h: StoryBot, thread: int, prefix: str) -> list[Message]:
    return [m for m in h.thread_messages(thread) if m.content.startswith(prefix)]


async def test_a_line_whose_post_answer_was_lost_is_posted_once(story_bot: StoryBot) -> None:
    h = story_bot
    alice, bob = h.world.alice.id, h.world.bob.id
    async with h.running() as bot:
        await h.slash(alice, h.world.studio.id, "start", seed="The sky")
        thread = await h.story_thread()
        first = await h.line(thread, 1)
        await h.idle()
        # Discord makes line 2's message (its writing message, which becomes its choice,
        # then the line), and the connection drops before the answer.
        h.double.reset_next("POST", posts_to(thread), after=True)
        second = await h.continue_line(bob, first, 2)
        await h.idle()
        assert [m.id for m in starting(h, thread, "**2.** ")] == [second.id]
        assert not starting(h, thread, "✍️") and not starting(h, thread, "🪄")
        story = await bot.services.stories.by_thread(thread)
        assert story is not None
        line = await bot.services.stories.line(story.id, 2)
        assert line is not None and line.message_id == second.id
        posts = [r.json for r in h.double.requests_matching("POST", posts_to(thread))][-2:]
        nonces = [p["nonce"] for p in posts if p]
        assert len(nonces) == 2 and nonces[0] == nonces[1] and nonces[0].startswith("gh:w")
        assert line.text_job_id is not None
        record = await bot.services.jobs.get(line.text_job_id)
        assert record is not None and record.state is JobState.DELIVERED
        assert record.message_id == second.id
    h.double.assert_clean()


async def test_a_line_written_but_not_saved_is_saved_at_start(story_bot: StoryBot) -> None:
    h = story_bot
    alice, bob = h.world.alice.id, h.world.bob.id
    async with h.running() as bot:
        await h.slash(alice, h.world.studio.id, "start", seed="The sky")
        thread = await h.story_thread()
        await h.line(thread, 1)
        await h.idle()
        story = await bot.services.stories.by_thread(thread)
        assert story is not None
        # The model wrote line 2 for bob and the job store recorded it ("rendered"); the bot
        # died before the story saved the line.
        job = Job(user_id=bob, user_name="bob",
                  params=TextParams(seed_line="The sky", lines=(), rng_seed=7),
                  origin=StoryOrigin(story_id=story.id, op="continue", line=2, step="text",
                                     guild_id=story.guild_id, channel_id=thread))
        jobs = bot.services.jobs
        await jobs.job_accepted(job)
        await jobs.job_started(job)
        await jobs.job_finished(job, Done(TextResult("A kite rose over the hill.", {}, "kite")))

    async with h.running() as bot:
        # A member's line asked for at once comes after the saved one: line order first.
        add = await h.slash(alice, thread, "add", text="It was red.")
        second = await h.line(thread, 2)
        third = await h.line(thread, 3)
        assert second.content.startswith("**2.** A kite rose over the hill.\n")
        assert "kite for bob" in second.content and second.attachments
        assert third.content.startswith("**3.** It was red.")
        assert "line 3" in await h.answer(add, "line 3")
        await h.idle()
        saved = await bot.services.stories.line(story.id, 2)
        assert saved is not None and saved.text_job_id == job.id
        assert saved.message_id == second.id and saved.image_path is not None
        record = await bot.services.jobs.get(job.id)
        assert record is not None and record.state is JobState.DELIVERED
        assert record.message_id == second.id

    async with h.running():  # once: the next start has nothing left to do
        await h.idle()
    assert len(starting(h, thread, "**2.** ")) == 1
    assert len(starting(h, thread, "**3.** ")) == 1
    h.double.assert_clean()


async def test_end_and_export_survive_failed_posts(story_bot: StoryBot) -> None:
    h = story_bot
    alice, bob = h.world.alice.id, h.world.bob.id
    async with h.running() as bot:
        await h.slash(alice, h.world.studio.id, "start", seed="The sky", title="Sky")
        thread = await h.story_thread()
        await h.line(thread, 1)
        await h.idle()

        # Anyone may post an open story's export; a lost answer is retried into one post.
        h.double.reset_next("POST", posts_to(thread), after=True)
        export = await h.slash(bob, thread, "export")
        answer = await h.answer(export, "so far")
        so_far = starting(h, thread, "📖 **Sky**, so far: 1 line by alice.")
        assert len(so_far) == 1 and str(so_far[0].id) in answer
        assert [a.filename for a in so_far[0].attachments][:2] == ["sky.html", "sky.md"]

        # Discord refuses the export of /story end: the story is closed all the same, and
        # the member is told so at once, and how to get the export.
        h.double.fail_next("POST", posts_to(thread), missing_permissions())
        end = await h.slash(alice, thread, "end")
        answer = await h.answer(end, "closed")
        assert "could not be posted (Missing Permissions)" in answer and "/story export" in answer
        story = await bot.services.stories.by_thread(thread)
        assert story is not None and story.state is StoryState.ENDED
        assert starting(h, thread, "📕") == []

        # /story export posts it; asked again before anything changed, that post is the answer.
        again = await h.slash(alice, thread, "export")
        answer = await h.answer(again, "export:")
        finished = starting(h, thread, "📕 **Sky** is finished")
        assert len(finished) == 1 and str(finished[0].id) in answer
        twice = await h.slash(bob, thread, "export")
        assert str(finished[0].id) in await h.answer(twice, "export:")
        assert len(starting(h, thread, "📕")) == 1
    h.double.assert_clean()
