"""Jobs answered only through their interaction's token: asked in the bot's DM, in a DM
or group DM between people, or in a server that only the member installed the app to
(`authorizing_integration_owners` has no guild). The bot is not in those conversations:
Discord refuses its bot-token posts there (403, 50001), so the status is the
interaction's original response, progress edits it through the token, and the result is
its final edit (an edit, so a retry can never post it twice); a sweep's further pictures
are followups. A token lives 15 minutes: a job that could not be ready in time is refused
up front, one that runs late is given up with a message while the token still carries
one, and one found after a restart with its token expired is cancelled.

The tokens are kept in SQLite (`bot.db.interaction_tokens`) so that a restart within the
15 minutes still answers.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import discord

from bot.db.interaction_tokens import InteractionToken, InteractionTokens
from cogs.imagine.status import StatusMessage

LATE = ("This job would not be ready within Discord's 15 minutes for answering here, so "
        "it was cancelled and nothing more will come. Try again when the queue is shorter "
        "(/queue).")
EXPIRED = ("cancelled: its interaction token expired while the bot was down, so its "
           "result could not reach the conversation")


def answers_through_interaction(interaction: discord.Interaction[Any]) -> bool:
    """Whether the bot can reach this conversation only through the interaction: it is
    not installed to the guild the interaction came from (or there is no guild)."""
    return not interaction.is_guild_integration()


def token_of(interaction: discord.Interaction[Any], lifetime_s: float) -> InteractionToken:
    """The interaction's token and when Discord stops taking it."""
    expires = interaction.created_at + dt.timedelta(seconds=lifetime_s)
    return InteractionToken(interaction.token, expires.timestamp())


def too_late(estimate_s: float | None, token: InteractionToken, margin_s: float) -> str | None:
    """Why a job that would be finished in `estimate_s` cannot be answered through
    `token`, for the member; None when it fits (or no estimate exists yet)."""
    if estimate_s is None or estimate_s <= token.left_s() - margin_s:
        return None
    return (f"⏳ The queue is too long to answer here in time: this would be ready in about "
            f"{_duration(estimate_s)}, and Discord lets me answer a command in a DM, group "
            "DM or private reply for only 15 minutes. Nothing was queued; try again when "
            "the queue is shorter (/queue).")


def _duration(seconds: float) -> str:
    return f"{round(seconds)} s" if seconds < 90 else f"{round(seconds / 60)} min"


def token_webhook(client: discord.Client, token: InteractionToken) -> discord.Webhook:
    """The interaction's webhook (as `interaction.followup` is), also after a restart."""
    assert client.application_id is not None
    return discord.Webhook.from_state(
        {"id": client.application_id, "type": 3, "token": token.value},  # type: ignore[typeddict-item]
        state=client._connection)


class TokenStatus(StatusMessage):
    """A status message only its interaction's token reaches (the bot token never does);
    edits stop once the token has expired."""

    def __init__(self, message: discord.PartialMessage | discord.Message,
                 webhook: discord.Webhook, token: InteractionToken) -> None:
        super().__init__(message, None, private=True)
        self.webhook, self.token = webhook, token

    async def edit(self, **fields: Any) -> None:
        if self.token.left_s() <= 0:
            return  # Discord would refuse it (50027): nothing reaches the message now
        fields.setdefault("allowed_mentions", discord.AllowedMentions.none())
        await self.webhook.edit_message(self.id, **fields)

    async def replace(self, **fields: Any) -> discord.WebhookMessage:
        """The final edit: the status becomes the result."""
        fields.setdefault("allowed_mentions", discord.AllowedMentions.none())
        return await self.webhook.edit_message(self.id, **fields)


class InteractionAnswers:
    """The tokens of the jobs answered through them, by job id (SQLite, see above)."""

    def __init__(self, client: discord.Client, tokens: InteractionTokens, *,
                 lifetime_s: float, margin_s: float) -> None:
        self.client, self.tokens = client, tokens
        self.lifetime_s, self.margin_s = lifetime_s, margin_s

    def token(self, interaction: discord.Interaction[Any]) -> InteractionToken:
        return token_of(interaction, self.lifetime_s)

    def refusal(self, estimate_s: float | None,
                interaction: discord.Interaction[Any]) -> str | None:
        return too_late(estimate_s, self.token(interaction), self.margin_s)

    async def remember(self, job_id: str, token: InteractionToken) -> None:
        await self.tokens.put(job_id, token)

    async def stored(self, job_id: str) -> InteractionToken | None:
        """The job's token while Discord still takes it."""
        return await self.tokens.get(job_id)

    async def forget(self, job_id: str) -> None:
        await self.tokens.drop(job_id)

    def status(self, message: discord.PartialMessage | discord.Message,
               token: InteractionToken) -> TokenStatus:
        return TokenStatus(message, token_webhook(self.client, token), token)

    def status_by_id(self, channel_id: int, message_id: int,
                     token: InteractionToken) -> TokenStatus:
        channel = self.client.get_partial_messageable(channel_id)
        return self.status(channel.get_partial_message(message_id), token)

    def webhook(self, token: InteractionToken) -> discord.Webhook:
        return token_webhook(self.client, token)

    def give_up_in_s(self, token: InteractionToken) -> float:
        """Seconds until a job still unfinished must be given up (the margin left for
        saying so)."""
        return token.left_s() - self.margin_s
