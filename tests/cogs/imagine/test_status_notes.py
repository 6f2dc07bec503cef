"""The status message before a job's first step says what the run is doing."""

from __future__ import annotations

import time

from bot.executor.jobs import Progress
from cogs.imagine.status import progress_text


def test_a_note_shows_until_the_first_step() -> None:
    started = time.monotonic()
    text = progress_text("**a fox**", Progress(0, 0, note="loading model dreamy"), started)
    assert text.startswith("🎨 **a fox**\nLoading model dreamy…")
    stepping = progress_text("**a fox**", Progress(3, 10), started)
    assert "3/10" in stepping and "Loading" not in stepping
