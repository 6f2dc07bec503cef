"""The choice message of a story: the candidate shown, "2/3", and ◀ ▶ ✅ ↻.

Its buttons are DynamicItems that hold only ids: the story, the line the choice is for, and
the candidate the message showed when it was drawn (so ✅ keeps the one its presser saw, and
◀ ▶ move from there); the choice itself is read from SQLite when clicked, so the buttons
work after a restart. A click reaches the cog's StoryActions through `ACTIONS`.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Self

import discord

from bot.story.models import Choice, model_label
from bot.story.requests import shorten
from cogs.common import bot_of
from cogs.story.buttons import LINE, STORY, actions_of
from cogs.story.messages import MESSAGE_LIMIT

IDX = r"(?P<idx>[0-9]{1,4})"


def choice_content(choice: Choice, *, more_coming: bool = False) -> str:
    """🪄 **5.** 2/3, the candidate, who asked; never starts like a line ("**5.** ")."""
    shown = choice.current
    head = f"🪄 **{choice.number}.** candidate **{shown.idx + 1}/{len(choice.candidates)}**\n"
    note = "↻ writing more…" if more_coming else "◀ ▶ browse · ✅ keep this one · ↻ more"
    tail = (f"\n-# ✍️ {model_label(shown.model)} for {choice.asked_by.name} · {note}")
    room = MESSAGE_LIMIT - len(head) - len(tail)
    return f"{head}{shorten(shown.text, room)}{tail}"


class ChoiceButton(discord.ui.DynamicItem[discord.ui.Button[Any]],
                   template=rf"gh:choice:(?P<action>[a-z]+):{STORY}:{LINE}:{IDX}"):
    """One of ◀ ▶ ✅ ↻ on a choice message; each subclass is one action."""

    action: ClassVar[str]
    label: ClassVar[str]
    colour: ClassVar[discord.ButtonStyle] = discord.ButtonStyle.secondary

    def __init_subclass__(cls, *, action: str) -> None:
        super().__init_subclass__(template=rf"gh:choice:{action}:{STORY}:{LINE}:{IDX}")
        cls.action = action

    def __init__(self, story_id: int, number: int, idx: int) -> None:
        super().__init__(discord.ui.Button(
            label=self.label, style=self.colour,
            custom_id=f"gh:choice:{self.action}:{story_id}:{number}:{idx}"))
        self.story_id, self.number, self.idx = story_id, number, idx

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction[Any],
                             item: discord.ui.Item[Any], match: re.Match[str], /) -> Self:
        return cls(int(match["story"]), int(match["line"]), int(match["idx"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            actions = actions_of(interaction)
            if self.action == "keep":
                await actions.keep(interaction, self.story_id, self.number, self.idx)
            elif self.action == "more":
                await actions.more(interaction, self.story_id, self.number)
            else:
                step = -1 if self.action == "prev" else 1
                await actions.browse(interaction, self.story_id, self.number, self.idx + step)
        except Exception as exc:
            await bot_of(interaction).report_interaction_error(interaction, exc)


class Previous(ChoiceButton, action="prev"):
    label = "◀"


class Next(ChoiceButton, action="next"):
    label = "▶"


class Keep(ChoiceButton, action="keep"):
    label = "✅ Keep"
    colour = discord.ButtonStyle.success


class More(ChoiceButton, action="more"):
    label = "↻ More"


CHOICE_ITEMS: tuple[type[discord.ui.DynamicItem[Any]], ...] = (Previous, Next, Keep, More)


def choice_view(choice: Choice) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    shown = choice.current.idx
    for cls in (Previous, Next, Keep, More):
        view.add_item(cls(choice.story_id, choice.number, shown))
    return view
