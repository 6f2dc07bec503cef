"""Live writing: the line so far, throttled, cleaned as the final line is, and never shown
with a blocked term in it."""

from __future__ import annotations

import pytest

from bot.pipelines.errors import BlockedTextError
from bot.pipelines.live_text import LiveLine
from bot.pipelines.text import StoryWriter, TextModelOptions, clean_continuation
from bot.pipelines.tiny import TinyModelPaths

SEED_LINE = "Once upon a time, a dragon lived under the old lighthouse."


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_at_most_one_text_per_interval_and_none_blocked() -> None:
    clock = Clock()
    shown: list[tuple[int, str]] = []
    words = ["the", "robot", "oiled", "the", "gears", "of", "the", "dragon", "lamp", "and"]
    live = LiveLine(decode=lambda ids: " ".join(words[i] for i in ids),
                    clean=lambda raw: clean_continuation(raw, finished=False),
                    is_blocked=lambda text: "dragon" if "dragon" in text else None,
                    emit=lambda step, total, text: shown.append((step, text)),
                    every_s=0.5, clock=clock)
    for step in range(1, len(words) + 1):
        live.update(step, 20, list(range(step)))
        clock.now += 0.2
    # Every third step (0.6 s) at most, a cut-off last word left out; from step 8 on the
    # text holds "dragon" and is never shown.
    assert shown == [(1, "the…"), (4, "the robot oiled…"), (7, "the robot oiled the gears of…")]
    assert all("dragon" not in text for _, text in shown)


def test_the_writer_passes_on_the_line_as_it_grows(tiny_models: TinyModelPaths) -> None:
    writer = StoryWriter(TextModelOptions(model=str(tiny_models.story), device="cpu",
                                          live_every_s=0.0))
    writer.load()
    shown: list[tuple[int, int, str]] = []
    line = writer.next_line(SEED_LINE, [], rng_seed=3,
                            on_text=lambda n, total, text: shown.append((n, total, text)))
    assert len(shown) >= 2 and all(total == 60 for _, total, _ in shown)
    assert [n for n, _, _ in shown] == sorted(n for n, _, _ in shown)
    # Each is the cleaned text of an unfinished line: ends with "…" or a sentence end.
    assert all(text and text == " ".join(text.split()) for _, _, text in shown)
    assert line == writer.next_line(SEED_LINE, [], rng_seed=3)  # watching changes nothing

    def long_is_blocked(text: str) -> str | None:
        return "long" if len(text.split()) >= 3 else None

    shown.clear()
    with pytest.raises(BlockedTextError):
        writer.next_line(SEED_LINE, [], rng_seed=3, is_blocked=long_is_blocked,
                         on_text=lambda n, total, text: shown.append((n, total, text)))
    assert shown and all(len(text.split()) < 3 for _, _, text in shown)
