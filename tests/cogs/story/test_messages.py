"""Story messages stay within Discord's limits whatever the lines and names."""

from __future__ import annotations

from dataclasses import replace

from bot.story import MAX_LINE_CHARS, Author, LineSource, Story, StoryLine, StoryState
from cogs.story.messages import (
    MESSAGE_LIMIT,
    ended_content,
    intro_content,
    line_content,
    list_content,
)

STORY = Story(id=1, title="T" * 100, style="psychedelic surrealism", author=Author(1, "a" * 32),
              state=StoryState.OPEN, created_at=0.0, guild_id=5, thread_id=6)


def line(text: str, **kw: object) -> StoryLine:
    values: dict[str, object] = dict(story_id=1, number=199, source=LineSource.MODEL, text=text,
                                     author=Author(2, "b" * 32), created_at=0.0, updated_at=0.0,
                                     model="x" * 300)
    values.update(kw)
    return StoryLine(**values)  # type: ignore[arg-type]


def test_a_line_fits_with_its_decorations() -> None:
    longest = line("w" * MAX_LINE_CHARS, revision=12, image_error="e" * 2000)
    content = line_content(STORY, longest)
    assert len(content) <= MESSAGE_LIMIT
    assert content.startswith("**199.** www")
    assert "no picture" in content
    # Even a text longer than the bot ever accepts is cut, never refused by Discord.
    assert len(line_content(STORY, line("w " * 3000))) <= MESSAGE_LIMIT


def test_a_short_line_is_shown_whole_with_its_byline() -> None:
    content = line_content(STORY, line("The sky.", model="EleutherAI/gpt-neo-1.3B"))
    assert content == f"**199.** The sky.\n-# ✍️ gpt-neo-1.3B for {'b' * 32}"
    member = line("Mine.", source=LineSource.MEMBER, model=None)
    assert line_content(STORY, member).endswith(f"-# 🖋️ {'b' * 32}")


def test_other_messages_fit() -> None:
    assert len(intro_content(STORY, message_content=True)) <= MESSAGE_LIMIT
    lines = [line("x")] * 3
    text = ended_content(STORY, lines, ["n" * 32] * 300, shrunk=True, files=3)
    assert len(text) <= MESSAGE_LIMIT
    many = [STORY] * 20
    listing = list_content(many, [5] * 20, 5)
    assert len(listing) <= MESSAGE_LIMIT
    assert "https://discord.com/channels/5/6" in listing
    assert "`/story start`" in list_content([], [], 5)


def test_an_open_storys_export_says_so_far() -> None:
    lines = [line("x")] * 2
    text = ended_content(STORY, lines, ["alice"], shrunk=False, files=3)
    assert text.startswith(f"📖 **{STORY.title}**, so far: 2 lines by alice.")
    ended = ended_content(replace(STORY, state=StoryState.ENDED), lines, ["alice"],
                          shrunk=False, files=3)
    assert ended.startswith(f"📕 **{STORY.title}** is finished: 2 lines by alice.")
