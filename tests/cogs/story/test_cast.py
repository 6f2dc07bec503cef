"""/story cast end to end: the real bot on the tiny models, against the local Discord double.
What reaches the picture is read from the stored image jobs."""

from __future__ import annotations

from bot.executor.jobs import ImageParams
from bot.story.cast import CHUNK_TOKENS, cast_seed
from bot.story.clip_tokens import load_clip_counter
from bot.story.models import Story, StoryLine
from testkit.discord_double import Message
from testkit.story import StoryBot

LOOK = "a tall woman with red hair"


async def story_of(h: StoryBot, thread: int) -> Story:
    assert h.bot is not None
    story = await h.bot.services.stories.by_thread(thread)
    assert story is not None
    return story


async def picture_of(h: StoryBot, story: Story, number: int) -> tuple[StoryLine, ImageParams]:
    """The line and the parameters of its image job, as stored."""
    assert h.bot is not None
    line = await h.bot.services.stories.line(story.id, number)
    assert line is not None and line.image_job_id is not None
    record = await h.bot.services.jobs.get(line.image_job_id)
    assert record is not None and isinstance(record.job.params, ImageParams)
    return line, record.job.params


async def cast_note(h: StoryBot, thread: int, contains: str) -> Message:
    return await h.double.wait_for_message(
        lambda m: m.channel_id == thread and m.content.startswith("🎭") and contains in m.content
        and not m.ephemeral, 30)


async def test_a_characters_look_and_seed_reach_the_lines_that_name_them(
        story_bot: StoryBot) -> None:
    h = story_bot
    alice, bob, studio = h.world.alice.id, h.world.bob.id, h.world.studio.id
    async with h.running():
        await h.slash(alice, studio, "start", seed="The sky")
        thread = await h.story_thread()
        await h.line(thread, 1)
        story = await story_of(h, thread)

        await h.slash(alice, thread, "cast add", name="Mira", look=LOOK)
        note = await cast_note(h, thread, "**Mira** joins the cast")
        assert LOOK in note.content and "alice" in note.content
        for text in ("Mira walked in.", "The rain fell.", "Later mira's cloak dried."):
            await h.slash(bob, thread, "add", text=text)
        await h.line(thread, 4)

        second, params2 = await picture_of(h, story, 2)
        third, params3 = await picture_of(h, story, 3)
        fourth, params4 = await picture_of(h, story, 4)
        assert params2.prompt.startswith(f"Mira walked in., Mira: {LOOK}, oil painting")
        # Fitted with the image model's own tokenizer (the estimate would keep it all).
        count = load_clip_counter(str(h.tiny.image))
        assert count is not None and count(params2.prompt) <= CHUNK_TOKENS
        assert "fine art" not in params2.prompt
        assert params4.prompt.startswith(f"Later mira's cloak dried., Mira: {LOOK}")
        assert "Mira" not in params3.prompt and params3.prompt.startswith("The rain fell.")
        # Mira keeps her seed from line to line; a line without her has its own.
        assert params2.seeds == params4.seeds == (cast_seed(story.id, "Mira", 0),)
        assert second.image_seed == fourth.image_seed == params2.seeds[0]
        assert third.image_seed != second.image_seed

        # 🎨 Redraw still gives a new seed, and a new picture.
        message = await h.line(thread, 2)
        picture, edits = message.attachments[0].data, message.edits
        redraw = next(c for c in message.custom_ids if c.startswith("gh:story:redraw:"))
        await h.click(alice, message, redraw)
        redrawn = await h.line(thread, 2, edited_after=edits)
        assert redrawn.attachments[0].data != picture
        again, params = await picture_of(h, story, 2)
        assert params.seeds == (cast_seed(story.id, "Mira", 1),) != params2.seeds
        assert again.image_seed == params.seeds[0]

        # A new look for Mira goes into the next picture; her seed stays hers.
        refused = await h.answer(
            await h.slash(bob, thread, "cast add", name="mira", look="a cat"), "added by")
        assert "only they, alice" in refused  # bob didn't add Mira, nor start the story
        await h.slash(alice, thread, "cast add", name="mira", look="short black hair")
        await cast_note(h, thread, "has a new look")
        await h.slash(bob, thread, "add", text="Mira waved.")
        await h.line(thread, 5)
        _, params5 = await picture_of(h, story, 5)
        assert "mira: short black hair" in params5.prompt and LOOK not in params5.prompt
        assert params5.seeds == params2.seeds

    # The cast is in SQLite: after a restart it still shapes the pictures.
    async with h.running():
        listing = await h.answer(await h.slash(bob, thread, "cast list"), "The cast")
        assert "**mira**: short black hair *(added by alice)*" in listing
        await h.slash(bob, thread, "add", text="mira slept.")
        await h.line(thread, 6)
        _, params6 = await picture_of(h, story, 6)
        assert params6.prompt.startswith("mira slept., mira: short black hair")

        # Whoever added a character (or the starter) may remove it; then it's gone.
        await h.slash(bob, thread, "cast add", name="Tom", look="an old man")
        await cast_note(h, thread, "**Tom** joins")
        choices = await h.double.autocomplete(h.world.guild.id, thread, bob, "story",
                                              {"name": "t"}, focused="name",
                                              subcommand="cast remove")
        assert [c["name"] for c in choices] == ["Tom"]
        await h.slash(alice, thread, "cast remove", name="tom")
        await cast_note(h, thread, "**Tom** leaves the cast")
        gone = await h.answer(await h.slash(alice, thread, "cast remove", name="Tom"),
                              "no character")
        assert "/story cast list" in gone
    h.double.assert_clean()


async def test_cast_refusals_say_what_was_wrong(story_bot: StoryBot) -> None:
    h = story_bot
    alice, studio = h.world.alice.id, h.world.studio.id
    async with h.running():
        outside = await h.answer(
            await h.slash(alice, studio, "cast add", name="Mira", look=LOOK), "/story cast")
        assert "`/story cast add` works inside a story's thread" in outside
        await h.slash(alice, studio, "start", seed="A quiet lake")
        thread = await h.story_thread()
        await h.line(thread, 1)
        empty = await h.answer(await h.slash(alice, thread, "cast list"), "no cast yet")
        assert "/story cast add" in empty

        cases = [
            ({"name": "<@123>", "look": LOOK}, "`name` can only be found"),
            ({"name": "Mira", "look": "x" * 301}, "`look` is 301 characters"),
            ({"name": "Mira", "look": "a forbidden thing"}, "`look` contains a blocked term"),
            ({"name": "Forbidden One", "look": LOOK}, "`name` contains a blocked term"),
        ]
        for options, expected in cases:
            answer = await h.answer(await h.slash(alice, thread, "cast add", **options),
                                    expected)
            assert "forbidden" not in answer.lower()  # a blocked term is not echoed
        assert (await h.answer(await h.slash(alice, thread, "cast list"), "no cast yet"))

        await h.slash(alice, thread, "end")
        await h.double.wait_for_message(lambda m: m.content.startswith("📕"), 30)
        ended = await h.answer(
            await h.slash(alice, thread, "cast add", name="Mira", look=LOOK), "has ended")
        assert "can no longer change" in ended
    assert not [m for m in h.thread_messages(thread) if m.content.startswith("🎭")]
    h.double.assert_clean()
