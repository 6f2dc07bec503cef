"""Private /imagine jobs (the `private` option, or the /settings default): the status and
the result only the member sees.

An ephemeral message can only be reached through the token of the interaction that made
it, which Discord keeps for 15 minutes; nothing of a private job is ever posted in the
channel with the bot token. So the status is the interaction's ephemeral reply, edited
through its token, and the result an ephemeral followup with its buttons (a click on one
is an interaction of its own, whose jobs answer privately the same way). When the token is
gone by the time the result is ready (a long queue, or a restart: tokens are not stored),
the result goes to the member by DM, with a note saying why.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import discord

from cogs.imagine import status

DM_NOTE = ("-# 🔒 Your private /imagine result. It was ready after Discord's 15 minutes "
           "for a private reply in the channel (or after the bot restarted), so it comes "
           "here.")


def token_alive(interaction: discord.Interaction[Any]) -> bool:
    """Whether the interaction's token can still reach its messages (with a margin)."""
    age = discord.utils.utcnow() - interaction.created_at
    return age < dt.timedelta(seconds=status.TOKEN_LIFETIME_S)


class PrivateReplies:
    """The interactions of private jobs, by job id, while they are followed."""

    def __init__(self, client: discord.Client) -> None:
        self.client = client
        self._by_job: dict[str, discord.Interaction[Any]] = {}

    def remember(self, job_id: str, interaction: discord.Interaction[Any]) -> None:
        self._by_job[job_id] = interaction

    def forget(self, job_id: str) -> None:
        self._by_job.pop(job_id, None)

    def live(self, job_id: str) -> discord.Interaction[Any] | None:
        interaction = self._by_job.get(job_id)
        return interaction if interaction is not None and token_alive(interaction) else None

    async def send(self, job_id: str, user_id: int, content: str,
                   fields: Callable[[], dict[str, Any]]) -> discord.Message:
        """An ephemeral followup while the job's token lives, else a DM. `fields` makes
        the rest of the message afresh for each try (a failed upload consumed its files)."""
        mentions = discord.AllowedMentions.none()
        interaction = self.live(job_id)
        if interaction is not None:
            try:
                return await interaction.followup.send(  # type: ignore[no-any-return]
                    content, ephemeral=True, wait=True, allowed_mentions=mentions,
                    **fields())
            except discord.HTTPException as exc:
                if exc.status not in (401, 404):
                    raise
                self.forget(job_id)  # the token died early: the DM is what is left
        user = self.client.get_user(user_id) or await self.client.fetch_user(user_id)
        return await user.send(f"{DM_NOTE}\n{content}", allowed_mentions=mentions,
                               **fields())
