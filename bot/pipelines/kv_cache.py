"""The story model's key/value cache of each story's prompt, kept between lines.

Continue on a long story would otherwise read the whole prompt again for every line. Per
`cache_key` (a story, or a branch of one) `PrefixCache` keeps the token ids of the prompt it
has read and the model's `DynamicCache` for them. The next prompt is compared token by token:
the cache is cropped to the part the two share (everything, when the story only grew) and
only the rest is read. A rewind, a rewrite or a cast change makes the prompts differ earlier,
so more is read again; a prompt that shares nothing is read fresh. The stored cache is never
handed to `generate` (which appends to it): it gets a copy, repeated for several sequences.

Entries are evicted least recently used first, to stay within `max_bytes` of tensors; a
different model drops them all. Used from the one worker thread only.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["CacheUse", "PrefixCache", "cache_bytes"]


@dataclass(frozen=True)
class CacheUse:
    """What one prompt took from the cache: a copy for `generate`, and how much was read."""

    past: Any  # a DynamicCache holding all of the prompt but its last token
    reused: int  # prompt tokens whose keys and values came from the cache
    read: int  # prompt tokens read now (the last one is read by generate itself)


@dataclass
class _Entry:
    ids: torch.Tensor  # 1-D: the tokens `past` holds
    past: Any
    nbytes: int


class PrefixCache:
    """Per-key prompt caches, least recently used evicted beyond `max_bytes` (0 = none)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._model_id: int | None = None

    @property
    def nbytes(self) -> int:
        return sum(e.nbytes for e in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def drop(self, key: str) -> None:
        self._entries.pop(key, None)

    def use(self, key: str, model: Any, input_ids: torch.Tensor, *, sequences: int = 1
            ) -> CacheUse | None:
        """The cache for the prompt `input_ids` (shape (1, n)), for `sequences` sequences.

        Reads what the stored prefix lacks (all but the last token, which generate must
        read itself to give its first logits), stores the result under `key`, and returns
        a copy for generate. None when there is nothing to cache (no key, a budget of 0, a
        prompt of one token): generate then reads the prompt as usual.
        """
        if not key or self.max_bytes <= 0 or input_ids.shape[1] < 2:
            return None
        if self._model_id != id(model):  # another model's keys mean nothing to this one
            self.clear()
            self._model_id = id(model)
        ids = input_ids[0, :-1]
        entry = self._entries.pop(key, None)
        shared = _shared_prefix(entry.ids, ids) if entry is not None else 0
        if entry is None or shared == 0 or not _crop(entry.past, len(entry.ids) - shared):
            entry, shared = _Entry(ids[:0], _new_cache(model), 0), 0
        if shared < len(ids):
            with torch.inference_mode():
                # The base model: the prompt's hidden states are not needed, only its keys
                # and values (the LM head over every position would cost vocab × tokens).
                model.base_model(input_ids=ids[shared:].unsqueeze(0),
                                 past_key_values=entry.past, use_cache=True)
        entry.ids = ids
        entry.nbytes = cache_bytes(entry.past)
        past = entry.past
        if entry.nbytes <= self.max_bytes:
            self._entries[key] = entry
            self._evict()
            past = copy.deepcopy(past)  # generate appends to the cache it is given
        if sequences > 1:
            past.batch_repeat_interleave(sequences)
        return CacheUse(past, reused=shared, read=len(ids) - shared)

    def _evict(self) -> None:
        while self._entries and self.nbytes > self.max_bytes:
            self._entries.popitem(last=False)


def cache_bytes(past: Any) -> int:
    """Bytes of the key and value tensors a cache holds."""
    total = 0
    for layer in getattr(past, "layers", ()):
        for tensor in (getattr(layer, "keys", None), getattr(layer, "values", None)):
            if isinstance(tensor, torch.Tensor):
                total += tensor.numel() * tensor.element_size()
    return total


def _new_cache(model: Any) -> Any:
    from transformers import DynamicCache

    return DynamicCache(config=model.config)


def _shared_prefix(a: torch.Tensor, b: torch.Tensor) -> int:
    n = min(len(a), len(b))
    if n == 0:
        return 0
    differs = (a[:n] != b[:n]).nonzero()
    return int(differs[0, 0]) if len(differs) else n


def _crop(past: Any, tokens: int) -> bool:
    """Remove the last `tokens` from the cache; False when it cannot be (a sliding-window
    layer past its window keeps no older states): the caller reads fresh."""
    if tokens == 0:
        return True
    try:
        past.crop(-tokens)
    except (RuntimeError, ValueError):
        return False
    return True
