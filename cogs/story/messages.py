"""The text of story messages in Discord. Pure functions: easy to test against the limits."""

from __future__ import annotations

from collections.abc import Sequence

from bot.story import Story, StoryLine, model_label
from bot.story.requests import shorten

MESSAGE_LIMIT = 2000  # characters in a Discord message
NOTE_CHARS = 300  # an error shown under a line is cut to this
LIST_LIMIT = 20  # stories shown by /story list


def line_content(story: Story, line: StoryLine) -> str:
    """A posted line: number, text, and a small byline; always within MESSAGE_LIMIT."""
    by = (f"✍️ {model_label(line.model)} for {line.author.name}" if line.by_model
          else f"🖋️ {line.author.name}")
    if line.by_model and line.chosen_by is not None and line.chosen_by.id != line.author.id:
        by += f" · chosen by {line.chosen_by.name}"
    if line.revision:
        by += f" · rewritten ×{line.revision}"
    if line.image_error:
        by += f"\n-# 🖼️ no picture: {shorten(line.image_error, NOTE_CHARS)}"
    head = f"**{line.number}.** "
    tail = f"\n-# {by}"
    room = MESSAGE_LIMIT - len(head) - len(tail)
    return f"{head}{shorten(line.text, room)}{tail}"


def intro_content(story: Story, *, message_content: bool) -> str:
    style = f" Every line is illustrated ({story.style})." if story.style \
        else " Every line is illustrated."
    how = ("Press **Continue ▶** to let the story model write the next line, add your own "
           "with `/story add`")
    if message_content:
        how += " or simply by writing a message here"
    return shorten(
        f"📖 **{story.title}** — a story started by {story.author.name}.{style}\n"
        f"{how}. **↻ Rewrite** replaces the model's latest line, **🎨 Redraw** paints a line "
        "again, and `/story end` closes the story and posts it as a web page and Markdown "
        "(`/story export` posts it any time).",
        MESSAGE_LIMIT,
    )


def ended_content(story: Story, lines: Sequence[StoryLine], authors: Sequence[str],
                  *, shrunk: bool, files: int) -> str:
    """The export's message: an ended story "is finished", an open one is shown "so far"."""
    names = ", ".join(authors)
    count = f"{len(lines)} line{'s' * (len(lines) != 1)} by {names}."
    text = (f"📖 **{story.title}**, so far: {count}" if story.open
            else f"📕 **{story.title}** is finished: {count}")
    if files >= 3:
        text += ("\nThe HTML page has every picture built in; the Markdown (and the .zip with "
                 "it and its pictures) is ready for a blog.")
    elif files:
        text += ("\nThe HTML page has every picture built in; the Markdown is ready for a blog "
                 "(its pictures did not fit in this message: take them from the page).")
    else:
        text += "\nThe export was too large to upload here."
    if shrunk:
        text += "\n-# The pictures were made smaller to fit Discord's upload limit."
    return shorten(text, MESSAGE_LIMIT)


def list_content(stories: Sequence[Story], counts: Sequence[int], guild_id: int) -> str:
    if not stories:
        return "No stories here yet. Start one with `/story start`."
    rows = []
    for story, count in zip(stories, counts, strict=True):
        where = (f"[{_link_text(story.title)}](https://discord.com/channels/{guild_id}/"
                 f"{story.thread_id})" if story.thread_id else _link_text(story.title))
        state = "✍️ open" if story.open else "📕 ended"
        rows.append(f"• **#{story.id}** {where} — {count} line{'s' * (count != 1)} · {state}"
                    f" · by {story.author.name}")
    text = "\n".join(rows)
    while len(text) > MESSAGE_LIMIT:  # drop the oldest rows until it fits
        rows.pop()
        text = "\n".join([*rows, "…"])
    return text


def _link_text(title: str) -> str:
    # Brackets would end the masked link early.
    return shorten(title, 80).replace("[", "(").replace("]", ")")
