"""Persistent story buttons: the custom_id names the story (and line), the state is in
SQLite, so the buttons of old threads keep working after a restart (discord.py DynamicItem).

Plain classes at module level: `StoryButton` parses `gh:story:<action>:<story>[:<line>]`,
each subclass is one action. Continue ▶ names the line it is on too (so a press on a line
that is no longer the latest can be told from one on the newest line); the Continue ▶
buttons of older threads name only the story and keep working. A click reaches what the
cog provided under `ACTIONS` (its StoryActions) through `interaction.client`; the cog's
setup registers the classes once.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Protocol, Self

import discord

from bot.client import PartKey
from bot.story import Story, StoryLine
from cogs.common import bot_of

STORY = r"(?P<story>[0-9]{1,18})"
LINE = r"(?P<line>[0-9]{1,6})"


class StoryButtonActions(Protocol):
    async def continue_story(self, interaction: discord.Interaction[Any], story_id: int,
                             number: int = 0) -> None: ...
    async def rewrite(self, interaction: discord.Interaction[Any], story_id: int,
                      number: int) -> None: ...
    async def redraw(self, interaction: discord.Interaction[Any], story_id: int,
                     number: int) -> None: ...
    async def rewind(self, interaction: discord.Interaction[Any], story_id: int,
                     number: int) -> None: ...
    async def rewind_confirmed(self, interaction: discord.Interaction[Any], story_id: int,
                               number: int, branch: int) -> None: ...
    async def switch_branch(self, interaction: discord.Interaction[Any], story_id: int,
                            branch: int) -> None: ...
    async def browse(self, interaction: discord.Interaction[Any], story_id: int, number: int,
                     idx: int) -> None: ...
    async def keep(self, interaction: discord.Interaction[Any], story_id: int, number: int,
                   idx: int) -> None: ...
    async def more(self, interaction: discord.Interaction[Any], story_id: int,
                   number: int) -> None: ...


ACTIONS: PartKey[StoryButtonActions] = PartKey("story button actions")


def actions_of(interaction: discord.Interaction[Any]) -> StoryButtonActions:
    return bot_of(interaction).part(ACTIONS)


class StoryButton(discord.ui.DynamicItem[discord.ui.Button[Any]],
                  template=rf"gh:story:(?P<action>[a-z]+):{STORY}(?::{LINE})?"):
    """A button that names a story (and, for per-line actions, one of its lines). Never
    registered itself: each subclass gets its action's template and is registered."""

    action: ClassVar[str]
    per_line: ClassVar[bool] = False
    label: ClassVar[str]
    colour: ClassVar[discord.ButtonStyle] = discord.ButtonStyle.secondary

    def __init_subclass__(cls, *, action: str, per_line: bool = False,
                          line_optional: bool = False) -> None:
        line = rf":{LINE}" if per_line else rf"(?::{LINE})?" if line_optional else ""
        super().__init_subclass__(template=rf"gh:story:{action}:{STORY}{line}")
        cls.action, cls.per_line = action, per_line

    def __init__(self, story_id: int, number: int = 0) -> None:
        custom_id = f"gh:story:{self.action}:{story_id}" + (f":{number}" if self.per_line
                                                            or number else "")
        super().__init__(discord.ui.Button(label=self.label, style=self.colour,
                                           custom_id=custom_id))
        self.story_id, self.number = story_id, number

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction[Any],
                             item: discord.ui.Item[Any], match: re.Match[str], /) -> Self:
        return cls(int(match["story"]), int(match.groupdict().get("line") or 0))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            await self.act(interaction, actions_of(interaction))
        except Exception as exc:
            await bot_of(interaction).report_interaction_error(interaction, exc)

    async def act(self, interaction: discord.Interaction[Any],
                  actions: StoryButtonActions) -> None:
        raise NotImplementedError


class Continue(StoryButton, action="cont", line_optional=True):
    label = "Continue ▶"
    colour = discord.ButtonStyle.primary

    async def act(self, interaction: discord.Interaction[Any],
                  actions: StoryButtonActions) -> None:
        await actions.continue_story(interaction, self.story_id, self.number)


class Rewrite(StoryButton, action="rewrite", per_line=True):
    label = "↻ Rewrite"

    async def act(self, interaction: discord.Interaction[Any],
                  actions: StoryButtonActions) -> None:
        await actions.rewrite(interaction, self.story_id, self.number)


class Redraw(StoryButton, action="redraw", per_line=True):
    label = "🎨 Redraw"

    async def act(self, interaction: discord.Interaction[Any],
                  actions: StoryButtonActions) -> None:
        await actions.redraw(interaction, self.story_id, self.number)


class Rewind(StoryButton, action="rewind", per_line=True):
    label = "⏪"

    async def act(self, interaction: discord.Interaction[Any],
                  actions: StoryButtonActions) -> None:
        await actions.rewind(interaction, self.story_id, self.number)


ITEMS: tuple[type[discord.ui.DynamicItem[Any]], ...] = (Continue, Rewrite, Redraw, Rewind)


def line_view(story: Story, line: StoryLine, *, latest: bool) -> discord.ui.View | None:
    """Continue ▶ and ↻ Rewrite (model lines) on the latest line, 🎨 Redraw on all, ⏪
    (rewind the story to this line) on the others: one row of at most four. An ended
    story's lines have no buttons."""
    if not story.open:
        return None
    view = discord.ui.View(timeout=None)
    if latest:
        view.add_item(Continue(story.id, line.number))
        if line.by_model and line.branch == story.branch:  # a shared line stays as it is
            view.add_item(Rewrite(story.id, line.number))
    view.add_item(Redraw(story.id, line.number))
    if not latest:
        view.add_item(Rewind(story.id, line.number))
    return view
