"""A local, wire-level Discord API double for end-to-end tests of a discord.py bot.

The real, unmodified discord.py client talks to it over real HTTP and a real websocket
(see :func:`point_discord_py_at`). The double keeps Discord's state (guilds, channels,
threads, members, messages with their files, application commands), answers the REST
routes a slash-command bot uses with Discord's status codes and error bodies, sends
the gateway events that keep discord.py's cache consistent, and lets a test act as a
user: invoke slash commands, click buttons, pick from selects, submit modals, post
messages. Every REST request is recorded (and checked against the OpenAPI spec when
``DISCORD_OPENAPI_SPEC`` is set).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import math
import re
import secrets
import socket
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, overload

import yarl
from aiohttp import BodyPartReader, web

from . import errors as err
from . import limits
from .errors import ApiError
from .gateway import PRIVILEGED_INTENTS, Gateway, Heartbeat, heartbeat_gaps
from .models import (
    ALL_PERMISSIONS,
    ATTACHMENT_SIZE_LIMIT,
    DEFAULT_BOT_PERMISSIONS,
    DEFAULT_EVERYONE_PERMISSIONS,
    JSON,
    Channel,
    ChannelType,
    Guild,
    Member,
    Message,
    MessageFlag,
    MessageType,
    Overwrite,
    Perm,
    Role,
    StoredAttachment,
    User,
    now,
    snowflake,
)
from .openapi import OpenApiSpec, SpecViolation, spec_from_env
from .recording import (
    Ack,
    InteractionRecord,
    ModalRecord,
    RateLimitRule,
    RecordedRequest,
    UploadedFile,
)
from .world import World

T = TypeVar("T")

API_PREFIX = "/api/v10"
APPLICATION_COMMAND, MESSAGE_COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT = 2, 3, 4, 5
# Which callback types Discord accepts for each interaction type.
_ALLOWED_CALLBACKS = {
    APPLICATION_COMMAND: {4, 5, 9},
    MESSAGE_COMPONENT: {4, 5, 6, 7, 9},
    AUTOCOMPLETE: {8},
    MODAL_SUBMIT: {4, 5, 6, 7},
}
_SELECT_TYPES = {3, 5, 6, 7, 8}
_TRUE = ("1", "true", "True")
# What a user-installed app may do where its bot is not (a group DM, a guild without it):
# answer interactions with messages, embeds and files.
USER_APP_PERMISSIONS = Perm.SEND_MESSAGES | Perm.EMBED_LINKS | Perm.ATTACH_FILES

# A file given to a user action: (filename, bytes) or (filename, bytes, content_type).
FileSpec = tuple[str, bytes] | tuple[str, bytes, str]


class CommandUnavailable(Exception):
    """The Discord client would not let this user run this command here."""


@dataclass(frozen=True)
class CommandSync:
    """One bulk overwrite (``tree.sync()``) of global (guild_id None) or guild commands."""

    guild_id: int | None
    names: list[str]
    at: float


@dataclass
class _Call:
    params: dict[str, str]
    query: Mapping[str, str]
    body: Any
    files: list[UploadedFile]
    record: RecordedRequest


Handler = Callable[[_Call], Awaitable[tuple[int, Any]]]


NONCE_WINDOW_S = 5 * 60  # Discord says "the past few minutes"
RESET = -1  # the "status" of a request whose connection was dropped without an answer


@dataclass
class _Fault:
    """An injected failure: an error answer or a dropped connection, before the request
    takes effect or after it did."""

    method: str
    pattern: re.Pattern[str]
    remaining: int
    after: bool
    error: ApiError | None  # None: drop the connection

    def take(self, method: str, path: str) -> bool:
        if self.remaining > 0 and self.method in (method, "*") and self.pattern.search(path):
            self.remaining -= 1
            return True
        return False


def _fault_answer(fault: _Fault) -> tuple[int, Any, dict[str, str]]:
    if fault.error is None:
        return RESET, None, {}
    return fault.error.status, fault.error.body(), {}


def _drop_connection(request: web.Request) -> None:
    """Close the socket with no response, as a proxy or a flaky network does."""
    transport = request.transport
    if transport is not None:
        transport.abort()


@dataclass
class _Route:
    method: str
    template: str
    regex: re.Pattern[str]
    handler: Handler
    bot_auth: bool


def _snowflake_param(call: _Call, name: str) -> int:
    raw = call.params[name]
    if not raw.isdigit():
        raise err.form_error(name, "NUMBER_TYPE_COERCE", f'Value "{raw}" is not snowflake.')
    return int(raw)


def point_discord_py_at(double: DiscordDouble) -> Callable[[], None]:
    """Aim discord.py's REST base and default gateway at ``double``; returns a function
    that restores the previous values. (A plain ``Client``/``Bot`` never asks
    ``GET /gateway/bot``, it connects straight to ``DEFAULT_GATEWAY``.)"""
    import discord.gateway
    import discord.http

    old_base = discord.http.Route.BASE
    old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = double.api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(double.gateway_url)

    def restore() -> None:
        discord.http.Route.BASE = old_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway

    return restore


class DiscordDouble:
    """See the module docstring. Construct, build the world, ``await start()``."""

    def __init__(
        self,
        *,
        token: str = "discord-double-token",
        bot_name: str = "Greenheart",
        heartbeat_interval_ms: int = 41250,
        ack_deadline: float = 3.0,
        token_lifetime: float = 15 * 60.0,
        attachment_size_limit: int = ATTACHMENT_SIZE_LIMIT,
        privileged_intents: int = PRIVILEGED_INTENTS,
        spec: OpenApiSpec | Literal["env"] | None = "env",
        host: str = "127.0.0.1",
        bot_id: int | None = None,
    ) -> None:
        self.token = token
        self.host = host
        self.port = 0
        self.ack_deadline = ack_deadline
        self.token_lifetime = token_lifetime
        self.attachment_size_limit = attachment_size_limit
        self.world = World(bot_name, lambda: self.base_url, bot_id=bot_id)
        self.gateway = Gateway(
            self.world,
            token=token,
            heartbeat_interval_ms=heartbeat_interval_ms,
            resume_url=lambda: self.gateway_url,
            privileged_intents=privileged_intents,
            on_change=self._changed,
        )
        self.spec = spec_from_env() if spec == "env" else spec
        self.requests: list[RecordedRequest] = []
        self.unknown_requests: list[RecordedRequest] = []
        self.spec_violations: list[SpecViolation] = []
        self.response_violations: list[SpecViolation] = []  # the double's own mistakes
        self.internal_errors: list[str] = []  # tracebacks of requests the double choked on
        self.command_syncs: list[CommandSync] = []
        self.interactions: dict[int, InteractionRecord] = {}
        self.message_log: list[tuple[str, Message]] = []  # ("create"|"update"|"delete", message)
        self._by_token: dict[str, InteractionRecord] = {}
        self._rate_limits: list[RateLimitRule] = []
        self._faults: list[_Fault] = []
        self._holds: list[tuple[str, re.Pattern[str], asyncio.Event]] = []
        self._routes: list[_Route] = []
        self._change = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._register_routes()

    # ----- lifecycle -------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_base(self) -> str:
        return self.base_url + API_PREFIX

    @property
    def cdn_base(self) -> str:
        """Where the double serves files, as Discord's CDN does (cdn.discordapp.com); the
        same server as the API."""
        return self.base_url

    @property
    def gateway_url(self) -> str:
        return f"ws://{self.host}:{self.port}/gateway"

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self.gateway.handle)
        for kind in ("attachments", "ephemeral-attachments"):
            app.router.add_get(
                f"/{kind}/{{channel_id}}/{{attachment_id}}/{{filename}}", self._serve_attachment
            )
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._handle_rest)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        # Bind port 0 ourselves and hand the socket over: no race for a "free" port.
        sock = socket.socket()
        sock.bind((self.host, 0))
        self.port = int(sock.getsockname()[1])
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        await self.gateway.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> DiscordDouble:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ----- world building (delegates; see World) --------------------------------------

    @property
    def bot_user(self) -> User:
        return self.world.bot_user

    @property
    def application_id(self) -> int:
        return self.world.application_id

    def add_user(self, name: str, *, bot: bool = False, id: int | None = None) -> User:
        return self.world.add_user(name, bot=bot, id=id)

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
        """A guild with @everyone, an owner (a fresh user unless given: owners bypass all
        permission checks, so don't act as one) and the bot holding a managed role
        (``with_bot=False``: a guild the bot is not in, where members reach the app only
        as one they installed to their account)."""
        return self.world.add_guild(
            name,
            owner_id=owner_id,
            everyone_permissions=everyone_permissions,
            bot_permissions=bot_permissions,
            id=id,
            with_bot=with_bot,
        )

    def add_group_dm(
        self, owner_id: int, recipient_ids: Iterable[int], *, name: str | None = None
    ) -> Channel:
        """A group DM (the bot is not in it; interactions from it carry context 2). Act
        in it with guild id 0: ``invoke_slash(0, gdm.id, user_id, ...)``."""
        return self.world.add_group_dm(owner_id, recipient_ids, name=name)

    def add_role(
        self, guild_id: int, name: str, permissions: int, *, id: int | None = None
    ) -> Role:
        return self.world.add_role(guild_id, name, permissions, id=id)

    def add_member(
        self, guild_id: int, user_id: int, *, roles: Iterable[int] = (), nick: str | None = None
    ) -> Member:
        return self.world.add_member(guild_id, user_id, roles=roles, nick=nick)

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
        return self.world.add_text_channel(
            guild_id, name, nsfw=nsfw, topic=topic, overwrites=overwrites, id=id
        )

    def add_thread(
        self, parent_id: int, name: str, *, owner_id: int, private: bool = False
    ) -> Channel:
        return self.world.add_thread(parent_id, name, owner_id=owner_id, private=private)

    def channel_messages(
        self, channel_id: int, *, include_ephemeral: bool = False
    ) -> list[Message]:
        return self.world.channel_messages(channel_id, include_ephemeral=include_ephemeral)

    def dm_messages(self, user_id: int) -> list[Message]:
        """What the bot sent a user by DM, oldest first (none if it never opened one)."""
        dms = [c for c in self.world.channels.values() if c.is_dm and c.recipient_id == user_id]
        return self.world.channel_messages(dms[0].id) if dms else []

    def user_named(self, name: str) -> User:
        return self.world.user_named(name)

    def guild_named(self, name: str) -> Guild:
        return self.world.guild_named(name)

    def channel_named(self, guild_id: int, name: str) -> Channel:
        return self.world.channel_named(guild_id, name)

    async def announce(self, created: Guild | Channel | Member | Role) -> None:
        """Tell a connected bot about something added after it connected (the factories
        only change state): GUILD_CREATE, CHANNEL_CREATE/THREAD_CREATE,
        GUILD_MEMBER_ADD or GUILD_ROLE_CREATE."""
        if isinstance(created, Guild):
            await self.dispatch(
                "GUILD_CREATE", self.world.guild_create_payload(created, all_members=False)
            )
        elif isinstance(created, Channel) and created.is_thread:
            payload = {**self.world.channel_payload(created), "newly_created": True}
            await self.dispatch("THREAD_CREATE", payload)
        elif isinstance(created, Channel):
            await self.dispatch("CHANNEL_CREATE", created.payload())
        elif isinstance(created, Member):
            payload = created.payload(self.world.users[created.user_id])
            await self.dispatch("GUILD_MEMBER_ADD", {**payload, "guild_id": str(created.guild_id)})
        else:
            payload = {"guild_id": str(created.guild_id), "role": created.payload()}
            await self.dispatch("GUILD_ROLE_CREATE", payload)

    # ----- gateway ---------------------------------------------------------------------

    async def dispatch(self, event: str, data: JSON) -> None:
        """Send a dispatch event to every session (subject to their intents)."""
        await self.gateway.dispatch(event, data)

    @property
    def heartbeats(self) -> list[Heartbeat]:
        return self.gateway.heartbeats

    @property
    def heartbeat_interval(self) -> float:
        """Seconds, as announced in HELLO."""
        return self.gateway.heartbeat_interval_ms / 1000

    def heartbeat_gaps(self) -> list[float]:
        """Seconds between consecutive heartbeats on each connection."""
        return heartbeat_gaps(self.gateway.heartbeats)

    def late_heartbeats(self, tolerance: float | None = None) -> list[float]:
        """Gaps longer than the interval plus ``tolerance`` seconds (default: a quarter
        of the interval). discord.py heartbeats from a thread but sends through the
        event loop, so a late heartbeat means the loop was blocked."""
        slack = self.heartbeat_interval / 4 if tolerance is None else tolerance
        return [gap for gap in self.heartbeat_gaps() if gap > self.heartbeat_interval + slack]

    async def request_reconnect(self) -> None:
        """Send op 7 RECONNECT: discord.py reconnects and RESUMEs."""
        await self.gateway.request_reconnect()

    async def drop_connection(self, code: int = 4000) -> None:
        """Close the bot's socket with ``code``; events dispatched before it RESUMEs are
        replayed then. (Codes 4004 and 4010-4014 are fatal to discord.py.)"""
        await self.gateway.drop(code)

    async def invalidate_session(self, *, resumable: bool = False) -> None:
        """Send op 9. Not resumable: discord.py IDENTIFYs again, after sleeping 5 s in
        ``Client.before_identify_hook`` unless a test overrides that."""
        await self.gateway.invalidate(resumable=resumable)

    async def wait_until_identified(self, count: int = 1, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        await self.wait_until(
            lambda: self.gateway.identify_count >= count, timeout, f"{count} IDENTIFY"
        )

    async def wait_until_resumed(self, count: int = 1, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        await self.wait_until(
            lambda: self.gateway.resume_count >= count, timeout, f"{count} RESUME"
        )

    async def wait_for_heartbeats(self, count: int, timeout: float = 5.0) -> list[Heartbeat]:  # noqa: ASYNC109
        return await self.wait_until(
            lambda: self.heartbeats if len(self.heartbeats) >= count else None,
            timeout,
            f"{count} heartbeats",
        )

    # ----- waiting ---------------------------------------------------------------------

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _changed(self) -> None:
        """Wake every waiter; they re-check their predicate (no polling)."""
        self._change.set()
        self._change = asyncio.Event()

    async def wait_until(
        self,
        predicate: Callable[[], T | None],
        timeout: float,  # noqa: ASYNC109
        what: str = "a condition",
        *,
        recheck_every: float = 0.02,
    ) -> T:
        """Return the first truthy ``predicate()``; raise TimeoutError naming ``what``
        after ``timeout`` seconds. The predicate is re-checked whenever the double's state
        changes, and every ``recheck_every`` seconds for predicates that read state the
        double cannot see (the bot's cache, lists the test's handlers fill)."""
        deadline = self._now() + timeout
        while True:
            result = predicate()
            if result:
                return result
            remaining = deadline - self._now()
            if remaining <= 0:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._change.wait(), min(remaining, recheck_every))

    async def wait_for_message(
        self,
        predicate: Callable[[Message], bool],
        timeout: float = 5.0,  # noqa: ASYNC109
        *,
        include_existing: bool = True,
    ) -> Message:
        """The first message matching ``predicate``: among the live messages (unless
        ``include_existing`` is False), else the next one created or edited."""
        cursor = len(self.message_log)

        def find() -> Message | None:
            if include_existing:
                for message in self.world.messages.values():
                    if not message.deleted and predicate(message):
                        return message
            for kind, message in self.message_log[cursor:]:
                if kind != "delete" and not message.deleted and predicate(message):
                    return message
            return None

        return await self.wait_until(find, timeout, "a matching message")

    # ----- recording helpers -------------------------------------------------------------

    def requests_matching(self, method: str, path_regex: str) -> list[RecordedRequest]:
        """Recorded requests whose method equals ``method`` (or ``"*"``) and whose path
        (relative to /api/v10) matches ``path_regex`` (``re.search``)."""
        pattern = re.compile(path_regex)
        return [r for r in self.requests if method in (r.method, "*") and pattern.search(r.path)]

    def inject_429(
        self,
        method: str,
        path_regex: str,
        times: int = 1,
        retry_after: float = 0.2,
        *,
        is_global: bool = False,
    ) -> RateLimitRule:
        """Answer the next ``times`` matching requests with a 429 (with a ``Via`` header;
        without one discord.py takes a 429 for a Cloudflare ban and gives up)."""
        rule = RateLimitRule(method, re.compile(path_regex), times, retry_after, is_global)
        self._rate_limits.append(rule)
        return rule

    def fail_next(self, method: str, path_regex: str, error: ApiError, times: int = 1, *,
                  after: bool = False) -> None:
        """Answer the next ``times`` matching requests with ``error`` (e.g.
        ``errors.missing_permissions()``), as Discord does when the bot lost a permission.
        With ``after``, the request takes effect first and only its answer is the error: a
        502 from a proxy after Discord created the message."""
        self._faults.append(_Fault(method, re.compile(path_regex), times, after, error))

    def reset_next(self, method: str, path_regex: str, times: int = 1, *,
                   after: bool = False) -> None:
        """Drop the connection of the next ``times`` matching requests without an answer
        (the client sees the server disconnect); with ``after``, once the request took
        effect, so the client cannot know whether it did."""
        self._faults.append(_Fault(method, re.compile(path_regex), times, after, None))

    def hold_next(self, method: str, path_regex: str) -> asyncio.Event:
        """Let the next matching request take effect, then hold its answer until the
        returned event is set: what a bot killed while waiting for Discord's answer saw."""
        release = asyncio.Event()
        self._holds.append((method, re.compile(path_regex), release))
        return release

    def clear_faults(self) -> None:
        """Forget the injected failures not used yet (the network is fine again)."""
        self._faults.clear()

    async def _hold_if_asked(self, record: RecordedRequest) -> None:
        for hold in self._holds:
            method, pattern, release = hold
            if method in (record.method, "*") and pattern.search(record.path):
                self._holds.remove(hold)
                self._changed()  # the effect is visible while the answer waits
                await release.wait()
                return

    def _take_fault(self, record: RecordedRequest, *, after: bool) -> _Fault | None:
        for fault in self._faults:
            if fault.after == after and fault.take(record.method, record.path):
                return fault
        return None

    def assert_clean(self) -> None:
        """Fail if the bot called a route the double does not know, sent a body the spec
        rejects, or the double answered something the spec rejects."""
        problems = [f"unknown route: {r}" for r in self.unknown_requests]
        problems += [f"spec: {v}" for v in self.spec_violations]
        problems += [f"double's response: {v}" for v in self.response_violations]
        problems += [f"double failed: {e}" for e in self.internal_errors]
        assert not problems, "\n".join(problems)

    @property
    def sync_count(self) -> int:
        return len(self.command_syncs)

    def commands(self, guild_id: int | None = None) -> list[JSON]:
        """Registered commands: global ones, or those of ``guild_id``."""
        table = (
            self.world.global_commands
            if guild_id is None
            else self.world.guild_commands.get(guild_id, {})
        )
        return list(table.values())

    # ----- the REST front door -----------------------------------------------------------

    def _register_routes(self) -> None:
        def add(method: str, template: str, handler: Handler, *, bot_auth: bool = True) -> None:
            pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
            self._routes.append(
                _Route(method, template, re.compile(f"^{pattern}$"), handler, bot_auth)
            )

        add("GET", "/users/@me", self._get_me)
        add("GET", "/users/{user_id}", self._get_user)
        add("POST", "/users/@me/channels", self._open_dm)
        add("GET", "/oauth2/applications/@me", self._get_application)
        add("GET", "/applications/@me", self._get_application)
        add("GET", "/gateway", self._get_gateway, bot_auth=False)
        add("GET", "/gateway/bot", self._get_gateway)
        add("GET", "/guilds/{guild_id}", self._get_guild)
        add("GET", "/guilds/{guild_id}/channels", self._get_guild_channels)
        add("GET", "/guilds/{guild_id}/members/{user_id}", self._get_member)
        for prefix in (
            "/applications/{application_id}",
            "/applications/{application_id}/guilds/{guild_id}",
        ):
            add("GET", prefix + "/commands", self._list_commands)
            add("PUT", prefix + "/commands", self._bulk_overwrite_commands)
            add("POST", prefix + "/commands", self._upsert_command)
            add("GET", prefix + "/commands/{command_id}", self._get_command)
            add("PATCH", prefix + "/commands/{command_id}", self._edit_command)
            add("DELETE", prefix + "/commands/{command_id}", self._delete_command)
        add(
            "POST",
            "/interactions/{interaction_id}/{interaction_token}/callback",
            self._interaction_callback,
            bot_auth=False,
        )
        original = "/webhooks/{webhook_id}/{webhook_token}/messages/@original"
        add("GET", original, self._get_webhook_message, bot_auth=False)
        add("PATCH", original, self._edit_webhook_message, bot_auth=False)
        add("DELETE", original, self._delete_webhook_message, bot_auth=False)
        by_id = "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"
        add("GET", by_id, self._get_webhook_message, bot_auth=False)
        add("PATCH", by_id, self._edit_webhook_message, bot_auth=False)
        add("DELETE", by_id, self._delete_webhook_message, bot_auth=False)
        add("POST", "/webhooks/{webhook_id}/{webhook_token}", self._execute_webhook, bot_auth=False)
        add("GET", "/channels/{channel_id}", self._get_channel)
        add("PATCH", "/channels/{channel_id}", self._edit_channel)
        add("DELETE", "/channels/{channel_id}", self._delete_channel)
        add("GET", "/channels/{channel_id}/messages", self._history)
        add("POST", "/channels/{channel_id}/messages", self._post_message)
        add("GET", "/channels/{channel_id}/messages/{message_id}", self._get_message)
        add("PATCH", "/channels/{channel_id}/messages/{message_id}", self._edit_message)
        add("DELETE", "/channels/{channel_id}/messages/{message_id}", self._delete_message)
        add(
            "POST",
            "/channels/{channel_id}/messages/{message_id}/threads",
            self._thread_from_message,
        )
        add("POST", "/channels/{channel_id}/threads", self._thread_without_message)
        add("PUT", "/channels/{channel_id}/thread-members/@me", self._join_thread)
        add("DELETE", "/channels/{channel_id}/thread-members/@me", self._leave_thread)
        add("POST", "/channels/{channel_id}/typing", self._typing)

    def _match(self, method: str, path: str) -> tuple[_Route | None, dict[str, str], bool]:
        """(route, params, path_known): literal templates were registered first."""
        path_known = False
        for route in self._routes:
            found = route.regex.match(path)
            if found:
                path_known = True
                if route.method == method:
                    return route, found.groupdict(), True
        return None, {}, path_known

    async def _read_body(self, request: web.Request) -> tuple[Any, list[UploadedFile], bool, bool]:
        """(json body, files, has_body, multipart)."""
        if request.content_type.startswith("multipart/"):
            body: Any = None
            files: list[UploadedFile] = []
            form: JSON = {}
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader):
                    continue
                data = await part.read(decode=False)
                if part.name == "payload_json":
                    body = json.loads(data)
                elif part.filename is not None:
                    declared = part.headers.get("Content-Type", "application/octet-stream")
                    files.append(
                        UploadedFile(part.name or "", part.filename, bytes(data), declared)
                    )
                elif part.name:
                    form[part.name] = data.decode()
            return (body if body is not None else form), files, True, True
        raw = await request.read()
        if not raw:
            return None, [], False, False
        try:
            return json.loads(raw), [], True, False
        except ValueError:
            return raw.decode(errors="replace"), [], True, False

    def _ratelimit_headers(self, route: str | None) -> dict[str, str]:
        bucket = hashlib.sha1((route or "unknown").encode()).hexdigest()[:16]
        return {
            "X-RateLimit-Limit": "50",
            "X-RateLimit-Remaining": "49",
            "X-RateLimit-Reset": f"{time.time() + 1:.3f}",
            "X-RateLimit-Reset-After": "1.000",
            "X-RateLimit-Bucket": bucket,
        }

    def _json_response(
        self, status: int, body: Any, route: str | None, extra: Mapping[str, str] | None = None
    ) -> web.Response:
        headers = {**self._ratelimit_headers(route), **(extra or {})}
        if body is None:
            # No content type at all on 204s: discord.py JSON-decodes any body labelled
            # application/json, and an empty one makes it raise.
            return web.Response(status=status, headers=headers)
        # Exactly "application/json": discord.py compares the header verbatim and treats
        # "application/json; charset=utf-8" as text.
        headers["Content-Type"] = "application/json"
        return web.Response(status=status, body=json.dumps(body).encode(), headers=headers)

    async def _handle_rest(self, request: web.Request) -> web.Response:
        path = request.path.removeprefix(API_PREFIX)
        method = request.method
        body, files, has_body, multipart = await self._read_body(request)
        route, params, path_known = self._match(method, path)
        record = RecordedRequest(
            method=method,
            path=path,
            route=route.template if route else None,
            query=dict(request.query),
            json=body,
            files=files,
            headers=dict(request.headers),
            at=self._now(),
            multipart=multipart,
        )
        self.requests.append(record)
        if self.spec is not None:
            self.spec_violations.extend(
                self.spec.check_request(
                    method, path, request.query, body, has_body=has_body, multipart=multipart
                )
            )
        before = self._take_fault(record, after=False)
        if before is not None:
            status, answer, extra = _fault_answer(before)
        else:
            status, answer, extra = await self._answer(request, route, params, path_known,
                                                       record)
            late = self._take_fault(record, after=True)
            if late is not None:
                status, answer, extra = _fault_answer(late)
            await self._hold_if_asked(record)
        record.status, record.response = status, answer
        if status == RESET:
            self._changed()
            _drop_connection(request)
            return web.Response(status=500)  # never sent: the connection is gone
        if route is None:
            self.unknown_requests.append(record)
        if self.spec is not None and route is not None:
            self.response_violations.extend(self.spec.check_response(method, path, status, answer))
        self._changed()
        return self._json_response(status, answer, record.route, extra)

    async def _answer(
        self,
        request: web.Request,
        route: _Route | None,
        params: dict[str, str],
        path_known: bool,
        record: RecordedRequest,
    ) -> tuple[int, Any, dict[str, str]]:
        for rule in self._rate_limits:
            if rule.matches(record.method, record.path):
                rule.remaining -= 1
                rule.hits += 1
                body = {
                    "message": "You are being rate limited.",
                    "retry_after": rule.retry_after,
                    "global": rule.is_global,
                }
                headers = {
                    "Via": "1.1 google",
                    "Retry-After": str(math.ceil(rule.retry_after)),
                    "X-RateLimit-Scope": "global" if rule.is_global else "user",
                    "X-RateLimit-Remaining": "0",
                }
                if rule.is_global:
                    headers["X-RateLimit-Global"] = "true"
                return 429, body, headers
        if route is None:
            if path_known:
                return 405, {"message": "405: Method Not Allowed", "code": 0}, {}
            return 404, err.not_found().body(), {}
        if route.bot_auth and request.headers.get("Authorization") != f"Bot {self.token}":
            return 401, err.unauthorized().body(), {}
        call = _Call(params, request.query, record.json, record.files, record)
        try:
            status, answer = await route.handler(call)
        except ApiError as exc:
            return exc.status, exc.body(), {}
        except Exception as exc:
            # A bug in the double (or a body it cannot make sense of). 501 makes
            # discord.py raise DiscordServerError at once instead of retrying like a 500.
            self.internal_errors.append(f"{record}: {traceback.format_exc()}")
            return 501, {"message": f"discord double failed: {exc!r}", "code": 0}, {}
        return status, answer, {}

    async def _serve_attachment(self, request: web.Request) -> web.StreamResponse:
        """The CDN: a file's bytes at its URL (any query string is ignored), or the
        failure the test gave it (see :meth:`upload_attachment`)."""
        raw_id = request.match_info["attachment_id"]
        attachment = self.world.attachments.get(int(raw_id)) if raw_id.isdigit() else None
        ephemeral = request.path.startswith("/ephemeral-attachments/")
        if (
            attachment is None
            or str(attachment.channel_id) != request.match_info["channel_id"]
            or attachment.ephemeral != ephemeral
            or attachment.filename != request.match_info["filename"]
        ):
            return web.Response(status=404, text="Not Found")
        attachment.downloads += 1
        self._changed()
        if attachment.cdn_delay > 0:
            await asyncio.sleep(attachment.cdn_delay)
        if attachment.cdn_status != 200:
            return web.Response(status=attachment.cdn_status, text=f"{attachment.cdn_status}")
        body = attachment.data if attachment.served is None else attachment.served
        headers = {"Content-Type": attachment.content_type}
        if attachment.cut_after is None:
            return web.Response(body=body, headers=headers)
        # Announce the whole file, send part of it, then drop the connection.
        response = web.StreamResponse(headers=headers)
        response.content_length = len(body)
        await response.prepare(request)
        await response.write(body[: attachment.cut_after])
        _drop_connection(request)
        return response

    # ----- users, application, guilds ------------------------------------------------------

    async def _get_me(self, call: _Call) -> tuple[int, Any]:
        me = {
            **self.bot_user.payload(),
            "verified": True,
            "mfa_enabled": False,
            "locale": "en-US",
            "email": None,
            "bio": "",
            "banner": None,
            "accent_color": None,
        }
        return 200, me

    async def _get_user(self, call: _Call) -> tuple[int, Any]:
        user = self.world.users.get(_snowflake_param(call, "user_id"))
        if user is None:
            raise err.unknown_user()
        return 200, user.payload()

    async def _open_dm(self, call: _Call) -> tuple[int, Any]:
        """Create DM: the bot's DM channel with a user, the same one every time. Whether a
        message may go there is only decided when one is sent (50007)."""
        body = call.body if isinstance(call.body, dict) else {}
        try:
            user = self.world.users.get(int(body.get("recipient_id") or 0))
        except (TypeError, ValueError):
            user = None
        if user is None:
            raise err.unknown_user()
        channel = self.world.open_dm(user.id)
        self._changed()
        return 200, self.world.channel_payload(channel)

    async def _get_application(self, call: _Call) -> tuple[int, Any]:
        return 200, self.world.application_payload(self.gateway.app_flags)

    async def _get_gateway(self, call: _Call) -> tuple[int, Any]:
        data: JSON = {"url": self.gateway_url}
        if call.record.path.endswith("/bot"):
            data.update(
                shards=1,
                session_start_limit={
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 14_400_000,
                    "max_concurrency": 1,
                },
            )
        return 200, data

    def _guild(self, call: _Call) -> Guild:
        guild = self.world.guilds.get(_snowflake_param(call, "guild_id"))
        if guild is None or self.bot_user.id not in guild.members:
            raise err.unknown_guild()
        return guild

    async def _get_guild(self, call: _Call) -> tuple[int, Any]:
        payload = self.world.guild_create_payload(self._guild(call), all_members=False)
        for key in (
            "members",
            "channels",
            "threads",
            "presences",
            "voice_states",
            "joined_at",
            "large",
            "member_count",
            "lazy",
            "unavailable",
            "stage_instances",
            "guild_scheduled_events",
            "soundboard_sounds",
        ):
            payload.pop(key, None)
        return 200, payload

    async def _get_guild_channels(self, call: _Call) -> tuple[int, Any]:
        guild = self._guild(call)
        return 200, [c.payload() for c in self.world.text_channels(guild.id)]

    async def _get_member(self, call: _Call) -> tuple[int, Any]:
        guild = self._guild(call)
        member = guild.members.get(_snowflake_param(call, "user_id"))
        if member is None:
            raise err.unknown_member()
        return 200, member.payload(self.world.users[member.user_id])

    # ----- application commands -----------------------------------------------------------

    def _command_table(self, call: _Call) -> tuple[dict[int, JSON], int | None]:
        if _snowflake_param(call, "application_id") != self.application_id:
            raise err.missing_access()
        if "guild_id" not in call.params:
            return self.world.global_commands, None
        guild = self._guild(call)
        return self.world.guild_commands.setdefault(guild.id, {}), guild.id

    def _command_payload(self, body: JSON, command_id: int, guild_id: int | None) -> JSON:
        command: JSON = {
            "type": 1,
            "default_member_permissions": None,
            "nsfw": False,
            "name_localizations": None,
            "description_localizations": None,
            "contexts": None,
            "integration_types": [0],
            **copy.deepcopy(body),
            "id": str(command_id),
            "application_id": str(self.application_id),
            "version": str(snowflake()),
        }
        # Discord answers with its defaults where the client sent null.
        defaults = {"integration_types": [0], "nsfw": False, "description": "", "options": []}
        for key, default in defaults.items():
            if command.get(key) is None:
                command[key] = default
        if command["type"] != 1:
            command["description"] = ""
        if command.get("dm_permission") is None:
            command.pop("dm_permission", None)
        if guild_id is not None:
            command["guild_id"] = str(guild_id)
        return command

    async def _list_commands(self, call: _Call) -> tuple[int, Any]:
        table, _ = self._command_table(call)
        return 200, list(table.values())

    async def _bulk_overwrite_commands(self, call: _Call) -> tuple[int, Any]:
        table, guild_id = self._command_table(call)
        bodies = call.body if isinstance(call.body, list) else []
        limits.check_commands(bodies)
        # Discord keeps the id of a command whose (type, name) survives the overwrite.
        old = {(c.get("type", 1), c["name"]): int(c["id"]) for c in table.values()}
        table.clear()
        for body in bodies:
            command_id = old.get((body.get("type", 1), body["name"])) or snowflake()
            table[command_id] = self._command_payload(body, command_id, guild_id)
        self.command_syncs.append(CommandSync(guild_id, [b["name"] for b in bodies], self._now()))
        return 200, list(table.values())

    async def _upsert_command(self, call: _Call) -> tuple[int, Any]:
        table, guild_id = self._command_table(call)
        body = call.body if isinstance(call.body, dict) else {}
        limits.check_command(body)
        existing = next(
            (
                int(c["id"])
                for c in table.values()
                if c["name"] == body["name"] and c.get("type", 1) == body.get("type", 1)
            ),
            None,
        )
        command_id = existing or snowflake()
        table[command_id] = self._command_payload(body, command_id, guild_id)
        return (200 if existing else 201), table[command_id]

    def _command(self, call: _Call) -> tuple[dict[int, JSON], int | None, JSON]:
        table, guild_id = self._command_table(call)
        command = table.get(_snowflake_param(call, "command_id"))
        if command is None:
            raise err.unknown_command()
        return table, guild_id, command

    async def _get_command(self, call: _Call) -> tuple[int, Any]:
        return 200, self._command(call)[2]

    async def _edit_command(self, call: _Call) -> tuple[int, Any]:
        table, guild_id, command = self._command(call)
        merged = {**command, **(call.body or {})}
        limits.check_command(merged)
        table[int(command["id"])] = self._command_payload(merged, int(command["id"]), guild_id)
        return 200, table[int(command["id"])]

    async def _delete_command(self, call: _Call) -> tuple[int, Any]:
        table, _, command = self._command(call)
        del table[int(command["id"])]
        return 204, None

    # ----- messages: shared machinery ------------------------------------------------------

    def _channel(self, call: _Call) -> Channel:
        channel = self.world.channels.get(_snowflake_param(call, "channel_id"))
        if channel is None:
            raise err.unknown_channel()
        return channel

    def _require(self, channel: Channel, perm: int) -> None:
        perms = self.world.permissions_in(channel.id, self.bot_user.id)
        if not perms & Perm.VIEW_CHANNEL:
            raise err.missing_access()
        if perms & perm != perm:
            raise err.missing_permissions()

    def _emit(self, event: str, data: JSON) -> None:
        self.gateway.dispatch_nowait(event, data)

    def _log_message(self, kind: str, message: Message) -> None:
        self.message_log.append((kind, message))
        if not message.ephemeral:
            if kind == "delete":
                data: JSON = {"id": str(message.id), "channel_id": str(message.channel_id)}
                if message.guild_id is not None:
                    data["guild_id"] = str(message.guild_id)
                self._emit("MESSAGE_DELETE", data)
            else:
                event = "MESSAGE_CREATE" if kind == "create" else "MESSAGE_UPDATE"
                self._emit(event, self.world.message_payload(message, gateway=True))
        self._changed()

    def _new_attachments(
        self, body: JSON, files: Sequence[UploadedFile], channel_id: int, ephemeral: bool
    ) -> list[StoredAttachment]:
        """Store uploaded files; ``attachments[].id`` in the body refers to ``files[n]``."""
        meta = {str(a.get("id")): a for a in body.get("attachments") or [] if isinstance(a, dict)}
        stored = []
        for position, upload in enumerate(files):
            index = re.fullmatch(r"files\[(\d+)\]", upload.field)
            info = meta.get(index.group(1) if index else str(position), {})
            stored.append(
                self.world.store_attachment(
                    channel_id,
                    info.get("filename") or upload.filename,
                    upload.data,
                    upload.content_type,
                    description=info.get("description"),
                    ephemeral=ephemeral,
                )
            )
        return stored

    def _render_embeds(
        self, embeds: Sequence[JSON], attachments: Sequence[StoredAttachment]
    ) -> list[JSON]:
        """Discord's echo of embeds: ``type`` filled in, ``attachment://name`` resolved."""
        by_name = {a.filename: a for a in attachments}
        rendered = []
        for embed in embeds:
            embed = {"type": "rich", **copy.deepcopy(embed)}
            for key in ("image", "thumbnail"):
                media = embed.get(key)
                if isinstance(media, dict) and str(media.get("url", "")).startswith(
                    "attachment://"
                ):
                    attachment = by_name.get(media["url"].removeprefix("attachment://"))
                    if attachment is not None:
                        media.update(url=attachment.url, proxy_url=attachment.url)
                        if attachment.width is not None:
                            media.update(width=attachment.width, height=attachment.height)
            rendered.append(embed)
        return rendered

    @staticmethod
    def _number_components(components: Sequence[JSON]) -> list[JSON]:
        """Discord numbers components that come without an ``id``."""
        tree = copy.deepcopy(list(components))
        counter = 0

        def walk(items: list[JSON]) -> None:
            nonlocal counter
            for item in items:
                counter += 1
                item.setdefault("id", counter)
                emoji = item.get("emoji")
                if isinstance(emoji, dict):
                    # Discord drops a unicode emoji's null id; the spec types it as a string.
                    item["emoji"] = {k: v for k, v in emoji.items() if v is not None}
                walk(item.get("components") or [])
                for key in ("accessory", "component"):
                    if isinstance(item.get(key), dict):
                        walk([item[key]])

        walk(tree)
        return tree

    def _create_message(
        self,
        channel: Channel,
        author_id: int,
        body: JSON,
        files: Sequence[UploadedFile],
        *,
        interaction: InteractionRecord | None = None,
        extra_flags: int = 0,
    ) -> Message:
        ephemeral = bool(
            interaction is not None
            and (int(body.get("flags") or 0) | extra_flags) & MessageFlag.EPHEMERAL
        )
        limits.check_message(
            body,
            [len(f.data) for f in files],
            size_limit=self.attachment_size_limit,
            creating=not extra_flags & MessageFlag.LOADING,
        )
        kept_flags = (
            MessageFlag.SUPPRESS_EMBEDS
            | MessageFlag.SUPPRESS_NOTIFICATIONS
            | MessageFlag.IS_COMPONENTS_V2
        )
        flags = (
            (int(body.get("flags") or 0) & kept_flags)
            | extra_flags
            | (MessageFlag.EPHEMERAL if ephemeral else 0)
        )
        message = Message(
            id=snowflake(),
            channel_id=channel.id,
            guild_id=None if channel.is_private else channel.guild_id,
            author_id=author_id,
            content=body.get("content") or "",
            flags=int(flags),
            tts=bool(body.get("tts")),
            nonce=body.get("nonce"),
            allowed_mentions=body.get("allowed_mentions"),
        )
        message.attachments = self._new_attachments(body, files, channel.id, ephemeral)
        message.embeds = self._render_embeds(body.get("embeds") or [], message.attachments)
        message.components = self._number_components(body.get("components") or [])
        reference = body.get("message_reference")
        if reference and interaction is None:
            target = self.world.messages.get(int(reference.get("message_id") or 0))
            if target is None or target.deleted or target.channel_id != channel.id:
                if reference.get("fail_if_not_exists", True):
                    raise err.form_error(
                        "message_reference", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message"
                    )
            else:
                message.type = MessageType.REPLY
                message.message_reference = {
                    "type": 0,
                    "message_id": str(target.id),
                    "channel_id": str(channel.id),
                    "guild_id": str(channel.guild_id),
                }
        if interaction is not None:
            self._mark_interaction_message(message, interaction)
        perms = self.world.permissions_in(channel.id, author_id) if interaction is None else 0
        self.world.resolve_mentions(message, message.allowed_mentions, perms)
        self.world.messages[message.id] = message
        if not ephemeral:
            channel.last_message_id = message.id
            if channel.is_thread:
                channel.message_count += 1
                channel.total_message_sent += 1
        self._log_message("create", message)
        return message

    def _interaction_metadata(self, rec: InteractionRecord) -> JSON:
        metadata: JSON = {
            "id": str(rec.id),
            "type": rec.type,
            "user": self.world.users[rec.user_id].payload(),
            "authorizing_integration_owners": rec.payload["authorizing_integration_owners"],
        }
        if rec.type == APPLICATION_COMMAND:
            metadata.update(name=rec.name, command_type=1)
        elif rec.type == MESSAGE_COMPONENT:
            metadata["interacted_message_id"] = str(rec.source_message_id)
        elif rec.type == MODAL_SUBMIT and rec.opened_by is not None:
            metadata["triggering_interaction_metadata"] = self._interaction_metadata(rec.opened_by)
        return metadata

    def _mark_interaction_message(self, message: Message, rec: InteractionRecord) -> None:
        message.interaction_metadata = self._interaction_metadata(rec)
        if rec.type == APPLICATION_COMMAND:
            message.type = MessageType.CHAT_INPUT_COMMAND
        message.interaction_id = rec.id
        message.webhook_id = self.application_id
        message.application_id = self.application_id

    def _apply_edit(self, message: Message, body: JSON, files: Sequence[UploadedFile]) -> Message:
        kept = message.attachments
        if "attachments" in body and body["attachments"] is not None:
            keep_ids = {str(a.get("id")) for a in body["attachments"] if isinstance(a, dict)}
            kept = [a for a in message.attachments if str(a.id) in keep_ids]
        limits.check_message(
            body,
            [len(f.data) for f in files],
            size_limit=self.attachment_size_limit,
            creating=False,
            kept_attachments=len(kept),
        )
        new = self._new_attachments(body, files, message.channel_id, message.ephemeral)
        content = (body.get("content") or "") if "content" in body else message.content
        embeds = (
            self._render_embeds(body.get("embeds") or [], kept + new)
            if "embeds" in body
            else message.embeds
        )
        components = (
            self._number_components(body.get("components") or [])
            if "components" in body
            else message.components
        )
        if not (content or embeds or components or kept or new):
            raise err.empty_message()
        message.content, message.embeds, message.components = content, embeds, components
        message.attachments = kept + new
        if "flags" in body and body["flags"] is not None:
            toggled = MessageFlag.SUPPRESS_EMBEDS | MessageFlag.IS_COMPONENTS_V2
            message.flags = (message.flags & ~toggled) | (int(body["flags"]) & toggled)
        message.flags &= ~MessageFlag.LOADING
        if "allowed_mentions" in body:
            message.allowed_mentions = body["allowed_mentions"]
        perms = (
            0
            if message.webhook_id
            else self.world.permissions_in(message.channel_id, message.author_id)
        )
        self.world.resolve_mentions(message, message.allowed_mentions, perms)
        message.edited_timestamp = now()
        message.edits += 1
        self._log_message("update", message)
        return message

    def _delete(self, message: Message) -> None:
        message.deleted = True
        self._log_message("delete", message)

    # ----- channel routes -------------------------------------------------------------------

    async def _get_channel(self, call: _Call) -> tuple[int, Any]:
        channel = self._channel(call)
        self._require(channel, 0)
        return 200, self.world.channel_payload(channel)

    def _unarchive_for_send(self, channel: Channel, by_bot: bool) -> None:
        """Sending into an archived thread reopens it; a locked one refuses."""
        if not (channel.is_thread and channel.archived):
            return
        if channel.locked and not (
            by_bot and self.world.can(channel.id, self.bot_user.id, Perm.MANAGE_THREADS)
        ):
            raise err.thread_archived()
        channel.archived = False
        channel.archive_timestamp = now()
        self._emit("THREAD_UPDATE", self.world.channel_payload(channel))

    async def _post_message(self, call: _Call) -> tuple[int, Any]:
        channel = self._channel(call)
        body = call.body if isinstance(call.body, dict) else {}
        perm = Perm.SEND_MESSAGES_IN_THREADS if channel.is_thread else Perm.SEND_MESSAGES
        if call.files:
            perm |= Perm.ATTACH_FILES
        if body.get("message_reference"):
            perm |= Perm.READ_MESSAGE_HISTORY
        self._require(channel, perm)
        if channel.is_dm and not self.world.users[channel.recipient_id or 0].accepts_dms:
            raise err.cannot_message_user()
        # Discord: with enforce_nonce, a create whose nonce the same author used in the last
        # few minutes returns that message instead of making another.
        nonce = body.get("nonce")
        if nonce is not None and body.get("enforce_nonce"):
            earlier = self.world.message_with_nonce(self.bot_user.id, nonce, NONCE_WINDOW_S)
            if earlier is not None:
                return 200, self.world.message_payload(earlier)
        self._unarchive_for_send(channel, by_bot=True)
        message = self._create_message(channel, self.bot_user.id, body, call.files)
        return 200, self.world.message_payload(message)

    def _message_in(self, channel: Channel, call: _Call) -> Message:
        message = self.world.messages.get(_snowflake_param(call, "message_id"))
        if (
            message is None
            or message.deleted
            or message.ephemeral
            or message.channel_id != channel.id
        ):
            raise err.unknown_message()
        return message

    async def _get_message(self, call: _Call) -> tuple[int, Any]:
        channel = self._channel(call)
        self._require(channel, Perm.READ_MESSAGE_HISTORY)
        return 200, self.world.message_payload(self._message_in(channel, call))

    async def _history(self, call: _Call) -> tuple[int, Any]:
        channel = self._channel(call)
        self._require(channel, Perm.READ_MESSAGE_HISTORY)
        limit = max(1, min(100, int(call.query.get("limit", "50"))))
        messages = self.world.channel_messages(channel.id)  # oldest first
        if "before" in call.query:
            messages = [m for m in messages if m.id < int(call.query["before"])]
        if "after" in call.query:
            # Discord returns the messages right after ``after``, still newest first.
            messages = [m for m in messages if m.id > int(call.query["after"])][:limit]
        if "around" in call.query:
            pivot = int(call.query["around"])
            older = [m for m in messages if m.id <= pivot][-math.ceil(limit / 2) :]
            newer = [m for m in messages if m.id > pivot][: limit // 2]
            messages = older + newer
        chosen = list(reversed(messages))[:limit]
        return 200, [self.world.message_payload(m) for m in chosen]

    async def _edit_message(self, call: _Call) -> tuple[int, Any]:
        channel = self._channel(call)
        self._require(channel, 0)
        message = self._message_in(channel, call)
        body = call.body if isinstance(call.body, dict) else {}
        if message.author_id != self.bot_user.id:
            # Others' messages only allow toggling SUPPRESS_EMBEDS, with MANAGE_MESSAGES.
            if set(body) - {"flags"}:
                raise err.cannot_edit_others()
            self._require(channel, Perm.MANAGE_MESSAGES)
        self._apply_edit(message, body, call.files)
        return 200, self.world.message_payload(message)

    async def _delete_message(self, call: _Call) -> tuple[int, Any]:
        channel = self._channel(call)
        message = self._message_in(channel, call)
        self._require(channel, 0 if message.author_id == self.bot_user.id else Perm.MANAGE_MESSAGES)
        self._delete(message)
        return 204, None

    async def _edit_channel(self, call: _Call) -> tuple[int, Any]:
        channel = self._channel(call)
        body = call.body if isinstance(call.body, dict) else {}
        if channel.is_thread:
            manage = self.world.can(channel.id, self.bot_user.id, Perm.MANAGE_THREADS)
            self._require(channel, 0)
            if "locked" in body and bool(body["locked"]) != channel.locked and not manage:
                raise err.missing_permissions()
            if channel.owner_id != self.bot_user.id and not manage:
                raise err.missing_permissions()
            if channel.locked and not manage:
                raise err.thread_archived()
            if "archived" in body and bool(body["archived"]) != channel.archived:
                channel.archived = bool(body["archived"])
                channel.archive_timestamp = now()
            for key in ("locked", "invitable"):
                if key in body:
                    setattr(channel, key, bool(body[key]))
            for key in ("name", "auto_archive_duration", "rate_limit_per_user"):
                if key in body and body[key] is not None:
                    setattr(channel, key, body[key])
            self._emit("THREAD_UPDATE", self.world.channel_payload(channel))
        else:
            self._require(channel, Perm.MANAGE_CHANNELS)
            for key in ("name", "topic", "nsfw", "rate_limit_per_user", "position"):
                if key in body:
                    setattr(channel, key, body[key])
            self._emit("CHANNEL_UPDATE", channel.payload())
        self._changed()
        return 200, self.world.channel_payload(channel)

    async def _delete_channel(self, call: _Call) -> tuple[int, Any]:
        channel = self._channel(call)
        self._require(channel, Perm.MANAGE_THREADS if channel.is_thread else Perm.MANAGE_CHANNELS)
        payload = self.world.channel_payload(channel)
        del self.world.channels[channel.id]
        if channel.is_thread:
            self._emit(
                "THREAD_DELETE",
                {key: payload[key] for key in ("id", "guild_id", "parent_id", "type")},
            )
        else:
            self.world.guild_of(channel).channel_ids.remove(channel.id)
            self._emit("CHANNEL_DELETE", payload)
        self._changed()
        return 200, payload

    def _start_thread(
        self, parent: Channel, body: JSON, *, private: bool, thread_id: int | None = None
    ) -> Channel:
        if parent.type != ChannelType.GUILD_TEXT:
            raise err.form_error(
                "type", "CHANNEL_TYPE_INVALID", "Threads need a text channel parent"
            )
        self._require(
            parent, Perm.CREATE_PRIVATE_THREADS if private else Perm.CREATE_PUBLIC_THREADS
        )
        name = body.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 100:
            raise err.form_error(
                "name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
            )
        thread = self.world.add_thread(
            parent.id,
            name,
            owner_id=self.bot_user.id,
            private=private,
            thread_id=thread_id,
            auto_archive_duration=int(body.get("auto_archive_duration") or 1440),
            invitable=bool(body.get("invitable", True)),
        )
        thread.rate_limit_per_user = int(body.get("rate_limit_per_user") or 0)
        self._emit("THREAD_CREATE", {**self.world.channel_payload(thread), "newly_created": True})
        self._changed()
        return thread

    async def _thread_from_message(self, call: _Call) -> tuple[int, Any]:
        parent = self._channel(call)
        message = self._message_in(parent, call)
        if message.thread_id is not None:
            raise err.thread_exists()
        body = call.body if isinstance(call.body, dict) else {}
        # A thread started from a message shares the message's id.
        thread = self._start_thread(parent, body, private=False, thread_id=message.id)
        message.thread_id = thread.id
        message.flags |= MessageFlag.HAS_THREAD
        self._log_message("update", message)
        return 201, self.world.channel_payload(thread)

    async def _thread_without_message(self, call: _Call) -> tuple[int, Any]:
        parent = self._channel(call)
        body = call.body if isinstance(call.body, dict) else {}
        private = int(body.get("type") or ChannelType.PRIVATE_THREAD) == ChannelType.PRIVATE_THREAD
        thread = self._start_thread(parent, body, private=private)
        if not private:
            # Discord announces public threads in the parent with a system message.
            notice = Message(
                id=snowflake(),
                channel_id=parent.id,
                guild_id=parent.guild_id,
                author_id=self.bot_user.id,
                content=thread.name,
                type=MessageType.THREAD_CREATED,
                message_reference={
                    "type": 0,
                    "channel_id": str(thread.id),
                    "guild_id": str(parent.guild_id),
                },
            )
            self.world.messages[notice.id] = notice
            parent.last_message_id = notice.id
            self._log_message("create", notice)
        return 201, self.world.channel_payload(thread)

    async def _join_thread(self, call: _Call) -> tuple[int, Any]:
        thread = self._channel(call)
        if not thread.is_thread:
            raise err.form_error("channel_id", "CHANNEL_TYPE_INVALID", "Not a thread")
        self._require(thread, 0)
        if thread.archived:
            raise err.thread_archived()
        if self.bot_user.id not in thread.member_ids:
            thread.member_ids.add(self.bot_user.id)
            self._emit(
                "THREAD_MEMBER_UPDATE",
                {
                    "id": str(thread.id),
                    "user_id": str(self.bot_user.id),
                    "guild_id": str(thread.guild_id),
                    "join_timestamp": now().isoformat(),
                    "flags": 0,
                },
            )
            self._changed()
        return 204, None

    async def _leave_thread(self, call: _Call) -> tuple[int, Any]:
        thread = self._channel(call)
        thread.member_ids.discard(self.bot_user.id)
        self._changed()
        return 204, None

    async def _typing(self, call: _Call) -> tuple[int, Any]:
        channel = self._channel(call)
        self._require(
            channel, Perm.SEND_MESSAGES_IN_THREADS if channel.is_thread else Perm.SEND_MESSAGES
        )
        return 204, None

    # ----- interaction callbacks and webhooks ----------------------------------------------

    async def _interaction_callback(self, call: _Call) -> tuple[int, Any]:
        rec = self.interactions.get(_snowflake_param(call, "interaction_id"))
        if rec is None or rec.token != call.params["interaction_token"]:
            raise err.unknown_interaction()
        if rec.ack is not None:
            raise err.already_acknowledged()
        arrived = self._now()
        if arrived - rec.created_at > self.ack_deadline:
            raise err.unknown_interaction()
        body = call.body if isinstance(call.body, dict) else {}
        kind = body.get("type")
        if kind not in _ALLOWED_CALLBACKS[rec.type] or (
            kind in (6, 7) and rec.source_message_id is None
        ):
            raise err.form_error(
                "type",
                "INTERACTION_CALLBACK_TYPE_INVALID",
                f"Callback type {kind} is not valid for interaction type {rec.type}",
            )
        data = body.get("data") or {}
        channel = self.world.channels[rec.channel_id]
        resource: JSON | None = None
        if kind == 8:
            choices = data.get("choices") or []
            if len(choices) > limits.CHOICES_MAX:
                raise err.form_error(
                    "data.choices", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."
                )
            rec.autocomplete_choices = choices
        elif kind == 9:
            limits.check_modal(body.get("data"))
            rec.modal = ModalRecord.from_components(
                data["custom_id"], data["title"], self._number_components(data["components"])
            )
        elif kind == 4:
            message = self._create_message(
                channel, self.bot_user.id, data, call.files, interaction=rec
            )
            rec.original_message_id = message.id
            resource = {"type": 4, "message": self.world.message_payload(message)}
        elif kind == 5:
            message = self._create_message(
                channel,
                self.bot_user.id,
                {"flags": int(data.get("flags") or 0) & MessageFlag.EPHEMERAL},
                [],
                interaction=rec,
                extra_flags=MessageFlag.LOADING,
            )
            rec.original_message_id = message.id
        else:  # 6 and 7 act on the message the component sat on
            rec.original_message_id = rec.source_message_id
            if kind == 7:
                source = self.world.messages[rec.source_message_id or 0]
                self._apply_edit(source, data, call.files)
                resource = {"type": 7, "message": self.world.message_payload(source)}
        rec.ack = Ack(type=kind, body=body, at=arrived, latency=arrived - rec.created_at)
        self._changed()
        if call.query.get("with_response") not in _TRUE:
            return 204, None
        original = rec.original_message()
        interaction: JSON = {"id": str(rec.id), "type": rec.type}
        if original is not None and kind in (4, 5, 7):
            interaction.update(
                response_message_id=str(original.id),
                response_message_loading=original.loading,
                response_message_ephemeral=original.ephemeral,
            )
        answer: JSON = {"interaction": interaction}
        if resource is not None:
            answer["resource"] = resource
        return 200, answer

    def _webhook_interaction(self, call: _Call) -> InteractionRecord:
        if _snowflake_param(call, "webhook_id") != self.application_id:
            raise err.unknown_webhook()
        rec = self._by_token.get(call.params["webhook_token"])
        if rec is None or self._now() - rec.created_at > self.token_lifetime:
            raise err.invalid_webhook_token()
        if rec.ack is None:
            raise err.unknown_webhook()
        return rec

    def _webhook_message(self, call: _Call, rec: InteractionRecord) -> Message:
        raw = call.params.get("message_id")
        if raw is None:  # .../messages/@original
            message = rec.original_message()
        else:
            message_id = _snowflake_param(call, "message_id")
            ours = message_id == rec.original_message_id or message_id in rec.followup_ids
            message = self.world.messages.get(message_id) if ours else None
        if message is None or message.deleted:
            raise err.unknown_message()
        return message

    async def _get_webhook_message(self, call: _Call) -> tuple[int, Any]:
        rec = self._webhook_interaction(call)
        return 200, self.world.message_payload(self._webhook_message(call, rec))

    async def _edit_webhook_message(self, call: _Call) -> tuple[int, Any]:
        rec = self._webhook_interaction(call)
        message = self._webhook_message(call, rec)
        body = call.body if isinstance(call.body, dict) else {}
        self._apply_edit(message, body, call.files)
        return 200, self.world.message_payload(message)

    async def _delete_webhook_message(self, call: _Call) -> tuple[int, Any]:
        rec = self._webhook_interaction(call)
        self._delete(self._webhook_message(call, rec))
        return 204, None

    async def _execute_webhook(self, call: _Call) -> tuple[int, Any]:
        rec = self._webhook_interaction(call)
        body = call.body if isinstance(call.body, dict) else {}
        original = rec.original_message()
        if rec.ack is not None and rec.ack.type == 5 and original is not None and original.loading:
            # After a defer, the first followup fills in the "thinking…" message.
            message = self._apply_edit(original, body, call.files)
        else:
            channel = self.world.channels[rec.channel_id]
            message = self._create_message(
                channel, self.bot_user.id, body, call.files, interaction=rec
            )
        rec.followup_ids.append(message.id)
        self._changed()
        if call.query.get("wait") in _TRUE:
            return 200, self.world.message_payload(message)
        return 204, None

    # ----- acting as a user ------------------------------------------------------------------

    def _find_command(self, guild_id: int, name: str, kind: int = 1) -> JSON:
        # Outside guilds (guild id 0) only global commands exist.
        for table in (self.world.guild_commands.get(guild_id, {}), self.world.global_commands):
            for command in table.values():
                if command["name"] == name and command.get("type", 1) == kind:
                    return command
        known = sorted(c["name"] for c in [*self.commands(), *self.commands(guild_id)])
        raise LookupError(f"/{name} is not registered (synced commands: {known})")

    def _context(self, channel: Channel, user_id: int) -> tuple[int, JSON]:
        """(interaction context, authorizing_integration_owners) of an interaction from
        ``channel``: 0 in a guild (through the guild's install when the bot is in it,
        else through the user's own), 1 the bot's DM, 2 a group DM (both through the
        user's install)."""
        if channel.is_private:
            return (1 if channel.is_dm else 2), {"1": str(user_id)}
        if self.bot_user.id in self.world.guilds[channel.guild_id].members:
            return 0, {"0": str(channel.guild_id)}
        return 0, {"1": str(user_id)}

    def _check_available(self, command: JSON, channel: Channel, user_id: int) -> None:
        # Discord offers a command only in its contexts (none given: all of them), and
        # only through an installation type it lists (none given: the guild install).
        context, owners = self._context(channel, user_id)
        contexts = command.get("contexts")
        if contexts is None and command.get("dm_permission") is False:
            contexts = [0, 2]  # the older flag: not in the bot's DM
        if contexts is not None and context not in contexts:
            where = ("guilds", "the bot's DM", "group DMs")[context]
            raise CommandUnavailable(f"/{command['name']} is not available in {where}")
        installs = command.get("integration_types") or [0]
        if not any(int(kind) in installs for kind in owners):
            raise CommandUnavailable(
                f"/{command['name']} is not installed here (integration types {installs})")
        if channel.is_private:
            return
        perms = self.world.permissions_in(channel.id, user_id)
        required = command.get("default_member_permissions")
        if not perms & Perm.USE_APPLICATION_COMMANDS:
            raise CommandUnavailable(f"user {user_id} may not use application commands here")
        if required is not None:
            # "0" means administrators only.
            needed = int(required) or ALL_PERMISSIONS
            if perms & needed != needed:
                raise CommandUnavailable(f"/{command['name']} needs permissions {required}")
        if command.get("nsfw") and not self._channel_nsfw(channel):
            raise CommandUnavailable(
                f"/{command['name']} is age-restricted and this channel is not NSFW"
            )

    def _channel_nsfw(self, channel: Channel) -> bool:
        parent = self.world.channels.get(channel.parent_id) if channel.parent_id else channel
        return bool(parent and parent.nsfw)

    def _resolved_channel(self, channel: Channel, user_id: int) -> JSON:
        data: JSON = {
            "id": str(channel.id),
            "name": channel.name,
            "type": int(channel.type),
            "permissions": str(self.world.permissions_in(channel.id, user_id)),
            "nsfw": self._channel_nsfw(channel),
            "guild_id": str(channel.guild_id),
            "flags": 0,
        }
        if channel.is_thread:
            full = self.world.channel_payload(channel)
            data.update(parent_id=full["parent_id"], thread_metadata=full["thread_metadata"])
        return data

    def _option(
        self,
        spec: JSON,
        value: Any,
        resolved: dict[str, dict[str, JSON]],
        channel: Channel,
        user_id: int,
    ) -> JSON:
        """One option as the Discord client would send it, checked against its spec."""
        name, kind = spec["name"], spec["type"]
        guild = self.world.guilds.get(channel.guild_id)  # None in DMs and group DMs
        if kind in (6, 7, 8, 9, 11):
            if kind == 11:
                value = self._user_file(value, channel)
                resolved.setdefault("attachments", {})[str(value.id)] = value.payload()
                return {"name": name, "type": kind, "value": str(value.id)}
            target = int(getattr(value, "id", value))
            if kind in (6, 9) and target in self.world.users:
                resolved.setdefault("users", {})[str(target)] = self.world.users[target].payload()
                member = guild.members.get(target) if guild is not None else None
                if member is not None:
                    permissions = self.world.permissions_in(channel.id, target)
                    resolved.setdefault("members", {})[str(target)] = member.payload(
                        permissions=permissions
                    )
            elif kind in (8, 9) and guild is not None and target in guild.roles:
                resolved.setdefault("roles", {})[str(target)] = guild.roles[target].payload()
            elif kind == 7 and target in self.world.channels:
                resolved_channel = self.world.channels[target]
                types = spec.get("channel_types")
                if types and int(resolved_channel.type) not in types:
                    raise ValueError(
                        f"option {name!r} does not accept channel type {resolved_channel.type}"
                    )
                resolved.setdefault("channels", {})[str(target)] = self._resolved_channel(
                    resolved_channel, user_id
                )
            else:
                raise ValueError(f"option {name!r}: {target} is not a known user/role/channel")
            return {"name": name, "type": kind, "value": str(target)}
        checks: dict[int, type | tuple[type, ...]] = {3: str, 4: int, 5: bool, 10: (int, float)}
        if kind in checks and (
            not isinstance(value, checks[kind]) or (kind in (4, 10) and isinstance(value, bool))
        ):
            raise ValueError(f"option {name!r} expects type {kind}, got {value!r}")
        choices = spec.get("choices")
        if choices and value not in [c["value"] for c in choices]:
            raise ValueError(
                f"option {name!r} must be one of {[c['value'] for c in choices]}, got {value!r}"
            )
        if kind == 3 and not spec.get("min_length", 0) <= len(value) <= spec.get(
            "max_length", 6000
        ):
            raise ValueError(f"option {name!r} has a length outside its bounds")
        if kind in (4, 10) and not (
            spec.get("min_value", -math.inf) <= value <= spec.get("max_value", math.inf)
        ):
            raise ValueError(f"option {name!r} is outside its bounds")
        return {"name": name, "type": kind, "value": value}

    def _build_options(
        self,
        command: JSON,
        given: Mapping[str, Any] | Sequence[JSON] | None,
        subcommand: str | None,
        channel: Channel,
        user_id: int,
        *,
        focused: str | None = None,
    ) -> tuple[list[JSON], dict[str, dict[str, JSON]]]:
        resolved: dict[str, dict[str, JSON]] = {}
        top: list[JSON] = []
        container, specs = top, command.get("options") or []
        for part in (subcommand or "").split():
            spec = next((s for s in specs if s["name"] == part and s["type"] in (1, 2)), None)
            if spec is None:
                raise ValueError(f"/{command['name']} has no subcommand (group) {part!r}")
            wrapper: JSON = {"name": part, "type": spec["type"], "options": []}
            container.append(wrapper)
            container, specs = wrapper["options"], spec.get("options") or []
        if any(s["type"] in (1, 2) for s in specs):
            raise ValueError(f"/{command['name']} {subcommand or ''}: pick a subcommand")
        if given is None or isinstance(given, Sequence):
            container.extend(copy.deepcopy(list(given or [])))
            return top, resolved
        by_name = {s["name"]: s for s in specs}
        for name, value in given.items():
            spec = by_name.get(name)
            if spec is None:
                raise ValueError(
                    f"/{command['name']} has no option {name!r}; it has {sorted(by_name)}"
                )
            if name == focused:
                container.append(
                    {"name": name, "type": spec["type"], "value": value, "focused": True}
                )
            else:
                container.append(self._option(spec, value, resolved, channel, user_id))
        missing = [s["name"] for s in specs if s.get("required") and s["name"] not in given]
        if missing and focused is None:
            raise ValueError(f"/{command['name']} is missing required options {missing}")
        return top, resolved

    async def _send_interaction(
        self,
        kind: int,
        guild_id: int,
        channel_id: int,
        user_id: int,
        data: JSON,
        *,
        name: str | None,
        message: Message | None = None,
        locale: str = "en-US",
        opened_by: InteractionRecord | None = None,
    ) -> InteractionRecord:
        channel = self.world.channels.get(channel_id)
        if channel is None or channel.guild_id != guild_id:
            raise ValueError(f"channel {channel_id} is not in guild {guild_id}")
        if not self.gateway.live_connections:
            raise RuntimeError("no bot is connected to the gateway to receive the interaction")
        interaction_id = snowflake()
        token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(96)
        context, owners = self._context(channel, user_id)
        payload: JSON = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": kind,
            "data": data,
            "token": token,
            "version": 1,
            "locale": locale,
            "entitlements": [],
            "entitlement_sku_ids": [],
            "authorizing_integration_owners": owners,
            "context": context,
            "attachment_size_limit": self.attachment_size_limit,
        }
        if channel.is_private:
            # No guild, no member: the user who acted, in a channel the bot may not be in.
            if self.world.permissions_in(channel.id, user_id) == 0:
                raise ValueError(f"user {user_id} is not in channel {channel_id}")
            payload.update(
                channel=self.world.channel_payload(channel),
                channel_id=str(channel.id),
                user=self.world.users[user_id].payload(),
                app_permissions=str(int(USER_APP_PERMISSIONS)),
            )
        else:
            guild = self.world.guilds[guild_id]
            member = guild.members.get(user_id)
            if member is None:
                raise ValueError(f"user {user_id} is not a member of {guild.name}")
            perms = self.world.permissions_in(channel.id, user_id)
            if not perms & Perm.VIEW_CHANNEL:
                raise CommandUnavailable(f"user {user_id} cannot see channel {channel.name}")
            # A user-installed app in a guild the bot is not in acts for the user alone.
            app_perms = (self.world.permissions_in(channel.id, self.bot_user.id)
                         if "0" in owners else int(USER_APP_PERMISSIONS))
            payload.update(
                guild={"id": str(guild.id), "locale": guild.locale, "features": []},
                guild_id=str(guild.id),
                guild_locale=guild.locale,
                channel={**self.world.channel_payload(channel), "permissions": str(perms)},
                channel_id=str(channel.id),
                member=member.payload(self.world.users[user_id], permissions=perms),
                app_permissions=str(app_perms),
            )
        if message is not None:
            payload["message"] = self.world.message_payload(message)
        rec = InteractionRecord(
            host=self,
            id=interaction_id,
            token=token,
            type=kind,
            payload=payload,
            guild_id=guild_id,
            channel_id=channel_id,
            user_id=user_id,
            created_at=self._now(),
            name=name,
            source_message_id=message.id if message is not None else None,
            opened_by=opened_by,
        )
        self.interactions[interaction_id] = rec
        self._by_token[token] = rec
        await self.gateway.dispatch("INTERACTION_CREATE", payload)
        return rec

    async def invoke_slash(
        self,
        guild_id: int,
        channel_id: int,
        user_id: int,
        name: str,
        options: Mapping[str, Any] | Sequence[JSON] | None = None,
        subcommand: str | None = None,
        *,
        locale: str = "en-US",
    ) -> InteractionRecord:
        """Run ``/name [subcommand] options`` as ``user_id``. ``options`` is either a
        mapping ``{option_name: value}`` (typed and validated against the synced command,
        like the Discord client does; attachment options take ``(filename, bytes[,
        content_type])``, user/channel/role options an id or object) or a raw list of
        Discord option objects. ``subcommand`` is ``"sub"`` or ``"group sub"``."""
        channel = self.world.channels[channel_id]
        command = self._find_command(guild_id, name)
        self._check_available(command, channel, user_id)
        built, resolved = self._build_options(command, options, subcommand, channel, user_id)
        data: JSON = {"id": command["id"], "name": name, "type": 1, "options": built}
        if resolved:
            data["resolved"] = resolved
        if command.get("guild_id"):
            data["guild_id"] = command["guild_id"]
        return await self._send_interaction(
            APPLICATION_COMMAND, guild_id, channel_id, user_id, data, name=name, locale=locale
        )

    async def autocomplete(
        self,
        guild_id: int,
        channel_id: int,
        user_id: int,
        name: str,
        options: Mapping[str, Any] | Sequence[JSON],
        focused: str | None = None,
        subcommand: str | None = None,
        *,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> list[JSON]:
        """Type into option ``focused`` (or pass raw options with ``"focused": True``)
        and return the choices the bot answers with."""
        channel = self.world.channels[channel_id]
        command = self._find_command(guild_id, name)
        self._check_available(command, channel, user_id)
        if isinstance(options, Mapping) and focused is None:
            raise ValueError("say which option is focused")
        built, resolved = self._build_options(
            command, options, subcommand, channel, user_id, focused=focused or ""
        )
        data: JSON = {"id": command["id"], "name": name, "type": 1, "options": built}
        if resolved:
            data["resolved"] = resolved
        if command.get("guild_id"):
            data["guild_id"] = command["guild_id"]
        rec = await self._send_interaction(
            AUTOCOMPLETE, guild_id, channel_id, user_id, data, name=name
        )
        await rec.wait_ack(timeout)
        return rec.autocomplete_choices or []

    def _component_message(self, channel_id: int, message_id: int, user_id: int) -> Message:
        message = self.world.messages.get(message_id)
        if message is None or message.deleted or message.channel_id != channel_id:
            raise ValueError(f"message {message_id} is not in channel {channel_id}")
        if message.ephemeral and (message.interaction_metadata or {}).get("user", {}).get(
            "id"
        ) != str(user_id):
            raise ValueError("only the user who got an ephemeral message can see it")
        return message

    async def click_button(
        self, guild_id: int, channel_id: int, user_id: int, message_id: int, custom_id: str
    ) -> InteractionRecord:
        message = self._component_message(channel_id, message_id, user_id)
        button = message.component(custom_id)
        if button is None or button.get("type") != 2:
            raise ValueError(
                f"message {message_id} has no button {custom_id!r}; it has {message.custom_ids}"
            )
        if button.get("disabled"):
            raise ValueError(f"button {custom_id!r} is disabled")
        data = {"custom_id": custom_id, "component_type": 2, "id": button.get("id")}
        return await self._send_interaction(
            MESSAGE_COMPONENT, guild_id, channel_id, user_id, data, name=custom_id, message=message
        )

    async def select(
        self,
        guild_id: int,
        channel_id: int,
        user_id: int,
        message_id: int,
        custom_id: str,
        values: Sequence[str],
    ) -> InteractionRecord:
        message = self._component_message(channel_id, message_id, user_id)
        menu = message.component(custom_id)
        if menu is None or menu.get("type") not in _SELECT_TYPES:
            raise ValueError(f"message {message_id} has no select menu {custom_id!r}")
        if menu.get("disabled"):
            raise ValueError(f"select {custom_id!r} is disabled")
        if not menu.get("min_values", 1) <= len(values) <= menu.get("max_values", 1):
            raise ValueError(f"select {custom_id!r} takes between min_values and max_values values")
        data: JSON = {
            "custom_id": custom_id,
            "component_type": menu["type"],
            "values": list(values),
            "id": menu.get("id"),
        }
        if menu["type"] == 3:
            offered = [o["value"] for o in menu.get("options", [])]
            if not set(values) <= set(offered):
                raise ValueError(f"select {custom_id!r} offers {offered}, not {list(values)}")
        else:
            resolved: dict[str, dict[str, JSON]] = {}
            channel = self.world.channels[channel_id]
            kind = {5: 6, 6: 8, 7: 9, 8: 7}[menu["type"]]  # select type -> option type
            for value in values:
                self._option(
                    {"name": custom_id, "type": kind}, int(value), resolved, channel, user_id
                )
            data["resolved"] = resolved
        return await self._send_interaction(
            MESSAGE_COMPONENT, guild_id, channel_id, user_id, data, name=custom_id, message=message
        )

    def upload_attachment(
        self,
        filename: str,
        data: bytes,
        content_type: str | None = None,
        *,
        channel_id: int | None = None,
        description: str | None = None,
        width: int | None = None,
        height: int | None = None,
        size: int | None = None,
        served: bytes | None = None,
        cut_after: int | None = None,
        cdn_status: int = 200,
        cdn_delay: float = 0.0,
        ephemeral: bool = True,
    ) -> StoredAttachment:
        """A file as a member's Discord client uploads it for a slash command's attachment
        option (or a modal's file upload): pass the result as the option's value.

        ``content_type`` is what Discord reports (default: from the file's magic bytes,
        else its extension; a test may lie, e.g. ``image/png`` for text), ``width`` and
        ``height`` default to the image's (from its header, so a truncated or huge PNG
        still has them; left out for data that is no image), ``size`` to ``len(data)``.
        The CDN serves ``data`` at the URL, or ``served`` instead, or answers
        ``cdn_status``, after ``cdn_delay`` seconds; ``cut_after`` drops the connection
        after that many bytes. The URL names the channel the file is first used in
        (``channel_id`` fixes it now)."""
        attachment = self.world.store_attachment(
            None, filename, data, content_type, description=description, ephemeral=ephemeral
        )
        if width is not None:
            attachment.width = width
        if height is not None:
            attachment.height = height
        attachment.declared_size = size
        attachment.served = served
        attachment.cut_after = cut_after
        attachment.cdn_status = cdn_status
        attachment.cdn_delay = cdn_delay
        if channel_id is not None:
            self.world.bind_attachment(attachment, channel_id)
        return attachment

    def _user_file(self, value: Any, channel: Channel) -> StoredAttachment:
        """A file a user gives an option or a modal: a StoredAttachment from
        :meth:`upload_attachment`, or ``(filename, bytes[, content_type])``."""
        if isinstance(value, StoredAttachment):
            self.world.bind_attachment(value, channel.id)
            return value
        filename, data, *declared = value
        return self.world.store_attachment(
            channel.id, filename, data, declared[0] if declared else None, ephemeral=True
        )

    def _find_modal(
        self,
        guild_id: int,
        channel_id: int,
        user_id: int,
        modal: InteractionRecord | str,
        message_id: int | None,
    ) -> InteractionRecord:
        if isinstance(modal, InteractionRecord):
            opened = modal
            if opened.modal is None:
                raise ValueError(f"interaction {opened.name!r} was not answered with a modal")
        else:
            found = [
                rec
                for rec in self.interactions.values()
                if rec.modal is not None
                and rec.modal.custom_id == modal
                and rec.user_id == user_id
                and rec.channel_id == channel_id
                and (message_id is None or rec.source_message_id == message_id)
            ]
            if not found:
                raise ValueError(
                    f"no modal {modal!r} was shown to user {user_id} in channel {channel_id}"
                )
            opened = found[-1]
        if opened.user_id != user_id:
            raise ValueError(f"only the user it was shown to ({opened.user_id}) can submit it")
        if (opened.guild_id, opened.channel_id) != (guild_id, channel_id):
            raise ValueError(f"the modal was shown in channel {opened.channel_id}")
        if message_id is not None and opened.source_message_id != message_id:
            raise ValueError(f"the modal was not opened from message {message_id}")
        return opened

    def _modal_answer(
        self,
        opened: InteractionRecord,
        values: Mapping[str, Any],
        channel: Channel,
    ) -> tuple[list[JSON], dict[str, dict[str, JSON]]]:
        """The submitted components, mirroring the modal's tree: each input with its
        ``custom_id`` and ``value``/``values`` (and the ids Discord numbered)."""
        modal = opened.modal
        assert modal is not None
        unknown = set(values)
        resolved: dict[str, dict[str, JSON]] = {}
        unset = object()

        def answer(component: JSON) -> JSON:
            kind, custom_id = component["type"], component["custom_id"]
            unknown.discard(custom_id)
            given = values.get(custom_id, unset)
            required = component.get("required") is not False
            out: JSON = {"type": kind, "id": component.get("id"), "custom_id": custom_id}
            what = f"{custom_id!r} of modal {modal.custom_id!r}"
            if kind == 4:
                text = (component.get("value") or "") if given is unset else (given or "")
                if not isinstance(text, str):
                    raise ValueError(f"text input {what} takes a string")
                if required and not text:
                    raise ValueError(f"text input {what} is required")
                low, high = component.get("min_length") or 0, component.get("max_length") or 4000
                if text and not low <= len(text) <= high:
                    raise ValueError(f"text input {what} takes {low}-{high} characters")
                out["value"] = text
                return out
            if kind == 23:  # checkbox
                checked = bool(component.get("default")) if given is unset else given
                if not isinstance(checked, bool):
                    raise ValueError(f"checkbox {what} takes a bool")
                out["value"] = checked
                return out
            options = component.get("options") or []
            offered = [str(o.get("value")) for o in options]
            if kind == 21:  # radio group: one value or none
                default = next((o["value"] for o in options if o.get("default")), None)
                choice = default if given is unset else given
                if choice is None and required:
                    raise ValueError(f"radio group {what} is required")
                if choice is not None and str(choice) not in offered:
                    raise ValueError(f"radio group {what} offers {offered}, not {choice!r}")
                out["value"] = None if choice is None else str(choice)
                return out
            if given is unset:
                if kind in (3, 22):
                    picked: list[Any] = [o["value"] for o in options if o.get("default")]
                else:
                    picked = [int(d["id"]) for d in component.get("default_values") or []]
            elif isinstance(given, str | int | StoredAttachment) or (
                kind == 19 and isinstance(given, tuple) and given and isinstance(given[0], str)
            ):
                picked = [given]
            else:
                picked = list(given)
            low = component.get("min_values", 1)
            high = component.get("max_values", len(options) if kind == 22 else 1)
            if (picked or required) and not low <= len(picked) <= high:
                raise ValueError(f"{what} takes between {low} and {high} values")
            if kind in (3, 22):
                if not {str(v) for v in picked} <= set(offered):
                    raise ValueError(f"{what} offers {offered}, not {picked}")
                out["values"] = [str(v) for v in picked]
            elif kind == 19:  # file upload
                files = [self._user_file(v, channel) for v in picked]
                for stored in files:
                    resolved.setdefault("attachments", {})[str(stored.id)] = stored.payload()
                out["values"] = [str(f.id) for f in files]
            else:  # user, role, mentionable and channel selects
                option_kind = {5: 6, 6: 8, 7: 9, 8: 7}[kind]
                for value in picked:
                    self._option(
                        {"name": custom_id, "type": option_kind, "channel_types":
                         component.get("channel_types")},
                        int(getattr(value, "id", value)),
                        resolved,
                        channel,
                        opened.user_id,
                    )
                out["values"] = [str(getattr(v, "id", v)) for v in picked]
            return out

        def mirror(top: JSON) -> JSON:
            kind = top["type"]
            if kind == 1:
                children = [answer(c) for c in top.get("components") or []]
                return {"type": 1, "id": top.get("id"), "components": children}
            if kind == 18:
                return {"type": 18, "id": top.get("id"), "component": answer(top["component"])}
            return {"type": kind, "id": top.get("id")}  # a Text Display

        components = [mirror(c) for c in modal.components]
        if unknown:
            raise ValueError(f"the modal has no inputs {sorted(unknown)}, only {modal.custom_ids}")
        return components, resolved

    @overload
    async def submit_modal(
        self,
        opened: InteractionRecord,
        values: Mapping[str, Any] | None = None,
        /,
        *,
        user_id: int | None = None,
    ) -> InteractionRecord: ...

    @overload
    async def submit_modal(
        self,
        guild_id: int,
        channel_id: int,
        user_id: int,
        modal: InteractionRecord | str,
        /,
        values: Mapping[str, Any] | None = None,
        *,
        message_id: int | None = None,
    ) -> InteractionRecord: ...

    async def submit_modal(self, *args: Any, **kwargs: Any) -> InteractionRecord:
        """Fill in and submit a modal the bot opened, as the member it was shown to:
        ``submit_modal(guild_id, channel_id, user_id, modal, values, message_id=...)``,
        where ``modal`` is the interaction the bot answered with it (type 9) or the
        modal's custom_id (the latest such modal shown to that user in that channel;
        ``message_id`` picks the one opened from that message's component), or the
        shorthand ``submit_modal(opened, values)``.

        ``values`` maps an input's custom_id to what the user entered: text for text
        inputs (those left out keep their prefilled text), a list of option values or
        ids for selects, StoredAttachments or ``(filename, bytes[, type])`` for file
        uploads, a value for radio groups, a bool for checkboxes. Checked the way
        Discord's client checks them (required, lengths, options). The MODAL_SUBMIT
        (type 5) carries ``message`` when the modal was opened from a component."""
        if args and isinstance(args[0], InteractionRecord):
            opened_rec: InteractionRecord = args[0]
            values = args[1] if len(args) > 1 else kwargs.get("values")
            guild_id, channel_id = opened_rec.guild_id, opened_rec.channel_id
            user_id = kwargs.get("user_id") or opened_rec.user_id
            target: InteractionRecord | str = opened_rec
            message_id = None
        else:
            guild_id, channel_id, user_id, target = args[:4]
            values = args[4] if len(args) > 4 else kwargs.get("values")
            message_id = kwargs.get("message_id")
        opened = self._find_modal(guild_id, channel_id, user_id, target, message_id)
        assert opened.modal is not None
        channel = self.world.channels[channel_id]
        components, resolved = self._modal_answer(opened, values or {}, channel)
        data: JSON = {"custom_id": opened.modal.custom_id, "components": components}
        if resolved:
            data["resolved"] = resolved
        source = self.world.messages.get(opened.source_message_id or 0)
        rec = await self._send_interaction(
            MODAL_SUBMIT,
            guild_id,
            channel_id,
            user_id,
            data,
            name=opened.modal.custom_id,
            message=source if source is not None and not source.deleted else None,
            opened_by=opened,
        )
        opened.submits.append(rec)
        return rec

    async def user_message(
        self,
        channel_id: int,
        user_id: int,
        content: str = "",
        *,
        files: Sequence[FileSpec] = (),
        reply_to: int | None = None,
    ) -> Message:
        """Post as a user (MESSAGE_CREATE goes to the bot, shaped by its intents)."""
        channel = self.world.channels[channel_id]
        if self.world.member(channel.guild_id, user_id) is None:
            raise ValueError(f"user {user_id} is not a member of that guild")
        perm = Perm.SEND_MESSAGES_IN_THREADS if channel.is_thread else Perm.SEND_MESSAGES
        if files:
            perm |= Perm.ATTACH_FILES
        if not self.world.can(channel_id, user_id, Perm.VIEW_CHANNEL | perm):
            raise PermissionError(f"user {user_id} may not post in {channel.name}")
        if channel.is_thread and channel.locked:
            raise PermissionError(f"thread {channel.name} is locked")
        self._unarchive_for_send(channel, by_bot=False)
        body: JSON = {"content": content}
        if reply_to is not None:
            body["message_reference"] = {"message_id": reply_to}
        uploads = [
            UploadedFile(
                f"files[{i}]",
                spec[0],
                spec[1],
                spec[2] if len(spec) > 2 else "application/octet-stream",
            )
            for i, spec in enumerate(files)
        ]
        return self._create_message(channel, user_id, body, uploads)
