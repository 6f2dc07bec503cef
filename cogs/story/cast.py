"""/story cast add · remove · list: a story's characters, in its thread.

A change is answered in the thread for everyone (it changes the pictures of the lines that
follow); refusals and the list are only for the member who asked. A character may be
changed or removed by whoever added it, the story's starter, or a member with Manage
Threads: the cast is shared, and one member should not rewrite another's character.
Nothing here waits for the story's turn: a picture takes the cast as it is when it starts.
"""

from __future__ import annotations

import discord
from discord import app_commands
from discord.utils import escape_markdown

from bot.services import Services
from bot.story import Story, StoryOptionError
from bot.story.cast import CastMember
from bot.story.cast_options import MAX_CAST, clean_look, clean_name
from bot.story.cast_repository import CastRepository
from bot.story.requests import shorten
from cogs.common import is_nsfw
from cogs.story.actions import NOT_A_STORY, author_of
from cogs.story.thread import NO_PINGS

# Discord checks these lengths before the bot sees the command; the bot re-checks after
# cleaning and says what is allowed (as for lines: a little slack, one kind of message).
RAW_NAME_CHARS = 100
RAW_LOOK_CHARS = 600
LIST_CHARS = 1900  # one message (2000), with room for the heading


class StoryCast:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.settings = services.settings
        self.cast: CastRepository = services.teller.cast

    async def add(self, interaction: discord.Interaction, name: str, look: str) -> None:
        story = await self._story_here(interaction, "cast add")
        if story is None:
            return
        nsfw = is_nsfw(interaction.channel)
        try:
            name = clean_name(name, self.settings, nsfw_allowed=nsfw)
            look = clean_look(look, self.settings, nsfw_allowed=nsfw)
        except StoryOptionError as exc:
            await _private(interaction, f"⚠️ {exc}")
            return
        existing = await self.cast.get(story.id, name)
        if existing is None and len(await self.cast.of_story(story.id)) >= MAX_CAST:
            await _private(interaction, f"⚠️ This story's cast is full ({MAX_CAST} "
                           "characters); `/story cast remove` one first.")
            return
        if existing is not None and not _may_change(interaction, story, existing):
            await _private(interaction, _not_yours(existing, story, "change"))
            return
        member = await self.cast.put(story.id, name, look, author_of(interaction.user))
        shown = f"**{escape_markdown(member.name)}**"
        what = (f"joins the cast, added by {escape_markdown(interaction.user.display_name)}"
                if existing is None else "has a new look")
        await _public(interaction, f"🎭 {shown} {what}: {escape_markdown(member.look)}\n-# "
                      f"Lines that name {escape_markdown(member.name)} show this look from "
                      "now on.")

    async def remove(self, interaction: discord.Interaction, name: str) -> None:
        story = await self._story_here(interaction, "cast remove")
        if story is None:
            return
        member = await self.cast.get(story.id, name)
        if member is None:
            await _private(interaction, "⚠️ This story has no character of that name; "
                           "`/story cast list` shows its cast.")
            return
        if not _may_change(interaction, story, member):
            await _private(interaction, _not_yours(member, story, "remove"))
            return
        await self.cast.remove(story.id, member.name)
        await _public(interaction, f"🎭 **{escape_markdown(member.name)}** leaves the cast; "
                      "lines that name them are drawn without their look from now on.")

    async def show(self, interaction: discord.Interaction) -> None:
        story = await self._story_here(interaction, "cast list", ended_too=True)
        if story is None:
            return
        await _private(interaction, cast_list(story, await self.cast.of_story(story.id)))

    async def name_choices(self, interaction: discord.Interaction,
                           current: str) -> list[app_commands.Choice[str]]:
        """The story's characters whose names contain what was typed so far."""
        story = await self.services.stories.by_thread(interaction.channel_id or 0)
        if story is None:
            return []
        typed = current.casefold().strip()
        names = [m.name for m in await self.cast.of_story(story.id)
                 if typed in m.name.casefold()]
        return [app_commands.Choice(name=n, value=n) for n in names[:25]]

    async def _story_here(self, interaction: discord.Interaction, command: str, *,
                          ended_too: bool = False) -> Story | None:
        story = None
        if isinstance(interaction.channel, discord.Thread):
            story = await self.services.stories.by_thread(interaction.channel.id)
        if story is None:
            await _private(interaction, f"⚠️ {NOT_A_STORY.format(command=command)}")
            return None
        if not story.open and not ended_too:
            await _private(interaction, f"⚠️ “{story.title}” has ended; its cast can no "
                           "longer change.")
            return None
        return story


def cast_list(story: Story, cast: list[CastMember]) -> str:
    """The /story cast list answer: every character, looks shortened to fit one message."""
    if not cast:
        return (f"🎭 “{story.title}” has no cast yet. `/story cast add name look` adds a "
                "character; lines that name them show that look.")
    lines = [f"🎭 The cast of “{story.title}”:"]
    room = max(40, LIST_CHARS // len(cast) - 70)  # 70: the name, byline and marks
    for member in cast:
        lines.append(f"- **{escape_markdown(member.name)}**: "
                     f"{escape_markdown(shorten(member.look, room))} "
                     f"*(added by {escape_markdown(member.added_by.name)})*")
    return "\n".join(lines)


def _may_change(interaction: discord.Interaction, story: Story, member: CastMember) -> bool:
    if interaction.user.id in (member.added_by.id, story.author.id):
        return True
    permissions = getattr(interaction, "permissions", None)
    return bool(permissions and permissions.manage_threads)


def _not_yours(member: CastMember, story: Story, verb: str) -> str:
    return (f"⚠️ **{escape_markdown(member.name)}** was added by "
            f"{escape_markdown(member.added_by.name)}; only they, "
            f"{escape_markdown(story.author.name)} (who started the story) or members with "
            f"Manage Threads can {verb} this character.")


async def _private(interaction: discord.Interaction, text: str) -> None:
    await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_PINGS)


async def _public(interaction: discord.Interaction, text: str) -> None:
    await interaction.response.send_message(text, allowed_mentions=NO_PINGS)
