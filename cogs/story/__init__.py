"""/story: threads where the story model and members write lines, every line illustrated."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import GreenheartBot
from bot.prompts import suggest_styles
from bot.story import MAX_LINE_CHARS, MAX_TITLE_CHARS
from cogs.story.actions import StoryActions
from cogs.story.buttons import ACTIONS, ITEMS
from cogs.story.publish import StoryPublisher

# Discord checks these lengths before the bot sees the command; the bot re-checks after
# cleaning (and says what is allowed), so a little slack avoids two different messages.
RAW_LINE_CHARS = 2000


class StoryCog(commands.Cog, name="Story"):
    story = app_commands.Group(name="story", description="Write an illustrated story together",
                               guild_only=True)

    def __init__(self, bot: GreenheartBot, actions: StoryActions) -> None:
        self.bot = bot
        self.actions = actions
        self.publisher = StoryPublisher(bot.services)

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

    @story.command(name="list", description="This server's stories, with links")
    async def list_stories(self, interaction: discord.Interaction) -> None:
        await self.actions.list_stories(interaction)

    @story.command(name="publish", description="Moderators: write this server's finished "
                   "stories as a blog (pages, pictures, a feed)")
    async def publish(self, interaction: discord.Interaction) -> None:
        await self.publisher.publish(interaction)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        await self.actions.on_message(message)


async def setup(bot: GreenheartBot) -> None:
    actions = StoryActions(bot, bot.services)
    bot.provide(ACTIONS, actions)
    bot.add_dynamic_items(*ITEMS)
    await bot.add_cog(StoryCog(bot, actions))
