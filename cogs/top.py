"""/top: the most-starred results (⭐, bot/db/stars.py) made this week, this month or ever,
of this server (outside a server: of this conversation), each linked to its message.

The answer is visible to the channel (a leaderboard is there to be shared), mentioning
nobody; an empty board is told only to whoever asked.
"""

from __future__ import annotations

import time
from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import GreenheartBot
from bot.db.retention import DAY_S
from bot.db.stars import StarRepository, TopResult

Period = Literal["week", "month", "all"]
# How far back each period reaches (None: ever), and how the title names it.
PERIODS: dict[str, tuple[float | None, str]] = {
    "week": (7 * DAY_S, "this week"),
    "month": (30 * DAY_S, "this month"),
    "all": (None, "of all time"),
}
SUBJECT_CHARS = 80
COLOUR = discord.Colour.gold()
FOOTER = "⭐ under a picture stars it (one star each); press it again to take yours back."


def nothing_yet(period: str) -> str:
    more = "" if period == "all" else " Try `/top period:all` for older ones."
    return (f"No starred pictures {PERIODS[period][1]} yet. Press ⭐ under a picture you "
            f"like to star it.{more}")


def jump_url(entry: TopResult) -> str:
    """The link Discord's "Copy Message Link" gives (`@me` outside servers)."""
    guild = entry.guild_id if entry.guild_id is not None else "@me"
    return f"https://discord.com/channels/{guild}/{entry.channel_id}/{entry.message_id}"


def entry_line(rank: int, entry: TopResult) -> str:
    subject = " ".join(entry.subject.split()) or "untitled"
    if len(subject) > SUBJECT_CHARS:
        subject = subject[:SUBJECT_CHARS - 1] + "…"
    # Brackets would end the link text early; the rest is escaped as Markdown.
    subject = discord.utils.escape_markdown(subject.replace("[", "(").replace("]", ")"))
    return (f"**{rank}.** [{subject}]({jump_url(entry)}) · ⭐ {entry.stars} · "
            f"by <@{entry.user_id}>")


def top_embed(entries: list[TopResult], period: str, *, keep_days: int,
              in_server: bool) -> discord.Embed:
    where = "in this server" if in_server else "here"
    embed = discord.Embed(title=f"⭐ Most-starred pictures {where}, {PERIODS[period][1]}",
                          description="\n".join(entry_line(rank, entry) for rank, entry
                                                in enumerate(entries, start=1)),
                          colour=COLOUR)
    footer = FOOTER
    back = PERIODS[period][0]
    if keep_days > 0 and (back is None or keep_days * DAY_S < back):
        footer += f" Pictures are kept {keep_days} days, so older ones are not ranked."
    embed.set_footer(text=footer)
    return embed


class TopCog(commands.Cog, name="Top"):
    def __init__(self, bot: GreenheartBot) -> None:
        self.bot = bot
        self.stars = StarRepository(bot.services.db)
        self.keep_days = bot.services.settings.storage.keep_days

    @app_commands.command(name="top", description="The most-starred pictures here: this "
                                                  "week, this month or of all time")
    @app_commands.describe(period="Pictures made this week (the default), this month, or ever")
    # Wherever /imagine works: in a DM or group DM the board is that conversation's.
    @app_commands.allowed_installs(guilds=True, users=True)
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    async def top(self, interaction: discord.Interaction, period: Period = "week") -> None:
        # One grouped query on the stars' index: quick enough to answer at once.
        back = PERIODS[period][0]
        since = None if back is None else time.time() - back
        entries = await self.stars.top(guild_id=interaction.guild_id,
                                       channel_id=interaction.channel_id, since=since)
        if not entries:
            await interaction.response.send_message(nothing_yet(period), ephemeral=True)
            return
        await interaction.response.send_message(
            embed=top_embed(entries, period, keep_days=self.keep_days,
                            in_server=interaction.guild_id is not None),
            allowed_mentions=discord.AllowedMentions.none())


async def setup(bot: GreenheartBot) -> None:
    await bot.add_cog(TopCog(bot))
