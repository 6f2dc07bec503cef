"""/stats: what running the studio costs, in GPU time, over the last day, week and month;
who used it most and on which models. Only this server's jobs are counted."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import GreenheartBot
from bot.db.usage import Usage, UsageQueries

TITLE = "What running the studio costs"
TOP = 5  # members and models listed per period
FIELD_CHARS = 1024  # Discord's limit on an embed field's value
NOTHING_YET = ("Nothing has been rendered in this server in the last 30 days, so running "
               "the studio has cost nothing yet. 💚")
COLOUR = discord.Colour.green()
FOOTER = "GPU time is each job's share of the batch it rendered in."


def duration(seconds: float) -> str:
    """GPU time as people say it: "0.4 s", "42 s", "3 min 05 s", "1 h 02 min"."""
    if seconds < 0.95:
        return f"{max(seconds, 0.0):.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        minutes, secs = divmod(whole, 60)
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min"


def jobs_text(count: int) -> str:
    return "1 job" if count == 1 else f"{count} jobs"


def period_text(usage: Usage, viewer: int) -> str:
    """One period's field: the total, the top members (mentioned; nobody is pinged) and
    the models, each with its GPU time."""
    if not usage.jobs:
        return "Nothing rendered."
    lines = [f"**{duration(usage.gpu_s)}** of GPU time · {jobs_text(usage.jobs)}"]
    for member in usage.members[:TOP]:
        you = " (you)" if member.user_id == viewer else ""
        lines.append(f"<@{member.user_id}>{you} · {duration(member.gpu_s)} · "
                     f"{jobs_text(member.jobs)}")
    if usage.member_count > len(usage.members[:TOP]):
        more = usage.member_count - len(usage.members[:TOP])
        lines.append(f"… and {more} more member{'s' if more > 1 else ''}")
    models = " · ".join(f"{discord.utils.escape_markdown(m.model)} {duration(m.gpu_s)}"
                        for m in usage.models[:TOP])
    lines.append(f"Models: {models}")
    text = "\n".join(lines)
    return text if len(text) <= FIELD_CHARS else text[:FIELD_CHARS - 1] + "…"


def stats_embed(periods: list[tuple[str, Usage]], viewer: int, keep_days: int) -> discord.Embed:
    embed = discord.Embed(title=TITLE, colour=COLOUR)
    for label, usage in periods:
        embed.add_field(name=label, value=period_text(usage, viewer), inline=False)
    footer = FOOTER
    if 0 < keep_days < 30:  # older records are swept (storage.keep_days)
        footer += f" Job records are kept {keep_days} days, so older work is not counted."
    embed.set_footer(text=footer)
    return embed


class StatsCog(commands.Cog, name="Stats"):
    def __init__(self, bot: GreenheartBot) -> None:
        self.bot = bot
        self.usage = UsageQueries(bot.services.db)
        self.keep_days = bot.services.settings.storage.keep_days

    @app_commands.command(name="stats", description="What running the studio costs: GPU "
                                                    "time by member and model")
    # A server's numbers: in servers only (also one that only a member installed it to).
    @app_commands.allowed_installs(guilds=True, users=True)
    @app_commands.allowed_contexts(guilds=True)
    async def stats(self, interaction: discord.Interaction) -> None:
        # A handful of indexed queries (jobs_by_finish): quick enough to answer at once.
        periods = await self.usage.periods(guild_id=interaction.guild_id, top=TOP)
        if not any(usage.jobs for _, usage in periods):
            await interaction.response.send_message(NOTHING_YET, ephemeral=True)
            return
        await interaction.response.send_message(
            embed=stats_embed(periods, interaction.user.id, self.keep_days), ephemeral=True,
            allowed_mentions=discord.AllowedMentions.none())


async def setup(bot: GreenheartBot) -> None:
    await bot.add_cog(StatsCog(bot))
