"""The double's conversations outside guilds and its user-installed apps, as Discord has
them: group DMs the bot is not in (bot-token requests refused with 50001), interactions
from them with `context` 2, `user` instead of `member` and the user's install as the
authorizing owner, a guild that only a member installed the app to, and commands offered
only in their `contexts` and `integration_types`."""

from __future__ import annotations

import discord
import pytest
from discord import app_commands
from discord.ext import commands

from testkit.discord_double import CommandUnavailable, DiscordDouble
from testkit.discord_double.seeding import MakeDouble, connect_client, seeded_world


def make_bot() -> commands.Bot:
    bot = commands.Bot(command_prefix=commands.when_mentioned,
                       intents=discord.Intents.default(), guild_ready_timeout=0.1)
    seen: list[discord.Interaction] = []
    bot.seen = seen  # type: ignore[attr-defined]

    @app_commands.command(name="hello", description="Says hello anywhere")
    @app_commands.allowed_installs(guilds=True, users=True)
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    async def hello(interaction: discord.Interaction) -> None:
        seen.append(interaction)
        await interaction.response.send_message("hello")

    @app_commands.command(name="servers", description="Only in servers")
    @app_commands.guild_only()
    async def servers(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("here")

    bot.tree.add_command(hello)
    bot.tree.add_command(servers)
    return bot


async def test_a_group_dm_is_reached_only_through_interactions(
        make_discord_double: MakeDouble) -> None:
    double: DiscordDouble = await make_discord_double()
    w = seeded_world(double)
    gdm = double.add_group_dm(w.alice.id, [w.bob.id], name="friends")
    bot = make_bot()
    async with connect_client(double, bot):
        await bot.tree.sync()
        rec = await double.invoke_slash(0, gdm.id, w.bob.id, "hello")
        assert (await rec.wait_ack()).type == 4
        payload = rec.payload
        assert payload["context"] == 2 and "member" not in payload and "guild_id" not in payload
        assert payload["user"]["id"] == str(w.bob.id)
        assert payload["authorizing_integration_owners"] == {"1": str(w.bob.id)}
        interaction = bot.seen[-1]  # type: ignore[attr-defined]
        assert isinstance(interaction.channel, discord.GroupChannel)
        assert not interaction.is_guild_integration() and interaction.is_user_integration()
        reply = rec.original_message()
        assert reply is not None and reply.content == "hello" and reply.guild_id is None
        assert reply.interaction_metadata["authorizing_integration_owners"] == {
            "1": str(w.bob.id)}
        # Followups work through the token; the bot token gets Missing Access.
        await interaction.followup.send("and again")
        assert [m.content for m in double.channel_messages(gdm.id)] == ["hello", "and again"]
        with pytest.raises(discord.Forbidden) as refused:
            await bot.get_partial_messageable(gdm.id).send("as the bot")
        assert refused.value.code == 50001
        with pytest.raises(discord.Forbidden):
            await bot.fetch_channel(gdm.id)
        # A guild-only command is not offered there.
        with pytest.raises(CommandUnavailable, match="group DMs"):
            await double.invoke_slash(0, gdm.id, w.bob.id, "servers")
    assert double.spec_violations == []


async def test_the_bots_dm_carries_context_1(make_discord_double: MakeDouble) -> None:
    double = await make_discord_double()
    w = seeded_world(double)
    dm = double.world.open_dm(w.alice.id)
    bot = make_bot()
    async with connect_client(double, bot):
        await bot.tree.sync()
        rec = await double.invoke_slash(0, dm.id, w.alice.id, "hello")
        assert (await rec.wait_ack()).type == 4
        assert rec.payload["context"] == 1 and rec.payload["user"]["id"] == str(w.alice.id)
        assert isinstance(bot.seen[-1].channel, discord.DMChannel)  # type: ignore[attr-defined]


async def test_a_guild_without_the_bot_reaches_a_user_installed_app(
        make_discord_double: MakeDouble) -> None:
    double = await make_discord_double()
    w = seeded_world(double)
    other = double.add_guild("Elsewhere", with_bot=False)
    lounge = double.add_text_channel(other.id, "lounge")
    double.add_member(other.id, w.alice.id)
    bot = make_bot()
    async with connect_client(double, bot):
        assert bot.get_guild(other.id) is None  # never sent: the bot is not in it
        await bot.tree.sync()
        rec = await double.invoke_slash(other.id, lounge.id, w.alice.id, "hello")
        assert (await rec.wait_ack()).type == 4
        assert rec.payload["context"] == 0 and "member" in rec.payload
        assert rec.payload["authorizing_integration_owners"] == {"1": str(w.alice.id)}
        assert not bot.seen[-1].is_guild_integration()  # type: ignore[attr-defined]
        with pytest.raises(discord.Forbidden) as refused:
            await bot.get_partial_messageable(lounge.id).send("as the bot")
        assert refused.value.code == 50001
        # Installed to guilds only: not offered where only the user installed the app.
        with pytest.raises(CommandUnavailable, match="not installed"):
            await double.invoke_slash(other.id, lounge.id, w.alice.id, "servers")
        # ... and still offered in a guild that installed it.
        rec = await double.invoke_slash(w.guild.id, w.studio.id, w.alice.id, "servers")
        assert rec.payload["authorizing_integration_owners"] == {"0": str(w.guild.id)}
