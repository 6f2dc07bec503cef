"""Small Discord facts both cogs need: a channel's NSFW flag and an interaction's upload limit."""

from __future__ import annotations

from typing import Any

import discord

from bot.images import DISCORD_UPLOAD_LIMIT


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
