"""Prompt suggestions for a picture (/describe), from a captioning model (BLIP by default).

`Captioner.suggest` asks the model for a plain caption first (beam search: its best guess),
then for sampled ones started with prefixes that read like prompts ("a painting of …"),
until it has `n` different ones. Like the other pipelines it is used from ONE worker thread
(it seeds torch's RNG around each sample, in a forked RNG so nobody else's stream moves).
Importing this module is cheap: torch and transformers are imported when the model loads.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.executor.jobs import DescribeParams, Job, JobResult, TextResult

from .errors import load_failure, loader_errors, public_model_name, resolve_model_source

if TYPE_CHECKING:
    from PIL.Image import Image

    from bot.executor.executor import RunContext

log = logging.getLogger(__name__)

KIND = "Caption model"
SETTING = "describe.model"
# Sampled captions start with these (BLIP continues a given text): they read like prompts.
# "" is a plain sample, for when the prefixed ones repeat themselves.
PREFIXES = ("a painting of", "a photograph of", "an illustration of", "")
TOP_P = 0.9
# BLIP-large's habit of inventing words at the start ("arafed", "araffe"): never a prompt.
_JUNK_WORDS = re.compile(r"\b(?:ara+f+e?d?|arafly)\b\s*", re.IGNORECASE)
_SPACE_BEFORE = re.compile(r"\s+([.,!?;:'])")


@dataclass(frozen=True)
class CaptionModelOptions:
    """How to load the captioning model (the `[describe]` config section; the device and
    dtype are the image model's)."""

    model: str = "Salesforce/blip-image-captioning-large"
    device: str = "auto"
    dtype: str = "auto"


class DescribeFailed(RuntimeError):
    """No usable suggestion came out (all blocked, or all empty); the message is for members."""


class Captioner:
    """Suggests prompts for a picture. Call `load()` once, then `suggest()`."""

    def __init__(self, options: CaptionModelOptions) -> None:
        self.options = options
        self.model: Any = None
        self.processor: Any = None
        self.device: Any = None  # torch.device and torch.dtype, set by load()
        self.dtype: Any = None

    @property
    def model_name(self) -> str:
        return public_model_name(self.options.model)

    def load(self) -> None:
        """Load the processor (image processor + tokenizer) and the model. Raises
        ModelLoadError naming describe.model, with what to do."""
        from transformers import AutoProcessor, BlipForConditionalGeneration

        from .device import pick_device, pick_dtype

        opts = self.options
        self.device = pick_device(opts.device)
        self.dtype = pick_dtype(self.device, opts.dtype)
        source = resolve_model_source(opts.model, kind=KIND, config_file="config.json",
                                      setting=SETTING)
        try:
            processor = AutoProcessor.from_pretrained(source)
            model: Any = BlipForConditionalGeneration.from_pretrained(source, dtype=self.dtype)
        except loader_errors() as exc:
            raise load_failure(opts.model, kind=KIND, setting=SETTING, cause=exc) from exc
        model.to(self.device)
        self.model = model.eval()
        self.processor = processor
        log.info("caption model %s loaded (%s on %s)", opts.model, self.dtype, self.device)

    def suggest(
        self,
        image: Image,
        n: int,
        *,
        max_new_tokens: int,
        seed: int,
        is_blocked: Callable[[str], str | None] = lambda text: None,
        on_step: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[str]:
        """Up to `n` different suggestions (fewer only when the model keeps repeating
        itself), cleaned; the same picture and `seed` give the same ones. A suggestion for
        which `is_blocked` names a term is left out. `on_step(k, total)` hears of each
        model call; `should_stop()` is asked between them (True: what was found so far)."""
        if self.model is None:
            raise RuntimeError("Captioner.load() must be called first")
        pixels = self.processor(images=image.convert("RGB"), return_tensors="pt")
        pixels = pixels.to(self.device, self.dtype)
        found: list[str] = []
        seen: set[str] = set()
        calls = 2 * n + 1  # one beam caption, then samples; repeats cost a little more
        for k in range(calls):
            if should_stop is not None and should_stop():
                break
            if on_step is not None:
                on_step(k, calls)
            raw = self._caption(pixels, k, max_new_tokens=max_new_tokens, seed=seed)
            text = clean_suggestion(raw)
            key = _dedup_key(text)
            if not key or key in seen:
                continue
            seen.add(key)
            term = is_blocked(text)
            if term is not None:
                log.info("a suggestion was left out: it has a blocked term (%r)", term)
                continue
            found.append(text)
            if len(found) >= n:
                break
        return found

    def _caption(self, pixels: Any, k: int, *, max_new_tokens: int, seed: int) -> str:
        """Call `k`: 0 is the beam-search caption; later ones sample, each from a prefix in
        turn, with a seed derived from `seed` (so every call is reproducible alone)."""
        import torch

        inputs = dict(pixels)
        if k == 0:
            options: dict[str, Any] = {"num_beams": 3, "no_repeat_ngram_size": 3}
        else:
            prefix = PREFIXES[(k - 1) % len(PREFIXES)]
            if prefix:
                text = self.processor(text=prefix, return_tensors="pt").to(self.device)
                inputs.update(input_ids=text["input_ids"], attention_mask=text["attention_mask"])
            options = {"do_sample": True, "top_p": TOP_P, "no_repeat_ngram_size": 3}
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed(seed + k * 1_000_003)
            out = self.model.generate(**inputs, max_new_tokens=max_new_tokens, **options)
        return str(self.processor.decode(out[0], skip_special_tokens=True))


def clean_suggestion(raw: str) -> str:
    """One caption as a prompt: one line, single spaces, no space before punctuation, no
    invented words, no trailing joiners, a capital first letter; "" when nothing is left."""
    text = " ".join(raw.split())
    text = _JUNK_WORDS.sub("", text)
    text = _SPACE_BEFORE.sub(r"\1", text).strip(" ,;:-")
    if not any(ch.isalpha() for ch in text):
        return ""
    return text[0].upper() + text[1:]


def _dedup_key(text: str) -> str:
    """What counts as the same suggestion: the words, in any case, without punctuation."""
    return " ".join(re.findall(r"\w+", text.casefold()))


# ----- the job on the worker thread -------------------------------------------------------


def run_describe(captioner: Callable[[], Captioner], job: Job, ctx: RunContext,
                 is_blocked: Callable[[str], str | None]) -> JobResult | Exception:
    """A /describe job: its result is a TextResult with one suggestion per line. The
    captioner is asked for only here (it loads on first use), so a missing model fails the
    job with the loader's message and nothing else."""
    from PIL import Image as PILImage

    p = job.params
    assert isinstance(p, DescribeParams)
    try:
        with PILImage.open(p.source_path) as img:
            picture = img.convert("RGB")
    except OSError:
        return ValueError("The picture to describe is gone (it was deleted).")
    started = time.monotonic()
    ctx.progress(job, 0, 1, None)  # before a first load, which the hang watchdog waits out
    try:
        model = captioner()
    except Exception as exc:  # ModelLoadError and friends: this job fails alone
        return exc
    found = model.suggest(picture, p.count, max_new_tokens=p.max_new_tokens, seed=p.seed,
                          is_blocked=is_blocked,
                          on_step=lambda k, total: ctx.progress(job, k, total, None),
                          should_stop=lambda: ctx.cancelled(job.id))
    if ctx.cancelled(job.id):
        return RuntimeError("interrupted")
    if not found:
        return DescribeFailed("The caption model found nothing it may suggest for this "
                              "picture. Try another picture.")
    ctx.progress(job, 1, 1, None)
    return TextResult("\n".join(found), {"generate_s": time.monotonic() - started},
                      model.model_name)
