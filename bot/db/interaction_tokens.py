"""The interaction tokens of jobs answered only through them (a DM, a group DM, a server
that only the member installed the app to), kept until they expire so that a restart
within Discord's 15 minutes can still answer.

A token is a secret for its 15 minutes: it lives in the `kv` table only (never in a job's
origin, which /queue, logs and remote workers see), is never logged, and is removed when
its job no longer needs it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import aiosqlite

PREFIX = "interaction_token:"


@dataclass(frozen=True)
class InteractionToken:
    value: str
    expires_at: float  # Unix time Discord stops taking it

    def left_s(self, now: float | None = None) -> float:
        return self.expires_at - (time.time() if now is None else now)

    def __repr__(self) -> str:  # a secret: never in a log line or a traceback
        return f"InteractionToken(expires_at={self.expires_at})"


class InteractionTokens:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def put(self, job_id: str, token: InteractionToken) -> None:
        value = json.dumps({"token": token.value, "expires_at": token.expires_at})
        await self.db.execute(
            "INSERT INTO kv (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (PREFIX + job_id, value))

    async def get(self, job_id: str) -> InteractionToken | None:
        """The job's token while it lives; None once expired or never stored."""
        async with self.db.execute("SELECT value FROM kv WHERE key = ?",
                                   (PREFIX + job_id,)) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        data = json.loads(row[0])
        token = InteractionToken(str(data["token"]), float(data["expires_at"]))
        return token if token.left_s() > 0 else None

    async def drop(self, job_id: str) -> None:
        await self.db.execute("DELETE FROM kv WHERE key = ?", (PREFIX + job_id,))

    async def drop_expired(self) -> None:
        """Remove every expired token (what a crash left behind)."""
        async with self.db.execute("SELECT key, value FROM kv WHERE key LIKE ?",
                                   (PREFIX + "%",)) as cur:
            rows = list(await cur.fetchall())
        now = time.time()
        for key, value in rows:
            if float(json.loads(value)["expires_at"]) <= now:
                await self.db.execute("DELETE FROM kv WHERE key = ?", (key,))
