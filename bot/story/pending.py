"""Story operations asked for and not finished yet, from the moment a member asks.

An operation waits for its turn on the story (`bot.story.turns`) before its first job reaches
the executor, and while it waits the executor cannot see it: its limits, /queue and /cancel
see it through this registry instead. A waiting operation counts towards its member's
per-person limit, is listed by /queue and can be cancelled (it then never runs); once its
turn came it is running, and its jobs are the executor's to show and cancel.

The registry also knows what each story has in progress, so a second Continue ▶ while a line
is being written is answered at once instead of stacking another line. Loop thread only;
every method but `wait_turn` is synchronous, so a request is registered (or refused) before
the next one is looked at.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from dataclasses import dataclass, field

from bot.story.turns import Turn

# What each operation is called in /queue.
WHAT = {"continue": "story line", "rewrite": "rewritten line", "redraw": "picture",
        "add": "member line", "settle": "story line", "choose": "story line",
        "more": "more candidate lines", "keep": "kept line"}
# Operations that write (or finish) a line: while one of them works on a line after the one
# a Continue ▶ or ↻ Rewrite was pressed on, that press is answered instead of stacked.
WRITES_A_LINE = frozenset({"continue", "rewrite", "settle", "choose", "more", "keep"})
NEXT_LINE = frozenset({"continue", "choose"})  # what Continue ▶ asks for
LINE_BUSY = "A line is already being written for this story; it will appear in a moment."


def pending_id() -> str:
    return f"story-{secrets.token_hex(4)}"


@dataclass(eq=False)
class PendingOp:
    story_id: int
    title: str
    op: str  # continue, rewrite, redraw, add, settle
    line: int | None  # the line it writes or redraws, when known (not for a member's line)
    user_id: int
    user_name: str
    running: bool = False  # its turn came: its jobs are in the executor (or about to be)
    id: str = field(default_factory=pending_id)
    cancelled_by: int | None = None
    _cancelled: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def what(self) -> str:
        return WHAT.get(self.op, "story work")

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()


class PendingWork:
    def __init__(self) -> None:
        self._ops: dict[str, PendingOp] = {}  # in the order they were asked for

    def add(self, *, story_id: int, title: str, op: str, user_id: int, user_name: str,
            line: int | None = None, running: bool = False) -> PendingOp:
        pending = PendingOp(story_id=story_id, title=title, op=op, line=line,
                            user_id=user_id, user_name=user_name, running=running)
        self._ops[pending.id] = pending
        return pending

    def busy(self, story_id: int, op: str, line: int | None = None) -> str | None:
        """Why `op` on `line` (for a Continue ▶, the line it would write; None when not
        known) must not be stacked on what the story has in progress, or None.

        A Continue ▶ pressed on line k while line k+1 (or a later one) is being written,
        or a ↻ Rewrite of line k then, is answered: what the member asked for is on its way,
        or can't be done. Pressed on a line that the thread shows already, it waits its turn:
        that line's operation is only finishing."""
        for other in self._ops.values():
            if other.story_id != story_id:
                continue
            if op in WRITES_A_LINE and other.op in WRITES_A_LINE and (
                    line is None or other.line is None or other.line > line
                    or (other.line == line and (op in NEXT_LINE or op == other.op))):
                return LINE_BUSY
            if op == "redraw" and other.line == line and other.op in ("redraw", "rewrite"):
                if other.op == "rewrite":
                    return (f"Line {line} is being rewritten; its new picture comes with it "
                            "in a moment.")
                return f"Line {line} is already being redrawn; it will appear in a moment."
        return None

    def waiting(self) -> list[PendingOp]:
        """Operations still waiting for their turn, in the order they were asked for."""
        return [op for op in self._ops.values() if not op.running]

    def of_user(self, user_id: int) -> list[PendingOp]:
        return [op for op in self._ops.values() if op.user_id == user_id]

    def of_story(self, story_id: int) -> list[PendingOp]:
        return [op for op in self._ops.values() if op.story_id == story_id]

    def get(self, pending_id: str) -> PendingOp | None:
        return self._ops.get(pending_id)

    def cancel(self, pending_id: str, by_user: int | None = None) -> bool:
        """Cancel an operation that still waits for its turn: it will never run. False when
        it is unknown, or running already (cancel its job in the executor instead)."""
        op = self._ops.get(pending_id)
        if op is None or op.running:
            return False
        op.cancelled_by = by_user
        op._cancelled.set()
        del self._ops[pending_id]
        return True

    async def wait_turn(self, op: PendingOp, turn: Turn) -> bool:
        """Wait for the operation's turn; True when it came (the operation now runs), False
        when the operation was cancelled first."""
        if not op.cancelled:
            turn_came = asyncio.ensure_future(turn.wait())
            cancelled = asyncio.ensure_future(op._cancelled.wait())
            try:
                await asyncio.wait({turn_came, cancelled}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (turn_came, cancelled):
                    if not task.done():
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task
            if turn_came.done() and not turn_came.cancelled():
                turn_came.result()  # re-raise what the wait raised, if anything
        if op.cancelled:
            return False
        op.running = True
        return True

    def finish(self, op: PendingOp) -> None:
        """The operation ended (or was refused); safe to call more than once."""
        if self._ops.get(op.id) is op:
            del self._ops[op.id]

    @property
    def active(self) -> int:
        return len(self._ops)
