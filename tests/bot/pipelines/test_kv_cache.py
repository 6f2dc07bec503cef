"""The prompt's key/value cache between story lines, on the tiny GPT-Neo: a growing story
feeds the model only its new tokens, a rewind or a rewrite reads from where the story
changed, and every line is the one written without the cache."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch

from bot.pipelines.kv_cache import PrefixCache
from bot.pipelines.text import StoryWriter, TextModelOptions
from bot.pipelines.tiny import TinyModelPaths

SEED_LINE = "Once upon a time, a dragon lived under the old lighthouse."
SHORT = 40  # characters per line: the tiny model's 256 positions then hold over 8 lines


def writer(tiny_models: TinyModelPaths, **options: Any) -> StoryWriter:
    w = StoryWriter(TextModelOptions(model=str(tiny_models.story), device="cpu", **options))
    w.load()
    return w


@contextmanager
def fed_tokens(model: Any) -> Iterator[list[int]]:
    """The length of every input the model's embedding reads (each forward, any caller)."""
    seen: list[int] = []
    hook = model.get_input_embeddings().register_forward_hook(
        lambda _module, args, _out: seen.append(int(args[0].shape[1])))
    try:
        yield seen
    finally:
        hook.remove()


def grow(w: StoryWriter, count: int, *, key: str = "story", candidates: int = 1,
         lines: list[str] | None = None) -> list[str]:
    lines = list(lines or [])
    for _ in range(count):
        lines.append(w.next_lines(SEED_LINE, lines, rng_seed=100 + len(lines),
                                  candidates=candidates, cache_key=key, max_chars=SHORT)[0])
    return lines


def test_a_long_story_feeds_only_the_new_tokens(tiny_models: TinyModelPaths) -> None:
    w = writer(tiny_models)
    lines: list[str] = []
    grown = trimmed = 0
    previous = 0
    for _ in range(24):  # long enough that the front of the story is trimmed, twice or more
        with fed_tokens(w.model) as seen:
            lines = grow(w, 1, lines=lines)
        stats = w.last_stats
        # One forward reads what the cache lacks (all but the last prompt token), then
        # generate reads that token and one per new token.
        assert max(seen) == max(stats.prompt_tokens - stats.cached_tokens - 1, 1)
        if previous and stats.prompt_tokens > previous:
            grown += 1  # read: only the line written last time (+ a BPE merge at the join)
            assert stats.prompt_tokens - stats.cached_tokens <= len(
                w.tokenizer.encode(" " + lines[-2])) + 2
        elif previous:
            trimmed += 1  # a block of old lines dropped: read again after the seed line
            assert 0 < stats.cached_tokens < stats.prompt_tokens / 2
        previous = stats.prompt_tokens
    assert previous > 150  # a nearly full budget (256 - 60 new): trimmed all along
    # A trim drops a quarter of the budget (here about two lines), so it comes only every
    # few lines; dropping the fewest lines would trim (and read everything) at every line.
    assert grown + trimmed == 23 and trimmed >= 2 and grown >= 2 * trimmed


def test_the_lines_are_those_written_without_the_cache(tiny_models: TinyModelPaths) -> None:
    cached, plain = writer(tiny_models), writer(tiny_models, cache_mb=0)
    one = grow(cached, 12)
    assert one == grow(plain, 12)
    assert cached.last_stats.cached_tokens > 0 and plain.last_stats.cached_tokens == 0
    # Candidates: the cached prompt repeated for each sequence gives the same three.
    assert (cached.next_lines(SEED_LINE, one, rng_seed=5, candidates=3, cache_key="story")
            == plain.next_lines(SEED_LINE, one, rng_seed=5, candidates=3, cache_key="story"))


def test_greedy_tokens_are_identical_with_a_cropped_cache(story_writer: StoryWriter) -> None:
    model, tok = story_writer.model, story_writer.tokenizer
    cache = PrefixCache(64 * 1024 * 1024)
    short = tok(SEED_LINE + " It dreamed of the sea.", return_tensors="pt").input_ids
    long = tok(SEED_LINE + " It dreamed of the sea. Then it flew west over the hills.",
               return_tensors="pt").input_ids
    other = tok(SEED_LINE + " The robot oiled the gears.", return_tensors="pt").input_ids
    for ids in (short, long, other, long):  # grown, then rewritten (cropped), then grown back
        use = cache.use("k", model, ids)
        assert use is not None and use.reused + use.read == ids.shape[1] - 1
        kwargs: dict[str, Any] = dict(attention_mask=torch.ones_like(ids), do_sample=False,
                                      max_new_tokens=20, pad_token_id=tok.eos_token_id)
        with torch.inference_mode():
            fresh = model.generate(ids, **kwargs)
            reused = model.generate(ids, past_key_values=use.past, **kwargs)
        assert torch.equal(fresh, reused)
    seed_tokens = len(tok.encode(SEED_LINE))
    assert use.reused >= seed_tokens - 1 and use.read > 0  # the seed line came from the cache


def test_a_rewind_or_rewrite_reads_from_where_the_story_changed(
    tiny_models: TinyModelPaths,
) -> None:
    w, plain = writer(tiny_models), writer(tiny_models, cache_mb=0)
    lines = grow(w, 6)
    full = w.last_stats.cached_tokens
    # Rewind to line 3: the prompt shares only its first lines with the cached one.
    rewound = w.next_line(SEED_LINE, lines[:3], rng_seed=9, cache_key="story", max_chars=SHORT)
    assert 0 < w.last_stats.cached_tokens < full
    assert rewound == plain.next_line(SEED_LINE, lines[:3], rng_seed=9, max_chars=SHORT)
    # A rewritten last line: everything before it still comes from the cache.
    before = w.last_stats.cached_tokens
    w.next_line(SEED_LINE, [*lines[:2], "The robot oiled the gears."], rng_seed=9,
                cache_key="story", max_chars=SHORT)
    assert 0 < w.last_stats.cached_tokens <= before
    # Another story under the same key (nothing shared): read fresh.
    w.next_line("A ship sailed past the cliff.", [], rng_seed=9, cache_key="story")
    assert w.last_stats.cached_tokens == 0


def test_the_cache_keeps_to_its_budget_least_recently_used_first(
    story_writer: StoryWriter,
) -> None:
    model, tok = story_writer.model, story_writer.tokenizer
    ids = {key: tok(f"{SEED_LINE} The {key} sang to the tomatoes.", return_tensors="pt")
           .input_ids for key in ("a", "b", "c")}
    probe = PrefixCache(1 << 30)
    probe.use("a", model, ids["a"])
    one = probe.nbytes
    assert one > 0
    cache = PrefixCache(int(one * 2.5))  # room for two stories like these
    for key in ("a", "b", "a", "c"):
        cache.use(key, model, ids[key])
    assert len(cache) == 2 and cache.nbytes <= cache.max_bytes
    assert cache.use("a", model, ids["a"]).reused > 0  # type: ignore[union-attr]  # kept
    assert cache.use("b", model, ids["b"]).reused == 0  # type: ignore[union-attr]  # evicted
    # Too big for the budget: used for this line, not kept.
    tiny = PrefixCache(one // 2)
    assert tiny.use("a", model, ids["a"]) is not None and len(tiny) == 0
    assert PrefixCache(0).use("a", model, ids["a"]) is None
    assert cache.use("", model, ids["a"]) is None  # no key: no cache


def test_another_model_drops_every_entry(tiny_models: TinyModelPaths,
                                         story_writer: StoryWriter) -> None:
    other = writer(tiny_models)
    ids = story_writer.tokenizer(SEED_LINE, return_tensors="pt").input_ids
    cache = PrefixCache(1 << 30)
    cache.use("a", story_writer.model, ids)
    assert cache.use("a", other.model, ids).reused == 0  # type: ignore[union-attr]


@pytest.mark.parametrize("candidates", [1, 3])
def test_the_stored_cache_is_not_changed_by_generate(story_writer: StoryWriter,
                                                     candidates: int) -> None:
    ids = story_writer.tokenizer(SEED_LINE, return_tensors="pt").input_ids
    cache = PrefixCache(1 << 30)
    use = cache.use("a", story_writer.model, ids, sequences=candidates)
    assert use is not None and use.past.layers[0].keys.shape[0] == candidates
    with torch.inference_mode():
        story_writer.model.generate(ids, attention_mask=torch.ones_like(ids),
                                    past_key_values=use.past, max_new_tokens=5,
                                    do_sample=True, num_return_sequences=candidates,
                                    pad_token_id=story_writer.tokenizer.eos_token_id)
    again = cache.use("a", story_writer.model, ids)
    assert again is not None and again.past.get_seq_length() == ids.shape[1] - 1
    assert again.read == 0
