"""A seeded world in the Discord double, and a discord.py client connected to it.

- :func:`seed` / :func:`seeded_world`: one guild with two channels and three members.
- :func:`start_seeded_double`: a started, seeded double (tests/conftest.py makes fixtures
  of it; the benches call it directly).
- :func:`connect_client`: run a discord.py client against a double until the block ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import discord

from .models import Channel, Guild, Perm, Role, User
from .server import DiscordDouble, point_discord_py_at

GUILD_NAME = "Greenheart Test"

# Fixed ids (snowflakes dated late 2024) so logs and configs of seeded tests read alike.
BOT_ID = 1300000000000000010  # also the application id
GUILD_ID = 1300000000000000100  # also the @everyone role id
STUDIO_ID = 1300000000000000200
NSFW_ART_ID = 1300000000000000201
ALICE_ID = 1300000000000000300
BOB_ID = 1300000000000000301
MOD_ID = 1300000000000000302
MOD_ROLE_ID = 1300000000000000400


@dataclass(frozen=True)
class SeededWorld:
    """What :func:`seed` creates (with the fixed ids above; the owner and roles other
    than Moderator get fresh ones)."""

    guild: Guild
    studio: Channel  # a normal text channel
    nsfw_art: Channel  # an age-restricted text channel
    alice: User  # plain member
    bob: User  # plain member
    mod: User  # member with the "Moderator" role (MANAGE_MESSAGES)
    mod_role: Role
    bot: User  # the bot's own user (also the application id)


def seed(double: DiscordDouble) -> SeededWorld:
    """One guild "Greenheart Test" with #studio and #nsfw-art (NSFW), members alice and
    bob, mod (Moderator role with MANAGE_MESSAGES) and the bot."""
    guild = double.add_guild(GUILD_NAME, id=GUILD_ID)
    studio = double.add_text_channel(
        guild.id, "studio", topic="Make pictures together", id=STUDIO_ID
    )
    nsfw_art = double.add_text_channel(guild.id, "nsfw-art", nsfw=True, id=NSFW_ART_ID)
    alice = double.add_user("alice", id=ALICE_ID)
    bob = double.add_user("bob", id=BOB_ID)
    mod = double.add_user("mod", id=MOD_ID)
    mod_role = double.add_role(
        guild.id, "Moderator", Perm.MANAGE_MESSAGES | Perm.MANAGE_THREADS, id=MOD_ROLE_ID
    )
    double.add_member(guild.id, alice.id)
    double.add_member(guild.id, bob.id)
    double.add_member(guild.id, mod.id, roles=[mod_role.id])
    return SeededWorld(guild, studio, nsfw_art, alice, bob, mod, mod_role, double.bot_user)


def seeded_world(double: DiscordDouble) -> SeededWorld:
    """The :class:`SeededWorld` of a double that :func:`seed` populated."""
    guild = double.guild_named(GUILD_NAME)
    return SeededWorld(
        guild=guild,
        studio=double.channel_named(guild.id, "studio"),
        nsfw_art=double.channel_named(guild.id, "nsfw-art"),
        alice=double.user_named("alice"),
        bob=double.user_named("bob"),
        mod=double.user_named("mod"),
        mod_role=next(r for r in guild.roles.values() if r.name == "Moderator"),
        bot=double.bot_user,
    )


@contextlib.asynccontextmanager
async def connect_client(
    double: DiscordDouble, client: discord.Client, *, ready_timeout: float = 10.0
) -> AsyncIterator[discord.Client]:
    """Point discord.py at ``double``, start ``client`` and wait for ``on_ready``; on
    exit close the client and restore discord.py's URLs. Create the client with a
    small ``guild_ready_timeout`` (e.g. 0.1): discord.py waits that long after the last
    GUILD_CREATE before it is ready."""
    restore = point_discord_py_at(double)
    task = asyncio.create_task(client.start(double.token), name="discord-client")
    try:
        ready = asyncio.create_task(client.wait_until_ready())
        done, _ = await asyncio.wait(
            {ready, task}, timeout=ready_timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if ready not in done:
            ready.cancel()
            if task in done:
                task.result()  # raises the client's startup error
            raise TimeoutError(f"client not ready after {ready_timeout}s")
        yield client
    finally:
        try:
            await client.close()
            await asyncio.wait_for(task, 5)  # surfaces errors the client task died of
        finally:
            restore()


MakeDouble = Callable[..., Awaitable[DiscordDouble]]


async def start_seeded_double(*, seeded: bool = True, **kwargs: Any) -> DiscordDouble:
    """A started double (kwargs go to :class:`DiscordDouble`), seeded with :func:`seed`
    unless `seeded` is False; the caller stops it."""
    kwargs.setdefault("bot_id", BOT_ID)
    double = DiscordDouble(**kwargs)
    if seeded:
        seed(double)
    await double.start()
    return double
