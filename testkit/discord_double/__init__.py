"""A wire-level local Discord API double for end-to-end tests (see ``server.py``).

Quick start (the pytest fixtures are in tests/conftest.py; helpers in ``seeding.py``)::

    async def test_imagine(discord_double, discord_world):
        w = discord_world
        async with connect_client(discord_double, make_my_bot(guild_ready_timeout=0.1)) as bot:
            await bot.tree.sync()
            rec = await discord_double.invoke_slash(w.guild.id, w.studio.id, w.alice.id,
                                                    "imagine", {"prompt": "a fox"})
            assert (await rec.wait_ack()).latency < 3
            result = await discord_double.wait_for_message(lambda m: bool(m.attachments))
        discord_double.assert_clean()

Files for attachment options: ``discord_double.upload_attachment(name, data)`` (served
at its URL by the double). Modals: the bot's type-9 answer is ``rec.modal`` (a
:class:`ModalRecord`); ``await discord_double.submit_modal(guild_id, channel_id,
user_id, rec, {"field": "text"})`` submits it.
"""

from .gateway import (
    GUILD_MEMBERS,
    GUILD_MESSAGES,
    GUILD_PRESENCES,
    GUILDS,
    MESSAGE_CONTENT,
    Heartbeat,
)
from .models import (
    ALL_PERMISSIONS,
    DEFAULT_BOT_PERMISSIONS,
    DEFAULT_EVERYONE_PERMISSIONS,
    Channel,
    ChannelType,
    Guild,
    Member,
    Message,
    MessageFlag,
    Overwrite,
    Perm,
    Role,
    StoredAttachment,
    User,
)
from .openapi import (
    SHARED_SPEC_FILE,
    SPEC_ENV,
    OpenApiSpec,
    SpecViolation,
    load_spec,
    spec_from_env,
)
from .recording import (
    Ack,
    InteractionRecord,
    ModalField,
    ModalRecord,
    RateLimitRule,
    RecordedRequest,
    UploadedFile,
)
from .server import CommandSync, CommandUnavailable, DiscordDouble, point_discord_py_at

__all__ = [
    "ALL_PERMISSIONS",
    "DEFAULT_BOT_PERMISSIONS",
    "DEFAULT_EVERYONE_PERMISSIONS",
    "GUILDS",
    "GUILD_MEMBERS",
    "GUILD_MESSAGES",
    "GUILD_PRESENCES",
    "MESSAGE_CONTENT",
    "SHARED_SPEC_FILE",
    "SPEC_ENV",
    "Ack",
    "Channel",
    "ChannelType",
    "CommandSync",
    "CommandUnavailable",
    "DiscordDouble",
    "Guild",
    "Heartbeat",
    "InteractionRecord",
    "Member",
    "Message",
    "MessageFlag",
    "ModalField",
    "ModalRecord",
    "OpenApiSpec",
    "Overwrite",
    "Perm",
    "RateLimitRule",
    "RecordedRequest",
    "Role",
    "SpecViolation",
    "StoredAttachment",
    "UploadedFile",
    "User",
    "load_spec",
    "point_discord_py_at",
    "spec_from_env",
]
