"""The story so far as the text model's prompt, trimmed to its budget in cache-friendly steps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["TRIM_PARTS", "build_context", "trimmed_start"]

# When the story outgrows the budget, its oldest lines are dropped a block of about
# budget / TRIM_PARTS tokens at a time. Dropping the fewest lines that fit, one per Continue,
# would change the prompt's start at every line and make the worker's key/value cache of the
# prompt useless (bot/pipelines/kv_cache.py); dropping a block keeps the start fixed until the
# story has grown by as much again, so those lines read only their new text. The price: up
# to 1 / TRIM_PARTS of the budget unused just after a drop.
TRIM_PARTS = 4

_SENTENCE_END_CHARS = ".!?…"
_CLOSERS = "\"'”’»)]"


def trimmed_start(costs: Sequence[int], budget: int, parts: int = TRIM_PARTS) -> int:
    """The first line to keep of lines costing `costs` tokens, for at most `budget` tokens.

    Counted from the first line, the dropped lines always add up to a whole number of
    blocks (budget // parts tokens, rounded up to whole lines): the start only moves when the
    story grows past the next block, whatever the lines' lengths.
    """
    over = sum(costs) - budget
    if over <= 0:
        return 0
    block = max(1, budget // max(1, parts))
    target = -(-over // block) * block  # tokens to drop: whole blocks, at least `over`
    dropped = 0
    for i, cost in enumerate(costs):
        if dropped >= target:
            return i
        dropped += cost
    return len(costs)


def _as_sentence(line: str) -> str:
    """One story line as prose: single spaces, ending like a sentence (context only)."""
    line = " ".join(line.split())
    if line and line.rstrip(_CLOSERS)[-1:] not in _SENTENCE_END_CHARS:
        line += "."
    return line


def build_context(tokenizer: Any, seed_line: str, lines: Sequence[str], budget_tokens: int,
                  *, trim_parts: int = TRIM_PARTS) -> str:
    """The prompt for the next line: the seed line, then the most recent lines that fit.

    Lines are joined as one paragraph of prose. When the story is longer than
    `budget_tokens`, the oldest lines after the seed are dropped, a block of about
    budget / `trim_parts` tokens at a time (see TRIM_PARTS); the seed line is always kept
    (cut to the budget itself if it alone is too long).
    """

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False))

    seed = _as_sentence(seed_line)
    if count(seed) >= budget_tokens:
        ids = tokenizer.encode(seed, add_special_tokens=False)[:budget_tokens]
        return str(tokenizer.decode(ids))
    texts = [_as_sentence(line) for line in lines]
    # 1. Drop the oldest lines, whole blocks of tokens (see TRIM_PARTS).
    costs = [count(" " + text) if text else 0 for text in texts]
    start = trimmed_start(costs, budget_tokens - count(seed), trim_parts)
    kept = [text for text in texts[start:] if text]
    # 2. BPE merges across the joins can differ slightly from the sum: re-check the whole.
    while kept and count(" ".join([seed, *kept])) > budget_tokens:
        kept.pop(0)
    return " ".join([seed, *kept])
