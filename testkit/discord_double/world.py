"""The double's state and the rules that read it: permissions, mentions, payloads."""

from __future__ import annotations

import datetime as dt
import io
import mimetypes
import re
import struct
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote

from .models import (
    ALL_PERMISSIONS,
    DEFAULT_BOT_PERMISSIONS,
    DEFAULT_EVERYONE_PERMISSIONS,
    DM_PERMISSIONS,
    JSON,
    Channel,
    ChannelType,
    Guild,
    Member,
    Message,
    Overwrite,
    Perm,
    Role,
    StoredAttachment,
    User,
    iso,
    now,
    snowflake,
)

_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"RIFF", "image/webp"),
)


def sniff_content_type(filename: str, data: bytes, declared: str | None) -> str:
    """Discord ignores the part's declared type when it is generic (discord.py always
    declares application/octet-stream) and derives one from the file itself."""
    if declared and declared != "application/octet-stream":
        return declared
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    guessed, _ = mimetypes.guess_type(filename)
    return guessed or "application/octet-stream"


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) as Discord's media server reports them, or None for data that
    is not an image. A PNG's header is read directly, so huge ones (that PIL refuses as
    decompression bombs) and truncated ones still get their declared size."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return (width, height) if width and height else None
    try:
        from PIL import Image  # optional: only used to fill width/height like Discord does

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as img:
                return img.size
    except Exception:
        return None


def cdn_path(channel_id: int, attachment_id: int, filename: str, *, ephemeral: bool) -> str:
    """The CDN path of a file: ``/ephemeral-attachments/...`` for the files a user gives a
    slash command option or a modal, ``/attachments/...`` for message attachments."""
    kind = "ephemeral-attachments" if ephemeral else "attachments"
    return f"/{kind}/{channel_id}/{attachment_id}/{quote(filename)}"


class World:
    """Everything the double knows. Factories are synchronous and emit nothing: build the
    world before the bot connects (or dispatch the matching events yourself)."""

    def __init__(
        self, bot_name: str, base_url: Callable[[], str], *, bot_id: int | None = None
    ) -> None:
        self._base_url = base_url
        self.users: dict[int, User] = {}
        self.guilds: dict[int, Guild] = {}
        self.channels: dict[int, Channel] = {}
        self.messages: dict[int, Message] = {}
        self.attachments: dict[int, StoredAttachment] = {}
        self.global_commands: dict[int, JSON] = {}
        self.guild_commands: dict[int, dict[int, JSON]] = {}
        self.bot_user = self.add_user(bot_name, bot=True, id=bot_id)
        # Modern applications share their id with their bot user.
        self.application_id = self.bot_user.id

    # ----- factories -----------------------------------------------------------------

    # Every factory takes an optional fixed ``id`` (a snowflake); by default a fresh one.

    def add_user(
        self, name: str, *, bot: bool = False, global_name: str | None = None, id: int | None = None
    ) -> User:
        user = User(id=id or snowflake(), username=name, global_name=global_name or name, bot=bot)
        self.users[user.id] = user
        return user

    def add_guild(
        self,
        name: str,
        *,
        owner_id: int | None = None,
        everyone_permissions: int = DEFAULT_EVERYONE_PERMISSIONS,
        bot_permissions: int = DEFAULT_BOT_PERMISSIONS,
        id: int | None = None,
        with_bot: bool = True,
    ) -> Guild:
        """A guild with @everyone, the bot as a member holding a managed role with
        ``bot_permissions``, and an owner (a fresh user unless ``owner_id`` is given;
        owners bypass every permission check, so tests should not act as the owner).
        ``with_bot=False``: the bot was never added (its members may still use the app
        they installed to their own account, only through interactions)."""
        if owner_id is None:
            owner_id = self.add_user(f"{name} owner").id
        guild = Guild(id=id or snowflake(), name=name, owner_id=owner_id)
        self.guilds[guild.id] = guild
        guild.roles[guild.id] = Role(
            id=guild.id, guild_id=guild.id, name="@everyone", permissions=everyone_permissions
        )
        self.add_member(guild.id, owner_id)
        if with_bot:
            bot_role = self.add_role(guild.id, self.bot_user.username, bot_permissions,
                                     managed=True)
            bot_role.bot_id = self.bot_user.id
            self.add_member(guild.id, self.bot_user.id, roles=[bot_role.id])
        return guild

    def add_role(
        self,
        guild_id: int,
        name: str,
        permissions: int,
        *,
        managed: bool = False,
        id: int | None = None,
    ) -> Role:
        guild = self.guilds[guild_id]
        role = Role(
            id=id or snowflake(),
            guild_id=guild_id,
            name=name,
            permissions=permissions,
            position=len(guild.roles),
            managed=managed,
        )
        guild.roles[role.id] = role
        return role

    def add_member(
        self, guild_id: int, user_id: int, *, roles: Iterable[int] = (), nick: str | None = None
    ) -> Member:
        member = Member(user_id=user_id, guild_id=guild_id, role_ids=list(roles), nick=nick)
        self.guilds[guild_id].members[user_id] = member
        return member

    def add_text_channel(
        self,
        guild_id: int,
        name: str,
        *,
        nsfw: bool = False,
        topic: str | None = None,
        overwrites: Iterable[Overwrite] = (),
        id: int | None = None,
    ) -> Channel:
        guild = self.guilds[guild_id]
        channel = Channel(
            id=id or snowflake(),
            guild_id=guild_id,
            name=name,
            nsfw=nsfw,
            topic=topic,
            overwrites=list(overwrites),
            position=len(guild.channel_ids),
        )
        self.channels[channel.id] = channel
        guild.channel_ids.append(channel.id)
        return channel

    def add_thread(
        self,
        parent_id: int,
        name: str,
        *,
        owner_id: int,
        private: bool = False,
        thread_id: int | None = None,
        auto_archive_duration: int = 1440,
        invitable: bool = True,
    ) -> Channel:
        parent = self.channels[parent_id]
        thread = Channel(
            id=thread_id or snowflake(),
            guild_id=parent.guild_id,
            name=name,
            type=ChannelType.PRIVATE_THREAD if private else ChannelType.PUBLIC_THREAD,
            parent_id=parent_id,
            owner_id=owner_id,
            auto_archive_duration=auto_archive_duration,
            invitable=invitable,
            member_ids={owner_id},
        )
        self.channels[thread.id] = thread
        return thread

    def store_attachment(
        self,
        channel_id: int | None,
        filename: str,
        data: bytes,
        declared_type: str | None = None,
        *,
        description: str | None = None,
        ephemeral: bool = False,
    ) -> StoredAttachment:
        """Keep a file and give it a CDN URL on the double. A file stored without a
        channel gets its URL when it is first used in one (:meth:`bind_attachment`)."""
        attachment_id = snowflake()
        content_type = sniff_content_type(filename, data, declared_type)
        size = image_size(data) if content_type.startswith("image/") else None
        attachment = StoredAttachment(
            id=attachment_id,
            filename=filename,
            data=data,
            content_type=content_type,
            url="",
            description=description,
            width=size[0] if size else None,
            height=size[1] if size else None,
            ephemeral=ephemeral,
        )
        self.attachments[attachment_id] = attachment
        if channel_id is not None:
            self.bind_attachment(attachment, channel_id)
        return attachment

    def bind_attachment(self, attachment: StoredAttachment, channel_id: int) -> None:
        """Give a file stored without a channel its URL in ``channel_id`` (once)."""
        if attachment.channel_id is not None:
            return
        attachment.channel_id = channel_id
        path = cdn_path(
            channel_id, attachment.id, attachment.filename, ephemeral=attachment.ephemeral
        )
        attachment.url = self._base_url() + path

    # ----- lookups -------------------------------------------------------------------

    def guild_of(self, channel: Channel) -> Guild:
        return self.guilds[channel.guild_id]

    def member(self, guild_id: int, user_id: int) -> Member | None:
        guild = self.guilds.get(guild_id)
        return None if guild is None else guild.members.get(user_id)

    def message_with_nonce(self, author_id: int, nonce: int | str,
                           within_s: float) -> Message | None:
        """The newest live message `author_id` created with `nonce` in the last `within_s`
        seconds (Discord compares nonces as sent: 5 and "5" differ)."""
        cutoff = now() - dt.timedelta(seconds=within_s)
        found = [m for m in self.messages.values()
                 if m.author_id == author_id and m.nonce == nonce and not m.deleted
                 and m.timestamp >= cutoff]
        return max(found, key=lambda m: m.id) if found else None

    def channel_messages(
        self, channel_id: int, *, include_ephemeral: bool = False
    ) -> list[Message]:
        """Live messages in a channel, oldest first."""
        return [
            m
            for m in self.messages.values()
            if m.channel_id == channel_id
            and not m.deleted
            and (include_ephemeral or not m.ephemeral)
        ]

    def user_named(self, name: str) -> User:
        return next(u for u in self.users.values() if u.username == name)

    def guild_named(self, name: str) -> Guild:
        return next(g for g in self.guilds.values() if g.name == name)

    def channel_named(self, guild_id: int, name: str) -> Channel:
        return next(c for c in self.channels.values() if c.guild_id == guild_id and c.name == name)

    def text_channels(self, guild_id: int) -> list[Channel]:
        return [self.channels[c] for c in self.guilds[guild_id].channel_ids]

    def threads(self, guild_id: int) -> list[Channel]:
        return [c for c in self.channels.values() if c.guild_id == guild_id and c.is_thread]

    # ----- permissions (Discord's documented algorithm) ---------------------------------

    def base_permissions(self, guild: Guild, user_id: int) -> int:
        if user_id == guild.owner_id:
            return ALL_PERMISSIONS
        member = guild.members.get(user_id)
        if member is None:
            return 0
        perms = guild.everyone_role.permissions
        for role_id in member.role_ids:
            perms |= guild.roles[role_id].permissions
        return ALL_PERMISSIONS if perms & Perm.ADMINISTRATOR else int(perms)

    def open_dm(self, user_id: int) -> Channel:
        """The bot's DM channel with a user (made on first use, as Discord does)."""
        for channel in self.channels.values():
            if channel.is_dm and channel.recipient_id == user_id:
                return channel
        channel = Channel(id=snowflake(), guild_id=0, name="", type=ChannelType.DM,
                          recipient_id=user_id)
        self.channels[channel.id] = channel
        return channel

    def add_group_dm(self, owner_id: int, recipient_ids: Iterable[int], *,
                     name: str | None = None, id: int | None = None) -> Channel:
        """A group DM of users (the owner among them). The bot is never in it: Discord
        refuses its bot-token requests there (50001); only interactions with a
        user-installed app reach it."""
        members = list(dict.fromkeys([owner_id, *recipient_ids]))
        channel = Channel(id=id or snowflake(), guild_id=0, name=name or "",
                          type=ChannelType.GROUP_DM, recipient_ids=members,
                          owner_user_id=owner_id)
        self.channels[channel.id] = channel
        return channel

    def permissions_in(self, channel_id: int, user_id: int) -> int:
        channel = self.channels[channel_id]
        if channel.is_dm:  # no roles or overwrites: both ends may talk
            return DM_PERMISSIONS if user_id in (channel.recipient_id, self.bot_user.id) else 0
        if channel.is_group_dm:  # its members talk; the bot is not one of them
            return DM_PERMISSIONS if user_id in channel.recipient_ids else 0
        guild = self.guild_of(channel)
        perms = self.base_permissions(guild, user_id)
        if perms == ALL_PERMISSIONS:
            return perms
        member = guild.members.get(user_id)
        if member is None:
            return 0
        # Threads take their permissions from the parent channel.
        target = self.channels[channel.parent_id] if channel.parent_id else channel
        for ow in target.overwrites:
            if ow.kind == 0 and ow.id == guild.id:
                perms = (perms & ~ow.deny) | ow.allow
        allow = deny = 0
        for ow in target.overwrites:
            if ow.kind == 0 and ow.id in member.role_ids:
                allow |= ow.allow
                deny |= ow.deny
        perms = (perms & ~deny) | allow
        for ow in target.overwrites:
            if ow.kind == 1 and ow.id == user_id:
                perms = (perms & ~ow.deny) | ow.allow
        if not perms & Perm.VIEW_CHANNEL:
            return 0
        if (
            channel.type == ChannelType.PRIVATE_THREAD
            and user_id not in channel.member_ids
            and not perms & Perm.MANAGE_THREADS
        ):
            return 0
        if not channel.is_thread and not perms & Perm.SEND_MESSAGES:
            # Implicit denial: without SEND_MESSAGES these make no sense.
            perms &= ~(Perm.MENTION_EVERYONE | Perm.EMBED_LINKS | Perm.ATTACH_FILES)
        return int(perms)

    def can(self, channel_id: int, user_id: int, perm: int) -> bool:
        return self.permissions_in(channel_id, user_id) & perm == perm

    # ----- mentions ------------------------------------------------------------------

    def resolve_mentions(
        self, message: Message, allowed: Mapping[str, Any] | None, author_perms: int
    ) -> None:
        """Fill ``mention_*`` with who is actually pinged: Discord honours
        ``allowed_mentions`` (``AllowedMentions.none()`` pings nobody)."""
        content = message.content
        users = [int(u) for u in _USER_MENTION.findall(content) if int(u) in self.users]
        roles = [int(r) for r in _ROLE_MENTION.findall(content)]
        everyone = "@everyone" in content or "@here" in content
        if allowed is not None:
            parse = set(allowed.get("parse") or [])
            allowed_users = {int(u) for u in allowed.get("users") or []}
            allowed_roles = {int(r) for r in allowed.get("roles") or []}
            users = [u for u in users if "users" in parse or u in allowed_users]
            roles = [r for r in roles if "roles" in parse or r in allowed_roles]
            everyone = everyone and "everyone" in parse
        # Replies ping their target unless allowed_mentions is given without replied_user.
        if message.message_reference and (allowed is None or allowed.get("replied_user")):
            ref = self.messages.get(int(message.message_reference.get("message_id") or 0))
            if ref is not None and ref.author_id not in users:
                users.append(ref.author_id)
        message.mention_user_ids = list(dict.fromkeys(users))
        message.mention_role_ids = list(dict.fromkeys(roles))
        message.mention_everyone = everyone and bool(author_perms & Perm.MENTION_EVERYONE)

    # ----- payloads ------------------------------------------------------------------

    def channel_payload(self, channel: Channel) -> JSON:
        if channel.is_dm:
            assert channel.recipient_id is not None
            last = None if channel.last_message_id is None else str(channel.last_message_id)
            return {"id": str(channel.id), "type": int(ChannelType.DM), "flags": 0,
                    "last_message_id": last,
                    "recipients": [self.users[channel.recipient_id].payload()]}
        if channel.is_group_dm:
            last = None if channel.last_message_id is None else str(channel.last_message_id)
            return {"id": str(channel.id), "type": int(ChannelType.GROUP_DM), "flags": 0,
                    "last_message_id": last, "name": channel.name or None, "icon": None,
                    "owner_id": str(channel.owner_user_id),
                    "recipients": [self.users[u].payload() for u in channel.recipient_ids]}
        return channel.payload(thread_member_for=self.bot_user.id)

    def message_payload(
        self, message: Message, *, gateway: bool = False, nested: bool = False
    ) -> JSON:
        """A message as the API renders it; gateway events also carry guild_id/member."""
        author = self.users[message.author_id]
        data: JSON = {
            "id": str(message.id),
            "channel_id": str(message.channel_id),
            "author": author.payload(),
            "content": message.content,
            "timestamp": iso(message.timestamp),
            "edited_timestamp": iso(message.edited_timestamp),
            "tts": message.tts,
            "mention_everyone": message.mention_everyone,
            "mentions": [self.users[u].payload() for u in message.mention_user_ids],
            "mention_roles": [str(r) for r in message.mention_role_ids],
            "attachments": [a.payload() for a in message.attachments],
            "embeds": message.embeds,
            "components": message.components,
            "pinned": False,
            "type": int(message.type),
            "flags": int(message.flags),
        }
        if message.nonce is not None:
            data["nonce"] = message.nonce
        if message.webhook_id is not None:
            data["webhook_id"] = str(message.webhook_id)
        if message.application_id is not None:
            data["application_id"] = str(message.application_id)
        if message.interaction_metadata is not None:
            data["interaction_metadata"] = message.interaction_metadata
            if message.interaction_metadata.get("name"):  # the deprecated field is still sent
                data["interaction"] = {
                    "id": message.interaction_metadata["id"],
                    "type": message.interaction_metadata["type"],
                    "name": message.interaction_metadata["name"],
                    "user": message.interaction_metadata["user"],
                }
        if message.message_reference is not None:
            data["message_reference"] = message.message_reference
            if not nested and message.type == 19:
                ref = self.messages.get(int(message.message_reference["message_id"]))
                data["referenced_message"] = (
                    None if ref is None or ref.deleted else self.message_payload(ref, nested=True)
                )
        if message.thread_id is not None and message.thread_id in self.channels:
            data["thread"] = self.channel_payload(self.channels[message.thread_id])
        channel = self.channels.get(message.channel_id)
        if channel is not None and channel.is_thread:
            data["position"] = channel.total_message_sent - 1
        if gateway and message.guild_id is not None:
            data["guild_id"] = str(message.guild_id)
            member = self.member(message.guild_id, message.author_id)
            if member is not None and message.webhook_id is None:
                data["member"] = member.payload()
        return data

    def guild_create_payload(self, guild: Guild, *, all_members: bool) -> JSON:
        """GUILD_CREATE as sent after READY. Without the presences intent Discord only
        includes the bot's own member, so member lookups need chunking or interactions."""
        members = [
            m.payload(self.users[uid])
            for uid, m in guild.members.items()
            if all_members or uid == self.bot_user.id
        ]
        bot_member = guild.members[self.bot_user.id]
        return {
            "id": str(guild.id),
            "name": guild.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(guild.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "preferred_locale": guild.locale,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "features": [],
            "roles": [r.payload() for r in guild.roles.values()],
            "emojis": [],
            "stickers": [],
            "max_members": 500000,
            "max_video_channel_users": 25,
            "application_id": None,
            "joined_at": iso(bot_member.joined_at),
            "large": False,
            "unavailable": False,
            "lazy": True,
            "member_count": len(guild.members),
            "members": members,
            "channels": [self.channels[c].payload() for c in guild.channel_ids],
            "threads": [
                self.channel_payload(t)
                for t in self.threads(guild.id)
                if not t.archived and self.can(t.id, self.bot_user.id, Perm.VIEW_CHANNEL)
            ],
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    def application_payload(self, flags: int) -> JSON:
        bot = self.bot_user.payload()
        return {
            "id": str(self.application_id),
            "name": self.bot_user.username,
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "hook": True,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "flags": flags,
            "flags_new": str(flags),
            "owner": self.users[next(iter(self.guilds.values())).owner_id].payload()
            if self.guilds
            else bot,
            "team": None,
            "bot": bot,
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "role_connections_verification_url": None,
            "approximate_guild_count": len(self.guilds),
            "approximate_user_install_count": 0,
            "approximate_user_authorization_count": 0,
            "explicit_content_filter": 0,
            "eligible_oauth2_scopes": ["bot", "applications.commands"],
            "integration_types_config": {"0": {}},
        }
