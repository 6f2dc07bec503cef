"""Persistent story buttons: the custom_id names the story (and line), the state is in
SQLite, so the buttons of old threads keep working after a restart (discord.py DynamicItem).
"""

from __future__ import annotations

import re
from typing import Any, Protocol

import discord

from bot.story import Story, StoryLine

STORY = r"(?P<story>[0-9]{1,18})"
LINE = r"(?P<line>[0-9]{1,6})"


class StoryButtonActions(Protocol):
    async def continue_story(self, interaction: discord.Interaction, story_id: int) -> None: ...
    async def rewrite(self, interaction: discord.Interaction, story_id: int,
                      number: int) -> None: ...
    async def redraw(self, interaction: discord.Interaction, story_id: int,
                     number: int) -> None: ...


class StoryButtons:
    """The item classes, bound to the actions they call (no global look-ups from items)."""

    def __init__(self, actions: StoryButtonActions) -> None:
        self.classes = _item_classes(actions)

    def line_view(self, story: Story, line: StoryLine, *, latest: bool) -> discord.ui.View | None:
        """Continue ▶ and ↻ Rewrite (model lines) on the latest line, 🎨 Redraw on all.
        An ended story's lines have no buttons."""
        if not story.open:
            return None
        view = discord.ui.View(timeout=None)
        if latest:
            view.add_item(self.classes["continue"](story.id))
            if line.by_model:
                view.add_item(self.classes["rewrite"](story.id, line.number))
        view.add_item(self.classes["redraw"](story.id, line.number))
        return view

    def all(self) -> list[type[discord.ui.DynamicItem[Any]]]:
        return list(self.classes.values())


def _item_classes(actions: StoryButtonActions) -> dict[str, Any]:
    class Continue(discord.ui.DynamicItem[discord.ui.Button[Any]],
                   template=rf"gh:story:cont:{STORY}"):
        def __init__(self, story_id: int) -> None:
            super().__init__(discord.ui.Button(
                label="Continue ▶", style=discord.ButtonStyle.primary,
                custom_id=f"gh:story:cont:{story_id}"))
            self.story_id = story_id

        @classmethod
        async def from_custom_id(cls, interaction: discord.Interaction,  # type: ignore[override]
                                 item: discord.ui.Button[Any], match: re.Match[str]) -> Continue:
            return cls(int(match["story"]))

        async def callback(self, interaction: discord.Interaction) -> None:  # type: ignore[override]
            await actions.continue_story(interaction, self.story_id)

    class Rewrite(discord.ui.DynamicItem[discord.ui.Button[Any]],
                  template=rf"gh:story:rewrite:{STORY}:{LINE}"):
        def __init__(self, story_id: int, number: int) -> None:
            super().__init__(discord.ui.Button(
                label="↻ Rewrite", style=discord.ButtonStyle.secondary,
                custom_id=f"gh:story:rewrite:{story_id}:{number}"))
            self.story_id, self.number = story_id, number

        @classmethod
        async def from_custom_id(cls, interaction: discord.Interaction,  # type: ignore[override]
                                 item: discord.ui.Button[Any], match: re.Match[str]) -> Rewrite:
            return cls(int(match["story"]), int(match["line"]))

        async def callback(self, interaction: discord.Interaction) -> None:  # type: ignore[override]
            await actions.rewrite(interaction, self.story_id, self.number)

    class Redraw(discord.ui.DynamicItem[discord.ui.Button[Any]],
                 template=rf"gh:story:redraw:{STORY}:{LINE}"):
        def __init__(self, story_id: int, number: int) -> None:
            super().__init__(discord.ui.Button(
                label="🎨 Redraw", style=discord.ButtonStyle.secondary,
                custom_id=f"gh:story:redraw:{story_id}:{number}"))
            self.story_id, self.number = story_id, number

        @classmethod
        async def from_custom_id(cls, interaction: discord.Interaction,  # type: ignore[override]
                                 item: discord.ui.Button[Any], match: re.Match[str]) -> Redraw:
            return cls(int(match["story"]), int(match["line"]))

        async def callback(self, interaction: discord.Interaction) -> None:  # type: ignore[override]
            await actions.redraw(interaction, self.story_id, self.number)

    return {"continue": Continue, "rewrite": Rewrite, "redraw": Redraw}
