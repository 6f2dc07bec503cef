"""Story continuation with a causal language model (GPT-Neo by default).

`StoryWriter.next_line` turns the story so far into a prompt (the seed line always first, then
the most recent lines that fit), samples a continuation reproducibly for a given seed, and
cleans it into one or two whole sentences. Like the image engine it is used from ONE worker
thread; it is not thread-safe (it seeds torch's RNG around each sample).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .device import pick_device, pick_dtype
from .errors import (
    BlockedTextError,
    ModelLoadError,
    load_failure,
    loader_errors,
    public_model_name,
    resolve_model_source,
)

__all__ = [
    "BlockedTextError",
    "ModelLoadError",
    "StoryWriter",
    "TextModelOptions",
    "build_context",
    "clean_continuation",
]

log = logging.getLogger(__name__)

MIN_PROMPT_TOKENS = 16  # below this the context budget is a configuration mistake
_EXTRA_EMPTY_TRIES = 2  # empty samples get a few more tries on top of `attempts`


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


def _no_block(_text: str) -> str | None:
    return None


class StoryWriter:
    """Writes the next line of a story. Call `load()` once, then `next_line()`."""

    def __init__(self, options: TextModelOptions) -> None:
        self.options = options
        self.device = torch.device("cpu")
        self.model: Any = None
        self.tokenizer: Any = None
        self.context_limit = 0  # prompt + new tokens, after clamping to the model

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
        dtype = pick_dtype(self.device, opts.dtype)
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
        max_positions = int(getattr(model.config, "max_position_embeddings", opts.context_tokens))
        self.context_limit = min(opts.context_tokens, max_positions)
        if self.context_limit - opts.max_new_tokens < MIN_PROMPT_TOKENS:
            raise ModelLoadError(
                opts.model,
                f"story.context_tokens ({self.context_limit} after clamping to the model) leaves "
                f"no room for a prompt with story.max_new_tokens={opts.max_new_tokens}: the "
                f"difference must be at least {MIN_PROMPT_TOKENS} tokens",
            )
        model.to(self.device)
        self.model = model.eval()
        self.tokenizer = tokenizer
        log.info("story model %s loaded (%s on %s)", opts.model, dtype, self.device)

    def next_line(
        self,
        seed_line: str,
        lines: Sequence[str],
        *,
        rng_seed: int,
        is_blocked: Callable[[str], str | None] = _no_block,
        max_chars: int = 1500,
        on_token: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> str:
        """The model's next line for the story `seed_line` + `lines` (lines after the seed).

        Same inputs and `rng_seed` → same line (on the same device and library versions).
        A line for which `is_blocked` returns a term is re-sampled with another seed, up to
        `options.attempts` samples; then BlockedTextError(term) is raised. `on_token(n,
        max_new_tokens)` hears of every generated token; `should_stop()` is asked at each
        one, and a True ends the line with GenerationStopped.
        """
        if self.model is None:
            raise RuntimeError("StoryWriter.load() must be called first")
        opts = self.options
        context = build_context(
            self.tokenizer, seed_line, lines, self.context_limit - opts.max_new_tokens
        )
        inputs = self.tokenizer(context, return_tensors="pt").to(self.device)
        blocked = 0
        last_term = ""
        for attempt in range(opts.attempts + _EXTRA_EMPTY_TRIES):
            # Derived seeds keep every retry reproducible from the caller's rng_seed.
            raw, finished = self._sample(inputs, seed=rng_seed + attempt * 1_000_003,
                                         watch=_TokenWatch(on_token, should_stop,
                                                          opts.max_new_tokens))
            text = clean_continuation(raw, finished=finished, max_chars=max_chars)
            if not text:
                continue  # an empty sample does not count as a blocked attempt
            term = is_blocked(text)
            if term is None:
                return text
            blocked += 1
            last_term = term
            log.info("story line blocked (%r), attempt %d/%d", term, blocked, opts.attempts)
            if blocked >= opts.attempts:
                raise BlockedTextError(term, blocked)
        if last_term:
            raise BlockedTextError(last_term, blocked)
        raise RuntimeError("The story model produced no usable text; try again.")

    def _sample(self, inputs: Any, *, seed: int, watch: _TokenWatch | None = None
                ) -> tuple[str, bool]:
        """One seeded sample; returns (new text, whether the model ended it with EOS)."""
        opts = self.options
        tok = self.tokenizer
        eos = tok.eos_token_id
        started = time.perf_counter()
        # fork_rng: seed for this sample without disturbing anyone else's RNG stream.
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        from transformers import StoppingCriteriaList  # heavy import, at first use only

        with torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed(seed)
            output = self.model.generate(
                **inputs,
                do_sample=True,
                max_new_tokens=opts.max_new_tokens,
                min_new_tokens=min(4, opts.max_new_tokens),
                temperature=opts.temperature,
                top_p=opts.top_p,
                top_k=opts.top_k,
                repetition_penalty=opts.repetition_penalty,
                pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else eos,
                eos_token_id=eos,
                stopping_criteria=StoppingCriteriaList([watch]) if watch else None,
            )
        if watch is not None and watch.stopped:
            raise GenerationStopped("the line was stopped before it was finished")
        new_tokens = output[0, inputs["input_ids"].shape[1] :]
        finished = bool(len(new_tokens) and int(new_tokens[-1]) == eos)
        log.debug(
            "story sample: %d tokens in %.2fs", len(new_tokens), time.perf_counter() - started
        )
        return tok.decode(new_tokens, skip_special_tokens=True), finished


class GenerationStopped(Exception):
    """`should_stop` said so (a cancel, or the bot stopping) while a line was written."""


class _TokenWatch:
    """A stopping criterion (transformers calls it after every token): reports each token
    and stops generation when asked to, which makes a line cancellable between tokens and
    visible to the executor's hang watchdog."""

    def __init__(self, on_token: Callable[[int, int], None] | None,
                 should_stop: Callable[[], bool] | None, total: int) -> None:
        self.on_token = on_token
        self.should_stop = should_stop
        self.total = total
        self.start: int | None = None
        self.stopped = False

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor,
                 **kwargs: Any) -> torch.BoolTensor:
        if self.start is None:
            self.start = int(input_ids.shape[1]) - 1  # called once the first token is in
        if self.on_token is not None:
            self.on_token(int(input_ids.shape[1]) - self.start, self.total)
        self.stopped = bool(self.should_stop and self.should_stop())
        return torch.full((input_ids.shape[0],), self.stopped, dtype=torch.bool,
                          device=input_ids.device)  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------
# Context


_SENTENCE_END_CHARS = ".!?…"
_CLOSERS = "\"'”’»)]"


def _as_sentence(line: str) -> str:
    """One story line as prose: single spaces, ending like a sentence (context only)."""
    line = " ".join(line.split())
    if line and line.rstrip(_CLOSERS)[-1:] not in _SENTENCE_END_CHARS:
        line += "."
    return line


def build_context(tokenizer: Any, seed_line: str, lines: Sequence[str], budget_tokens: int) -> str:
    """The prompt for the next line: the seed line, then the most recent lines that fit.

    Lines are joined as one paragraph of prose. When the story is longer than
    `budget_tokens`, the oldest lines after the seed are dropped; the seed line is always
    kept (cut to the budget itself if it alone is too long).
    """

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False))

    seed = _as_sentence(seed_line)
    if count(seed) >= budget_tokens:
        ids = tokenizer.encode(seed, add_special_tokens=False)[:budget_tokens]
        return str(tokenizer.decode(ids))
    # 1. Walk back from the newest line while the running total fits.
    used = count(seed)
    kept: list[str] = []
    for line in reversed(lines):
        text = _as_sentence(line)
        if not text:
            continue
        cost = count(" " + text)
        if used + cost > budget_tokens:
            break
        kept.append(text)
        used += cost
    kept.reverse()
    # 2. BPE merges across the joins can differ slightly from the sum: re-check the whole.
    while kept and count(" ".join([seed, *kept])) > budget_tokens:
        kept.pop(0)
    return " ".join([seed, *kept])


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
