"""Story continuation with a causal language model (GPT-Neo by default).

`StoryWriter.next_lines` turns the story so far into a prompt (the seed line always first,
then the most recent lines that fit: bot/pipelines/context.py), samples one or several
continuations reproducibly for a given seed in one batched `generate` call, and cleans each
into one or two whole sentences. A base model continues the text; a chat model is asked for
the next line through its chat template (bot/pipelines/chat.py). With a cache key the
prompt's keys and values are kept for the story's next line (bot/pipelines/kv_cache.py), and
the line being written can be watched as it grows (bot/pipelines/live_text.py).

Like the image engine it is used from ONE worker thread; it is not thread-safe (it seeds
torch's RNG around each sample).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .chat import chat_prompt, clean_chat_reply, resolve_prompt_style
from .context import build_context
from .device import pick_device, pick_dtype
from .errors import (
    BlockedTextError,
    ModelLoadError,
    load_failure,
    loader_errors,
    public_model_name,
    resolve_model_source,
)
from .kv_cache import PrefixCache
from .live_text import LiveLine

__all__ = [
    "BlockedTextError",
    "LineStats",
    "ModelLoadError",
    "StoryWriter",
    "TextModelOptions",
    "build_context",
    "clean_continuation",
]

log = logging.getLogger(__name__)

MIN_PROMPT_TOKENS = 16  # below this the context budget is a configuration mistake
_EXTRA_EMPTY_TRIES = 2  # empty samples get a few more tries on top of `attempts`
_SEED_STRIDE = 1_000_003  # retry k samples with rng_seed + k * this


@dataclass(frozen=True)
class TextModelOptions:
    """How to load and sample the story model (the `[story]` config section)."""

    model: str = "EleutherAI/gpt-neo-125M"
    device: str = "auto"
    dtype: str = "auto"
    max_new_tokens: int = 60
    temperature: float = 0.9
    top_p: float = 0.95
    top_k: int = 50
    repetition_penalty: float = 1.2
    context_tokens: int = 1024  # clamped to the model's max positions
    attempts: int = 3  # samples tried when a line contains a blocked term
    prompt_style: str = "auto"  # "completion", "chat", or "auto": chat with a chat template
    cache_mb: int = 256  # prompt key/value caches kept between lines; 0 = none
    live_every_s: float = 0.5  # the line so far is passed on at most this often


@dataclass(frozen=True)
class LineStats:
    """What the last `next_lines` call read: prompt tokens, and how many came cached."""

    prompt_tokens: int = 0
    cached_tokens: int = 0


def _no_block(_text: str) -> str | None:
    return None


def text_dtype(device: torch.device, preference: str = "auto") -> torch.dtype:
    """The text model's dtype: "auto" on CUDA is bfloat16 where the GPU has it (fp16
    overflows in GPT-Neo's and many chat models' activations), else float16; elsewhere as
    pick_dtype."""
    if preference.strip().lower() == "auto" and device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return pick_dtype(device, preference)


class StoryWriter:
    """Writes the next line of a story. Call `load()` once, then `next_lines()`."""

    def __init__(self, options: TextModelOptions) -> None:
        self.options = options
        self.device = torch.device("cpu")
        self.model: Any = None
        self.tokenizer: Any = None
        self.context_limit = 0  # prompt + new tokens, after clamping to the model
        self.prompt_style = "completion"  # resolved from options.prompt_style at load
        self.cache = PrefixCache(options.cache_mb * 1024 * 1024)
        self.last_stats = LineStats()
        self._chat_overhead = 0  # the chat template's own tokens around the story
        self._eos: list[int] = []

    @property
    def model_name(self) -> str:
        """What story lines call the model: a hub id, or a folder's name, never its path."""
        return public_model_name(self.options.model)

    @property
    def loaded(self) -> bool:
        return self.model is not None

    def load(self) -> None:
        """Load tokenizer and model. Raises ModelLoadError with a clear fix."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        opts = self.options
        self.device = pick_device(opts.device)
        dtype = text_dtype(self.device, opts.dtype)
        source = resolve_model_source(
            opts.model, kind="Story model", config_file="config.json", setting="story.model"
        )
        try:
            tokenizer = AutoTokenizer.from_pretrained(source)
            model: Any = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
        except loader_errors() as exc:
            raise load_failure(
                opts.model, kind="Story model", setting="story.model", cause=exc
            ) from exc
        try:
            style = resolve_prompt_style(opts.prompt_style, tokenizer)
        except ValueError as exc:
            raise ModelLoadError(opts.model, str(exc)) from exc
        overhead = (len(tokenizer(chat_prompt(tokenizer, ""), add_special_tokens=False)
                        .input_ids) if style == "chat" else 0)
        max_positions = int(getattr(model.config, "max_position_embeddings", opts.context_tokens))
        self.context_limit = min(opts.context_tokens, max_positions)
        if self.context_limit - opts.max_new_tokens - overhead < MIN_PROMPT_TOKENS:
            template = f" and the chat template's {overhead}" if overhead else ""
            raise ModelLoadError(
                opts.model,
                f"story.context_tokens ({self.context_limit} after clamping to the model) leaves "
                f"no room for a prompt with story.max_new_tokens={opts.max_new_tokens}"
                f"{template}: the difference must be at least {MIN_PROMPT_TOKENS} tokens",
            )
        model.to(self.device)
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.prompt_style = style
        self._chat_overhead = overhead
        self._eos = _eos_ids(tokenizer, model)
        self.cache.clear()  # another model's keys and values mean nothing to this one
        log.info("story model %s loaded (%s on %s, %s prompts)", opts.model, dtype,
                 self.device, style)

    def next_line(self, seed_line: str, lines: Sequence[str], *, rng_seed: int,
                  **kwargs: Any) -> str:
        """One line: `next_lines` with a single candidate."""
        return self.next_lines(seed_line, lines, rng_seed=rng_seed, candidates=1, **kwargs)[0]

    def next_lines(
        self,
        seed_line: str,
        lines: Sequence[str],
        *,
        rng_seed: int,
        candidates: int = 1,
        cache_key: str = "",
        is_blocked: Callable[[str], str | None] = _no_block,
        max_chars: int = 1500,
        on_token: Callable[[int, int], None] | None = None,
        on_text: Callable[[int, int, str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> tuple[str, ...]:
        """Up to `candidates` different next lines for the story `seed_line` + `lines`
        (lines after the seed); at least one, the first sampled first.

        Same inputs and `rng_seed` → same lines (on the same device and library versions),
        with or without `cache_key`, which names the story whose prompt's keys and values
        may be kept for its next line. All candidates are sampled in one batched call. A
        candidate for which `is_blocked` returns a term, an empty one or a repeat is sampled
        again with another seed, for up to `options.attempts` rounds with a blocked one;
        then the candidates written are returned, or BlockedTextError(term) raised when
        there are none. `on_token(n, max_new_tokens)` hears of every generated token;
        `on_text(n, max_new_tokens, text)` gets the first line as written so far, cleaned
        and checked against `is_blocked`, at most every `options.live_every_s`, until a
        line is kept; `should_stop()` is asked at each token, and a True ends the line with
        GenerationStopped.
        """
        if self.model is None:
            raise RuntimeError("StoryWriter.load() must be called first")
        opts = self.options
        wanted = max(1, candidates)
        input_ids = self._prompt_ids(seed_line, lines)
        self.last_stats = LineStats(prompt_tokens=int(input_ids.shape[1]))
        kept: list[str] = []
        blocked_rounds = 0
        last_term = ""
        for attempt in range(opts.attempts + _EXTRA_EMPTY_TRIES):
            live = None
            if on_text is not None and not kept:
                live = LiveLine(decode=self._decode,
                                clean=lambda raw: self._clean(raw, False, max_chars),
                                is_blocked=is_blocked, emit=on_text, every_s=opts.live_every_s)
            # Derived seeds keep every retry reproducible from the caller's rng_seed.
            samples = self._sample(input_ids, seed=rng_seed + attempt * _SEED_STRIDE,
                                   count=wanted - len(kept), cache_key=cache_key,
                                   watch=_TokenWatch(on_token, should_stop,
                                                     opts.max_new_tokens, live))
            blocked = False
            for raw, finished in samples:
                text = self._clean(raw, finished, max_chars)
                if not text or text in kept:
                    continue  # empty samples and repeats do not count as blocked attempts
                term = is_blocked(text)
                if term is None:
                    kept.append(text)
                    continue
                blocked, last_term = True, term
                log.info("story line blocked (%r), round %d", term, attempt + 1)
            if len(kept) >= wanted:
                break
            blocked_rounds += blocked
            if blocked_rounds >= opts.attempts:
                break
        if kept:
            return tuple(kept)
        if last_term:
            raise BlockedTextError(last_term, blocked_rounds)
        raise RuntimeError("The story model produced no usable text; try again.")

    def _prompt_ids(self, seed_line: str, lines: Sequence[str]) -> torch.Tensor:
        budget = self.context_limit - self.options.max_new_tokens - self._chat_overhead
        story = build_context(self.tokenizer, seed_line, lines, budget)
        if self.prompt_style == "chat":
            # The template brings its own special tokens (a BOS among them).
            ids = self.tokenizer(chat_prompt(self.tokenizer, story), return_tensors="pt",
                                 add_special_tokens=False).input_ids
        else:
            ids = self.tokenizer(story, return_tensors="pt").input_ids
        return ids.to(self.device)

    def _clean(self, raw: str, finished: bool, max_chars: int) -> str:
        if self.prompt_style == "chat":
            raw = clean_chat_reply(raw, finished=finished)
        return clean_continuation(raw, finished=finished, max_chars=max_chars)

    def _decode(self, tokens: Sequence[int]) -> str:
        return str(self.tokenizer.decode(tokens, skip_special_tokens=True))

    def _sample(self, input_ids: torch.Tensor, *, seed: int, count: int, cache_key: str,
                watch: _TokenWatch | None = None) -> list[tuple[str, bool]]:
        """`count` seeded samples in one call: (new text, whether the model ended it)."""
        opts = self.options
        tok = self.tokenizer
        started = time.perf_counter()
        use = self.cache.use(cache_key, self.model, input_ids, sequences=count)
        if use is not None:
            self.last_stats = LineStats(int(input_ids.shape[1]), use.reused)
        cached: dict[str, Any] = {} if use is None else {"past_key_values": use.past}
        # fork_rng: seed for this sample without disturbing anyone else's RNG stream.
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        from transformers import StoppingCriteriaList  # heavy import, at first use only

        with torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed(seed)
            output = self.model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                **cached,
                do_sample=True,
                num_return_sequences=count,
                max_new_tokens=opts.max_new_tokens,
                min_new_tokens=min(4, opts.max_new_tokens),
                temperature=opts.temperature,
                top_p=opts.top_p,
                top_k=opts.top_k,
                repetition_penalty=opts.repetition_penalty,
                pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else self._eos[0],
                eos_token_id=self._eos,
                stopping_criteria=StoppingCriteriaList([watch]) if watch else None,
            )
        if watch is not None and watch.stopped:
            raise GenerationStopped("the line was stopped before it was finished")
        samples = []
        for row in output[:, input_ids.shape[1]:].tolist():
            ends = [i for i, token in enumerate(row) if token in self._eos]
            samples.append((self._decode(row[:ends[0]] if ends else row), bool(ends)))
        log.debug("story sample: %d × %d tokens in %.2fs", count, output.shape[1]
                  - input_ids.shape[1], time.perf_counter() - started)
        return samples


def _eos_ids(tokenizer: Any, model: Any) -> list[int]:
    """Every token that ends a reply: the tokenizer's EOS and the model's own (a chat model's
    end-of-turn token, e.g. <|im_end|> or <|eot_id|>, is often only in its generation
    config)."""
    ids: list[int] = []
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for token in (tokenizer.eos_token_id,
                  *(configured if isinstance(configured, list) else [configured])):
        if token is not None and int(token) not in ids:
            ids.append(int(token))
    if not ids:
        raise ModelLoadError("story model", "its tokenizer has no end-of-text token")
    return ids


class GenerationStopped(Exception):
    """`should_stop` said so (a cancel, or the bot stopping) while a line was written."""


class _TokenWatch:
    """A stopping criterion (transformers calls it after every token): reports each token
    and stops generation when asked to, which makes a line cancellable between tokens and
    visible to the executor's hang watchdog; passes the first sequence on to live writing."""

    def __init__(self, on_token: Callable[[int, int], None] | None,
                 should_stop: Callable[[], bool] | None, total: int,
                 live: LiveLine | None = None) -> None:
        self.on_token = on_token
        self.should_stop = should_stop
        self.total = total
        self.live = live
        self.start: int | None = None
        self.stopped = False

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor,
                 **kwargs: Any) -> torch.BoolTensor:
        if self.start is None:
            self.start = int(input_ids.shape[1]) - 1  # called once the first token is in
        step = int(input_ids.shape[1]) - self.start
        if self.on_token is not None:
            self.on_token(step, self.total)
        if self.live is not None:
            self.live.update(step, self.total, input_ids[0, self.start:].tolist())
        self.stopped = bool(self.should_stop and self.should_stop())
        return torch.full((input_ids.shape[0],), self.stopped, dtype=torch.bool,
                          device=input_ids.device)  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------
# Cleaning


# A sentence end: terminal punctuation, optional closing quotes/brackets, then space or the end.
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’»)\]]*(?=\s|$)")
# Words whose trailing "." does not end a sentence.
_ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "st", "jr", "sr", "prof", "rev", "gen", "col", "capt", "lt"}
    | {"sgt", "mt", "ft", "vs", "etc", "e.g", "i.e", "no", "vol", "fig", "approx"}
)
_LEADING_JUNK = ",;:.)]}-–—…!? "
_TRAILING_JUNK = ",;:-–—([{\"'“‘ "
_SHORT_SENTENCE = 60  # a first sentence shorter than this gets its follower too


def clean_continuation(raw: str, *, finished: bool = False, max_chars: int = 1500) -> str:
    """Turn raw sampled text into one or two whole sentences ("" when nothing usable).

    1. Keep the first paragraph, collapse whitespace, drop replacement characters (half a
       multi-byte character at the cut) and leading punctuation left over from the prompt.
    2. Cut after the first sentence end (after the second when the first is short).
    3. With no sentence end: if the model stopped by itself (`finished`) end with "."; else
       drop the probably cut-off last word and end with "…".
    4. Balance a dangling double quote; cap at `max_chars`.
    """
    # 1. Normalise.
    text = re.split(r"\n\s*\n", raw.strip(), maxsplit=1)[0] if raw.strip() else ""
    text = text.replace("\ufffd", "")
    text = "".join(ch for ch in text if ch.isprintable() or ch.isspace())
    text = " ".join(text.split()).lstrip(_LEADING_JUNK)
    if not any(ch.isalnum() for ch in text):
        return ""
    # 2. One or two sentences.
    ends = _sentence_ends(text)
    if ends:
        cut = ends[0]
        if cut < _SHORT_SENTENCE and len(ends) > 1:
            cut = ends[1]
        text = text[:cut]
    else:
        # 3. No sentence end.
        text = _end_without_sentence_end(text, finished)
    # 4. Quotes and length.
    if text.count('"') % 2 == 1 and _last_quote_opens(text):
        text += '"'  # a quote opened and cut off; a lone closing one ends the prompt's quote
    return _cap(text, max_chars)


def _sentence_ends(text: str) -> list[int]:
    ends = []
    for match in _SENTENCE_END.finditer(text):
        if match.group().startswith(".") and _is_abbreviation(text, match.start()):
            continue
        following = text[match.end() :].lstrip()[:1]
        if following.islower():
            continue  # '"Run!" she said' and 'etc. and': the sentence goes on
        ends.append(match.end())
    return ends


def _last_quote_opens(text: str) -> bool:
    at = text.rindex('"')
    return at == 0 or text[at - 1].isspace()


def _is_abbreviation(text: str, dot: int) -> bool:
    word = text[:dot].rsplit(" ", 1)[-1].lstrip("\"'“‘(")
    # "Mr." / "e.g." / an initial as in "J. R. R. Tolkien".
    return word.lower() in _ABBREVIATIONS or (len(word) == 1 and word.isupper())


def _end_without_sentence_end(text: str, finished: bool) -> str:
    if not finished and " " in text:
        text = text.rsplit(" ", 1)[0]  # the last word may be cut mid-way
    text = text.rstrip(_TRAILING_JUNK)
    return text + ("." if finished else "…") if text else ""


def _cap(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    ends = [e for e in _sentence_ends(head) if e <= max_chars]
    if ends:
        return head[: ends[-1]]
    head = head[: max_chars - 1]
    if " " in head:
        head = head.rsplit(" ", 1)[0]
    return head.rstrip(_TRAILING_JUNK) + "…"
