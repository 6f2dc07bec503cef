"""/story: threads where the story model and members write lines, every line illustrated;
in a DM or group DM, the conversation itself."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import GreenheartBot
from bot.prompts import suggest_styles
from bot.story import MAX_LINE_CHARS, MAX_TITLE_CHARS
from bot.story.cast_options import MAX_LOOK_CHARS, MAX_NAME_CHARS
from cogs.story.actions import StoryActions
from cogs.story.branch_view import BRANCH_ITEMS
from cogs.story.buttons import ACTIONS, ITEMS
from cogs.story.cast import RAW_LOOK_CHARS, RAW_NAME_CHARS, StoryCast
from cogs.story.choice_view import CHOICE_ITEMS
from cogs.story.publish import StoryPublisher

# Discord checks these lengths before the bot sees the command; the bot re-checks after
# cleaning (and says what is allowed), so a little slack avoids two different messages.
RAW_LINE_CHARS = 2000


class StoryCog(commands.Cog, name="Story"):
    # In servers a story is a thread; in DMs and group DMs (the bot is not in them) it is
    # told in the conversation, through the interactions alone (cogs/story/conversation.py).
    story = app_commands.Group(
        name="story", description="Write an illustrated story together",
        allowed_contexts=app_commands.AppCommandContext(guild=True, dm_channel=True,
                                                        private_channel=True),
        allowed_installs=app_commands.AppInstallationType(guild=True, user=True))
    # Discord allows one level of groups: /story cast add · remove · list.
    cast = app_commands.Group(name="cast", description="The story's characters: lines that "
                              "name one show their look", parent=story)

    def __init__(self, bot: GreenheartBot, actions: StoryActions) -> None:
        self.bot = bot
        self.actions = actions
        self.publisher = StoryPublisher(bot.services)
        self.casting = StoryCast(bot.services)

    async def cog_load(self) -> None:
        # Runs before the gateway connects: turns for unfinished work are taken before any
        # new request can arrive, so lines keep their order across a restart.
        self.actions.run_plan(await self.actions.plan_resume())

    @story.command(name="start", description="Open a thread with a first line; the model and "
                   "everyone continue it")
    @app_commands.describe(
        seed='The first line, e.g. "The sky"',
        style="Style preset of the pictures (default: the server's story style)",
        title="Title of the story and its thread (default: the first words)",
    )
    async def start(self, interaction: discord.Interaction,
                    seed: app_commands.Range[str, 1, RAW_LINE_CHARS],
                    style: str | None = None,
                    title: app_commands.Range[str, 1, MAX_TITLE_CHARS] | None = None) -> None:
        await self.actions.start(interaction, seed, style, title)

    @start.autocomplete("style")
    async def style_autocomplete(self, interaction: discord.Interaction,
                                 current: str) -> list[app_commands.Choice[str]]:
        names = suggest_styles(self.bot.services.settings.image.styles, current)
        return [app_commands.Choice(name=n[:100], value=n[:100]) for n in names]

    @story.command(name="add", description="Add your own line to this thread's story")
    @app_commands.describe(text=f"Your line (up to {MAX_LINE_CHARS} characters)")
    async def add(self, interaction: discord.Interaction,
                  text: app_commands.Range[str, 1, RAW_LINE_CHARS]) -> None:
        await self.actions.add(interaction, text)

    @story.command(name="end", description="Close this thread's story and post it as a web "
                   "page and Markdown")
    async def end(self, interaction: discord.Interaction) -> None:
        await self.actions.end(interaction)

    @story.command(name="export", description="Post this thread's story (so far, or again) as a "
                   "web page and Markdown")
    async def export(self, interaction: discord.Interaction) -> None:
        await self.actions.export(interaction)

    @story.command(name="branches", description="This thread's story's branches (⏪ Rewind "
                   "makes them); switch between them")
    async def branches(self, interaction: discord.Interaction) -> None:
        await self.actions.branches(interaction)

    @story.command(name="list", description="This server's stories, with links")
    async def list_stories(self, interaction: discord.Interaction) -> None:
        await self.actions.list_stories(interaction)

    @story.command(name="publish", description="Moderators: write this server's finished "
                   "stories as a blog (pages, pictures, a feed)")
    async def publish(self, interaction: discord.Interaction) -> None:
        await self.publisher.publish(interaction)

    @cast.command(name="add", description="Add a character to this thread's story, or give "
                  "one a new look")
    @app_commands.describe(
        name=f'As lines write it, e.g. "Mira" (up to {MAX_NAME_CHARS} characters)',
        look=f'How they look, e.g. "a tall woman with red hair" (up to {MAX_LOOK_CHARS})',
    )
    async def cast_add(self, interaction: discord.Interaction,
                       name: app_commands.Range[str, 1, RAW_NAME_CHARS],
                       look: app_commands.Range[str, 1, RAW_LOOK_CHARS]) -> None:
        await self.casting.add(interaction, name, look)

    @cast.command(name="remove", description="Take a character out of this thread's story")
    @app_commands.describe(name="The character's name")
    async def cast_remove(self, interaction: discord.Interaction,
                          name: app_commands.Range[str, 1, RAW_NAME_CHARS]) -> None:
        await self.casting.remove(interaction, name)

    @cast.command(name="list", description="This thread's story's characters and their looks")
    async def cast_list(self, interaction: discord.Interaction) -> None:
        await self.casting.show(interaction)

    @cast_add.autocomplete("name")
    @cast_remove.autocomplete("name")
    async def cast_name_autocomplete(self, interaction: discord.Interaction,
                                     current: str) -> list[app_commands.Choice[str]]:
        return await self.casting.name_choices(interaction, current)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        await self.actions.on_message(message)


async def setup(bot: GreenheartBot) -> None:
    actions = StoryActions(bot, bot.services)
    bot.provide(ACTIONS, actions)
    bot.add_dynamic_items(*ITEMS, *CHOICE_ITEMS, *BRANCH_ITEMS)
    await bot.add_cog(StoryCog(bot, actions))
