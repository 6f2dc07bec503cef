"""/queue and /cancel: what is waiting and running, and stopping your own jobs."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import GreenheartBot
from bot.executor.executor import QueueEntry
from bot.executor.jobs import ImageParams, JobState, TextParams

MAX_LISTED = 20


def summary(entry: QueueEntry, viewer: int) -> str:
    job = entry.job
    params = job.params
    if isinstance(params, ImageParams):
        text = params.subject
        what = f"{params.mode.value} ×{params.count}"
    else:
        assert isinstance(params, TextParams)
        text = params.seed_line
        what = "story line"
    text = text if len(text) <= 60 else text[:59] + "…"
    place = "▶ running" if entry.state is JobState.RUNNING else f"#{entry.position}"
    mine = " **(you)**" if job.user_id == viewer else ""
    return f"{place} · {what} · “{discord.utils.escape_markdown(text)}” · <@{job.user_id}>{mine}"


class AdminCog(commands.Cog, name="Queue"):
    def __init__(self, bot: GreenheartBot) -> None:
        self.bot = bot
        self.executor = bot.services.executor

    @app_commands.command(name="queue", description="Show the jobs waiting and running")
    @app_commands.guild_only()
    async def queue(self, interaction: discord.Interaction) -> None:
        entries = self.executor.snapshot()
        if not entries:
            await interaction.response.send_message("The queue is empty. 💚", ephemeral=True)
            return
        lines = [summary(e, interaction.user.id) for e in entries[:MAX_LISTED]]
        if len(entries) > MAX_LISTED:
            lines.append(f"… and {len(entries) - MAX_LISTED} more")
        yours = sum(1 for e in entries if e.job.user_id == interaction.user.id)
        header = f"**{len(entries)} job(s)**, {yours} of them yours:"
        await interaction.response.send_message(
            "\n".join([header, *lines])[:2000], ephemeral=True,
            allowed_mentions=discord.AllowedMentions.none())

    @app_commands.command(name="cancel", description="Cancel your queued or running jobs")
    @app_commands.describe(job="Which job (default: all of yours); moderators may pick any")
    @app_commands.guild_only()
    async def cancel(self, interaction: discord.Interaction, job: str | None = None) -> None:
        moderator = bool(interaction.permissions.manage_messages)
        entries = self.executor.snapshot()
        if job:
            targets = [e for e in entries if e.job.id == job.strip()]
            if not targets:
                await interaction.response.send_message(
                    f"job = {job!r}: no queued or running job has that id; see /queue.",
                    ephemeral=True)
                return
            if targets[0].job.user_id != interaction.user.id and not moderator:
                await interaction.response.send_message(
                    "That job isn't yours; only moderators (Manage Messages) can cancel "
                    "other people's jobs.", ephemeral=True)
                return
        else:
            targets = [e for e in entries if e.job.user_id == interaction.user.id]
        cancelled = sum(self.executor.cancel(e.job.id, by_user=interaction.user.id)
                        for e in targets)
        text = (f"Cancelled {cancelled} job(s)." if cancelled
                else "You have no queued or running jobs.")
        await interaction.response.send_message(text, ephemeral=True)

    @cancel.autocomplete("job")
    async def job_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        moderator = bool(interaction.permissions.manage_messages)
        choices = []
        for entry in self.executor.snapshot():
            if entry.job.user_id != interaction.user.id and not moderator:
                continue
            label = summary(entry, interaction.user.id)
            label = discord.utils.remove_markdown(label).replace("<@", "@")
            if current.lower() in label.lower() or current in entry.job.id:
                choices.append(app_commands.Choice(name=label[:100], value=entry.job.id))
        return choices[:25]


async def setup(bot: GreenheartBot) -> None:
    await bot.add_cog(AdminCog(bot))
