"""The discord.py Bot subclass: loads the cogs, syncs commands when they changed."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar, cast

import discord
import yarl
from discord import app_commands
from discord.ext import commands

from bot.config import DiscordSettings
from bot.services import Services

log = logging.getLogger(__name__)
T = TypeVar("T")

# Loaded by name so that `bot` never imports `cogs` (the dependency points the other way).
EXTENSIONS: tuple[str, ...] = ("cogs.imagine", "cogs.story", "cogs.admin", "cogs.stats",
                              "cogs.settings", "cogs.describe", "cogs.top",
                              "cogs.telephone")
COMMANDS_HASH_KEY = "commands_hash"


def point_at(settings: DiscordSettings) -> Callable[[], None]:
    """Send discord.py's REST and gateway traffic where the config says (proxy or double);
    returns what puts the previous addresses back. (discord.py keeps them on classes.)"""
    old_base = discord.http.Route.BASE
    old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = settings.api_base.rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.gateway_url)

    def restore() -> None:
        discord.http.Route.BASE = old_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway

    return restore


class PartKey(Generic[T]):
    """A typed name for something an extension provides to the bot (as aiohttp's AppKey)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"PartKey({self.name!r})"


SOMETHING_WENT_WRONG = ("⚠️ Something went wrong on my side, so this did not work. It has "
                        "been logged; please try again in a moment.")


class GuardedTree(app_commands.CommandTree["GreenheartBot"]):
    """Refuses interactions outside the configured guild and channel allow-lists, and hands
    a command's unexpected error to the bot's one error report."""

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        reason = self.client.refusal(interaction)
        if reason is None:
            return True
        await interaction.response.send_message(reason, ephemeral=True)
        return False

    async def on_error(self, interaction: discord.Interaction,
                       error: app_commands.AppCommandError) -> None:
        original = error.original if isinstance(error, app_commands.CommandInvokeError) \
            else error
        await self.client.report_interaction_error(interaction, original)


class GreenheartBot(commands.Bot):
    def __init__(
        self, services: Services, extensions: Sequence[str] = EXTENSIONS, **options: Any
    ) -> None:
        settings = services.settings.discord
        intents = discord.Intents.default()
        intents.message_content = settings.message_content
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            tree_cls=GuardedTree,
            # Echoed prompts must never ping anyone.
            allowed_mentions=discord.AllowedMentions.none(),
            help_command=None,
            **options,
        )
        self.services = services
        self.extension_names = tuple(extensions)
        self._parts: dict[PartKey[Any], object] = {}
        # Posts of finished work in flight: a clean stop lets them land before it
        # disconnects (the presenters add their delivery tasks here).
        self.deliveries: set[asyncio.Task[Any]] = set()

    def delivering(self, task: asyncio.Task[Any]) -> None:
        """Count `task` (posting a finished job's result) until it ends."""
        self.deliveries.add(task)
        task.add_done_callback(self.deliveries.discard)

    async def finish_deliveries(self, within_s: float) -> bool:
        """Wait up to `within_s` for the deliveries in flight; True when none is left."""
        if self.deliveries:
            await asyncio.wait(set(self.deliveries), timeout=within_s)
        return not self.deliveries

    def provide(self, key: PartKey[T], part: T) -> None:
        """Make a cog's long-lived part (the presenter that follows jobs, a story's turns)
        reachable by `key`. discord.py builds a persistent item from its custom_id with only
        the interaction at hand: `interaction.client.part(KEY)` is how the item finds what it
        works with, typed, without closures or looking cogs up by name."""
        self._parts[key] = part

    def part(self, key: PartKey[T]) -> T:
        """What a loaded extension provided under `key`."""
        try:
            return cast(T, self._parts[key])
        except KeyError:
            raise LookupError(f"no extension provided {key.name!r}") from None

    async def setup_hook(self) -> None:
        for name in self.extension_names:
            await self.load_extension(name)
        if self.services.settings.discord.sync_commands:
            await self.sync_commands_if_changed()

    async def sync_commands_if_changed(self) -> bool:
        """PUT the command list only when it differs from the last sync (a global sync is
        rate limited and takes a while to show up, so don't do it on every start)."""
        assert self.application_id is not None
        payload = [cmd.to_dict(self.tree) for cmd in self.tree.get_commands()]
        digest = hashlib.sha256(
            json.dumps([self.application_id, payload], sort_keys=True).encode()
        ).hexdigest()
        if await self.services.kv.get(COMMANDS_HASH_KEY) == digest:
            log.info("slash commands unchanged; not syncing")
            return False
        synced = await self.tree.sync()
        await self.services.kv.set(COMMANDS_HASH_KEY, digest)
        log.info("synced %d slash commands", len(synced))
        return True

    async def report_interaction_error(self, interaction: discord.Interaction[Any],
                                       error: BaseException) -> None:
        """The one place an unexpected error in a command, button or menu ends: logged
        once, with what the member did, and the member told, so that nobody is left
        looking at "thinking…"."""
        data: dict[str, Any] = dict(interaction.data or {})
        what = data.get("name") or data.get("custom_id") or interaction.type.name
        log.error("unexpected error in %r for user %s", what, interaction.user.id,
                  exc_info=error)
        try:
            if interaction.response.is_done():
                # After a defer the first followup replaces the "thinking…" message.
                await interaction.followup.send(SOMETHING_WENT_WRONG, ephemeral=True)
            else:
                await interaction.response.send_message(SOMETHING_WENT_WRONG, ephemeral=True)
        except discord.HTTPException as exc:
            log.warning("could not tell the member about the error: %s", exc)

    def refusal(self, interaction: discord.Interaction) -> str | None:
        """Why this bot won't serve an interaction here, or None when it will."""
        settings = self.services.settings.discord
        if interaction.guild_id is None:
            # A DM or group DM: Discord offers only the commands allowed there (their
            # allowed_contexts), and they answer through the interaction alone. The
            # allow-lists name servers and their channels, so they don't apply here.
            return None
        if settings.guilds and interaction.guild_id not in settings.guilds:
            return "Greenheart is not enabled in this server."
        channel = interaction.channel
        if settings.channels and channel is not None:
            ids = {channel.id, getattr(channel, "parent_id", None)}
            if not ids & set(settings.channels):
                return "Greenheart is not enabled in this channel; try one of its channels."
        return None

