"""Counting a picture prompt's CLIP tokens on the bot's side, for `bot.story.cast`.

The image model's own tokenizer is loaded once, from its files on this host (a folder, or
the hub cache: never downloaded here), as a separate copy: the engine's belongs to the
executor's worker thread. Where it can't be loaded (Celery mode on a host without the model,
a model not cached yet) the word-based estimate counts instead.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from bot.config import ImageSettings
from bot.story.cast import TokenCounter, estimate_tokens

log = logging.getLogger(__name__)

MIN_VOCAB = 256


def load_clip_counter(source: str) -> TokenCounter | None:
    """The token counter of the diffusers pipeline at `source` (its `tokenizer`), or None
    when its tokenizer is not on this host."""
    try:
        from transformers import CLIPTokenizer

        tokenizer: Any = CLIPTokenizer.from_pretrained(source, subfolder="tokenizer",
                                                       local_files_only=True)
    except Exception as exc:  # not installed, not cached, not a CLIP pipeline
        log.info("picture prompts are fitted with a token estimate: no CLIP tokenizer for "
                 "%s (%s)", source, exc)
        return None
    # Without its files transformers 5 builds an empty tokenizer rather than failing; a
    # real one has at least a token per byte.
    if len(tokenizer) < MIN_VOCAB:
        log.info("picture prompts are fitted with a token estimate: %s has no tokenizer "
                 "files here", source)
        return None

    def count(text: str) -> int:
        # tokenize() adds no start/end markers and, unlike encode(), does not warn about
        # texts longer than 77 tokens (long prompts are chunked by the engine).
        return len(tokenizer.tokenize(text))

    return count


class PromptTokens:
    """The story pictures' token counter, loaded on first use (off the event loop)."""

    def __init__(self, image: ImageSettings) -> None:
        self.image = image
        self._counter: TokenCounter | None = None
        self._lock = asyncio.Lock()

    async def counter(self) -> TokenCounter:
        async with self._lock:
            if self._counter is None:
                source = self.image.default_profile.path  # story pictures use the default
                loaded = await asyncio.to_thread(load_clip_counter, source)
                self._counter = loaded or estimate_tokens
            return self._counter
