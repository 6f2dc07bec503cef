"""/queue and /cancel: who renders, what is waiting and running, and stopping your own jobs.

Story operations that wait for their turn on a story (bot/story/pending.py) have no job in
the executor yet; they are listed after the executor's jobs and can be cancelled too."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import GreenheartBot
from bot.executor.executor import QueueEntry
from bot.executor.jobs import DescribeParams, ImageParams, JobState, TextParams
from bot.executor.workers import WorkerInfo, worker_line
from bot.story.pending import PendingOp

MAX_LISTED = 20
MAX_WORKERS = 10


def summary(entry: QueueEntry, viewer: int) -> str:
    job = entry.job
    params = job.params
    if isinstance(params, ImageParams):
        text = params.subject
        what = f"{params.mode.value} ×{params.count}"
    elif isinstance(params, DescribeParams):
        text, what = "a picture", f"describe ×{params.count}"
    else:
        assert isinstance(params, TextParams)
        text = params.seed_line
        what = "story line"
    place = "▶ running" if entry.state is JobState.RUNNING else f"#{entry.position}"
    return _row(place, what, text, job.user_id, viewer)


def waiting_summary(op: PendingOp, viewer: int) -> str:
    """A story operation waiting for its turn: "waiting · story line · “title” · @member"."""
    return _row("waiting", op.what, op.title, op.user_id, viewer)


def workers_section(workers: list[WorkerInfo]) -> list[str]:
    """Who renders, before the jobs: a member whose job waits sees why."""
    if not workers:
        return ["**GPU workers:** none is up; jobs wait until one starts.", ""]
    shown = [f"• {discord.utils.escape_markdown(worker_line(w))}" for w in workers[:MAX_WORKERS]]
    if len(workers) > MAX_WORKERS:
        shown.append(f"• … and {len(workers) - MAX_WORKERS} more")
    return [f"**GPU workers ({len(workers)}):**", *shown, ""]


def _row(place: str, what: str, text: str, user_id: int, viewer: int) -> str:
    text = text if len(text) <= 60 else text[:59] + "…"
    mine = " **(you)**" if user_id == viewer else ""
    return f"{place} · {what} · “{discord.utils.escape_markdown(text)}” · <@{user_id}>{mine}"


class AdminCog(commands.Cog, name="Queue"):
    def __init__(self, bot: GreenheartBot) -> None:
        self.bot = bot
        self.executor = bot.services.executor
        self.pending = bot.services.teller.pending

    def _rows(self, viewer: int) -> list[tuple[str, int, str]]:
        """(id, owner, row) for every job and waiting story operation, in the order they
        will run as far as it is known: the executor's, then those waiting for a turn."""
        rows = [(e.job.id, e.job.user_id, summary(e, viewer)) for e in self.executor.snapshot()]
        rows += [(op.id, op.user_id, waiting_summary(op, viewer))
                 for op in self.pending.waiting()]
        return rows

    @app_commands.command(name="queue",
                          description="Show the jobs waiting and running, and the GPU workers")
    @app_commands.allowed_installs(guilds=True, users=True)
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    async def queue(self, interaction: discord.Interaction) -> None:
        entries = self._rows(interaction.user.id)
        if entries:
            lines = [row for _, _, row in entries[:MAX_LISTED]]
            if len(entries) > MAX_LISTED:
                lines.append(f"… and {len(entries) - MAX_LISTED} more")
            yours = sum(1 for _, owner, _ in entries if owner == interaction.user.id)
            lines.insert(0, f"**{len(entries)} job(s)**, {yours} of them yours:")
        else:
            lines = ["The queue is empty. 💚"]
        await interaction.response.send_message(
            "\n".join([*workers_section(self.executor.workers()), *lines])[:2000],
            ephemeral=True, allowed_mentions=discord.AllowedMentions.none())

    @app_commands.command(name="cancel", description="Cancel your queued or running jobs")
    @app_commands.describe(job="Which job (default: all of yours); moderators may pick any")
    @app_commands.allowed_installs(guilds=True, users=True)
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    async def cancel(self, interaction: discord.Interaction, job: str | None = None) -> None:
        moderator = bool(interaction.permissions.manage_messages)
        entries = [(i, owner) for i, owner, _ in self._rows(interaction.user.id)]
        if job:
            targets = [(i, owner) for i, owner in entries if i == job.strip()]
            if not targets:
                await interaction.response.send_message(
                    f"job = {job!r}: no queued, running or waiting job has that id; see "
                    "/queue.", ephemeral=True)
                return
            if targets[0][1] != interaction.user.id and not moderator:
                await interaction.response.send_message(
                    "That job isn't yours; only moderators (Manage Messages) can cancel "
                    "other people's jobs.", ephemeral=True)
                return
        else:
            targets = [(i, owner) for i, owner in entries if owner == interaction.user.id]
        # Waiting story operations first: cancelling a running job lets the next one start.
        targets.sort(key=lambda target: self.pending.get(target[0]) is None)
        cancelled = sum(self.pending.cancel(i, by_user=interaction.user.id)
                        or self.executor.cancel(i, by_user=interaction.user.id)
                        for i, _ in targets)
        text = (f"Cancelled {cancelled} job(s)." if cancelled
                else "You have no queued or running jobs.")
        await interaction.response.send_message(text, ephemeral=True)

    @cancel.autocomplete("job")
    async def job_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        moderator = bool(interaction.permissions.manage_messages)
        choices = []
        for target, owner, row in self._rows(interaction.user.id):
            if owner != interaction.user.id and not moderator:
                continue
            label = discord.utils.remove_markdown(row).replace("<@", "@")
            if current.lower() in label.lower() or current in target:
                choices.append(app_commands.Choice(name=label[:100], value=target))
        return choices[:25]


async def setup(bot: GreenheartBot) -> None:
    await bot.add_cog(AdminCog(bot))
