"""From what a user typed (slash command or CLI) to validated image job parameters.

Shared by /imagine and `python -m bot render`, so both accept and refuse the same things
with the same messages.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, replace

from bot.config import ImageSettings
from bot.executor.jobs import ImageMode, ImageParams
from bot.images.models import ModelCatalog, ModelInfo, UnknownModel
from bot.images.outpaint import Outpaint, plan
from bot.prompts import PromptError, StylePreset, find_style, parse_prompt
from bot.prompts.loras import extract_loras, resolve_loras, trigger_words

ASPECTS: dict[str, float] = {"1:1": 1.0, "3:2": 1.5, "2:3": 2 / 3, "16:9": 16 / 9, "9:16": 9 / 16}
ALL_STYLES = "all styles"
MAX_SEED = 2**32 - 1
MAX_COUNT = 4
MAX_REPEAT = 4  # /imagine repeat: the same prompt queued this many times, new seeds


class OptionError(ValueError):
    """A bad option: the message names it, says what was wrong and what is allowed."""


@dataclass(frozen=True)
class ImageOptions:
    prompt: str
    style: str | None = None
    negative: str | None = None
    seed: int | None = None
    steps: int | None = None
    guidance: float | None = None
    aspect: str | None = None
    count: int | None = None
    model: str | None = None  # a model's name; None: the default (or the draft model)
    # LoRAs asked for by option: (name, weight or None for its default weight). Inline
    # <lora:NAME:WEIGHT> in the prompt adds more.
    loras: tuple[tuple[str, float | None], ...] = ()
    draft: bool = False  # ⚡ render with image.draft_model


def random_seed() -> int:
    return secrets.randbelow(MAX_SEED + 1)


def base_size(settings: ImageSettings, native: int) -> tuple[int, int]:
    """The 1:1 size: the configured one, or the model's own (`native`) where it is 0."""
    return (settings.width or native, settings.height or native)


def size_for(aspect: str, settings: ImageSettings, native: int = 512,
             model: ModelInfo | None = None) -> tuple[int, int]:
    """A width and height with about the base area, in the requested shape: the model's
    own sizes (SDXL's aspect buckets) unless a size is configured for it."""
    if aspect not in ASPECTS:
        raise OptionError(f"aspect {aspect!r} is not offered; choose one of: "
                          f"{', '.join(ASPECTS)}")
    ratio = ASPECTS[aspect]
    if model is not None:
        native = model.native_size
        configured = (model.profile.width or settings.width, model.profile.height
                      or settings.height)
        buckets = model.rules.buckets
        if buckets and aspect in buckets and not any(configured):
            return _capped(buckets[aspect], settings.max_side, 64)
        settings = replace(settings, width=configured[0], height=configured[1])
    base_w, base_h = base_size(settings, native)
    area = base_w * base_h
    # Multiples of 64 keep every UNet level's size even on real models; tiny models use 8.
    step = 64 if min(base_w, base_h) >= 256 else 8
    width = max(step, round(math.sqrt(area * ratio) / step) * step)
    height = max(step, round(math.sqrt(area / ratio) / step) * step)
    return _capped((width, height), settings.max_side, step)


def _capped(size: tuple[int, int], max_side: int, step: int) -> tuple[int, int]:
    width, height = size
    scale = min(1.0, max_side / max(width, height))
    return (max(step, int(width * scale) // step * step),
            max(step, int(height * scale) // step * step))


def nearest_aspect(width: int, height: int) -> str:
    """The offered aspect closest to a picture's shape."""
    ratio = width / height
    return min(ASPECTS, key=lambda a: abs(math.log(ASPECTS[a] / ratio)))


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise OptionError(f"{name} = {value:g} is out of range; choose {low:g}-{high:g}.")


def _check_for_model(name: str, value: float, low: float, high: float,
                     model: ModelInfo, catalog: ModelCatalog) -> None:
    """A range check whose message names the model when its family narrows the range."""
    if low <= value <= high:
        return
    if not (model.rules.steps_range or model.rules.guidance_range):
        _check_range(name, value, low, high)  # the family narrows nothing
    raise OptionError(f"{name} = {value:g} is out of range for the model {model.name} "
                      f"({model.rules.label}); choose {low:g}-{high:g}.")


def pick_model(options: ImageOptions, catalog: ModelCatalog) -> tuple[ModelInfo, str]:
    """The model a request renders with, and (for a draft) the model its ✨ Finalize uses."""
    try:
        chosen = catalog.get(options.model) if options.model else catalog.default
    except UnknownModel as exc:
        raise OptionError(f"model: {exc}") from None
    if not options.draft:
        return chosen, ""
    draft = catalog.draft
    if draft is None:
        raise OptionError("draft: no draft model is set up here (image.draft_model), so "
                          "there are no fast drafts; leave draft out.")
    return draft, chosen.name


def build_image_params(
    options: ImageOptions, settings: ImageSettings, native: int = 512,
    catalog: ModelCatalog | None = None,
) -> ImageParams:
    """Validate options and fill in defaults (the model's, then [image]'s). Raises
    OptionError or PromptError."""
    catalog = catalog or ModelCatalog.offline(settings, native)
    model, final_model = pick_model(options, catalog)
    steps = model.default_steps(settings) if options.steps is None else options.steps
    _check_for_model("steps", steps, *model.steps_range(settings), model, catalog)
    guidance = model.default_guidance(settings) if options.guidance is None \
        else options.guidance
    _check_for_model("guidance", guidance, *model.guidance_range(), model, catalog)
    count = settings.count if options.count is None else options.count
    _check_range("count", count, 1, MAX_COUNT)
    if options.seed is not None:
        _check_range("seed", options.seed, 0, MAX_SEED)
    width, height = size_for(options.aspect or "1:1", settings, model=model)
    first_seed = random_seed() if options.seed is None else options.seed
    # <lora:NAME:W> tags come out of the prompt; the option's LoRAs come first.
    prompt, inline = extract_loras(options.prompt)
    loras = resolve_loras((*options.loras, *inline), settings)
    if model.profile.lora:  # the model's own (e.g. an LCM-LoRA) is applied by the runner
        loras = tuple(lo for lo in loras if lo[0] != model.profile.lora)
    triggers = trigger_words(loras, settings)
    if triggers:
        prompt = _with_triggers(prompt, triggers)
    options = replace(options, prompt=prompt)
    chosen = ImageParams(prompt="", negative="", subject="", style=None, seeds=(), steps=0,
                         guidance=0.0, width=0, height=0, model=model.name, loras=loras,
                         draft=options.draft, final_model=final_model)
    negative_default = model.negative_prompt(settings)

    all_styles = (options.style or "").strip().casefold() == ALL_STYLES
    if all_styles:
        return same_model(_all_styles_params(options, settings, first_seed, steps, guidance,
                                             width, height, negative_default), chosen)

    parsed = parse_prompt(
        options.prompt,
        styles=settings.styles,
        style=options.style,
        negative=options.negative,
        default_negative=negative_default,
        max_chars=settings.max_prompt_chars,
    )
    seeds = _series(first_seed, int(count))
    return same_model(ImageParams(
        prompt=parsed.prompt,
        negative=parsed.negative,
        subject=parsed.subject,
        style=parsed.style.name if parsed.style else None,
        seeds=seeds,
        steps=int(steps),
        guidance=float(guidance),
        width=width,
        height=height,
    ), chosen)


def _with_triggers(prompt: str, triggers: list[str]) -> str:
    """A LoRA's trigger words go before the style part (`subject | style`), once."""
    subject, bar, style = prompt.partition("|")
    missing = [t for t in triggers if t.casefold() not in subject.casefold()]
    if not missing:
        return prompt
    subject = ", ".join([subject.strip().rstrip(","), *missing]) if subject.strip() \
        else ", ".join(missing)
    return f"{subject} {bar}{style}" if bar else subject


def _all_styles_params(
    options: ImageOptions, settings: ImageSettings, seed: int, steps: float, guidance: float,
    width: int, height: int, negative_default: str | None = None,
) -> ImageParams:
    """One image per preset, same subject and seed: the style sweep.

    A sweep makes at most `image.max_sweep` pictures: with more presets configured it takes
    the first `max_sweep` of them, in config order, rather than refusing. A member can't
    change the config, so a refusal would only take the option away; a gallery of the first
    presets is still what "all styles" promises, and the result says how many more styles
    there are (`styles_left_out`) and where to pick them (the style menu, the style
    option). Each picture counts as one image against the executor's batch limit
    (`ModelRunner.batch_size` is the number of seeds) and in its ETA (`Job.work_units` is
    steps times images)."""
    presets = settings.styles[:settings.max_sweep]
    default_negative = settings.negative_prompt if negative_default is None \
        else negative_default
    parsed = [
        parse_prompt(options.prompt, styles=settings.styles, style=preset.name,
                     negative=options.negative, default_negative=default_negative,
                     max_chars=settings.max_prompt_chars)
        for preset in presets
    ]
    return ImageParams(
        prompt=parsed[0].subject,
        negative=parsed[0].negative,
        subject=parsed[0].subject,
        style=ALL_STYLES,
        seeds=(seed,) * len(parsed),
        steps=int(steps),
        guidance=float(guidance),
        width=width,
        height=height,
        labels=tuple(p.style.name if p.style else "" for p in parsed),
        prompts=tuple(p.prompt for p in parsed),
        negatives=tuple(p.negative for p in parsed),
        styles_left_out=len(settings.styles) - len(presets),
    )


def restyled(params: ImageParams, style: StylePreset, settings: ImageSettings) -> ImageParams:
    """Same subject and seeds, another preset (the style menu)."""
    parsed = parse_prompt(params.subject, styles=settings.styles, style=style.name,
                          default_negative=settings.negative_prompt,
                          max_chars=settings.max_prompt_chars)
    seeds = params.seeds
    if params.labels:  # a style sweep repeats one seed; a single style gets the usual series
        seeds = _series(params.seeds[0], settings.count)
    return same_model(ImageParams(
        prompt=parsed.prompt, negative=parsed.negative, subject=parsed.subject,
        style=style.name, seeds=seeds, steps=params.steps, guidance=params.guidance,
        width=params.width, height=params.height,
    ), params)


def same_model(child: ImageParams, parent: ImageParams) -> ImageParams:
    """A button's job keeps its parent's model, LoRAs and draft-ness."""
    return replace(child, model=parent.model, loras=parent.loras, draft=parent.draft,
                   final_model=parent.final_model)


def _series(first: int, count: int) -> tuple[int, ...]:
    """Consecutive seeds, as other Stable Diffusion front ends number a batch."""
    return tuple((first + i) % (MAX_SEED + 1) for i in range(count))


def rerolled(params: ImageParams) -> ImageParams:
    """Same settings, new seeds."""
    return replace(params, seeds=_series(random_seed(), params.count))


def derived(params: ImageParams, mode: ImageMode, index: int, source_job: str,
            source_path: str, strength: float) -> ImageParams:
    """A variation or upscale of image `index` of a finished job."""
    seed = params.seeds[index] if index < len(params.seeds) else random_seed()
    prompt = params.prompt_for(index)
    negative = params.negative_for(index)
    label = params.labels[index] if index < len(params.labels) else None
    seeds = _series(random_seed(), MAX_COUNT) if mode is ImageMode.VARIATION else (seed,)
    return same_model(ImageParams(
        prompt=prompt, negative=negative, subject=params.subject,
        style=label or (params.style if params.style != ALL_STYLES else None),
        seeds=seeds, steps=params.steps, guidance=params.guidance,
        width=params.width, height=params.height, mode=mode, strength=strength,
        source_job=source_job, source_index=index, source_path=source_path,
    ), params)


def outpainted(params: ImageParams, index: int, source_job: str | None, source_path: str,
               source_size: tuple[int, int], op: Outpaint, max_side: int) -> ImageParams:
    """Zoom out or pan picture `index` (of `source_size` pixels) of a finished job, or any
    picture (`source_job` None: the CLI's): same prompt and seed, on the canvas `plan` picks
    within `max_side`. Raises OutpaintError (for the member) when it can't be done."""
    layout = plan(source_size, op, max_side)
    base = derived(params, ImageMode.OUTPAINT, index, source_job or "", source_path, 1.0)
    return replace(base, source_job=source_job, width=layout.canvas[0],
                   height=layout.canvas[1], zoom_out=op.zoom, pan=op.pan,
                   mask_blur=layout.blur)


__all__ = [
    "ALL_STYLES",
    "ASPECTS",
    "ImageOptions",
    "OptionError",
    "PromptError",
    "build_image_params",
    "derived",
    "find_style",
    "outpainted",
    "rerolled",
    "restyled",
]


def remix_prompt(params: ImageParams) -> str:
    """What the Remix form shows as the prompt: the subject, and its style inline."""
    if params.style and params.style != ALL_STYLES and not params.labels:
        return f"{params.subject} | {params.style}"
    return params.subject


def remixed(params: ImageParams, prompt: str, negative: str, seed: int | None,
            settings: ImageSettings, source: tuple[str, str, float] | None) -> ImageParams:
    """The edited prompt, negative and seed on a finished job's settings. `seed` None: new
    seeds; the parent's first seed: its own series (same compositions). `source` (job id,
    picture file, strength): img2img from that picture, for a remix of a variation or an
    upscale. Raises PromptError (a message for the member)."""
    # The form showed the whole negative prompt: what the member left there is all of it.
    parsed = parse_prompt(prompt, styles=settings.styles, negative=negative,
                          default_negative="", max_chars=settings.max_prompt_chars)
    count = MAX_COUNT if source is not None else (
        settings.count if params.labels else params.count)
    if seed is not None and params.seeds and seed == params.seeds[0] and not params.labels \
            and count == params.count:
        seeds = params.seeds
    else:
        seeds = _series(random_seed() if seed is None else seed, count)
    mode, strength, source_job, source_path = ImageMode.TXT2IMG, 0.0, None, None
    if source is not None:
        source_job, source_path, strength = source
        mode = ImageMode.VARIATION
    return same_model(ImageParams(
        prompt=parsed.prompt, negative=parsed.negative, subject=parsed.subject,
        style=parsed.style.name if parsed.style else None, seeds=seeds, steps=params.steps,
        guidance=params.guidance, width=params.width, height=params.height, mode=mode,
        strength=strength, source_job=source_job, source_path=source_path), params)


def drafted(params: ImageParams, settings: ImageSettings, catalog: ModelCatalog) -> ImageParams:
    """⚡: the same prompt and seeds as fast drafts with the draft model (its steps and
    guidance), to be ✨ finalized with the parent's model. Raises OptionError."""
    draft = catalog.draft
    if draft is None:
        raise OptionError("There is no draft model set up here (image.draft_model).")
    width, height = size_for(nearest_aspect(params.width, params.height), settings,
                             model=draft)
    seeds = params.seeds if not params.labels else _series(params.seeds[0], settings.count)
    return replace(
        params, seeds=seeds, steps=draft.default_steps(settings),
        guidance=draft.default_guidance(settings), width=width, height=height,
        mode=ImageMode.TXT2IMG, strength=0.0, source_job=None, source_index=0,
        source_path=None, model=draft.name, draft=True, final_model=params.model,
        labels=(), prompts=(), negatives=(), styles_left_out=0,
        style=params.style if params.style != ALL_STYLES else None,
        prompt=params.prompt_for(0), negative=params.negative_for(0))


def finalized(params: ImageParams, index: int, source_job: str, source_path: str,
              settings: ImageSettings, catalog: ModelCatalog) -> ImageParams:
    """✨ Finalize draft picture `index`: the full model re-renders it from that picture
    (img2img at image.finalize_strength), so its composition stays; a seed alone would
    not carry it across models. The full model's own steps, guidance and size."""
    try:
        model = catalog.get(params.final_model)
    except UnknownModel as exc:
        raise OptionError(f"The model to finalize with is gone: {exc}") from None
    width, height = size_for(nearest_aspect(params.width, params.height), settings,
                             model=model)
    seed = params.seeds[index] if index < len(params.seeds) else random_seed()
    strength = settings.finalize_strength
    steps = model.default_steps(settings)
    return ImageParams(
        prompt=params.prompt_for(index), negative=params.negative_for(index),
        subject=params.subject, style=params.style, seeds=(seed,),
        steps=max(steps, math.ceil(1 / strength)), guidance=model.default_guidance(settings),
        width=width, height=height, mode=ImageMode.IMG2IMG, strength=strength,
        source_job=source_job, source_index=index, source_path=source_path,
        model=model.name, loras=params.loras)
