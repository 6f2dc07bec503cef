"""Small Discord facts every cog needs: the bot behind an interaction, a channel's NSFW flag
and an interaction's upload limit."""

from __future__ import annotations

from typing import Any

import discord

from bot.client import GreenheartBot
from bot.images.upload import DISCORD_UPLOAD_LIMIT


def bot_of(interaction: discord.Interaction[Any]) -> GreenheartBot:
    """The bot an interaction came to (persistent items get nothing else)."""
    client = interaction.client
    if not isinstance(client, GreenheartBot):
        raise TypeError(f"interactions reach a GreenheartBot, not a {type(client).__name__}")
    return client


def is_nsfw(channel: Any) -> bool:
    """Whether a channel (a thread: its parent) is marked NSFW; False when unknown."""
    if isinstance(channel, discord.Thread):
        channel = channel.parent
    checker = getattr(channel, "is_nsfw", None)
    return bool(checker()) if callable(checker) else False


def upload_limit(interaction: discord.Interaction) -> int:
    """The most bytes one upload may have here: the guild's limit (Discord sends it with
    every interaction), never above the 10 MiB every channel allows."""
    limit = getattr(interaction, "filesize_limit", None) or DISCORD_UPLOAD_LIMIT
    return min(int(limit), DISCORD_UPLOAD_LIMIT)
