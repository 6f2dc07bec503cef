"""Live writing: the line as the model has written it so far, for the story's message.

`LiveLine.update` is called after every generated token (from the writer's stopping
criterion, on the generating thread). At most once per `every_s` it decodes the tokens so
far, cleans them as the final line will be (an unfinished one: a cut-off last word is not
shown) and passes the text on, unless it is empty, unchanged, or contains a blocked term: a
line is checked before anyone sees it. Decoding 60 tokens every half second costs nothing
next to the model's step.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

__all__ = ["LiveLine"]


class LiveLine:
    def __init__(
        self,
        *,
        decode: Callable[[Sequence[int]], str],
        clean: Callable[[str], str],
        is_blocked: Callable[[str], str | None],
        emit: Callable[[int, int, str], None],
        every_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.decode = decode
        self.clean = clean
        self.is_blocked = is_blocked
        self.emit = emit
        self.every_s = every_s
        self.clock = clock
        self._looked_at: float | None = None
        self.shown = ""  # the last text passed on

    def update(self, step: int, total: int, tokens: Sequence[int]) -> None:
        """`tokens`: the line's tokens so far (step `step` of at most `total`)."""
        now = self.clock()
        if self._looked_at is not None and now - self._looked_at < self.every_s:
            return
        text = self.clean(self.decode(tokens))
        if not text:
            return  # nothing to show yet: look again at the next token
        self._looked_at = now
        if text == self.shown or self.is_blocked(text) is not None:
            return
        self.shown = text
        self.emit(step, total, text)
