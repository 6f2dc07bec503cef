"""A story told in a DM or group DM: the bot is not in the conversation (Discord refuses
its bot-token requests there, 403/50001), so every message of the story is the answer to
the interaction that asked for it. `Conversation` stands where a story's thread stands in
`cogs.story.thread`: a send is a followup of the asking interaction (the first one fills
in its "thinking…" reply), an edit or delete goes through the token that made the message.

The asking interaction's token is stored for its story, and each message's token for the
message, in SQLite (`bot.db.interaction_tokens`) before they are needed, so a restart
within Discord's 15 minutes can still deliver a line's picture and update older buttons.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import discord

from bot.db.interaction_tokens import InteractionToken, InteractionTokens
from cogs.delivery import DeliveryFailed
from cogs.imagine.via_interaction import token_webhook

log = logging.getLogger(__name__)

GONE = ("nothing can reach this conversation now: the interaction that asked for it has "
        "expired (Discord allows 15 minutes)")


def story_key(story_id: int) -> str:
    return f"story:{story_id}"


def message_key(message_id: int) -> str:
    return f"story-message:{message_id}"


@dataclass
class Answer:
    """The interaction one story operation answers through (its token, its webhook) and
    the messages that token reaches (the clicked message, the followups it made)."""

    token: InteractionToken
    webhook: discord.Webhook
    mine: set[int] = field(default_factory=set)


def answer_of(client: discord.Client, token: InteractionToken,
              message_id: int | None = None) -> Answer:
    return Answer(token, token_webhook(client, token),
                  set() if message_id is None else {message_id})


class ConversationMessage:
    """A message of the conversation, edited or deleted through a token that reaches it."""

    def __init__(self, place: Conversation, message_id: int) -> None:
        self.place, self.id = place, message_id

    async def edit(self, **fields: Any) -> None:
        webhook = await self.place.webhook_for(self.id)
        if webhook is None:
            log.info("message %d: no token reaches it any more; left as it is", self.id)
            return
        fields.setdefault("allowed_mentions", discord.AllowedMentions.none())
        await webhook.edit_message(self.id, **fields)

    async def delete(self) -> None:
        webhook = await self.place.webhook_for(self.id)
        if webhook is not None:
            await webhook.delete_message(self.id)


class Conversation:
    """The conversation of a story, as far as the bot can act in it (see the module)."""

    def __init__(self, client: discord.Client, channel_id: int, answer: Answer | None,
                 tokens: InteractionTokens) -> None:
        self.client, self.id, self.answer, self.tokens = client, channel_id, answer, tokens

    async def send(self, content: str | None = None, *, nonce: str | None = None,
                   **fields: Any) -> discord.WebhookMessage:
        # No nonce through a webhook: a retry after a lost answer may post twice (the
        # thread's promise does not hold here).
        if self.answer is None or self.answer.token.left_s() <= 0:
            raise DeliveryFailed(GONE)
        fields.setdefault("allowed_mentions", discord.AllowedMentions.none())
        message = await self.answer.webhook.send(content or discord.utils.MISSING, wait=True,
                                                 **fields)
        self.answer.mine.add(message.id)
        await self.tokens.put(message_key(message.id), self.answer.token)
        return message

    def get_partial_message(self, message_id: int) -> ConversationMessage:
        return ConversationMessage(self, message_id)

    async def typing(self) -> None:
        """Nothing: "typing…" needs the bot token."""

    async def webhook_for(self, message_id: int) -> discord.Webhook | None:
        """The webhook of a token that reaches the message: the asking interaction's, or
        the stored one of the interaction that made it (while it lives). With neither,
        the asking one (Discord then says the message is unknown to it: 404), or None."""
        if self.answer is not None and message_id in self.answer.mine:
            return self.answer.webhook
        token = await self.tokens.get(message_key(message_id))
        if token is not None:
            return token_webhook(self.client, token)
        return None if self.answer is None else self.answer.webhook
