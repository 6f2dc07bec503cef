"""The double's world: users, guilds, roles, channels, threads, messages and commands.

Objects are plain dataclasses that tests may read freely; ``payload()`` methods render
them the way Discord's API does (snowflakes as strings, ISO timestamps, permission
integers as strings), because that is what discord.py parses.
"""

from __future__ import annotations

import datetime as dt
import enum
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]

DISCORD_EPOCH_MS = 1_420_070_400_000
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024  # what a server without boosts allows a bot


class Perm(enum.IntFlag):
    """Discord permission bits (only the ones the double reasons about are named)."""

    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    BAN_MEMBERS = 1 << 2
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    CONNECT = 1 << 20
    SPEAK = 1 << 21
    CHANGE_NICKNAME = 1 << 26
    MANAGE_ROLES = 1 << 28
    USE_APPLICATION_COMMANDS = 1 << 31
    MANAGE_THREADS = 1 << 34
    CREATE_PUBLIC_THREADS = 1 << 35
    CREATE_PRIVATE_THREADS = 1 << 36
    SEND_MESSAGES_IN_THREADS = 1 << 38
    MODERATE_MEMBERS = 1 << 40
    USE_EXTERNAL_APPS = 1 << 50


ALL_PERMISSIONS = (1 << 51) - 1

DEFAULT_EVERYONE_PERMISSIONS = (
    Perm.CREATE_INSTANT_INVITE
    | Perm.ADD_REACTIONS
    | Perm.VIEW_CHANNEL
    | Perm.SEND_MESSAGES
    | Perm.EMBED_LINKS
    | Perm.ATTACH_FILES
    | Perm.READ_MESSAGE_HISTORY
    | Perm.USE_EXTERNAL_EMOJIS
    | Perm.CONNECT
    | Perm.SPEAK
    | Perm.CHANGE_NICKNAME
    | Perm.USE_APPLICATION_COMMANDS
    | Perm.CREATE_PUBLIC_THREADS
    | Perm.SEND_MESSAGES_IN_THREADS
    | Perm.USE_EXTERNAL_APPS
)

# What an image bot is typically invited with; notably *not* MANAGE_MESSAGES.
DEFAULT_BOT_PERMISSIONS = (
    Perm.VIEW_CHANNEL
    | Perm.SEND_MESSAGES
    | Perm.SEND_MESSAGES_IN_THREADS
    | Perm.EMBED_LINKS
    | Perm.ATTACH_FILES
    | Perm.READ_MESSAGE_HISTORY
    | Perm.ADD_REACTIONS
    | Perm.USE_EXTERNAL_EMOJIS
    | Perm.CREATE_PUBLIC_THREADS
    | Perm.MANAGE_THREADS
)

# What either end of a DM may do (a DM has no roles or overwrites).
DM_PERMISSIONS = (
    Perm.VIEW_CHANNEL
    | Perm.SEND_MESSAGES
    | Perm.EMBED_LINKS
    | Perm.ATTACH_FILES
    | Perm.READ_MESSAGE_HISTORY
    | Perm.ADD_REACTIONS
)


class ChannelType(enum.IntEnum):
    GUILD_TEXT = 0
    DM = 1
    GROUP_DM = 3
    PUBLIC_THREAD = 11
    PRIVATE_THREAD = 12


class MessageFlag(enum.IntFlag):
    SUPPRESS_EMBEDS = 1 << 2
    HAS_THREAD = 1 << 5
    EPHEMERAL = 1 << 6
    LOADING = 1 << 7
    SUPPRESS_NOTIFICATIONS = 1 << 12
    IS_COMPONENTS_V2 = 1 << 15


class MessageType(enum.IntEnum):
    DEFAULT = 0
    THREAD_CREATED = 18
    REPLY = 19
    CHAT_INPUT_COMMAND = 20


_last_snowflake = 0
_increment = itertools.count()


def snowflake() -> int:
    """A fresh, strictly increasing snowflake whose timestamp is now (discord.py derives
    ``created_at`` from ids, and Discord sorts history by them)."""
    global _last_snowflake
    ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
    candidate = (ms << 22) | (1 << 17) | (next(_increment) & 0xFFF)
    _last_snowflake = max(candidate, _last_snowflake + 1)
    return _last_snowflake


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


@dataclass
class User:
    id: int
    username: str
    global_name: str | None = None
    bot: bool = False
    # False: the member turned off DMs from server members (Discord answers 50007).
    accepts_dms: bool = True

    def payload(self) -> JSON:
        data: JSON = {
            "id": str(self.id),
            "username": self.username,
            "global_name": self.global_name,
            "discriminator": "0",
            "avatar": None,
            "public_flags": 0,
            "flags": 0,
            "primary_guild": None,
            "avatar_decoration_data": None,
            "collectibles": None,
        }
        if self.bot:
            data["bot"] = True
        return data

    def mention(self) -> str:
        return f"<@{self.id}>"


@dataclass
class Role:
    id: int
    guild_id: int
    name: str
    permissions: int
    position: int = 0
    managed: bool = False
    bot_id: int | None = None

    def payload(self) -> JSON:
        data: JSON = {
            "id": str(self.id),
            "name": self.name,
            "description": None,
            "permissions": str(int(self.permissions)),
            "position": self.position,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "managed": self.managed,
            "mentionable": False,
            "icon": None,
            "unicode_emoji": None,
            "flags": 0,
        }
        if self.bot_id is not None:
            data["tags"] = {"bot_id": str(self.bot_id)}
        return data


@dataclass
class Member:
    user_id: int
    guild_id: int
    role_ids: list[int] = field(default_factory=list)
    nick: str | None = None
    joined_at: dt.datetime = field(default_factory=now)

    def payload(self, user: User | None = None, permissions: int | None = None) -> JSON:
        """``user`` is included where Discord includes it (GUILD_CREATE, interactions), and
        ``permissions`` only in interactions."""
        data: JSON = {
            "roles": [str(r) for r in self.role_ids],
            "nick": self.nick,
            "avatar": None,
            "banner": None,
            "joined_at": iso(self.joined_at),
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
        }
        if user is not None:
            data["user"] = user.payload()
        if permissions is not None:
            data["permissions"] = str(permissions)
        return data


@dataclass
class Overwrite:
    """A channel permission overwrite; ``kind`` 0 is a role, 1 a member."""

    id: int
    kind: int
    allow: int = 0
    deny: int = 0

    def payload(self) -> JSON:
        return {
            "id": str(self.id),
            "type": self.kind,
            "allow": str(int(self.allow)),
            "deny": str(int(self.deny)),
        }


@dataclass
class Channel:
    """A guild text channel, a thread (``type`` 11/12, with ``parent_id``), the bot's
    DM with one user (``type`` 1, ``guild_id`` 0, with ``recipient_id``), or a group DM
    of users (``type`` 3, ``guild_id`` 0, with ``recipient_ids``) that the bot is not in:
    only a user-installed app reaches it, through interactions."""

    id: int
    guild_id: int
    name: str
    type: int = ChannelType.GUILD_TEXT
    position: int = 0
    nsfw: bool = False
    topic: str | None = None
    overwrites: list[Overwrite] = field(default_factory=list)
    rate_limit_per_user: int = 0
    last_message_id: int | None = None
    # threads only
    parent_id: int | None = None
    owner_id: int | None = None
    archived: bool = False
    locked: bool = False
    invitable: bool = True
    auto_archive_duration: int = 1440
    archive_timestamp: dt.datetime = field(default_factory=now)
    create_timestamp: dt.datetime = field(default_factory=now)
    message_count: int = 0
    total_message_sent: int = 0
    member_ids: set[int] = field(default_factory=set)
    recipient_id: int | None = None  # DMs only
    recipient_ids: list[int] = field(default_factory=list)  # group DMs only
    owner_user_id: int | None = None  # group DMs: who made it

    @property
    def is_dm(self) -> bool:
        return self.type == ChannelType.DM

    @property
    def is_group_dm(self) -> bool:
        return self.type == ChannelType.GROUP_DM

    @property
    def is_private(self) -> bool:
        """Outside any guild: a DM or a group DM."""
        return self.type in (ChannelType.DM, ChannelType.GROUP_DM)

    @property
    def is_thread(self) -> bool:
        return self.type in (ChannelType.PUBLIC_THREAD, ChannelType.PRIVATE_THREAD)

    def payload(self, *, thread_member_for: int | None = None) -> JSON:
        last = None if self.last_message_id is None else str(self.last_message_id)
        data: JSON = {
            "id": str(self.id),
            "type": int(self.type),
            "guild_id": str(self.guild_id),
            "name": self.name,
            "flags": 0,
            "last_message_id": last,
            "rate_limit_per_user": self.rate_limit_per_user,
        }
        if self.is_thread:
            assert self.parent_id is not None and self.owner_id is not None
            data.update(
                parent_id=str(self.parent_id),
                owner_id=str(self.owner_id),
                message_count=self.message_count,
                member_count=min(len(self.member_ids), 50),
                total_message_sent=self.total_message_sent,
                thread_metadata={
                    "archived": self.archived,
                    "locked": self.locked,
                    "invitable": self.invitable,
                    "auto_archive_duration": self.auto_archive_duration,
                    "archive_timestamp": iso(self.archive_timestamp),
                    "create_timestamp": iso(self.create_timestamp),
                },
            )
            if thread_member_for is not None and thread_member_for in self.member_ids:
                data["member"] = {
                    "id": str(self.id),
                    "user_id": str(thread_member_for),
                    "join_timestamp": iso(self.create_timestamp),
                    "flags": 0,
                }
        else:
            data.update(
                position=self.position,
                permission_overwrites=[o.payload() for o in self.overwrites],
                nsfw=self.nsfw,
                topic=self.topic,
                parent_id=None,
                default_auto_archive_duration=1440,
                default_thread_rate_limit_per_user=0,
            )
        return data


@dataclass
class Guild:
    id: int
    name: str
    owner_id: int
    roles: dict[int, Role] = field(default_factory=dict)
    members: dict[int, Member] = field(default_factory=dict)
    channel_ids: list[int] = field(default_factory=list)
    locale: str = "en-US"

    @property
    def everyone_role(self) -> Role:
        return self.roles[self.id]  # Discord gives @everyone the guild's own id


@dataclass
class StoredAttachment:
    """An uploaded file, with its bytes (the double also serves them at ``url``).

    The fields after ``ephemeral`` let a test make the file lie or its download fail:
    ``declared_size`` is the ``size`` Discord reports (default ``len(data)``),
    ``served`` the body the CDN answers with instead of ``data``, ``cut_after`` drops
    the connection after that many bytes (with the full Content-Length announced),
    ``cdn_status`` answers the download with that status instead, ``cdn_delay`` waits
    that many seconds first."""

    id: int
    filename: str
    data: bytes
    content_type: str
    url: str
    description: str | None = None
    width: int | None = None
    height: int | None = None
    ephemeral: bool = False
    channel_id: int | None = None
    declared_size: int | None = None
    served: bytes | None = None
    cut_after: int | None = None
    cdn_status: int = 200
    cdn_delay: float = 0.0
    downloads: int = 0  # how often the CDN route was asked for it

    @property
    def size(self) -> int:
        return len(self.data) if self.declared_size is None else self.declared_size

    def payload(self) -> JSON:
        data: JSON = {
            "id": str(self.id),
            "filename": self.filename,
            "size": self.size,
            "url": self.url,
            "proxy_url": self.url,
            "content_type": self.content_type,
        }
        if self.description is not None:
            data["description"] = self.description
        if self.width is not None and self.height is not None:
            data["width"], data["height"] = self.width, self.height
        if self.ephemeral:
            data["ephemeral"] = True
        return data


def iter_components(components: list[JSON]) -> Iterator[JSON]:
    """Every component in a (possibly nested) component tree, depth first."""
    for component in components:
        yield component
        for key in ("components",):
            yield from iter_components(component.get(key) or [])
        for key in ("accessory", "component"):
            child = component.get(key)
            if isinstance(child, dict):
                yield from iter_components([child])


@dataclass
class Message:
    id: int
    channel_id: int
    guild_id: int | None
    author_id: int
    content: str = ""
    type: int = MessageType.DEFAULT
    flags: int = 0
    embeds: list[JSON] = field(default_factory=list)
    components: list[JSON] = field(default_factory=list)
    attachments: list[StoredAttachment] = field(default_factory=list)
    mention_user_ids: list[int] = field(default_factory=list)
    mention_role_ids: list[int] = field(default_factory=list)
    mention_everyone: bool = False
    message_reference: JSON | None = None
    allowed_mentions: JSON | None = None
    webhook_id: int | None = None
    application_id: int | None = None
    interaction_metadata: JSON | None = None
    interaction_id: int | None = None
    thread_id: int | None = None
    tts: bool = False
    nonce: int | str | None = None
    timestamp: dt.datetime = field(default_factory=now)
    edited_timestamp: dt.datetime | None = None
    deleted: bool = False
    edits: int = 0

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & MessageFlag.EPHEMERAL)

    @property
    def loading(self) -> bool:
        """A deferred interaction response that nothing has filled in yet."""
        return bool(self.flags & MessageFlag.LOADING)

    def all_components(self) -> list[JSON]:
        return list(iter_components(self.components))

    @property
    def custom_ids(self) -> list[str]:
        return [c["custom_id"] for c in self.all_components() if "custom_id" in c]

    def component(self, custom_id: str) -> JSON | None:
        return next((c for c in self.all_components() if c.get("custom_id") == custom_id), None)

    def buttons(self) -> list[JSON]:
        return [c for c in self.all_components() if c.get("type") == 2]
