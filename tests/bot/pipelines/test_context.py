"""The prompt's trimming in blocks: a growing story keeps its prompt's start (so the key/value
cache stays useful) until it outgrows the budget by a block, whatever the lines' lengths."""

from __future__ import annotations

from itertools import pairwise

from bot.pipelines.context import build_context, trimmed_start
from bot.pipelines.text import StoryWriter


def test_trimmed_start_drops_whole_blocks() -> None:
    assert trimmed_start([10] * 5, 100) == 0  # fits: nothing dropped
    # budget 100, blocks of 25 tokens: 110 tokens drop a block (3 lines of 10), not 1 line.
    assert trimmed_start([10] * 11, 100) == 3
    starts = [trimmed_start([10] * n, 100) for n in range(11, 20)]
    assert starts == [3, 3, 5, 5, 5, 8, 8, 10, 10]  # moves a block (2-3 lines) at a time
    assert trimmed_start([10] * 11, 100, parts=1000) == 1  # tiny blocks: the fewest lines
    for n in range(11, 40):
        costs = [7 + (i * 5) % 11 for i in range(n)]
        assert sum(costs[trimmed_start(costs, 100):]) <= 100


def test_a_growing_story_keeps_its_prompts_start_between_trims(
    story_writer: StoryWriter,
) -> None:
    tok = story_writer.tokenizer
    lines = [f"Line {i}: the {'old ' * (i % 4)}robot oiled the gears." for i in range(60)]
    contexts = [build_context(tok, "The seed.", lines[:n], 300) for n in range(1, 61)]
    extended = sum(b.startswith(a) for a, b in pairwise(contexts))
    assert all(len(tok.encode(c)) <= 300 for c in contexts)
    fewest = [build_context(tok, "The seed.", lines[:n], 300, trim_parts=10_000)
              for n in range(1, 61)]
    unaligned = sum(b.startswith(a) for a, b in pairwise(fewest))  # trims every line
    assert extended >= 40 and unaligned <= extended - 20  # a block: ~4 lines
    assert contexts[-1].endswith("Line 59: the old old old robot oiled the gears.")
