"""The gateway websocket: HELLO, IDENTIFY/READY, heartbeats, RESUME, dispatches.

Behaviour follows Discord's documented protocol closely enough for discord.py's
``DiscordWebSocket``: zlib-stream transport compression when asked for (each message is
compressed and flushed with Z_SYNC_FLUSH, so it ends in ``00 00 ff ff``), per-session
sequence numbers, a replay buffer for RESUME, intents that filter which events are
sent, and the MESSAGE_CONTENT rule that blanks other users' message content.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from .models import JSON
from .world import World

HELLO, HEARTBEAT, IDENTIFY, PRESENCE, VOICE_STATE = 10, 1, 2, 3, 4
RESUME, RECONNECT, REQUEST_MEMBERS, INVALID_SESSION, HEARTBEAT_ACK, DISPATCH = 6, 7, 8, 9, 11, 0

GUILDS = 1 << 0
GUILD_MEMBERS = 1 << 1
GUILD_PRESENCES = 1 << 8
GUILD_MESSAGES = 1 << 9
GUILD_MESSAGE_REACTIONS = 1 << 10
GUILD_MESSAGE_TYPING = 1 << 11
MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT

# Application flags that tell a client which privileged intents the app may use.
_INTENT_APP_FLAGS = {GUILD_PRESENCES: 1 << 13, GUILD_MEMBERS: 1 << 15, MESSAGE_CONTENT: 1 << 19}
APPLICATION_COMMAND_BADGE = 1 << 23

_EVENT_INTENT = {
    **dict.fromkeys(
        (
            "GUILD_UPDATE",
            "GUILD_DELETE",
            "GUILD_ROLE_CREATE",
            "GUILD_ROLE_UPDATE",
            "GUILD_ROLE_DELETE",
            "CHANNEL_CREATE",
            "CHANNEL_UPDATE",
            "CHANNEL_DELETE",
            "THREAD_CREATE",
            "THREAD_UPDATE",
            "THREAD_DELETE",
            "THREAD_LIST_SYNC",
            "THREAD_MEMBER_UPDATE",
            "THREAD_MEMBERS_UPDATE",
        ),
        GUILDS,
    ),
    **dict.fromkeys(
        ("GUILD_MEMBER_ADD", "GUILD_MEMBER_UPDATE", "GUILD_MEMBER_REMOVE"), GUILD_MEMBERS
    ),
    **dict.fromkeys(
        ("MESSAGE_CREATE", "MESSAGE_UPDATE", "MESSAGE_DELETE", "MESSAGE_DELETE_BULK"),
        GUILD_MESSAGES,
    ),
    **dict.fromkeys(("MESSAGE_REACTION_ADD", "MESSAGE_REACTION_REMOVE"), GUILD_MESSAGE_REACTIONS),
    "TYPING_START": GUILD_MESSAGE_TYPING,
    "PRESENCE_UPDATE": GUILD_PRESENCES,
}


@dataclass(frozen=True)
class Heartbeat:
    connection: int  # GatewayConnection.number
    at: float  # event-loop time of arrival
    seq: int | None  # the sequence number the client reported


@dataclass
class GatewaySession:
    id: str
    intents: int
    shard: list[int] | None
    seq: int = 0
    # Serialized frames kept for RESUME; Discord keeps a bounded backlog as well.
    backlog: deque[tuple[int, str]] = field(default_factory=lambda: deque(maxlen=5000))
    connection: GatewayConnection | None = None

    def frames_after(self, seq: int) -> list[str] | None:
        """Frames the client missed, or None if the backlog no longer reaches back."""
        if seq > self.seq:
            return None
        if seq == self.seq:
            return []
        if not self.backlog or self.backlog[0][0] > seq + 1:
            return None
        return [frame for s, frame in self.backlog if s > seq]


class GatewayConnection:
    """One websocket. A single writer task sends frames in the order they were queued,
    which zlib-stream requires (frames are compressed as they are queued)."""

    def __init__(self, number: int, ws: web.WebSocketResponse, compression: str | None) -> None:
        self.number = number
        self.ws = ws
        self.compression = compression
        self._zlib = zlib.compressobj() if compression == "zlib-stream" else None
        self._queue: asyncio.Queue[tuple[str | bytes, asyncio.Future[bool]] | None] = (
            asyncio.Queue()
        )
        self._writer = asyncio.create_task(self._write(), name=f"double-gateway-writer-{number}")
        self.session: GatewaySession | None = None
        self.closed = False
        self.close_code: int | None = None  # the server's code if it closed, else the client's
        self.sent: list[JSON] = []  # every frame sent, for debugging tests

    def send_text(self, text: str) -> asyncio.Future[bool]:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self.closed:
            future.set_result(False)
            return future
        self.sent.append(json.loads(text))
        data: str | bytes = text
        if self._zlib is not None:
            data = self._zlib.compress(text.encode()) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
        self._queue.put_nowait((data, future))
        return future

    def send(self, frame: JSON) -> asyncio.Future[bool]:
        return self.send_text(json.dumps(frame, separators=(",", ":")))

    async def _write(self) -> None:
        while (item := await self._queue.get()) is not None:
            data, future = item
            try:
                if isinstance(data, bytes):
                    await self.ws.send_bytes(data)
                else:
                    await self.ws.send_str(data)
            except (ConnectionError, RuntimeError):
                future.set_result(False)  # the frame stays in the session backlog for RESUME
            else:
                future.set_result(True)

    async def close(self, code: int, reason: str = "") -> None:
        """Close from the server side; waits for queued frames to go out first."""
        if not self.closed:
            self.closed = True
            self.close_code = code
            self._queue.put_nowait(None)
            await self._writer
            await self.ws.close(code=code, message=reason.encode())

    async def finished(self) -> None:
        self.closed = True
        if not self._writer.done():
            self._queue.put_nowait(None)
            await self._writer
        while not self._queue.empty():  # frames nobody will send
            item = self._queue.get_nowait()
            if item is not None and not item[1].done():
                item[1].set_result(False)


class Gateway:
    def __init__(
        self,
        world: World,
        *,
        token: str,
        heartbeat_interval_ms: int,
        resume_url: Callable[[], str],
        privileged_intents: int,
        on_change: Callable[[], None],
    ) -> None:
        self.world = world
        self.token = token
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.privileged_intents = privileged_intents
        self.ack_heartbeats = True  # set False to simulate a zombie connection
        self._resume_url = resume_url
        self._on_change = on_change
        self.sessions: dict[str, GatewaySession] = {}
        self.connections: list[GatewayConnection] = []
        self.heartbeats: list[Heartbeat] = []
        self.identify_count = 0
        self.resume_count = 0
        self.presence_updates: list[JSON] = []
        self.dispatched: list[tuple[str, JSON]] = []

    @property
    def app_flags(self) -> int:
        flags = APPLICATION_COMMAND_BADGE
        for intent, flag in _INTENT_APP_FLAGS.items():
            if self.privileged_intents & intent:
                flags |= flag
        return flags

    @property
    def live_connections(self) -> list[GatewayConnection]:
        return [c for c in self.connections if not c.closed and c.session is not None]

    # ----- the websocket endpoint ------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(timeout=2.0, max_msg_size=16 * 1024 * 1024)
        await ws.prepare(request)
        compression = request.query.get("compress")
        if compression == "zstd-stream":
            compression = None  # no zstd here: plain text frames, which discord.py also reads
        conn = GatewayConnection(len(self.connections) + 1, ws, compression)
        self.connections.append(conn)
        if request.query.get("v") != "10":
            await conn.close(4012, "Invalid API version")
            return ws
        if request.query.get("encoding", "json") != "json":
            await conn.close(4002, "Decode error")  # ETF is not spoken here
            return ws
        conn.send(
            {
                "op": HELLO,
                "d": {
                    "heartbeat_interval": self.heartbeat_interval_ms,
                    "_trace": ["discord-double"],
                },
                "s": None,
                "t": None,
            }
        )
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    text = msg.data if isinstance(msg.data, str) else msg.data.decode()
                    await self._on_frame(conn, text)
                if conn.closed:
                    break
        finally:
            if conn.close_code is None:  # closed by the client
                conn.close_code = ws.close_code
            if conn.session is not None and conn.session.connection is conn:
                conn.session.connection = None
            await conn.finished()
            self._on_change()
        return ws

    async def _on_frame(self, conn: GatewayConnection, text: str) -> None:
        try:
            frame = json.loads(text)
            op, data = frame["op"], frame.get("d")
        except (ValueError, KeyError, TypeError):
            await conn.close(4002, "Decode error")
            return
        loop = asyncio.get_running_loop()
        if op == HEARTBEAT:
            self.heartbeats.append(Heartbeat(conn.number, loop.time(), data))
            if self.ack_heartbeats:
                conn.send({"op": HEARTBEAT_ACK, "d": None, "s": None, "t": None})
            self._on_change()
        elif op == IDENTIFY:
            await self._identify(conn, data)
        elif op == RESUME:
            await self._resume(conn, data)
        elif op in (PRESENCE, REQUEST_MEMBERS, VOICE_STATE):
            if conn.session is None:
                await conn.close(4003, "Not authenticated")
            elif op == PRESENCE:
                self.presence_updates.append(data)
            elif op == REQUEST_MEMBERS:
                self._request_members(conn.session, data)
        else:
            await conn.close(4001, "Unknown opcode")

    async def _identify(self, conn: GatewayConnection, data: JSON) -> None:
        if conn.session is not None:
            await conn.close(4005, "Already authenticated")
            return
        if data.get("token") != self.token:
            await conn.close(4004, "Authentication failed")
            return
        intents = data.get("intents")
        if not isinstance(intents, int) or intents < 0:
            await conn.close(4013, "Invalid intent(s)")
            return
        if intents & PRIVILEGED_INTENTS & ~self.privileged_intents:
            await conn.close(4014, "Disallowed intent(s)")
            return
        shard = data.get("shard")
        if shard is not None and not (len(shard) == 2 and 0 <= shard[0] < shard[1]):
            await conn.close(4010, "Invalid shard")
            return
        # A new IDENTIFY for the same shard replaces older sessions.
        for old in [s for s in self.sessions.values() if s.shard == shard]:
            del self.sessions[old.id]
        session = GatewaySession(id=secrets.token_hex(16), intents=intents, shard=shard)
        self.sessions[session.id] = session
        session.connection, conn.session = conn, session
        self.identify_count += 1
        bot = self.world.bot_user
        ready: JSON = {
            "v": 10,
            "user": {**bot.payload(), "verified": True, "mfa_enabled": False, "email": None},
            "guilds": [
                {"id": str(g.id), "unavailable": True}
                for g in self.world.guilds.values()
                if bot.id in g.members
            ],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self._resume_url(),
            "application": {"id": str(self.world.application_id), "flags": self.app_flags},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "user_settings": {},
            "auth": {},
            "_trace": ["discord-double"],
        }
        if shard is not None:
            ready["shard"] = shard
        self._send_dispatch(session, "READY", ready)
        for guild in self.world.guilds.values():
            if bot.id in guild.members:
                payload = self.world.guild_create_payload(
                    guild, all_members=bool(intents & GUILD_PRESENCES)
                )
                self._send_dispatch(session, "GUILD_CREATE", payload)
        self._on_change()

    async def _resume(self, conn: GatewayConnection, data: JSON) -> None:
        session = self.sessions.get(str(data.get("session_id")))
        frames = None
        if session is not None and data.get("token") == self.token:
            frames = session.frames_after(int(data.get("seq") or 0))
        if session is None or frames is None:
            conn.send({"op": INVALID_SESSION, "d": False, "s": None, "t": None})
            return
        if session.connection is not None and session.connection is not conn:
            await session.connection.close(4000, "Session resumed elsewhere")
        session.connection, conn.session = conn, session
        for frame in frames:
            conn.send_text(frame)
        self.resume_count += 1
        self._send_dispatch(session, "RESUMED", {"_trace": ["discord-double"]})
        self._on_change()

    def _request_members(self, session: GatewaySession, data: JSON) -> None:
        guild = self.world.guilds.get(int(data.get("guild_id") or 0))
        if guild is None:
            return
        wanted = {int(u) for u in data.get("user_ids") or []}
        query = (data.get("query") or "").lower()
        members = [
            m
            for uid, m in guild.members.items()
            if (
                uid in wanted
                if wanted
                else self.world.users[uid].username.lower().startswith(query)
            )
        ]
        limit = data.get("limit") or 0
        if limit:
            members = members[:limit]
        chunk: JSON = {
            "guild_id": str(guild.id),
            "members": [m.payload(self.world.users[m.user_id]) for m in members],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [str(u) for u in wanted if u not in guild.members],
        }
        if data.get("nonce"):
            chunk["nonce"] = data["nonce"]
        self._send_dispatch(session, "GUILD_MEMBERS_CHUNK", chunk)

    # ----- dispatching -----------------------------------------------------------------

    def _send_dispatch(
        self, session: GatewaySession, event: str, data: JSON
    ) -> asyncio.Future[bool] | None:
        session.seq += 1
        text = json.dumps(
            {"op": DISPATCH, "t": event, "s": session.seq, "d": data}, separators=(",", ":")
        )
        session.backlog.append((session.seq, text))
        return None if session.connection is None else session.connection.send_text(text)

    def _shape_for(self, session: GatewaySession, event: str, data: JSON) -> JSON | None:
        """Apply intents: drop events the session did not ask for, and blank message
        content the app may not read (no MESSAGE_CONTENT intent, not the bot's own
        message, the bot not mentioned)."""
        needed = _EVENT_INTENT.get(event)
        if needed is not None and not session.intents & needed:
            return None
        if event in ("MESSAGE_CREATE", "MESSAGE_UPDATE") and not session.intents & MESSAGE_CONTENT:
            bot_id = str(self.world.bot_user.id)
            own = data.get("author", {}).get("id") == bot_id
            mentioned = any(u.get("id") == bot_id for u in data.get("mentions", []))
            if not own and not mentioned:
                data = {**data, "content": "", "embeds": [], "attachments": [], "components": []}
                data.pop("poll", None)
        return data

    def dispatch_nowait(self, event: str, data: JSON) -> list[asyncio.Future[bool]]:
        """Queue ``event`` for every session (buffered for RESUME if disconnected)."""
        self.dispatched.append((event, data))
        futures = []
        for session in list(self.sessions.values()):
            shaped = self._shape_for(session, event, data)
            if shaped is not None:
                future = self._send_dispatch(session, event, shaped)
                if future is not None:
                    futures.append(future)
        return futures

    async def dispatch(self, event: str, data: JSON) -> None:
        await asyncio.gather(*self.dispatch_nowait(event, data))

    # ----- fault injection -------------------------------------------------------------

    async def request_reconnect(self) -> None:
        """Send op 7 RECONNECT; discord.py closes and RESUMEs on resume_gateway_url."""
        for conn in self.live_connections:
            await conn.send({"op": RECONNECT, "d": None, "s": None, "t": None})

    async def drop(self, code: int = 4000) -> None:
        """Close every live socket with ``code`` (4000 lets the client RESUME)."""
        await asyncio.gather(
            *(c.close(code, "dropped by the double") for c in self.live_connections)
        )

    async def invalidate(self, *, resumable: bool = False) -> None:
        """Send op 9; with ``resumable=False`` the client must IDENTIFY again."""
        for conn in self.live_connections:
            if not resumable and conn.session is not None:
                self.sessions.pop(conn.session.id, None)
            await conn.send({"op": INVALID_SESSION, "d": resumable, "s": None, "t": None})

    async def close_all(self, code: int = 1001) -> None:
        await asyncio.gather(
            *(
                asyncio.wait_for(c.close(code, "double stopping"), 3)
                for c in self.connections
                if not c.closed
            ),
            return_exceptions=True,
        )


def heartbeat_gaps(heartbeats: list[Heartbeat]) -> list[float]:
    """Seconds between consecutive heartbeats on the same connection."""
    gaps: list[float] = []
    last: dict[int, float] = {}
    for beat in heartbeats:
        if beat.connection in last:
            gaps.append(beat.at - last[beat.connection])
        last[beat.connection] = beat.at
    return gaps
