"""What ⏪ Rewind and /story branches show: the confirmation, the list of branches with a
menu to switch, and the thread's notes. The button and the menu are DynamicItems holding
only ids (the story, the line, the branch the confirmation was asked on); the story's
branches are read from SQLite when they are used.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Self

import discord

from bot.story.models import Branch, Story, StoryLine
from bot.story.requests import shorten
from cogs.common import bot_of
from cogs.story.buttons import LINE, STORY, actions_of
from cogs.story.messages import MESSAGE_LIMIT

BRANCH = r"(?P<branch>[0-9]{1,6})"
MENU_OPTIONS = 25  # Discord's limit for a select menu
RECENT_LINES = 5  # lines a switch links to


def branch_name(branch: Branch | int) -> str:
    return f"#{branch.id if isinstance(branch, Branch) else branch}"


def rewind_question(story: Story, number: int, count: int) -> str:
    later = count - number
    return (f"⏪ Rewind **{story.title}** to line {number}? The {later} line"
            f"{'s' * (later != 1)} after it move to a branch of their own, pictures and all: "
            "`/story branches` lists the branches and switches back, and the export shows "
            "them too. Dismiss this message to leave the story as it is.")


def rewound_note(who: str, number: int, old: int, moved: int, message: StoryLine | None,
                 guild_id: int | None, thread_id: int | None) -> str:
    link = (f" ({jump(guild_id, thread_id, message.message_id)})"
            if message is not None and message.message_id and thread_id else "")
    return (f"⏪ {who} rewound the story to line {number}{link}. The {moved} later line"
            f"{'s' * (moved != 1)} are kept in branch {branch_name(old)}: `/story branches` "
            "switches back. Continue ▶ on line "
            f"{number} writes what comes next.")


def switched_note(who: str, branch: Branch, lines: Sequence[StoryLine],
                  guild_id: int | None, thread_id: int | None) -> str:
    """The thread's note on a switch: the branch, and links to its latest lines (they are
    in the thread already; nothing is posted again)."""
    rows = [f"🔀 {who} switched the story to branch {branch_name(branch)}"
            + (f" (from line {branch.fork_line})" if branch.fork_line else "")
            + f": {branch.lines} line{'s' * (branch.lines != 1)}. Its latest:"]
    for line in lines[-RECENT_LINES:]:
        where = (f" — {jump(guild_id, thread_id, line.message_id)}"
                 if line.message_id and thread_id else "")
        rows.append(f"> **{line.number}.** {shorten(line.text, 160)}{where}")
    return _fit(rows)


def branches_content(story: Story, branches: Sequence[Branch]) -> str:
    rows = [f"🌿 **{story.title}** has {len(branches)} branch"
            f"{'es' * (len(branches) != 1)}:"]
    for branch in branches:
        fork = f"from line {branch.fork_line}" if branch.fork_line else "the beginning"
        current = " · **told now**" if branch.id == story.branch else ""
        rows.append(f"• **{branch_name(branch)}** · {fork} · {branch.lines} line"
                    f"{'s' * (branch.lines != 1)} · “{shorten(branch.last_text, 60)}”"
                    f"{current}")
    if len(branches) > 1:
        rows.append("Pick one below to tell it from its latest line.")
    return _fit(rows)


def _fit(rows: list[str]) -> str:
    """The rows in one message: the last ones dropped (with "…") until it fits."""
    text = "\n".join(rows)
    while len(text) > MESSAGE_LIMIT and len(rows) > 1:
        rows = rows[:-1]
        text = "\n".join([*rows, "…"])
    return text[:MESSAGE_LIMIT]


def jump(guild_id: int | None, thread_id: int | None, message_id: int | None) -> str:
    return f"https://discord.com/channels/{guild_id or '@me'}/{thread_id}/{message_id}"


class RewindConfirm(discord.ui.DynamicItem[discord.ui.Button[Any]],
                    template=rf"gh:rewind:{STORY}:{LINE}:{BRANCH}"):
    """⏪ Yes, on the confirmation: names the branch it was asked on, so a confirmation
    that the story moved past (another rewind, a switch) does nothing."""

    def __init__(self, story_id: int, number: int, branch: int) -> None:
        super().__init__(discord.ui.Button(
            label=f"⏪ Rewind to line {number}", style=discord.ButtonStyle.danger,
            custom_id=f"gh:rewind:{story_id}:{number}:{branch}"))
        self.story_id, self.number, self.branch = story_id, number, branch

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction[Any],
                             item: discord.ui.Item[Any], match: re.Match[str], /) -> Self:
        return cls(int(match["story"]), int(match["line"]), int(match["branch"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            await actions_of(interaction).rewind_confirmed(interaction, self.story_id,
                                                           self.number, self.branch)
        except Exception as exc:
            await bot_of(interaction).report_interaction_error(interaction, exc)


class BranchMenu(discord.ui.DynamicItem[discord.ui.Select[Any]],
                 template=rf"gh:branches:{STORY}"):
    def __init__(self, story_id: int,
                 options: list[discord.SelectOption] | None = None) -> None:
        # Built from a custom_id the menu has no options: Discord sends only the choice.
        super().__init__(discord.ui.Select(
            custom_id=f"gh:branches:{story_id}", placeholder="Switch to a branch…",
            options=options or [discord.SelectOption(label="#1", value="1")]))
        self.story_id = story_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction[Any],
                             item: discord.ui.Item[Any], match: re.Match[str], /) -> Self:
        return cls(int(match["story"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            values = self.item.values
            if values:
                await actions_of(interaction).switch_branch(interaction, self.story_id,
                                                            int(values[0]))
        except Exception as exc:
            await bot_of(interaction).report_interaction_error(interaction, exc)


BRANCH_ITEMS: tuple[type[discord.ui.DynamicItem[Any]], ...] = (RewindConfirm, BranchMenu)


def rewind_view(story: Story, number: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(RewindConfirm(story.id, number, story.branch))
    return view


def branches_view(story: Story, branches: Sequence[Branch]) -> discord.ui.View | None:
    others = [b for b in branches if b.id != story.branch]
    if not others:
        return None
    options = [discord.SelectOption(
        label=f"Branch {branch_name(b)} · {b.lines} lines",
        description=shorten(b.last_text, 100) or None, value=str(b.id))
        for b in others[-MENU_OPTIONS:]]
    view = discord.ui.View(timeout=None)
    view.add_item(BranchMenu(story.id, options))
    return view
