"""Which /imagine options a request really has: what the member typed, else their /settings
default, else the server's default, else nothing (None: build_image_params fills in the
model's and the config's defaults). Then the server's limits, on the final values.

A stored default that is no longer valid (a style or model removed from the config, a value
out of a model's range) is skipped with a note: it must never block /imagine, because the
member did not type it and may not remember it. A typed option over a server's limit is
refused with the limit; a default over it is lowered to the limit, with a note.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from bot.config import ImageSettings
from bot.db.preferences import GuildPreferences, ImagePreferences
from bot.images.models import ModelCatalog, UnknownModel
from bot.images.requests import (
    ALL_STYLES,
    ASPECTS,
    MAX_COUNT,
    ImageOptions,
    OptionError,
    pick_model,
)
from bot.prompts import PromptError, find_style, parse_prompt

Check = Callable[[Any], str | None]  # why a stored value can't be used, or None


@dataclass(frozen=True)
class EffectiveRequest:
    options: ImageOptions
    private: bool  # status and result only the member sees
    notes: tuple[str, ...] = ()  # defaults skipped or lowered, for the member


def effective_options(
    options: ImageOptions, member: ImagePreferences, guild: GuildPreferences, *,
    settings: ImageSettings, catalog: ModelCatalog, private: bool | None = None,
) -> EffectiveRequest:
    """Merge typed options (None: not typed; `private` likewise) with the member's and the
    server's defaults, and apply the server's limits. Raises OptionError (for the member)
    when a typed option is over a limit."""
    notes: list[str] = []
    layers = (("your", member), ("this server's", guild.defaults))

    def pick(name: str, typed: Any, check: Check) -> tuple[Any, bool]:
        """(value, typed?): the typed value, or the first usable default."""
        if typed is not None:
            return typed, True
        for whose, prefs in layers:
            value = getattr(prefs, name)
            if value is None:
                continue
            problem = check(value)
            if problem is None:
                return value, False
            notes.append(f"{whose.capitalize()} default {name} {value!r} {problem}, so it "
                         "was left out.")
        return None, False

    model_name, _ = pick("model", options.model, lambda v: _model_problem(catalog, v))
    # The model that renders (the draft model for a draft): its family bounds the steps.
    model, _ = pick_model(replace(options, model=model_name), catalog)
    style = options.style
    if style is not None or not _has_inline_style(options.prompt, settings):
        # ("subject | style" in the prompt is typed too: no default style replaces it)
        style, _ = pick("style", style, lambda v: _style_problem(settings, v))
    aspect, _ = pick("aspect", options.aspect,
                     lambda v: None if v in ASPECTS else "is no longer offered")
    negative, _ = pick("negative", options.negative, lambda v: None)
    low, high = model.steps_range(settings)
    steps, steps_typed = pick("steps", options.steps,
                              lambda v: None if low <= v <= high else
                              f"is out of range for the model {model.name} ({low}-{high})")
    count, count_typed = pick("count", options.count,
                              lambda v: None if 1 <= v <= MAX_COUNT else "is out of range")

    limits = guild.limits
    steps = _limited("steps", steps, steps_typed, model.default_steps(settings),
                     limits.max_steps, notes)
    count = _limited("count", count, count_typed, settings.count, limits.max_count, notes)
    is_private = _private(private, member, guild, notes)
    merged = replace(options, model=model_name, style=style, aspect=aspect,
                     negative=negative, steps=steps, count=count)
    return EffectiveRequest(merged, is_private, tuple(notes))


def _has_inline_style(prompt: str, settings: ImageSettings) -> bool:
    try:
        parsed = parse_prompt(prompt, styles=settings.styles, max_chars=10**6)
    except PromptError:
        return False  # build_image_params will say what is wrong with the prompt
    return parsed.style is not None


def _style_problem(settings: ImageSettings, value: str) -> str | None:
    if value.strip().casefold() == ALL_STYLES:
        return None
    return None if find_style(settings.styles, value) else "is no longer offered"


def _model_problem(catalog: ModelCatalog, value: str) -> str | None:
    try:
        catalog.get(value)
    except UnknownModel:
        return "is no longer offered"
    return None


def _limited(name: str, value: int | None, typed: bool, fallback: int, limit: int | None,
             notes: list[str]) -> int | None:
    """The value within the server's limit: a typed one over it is refused, a default
    (the member's, the server's or the config's) is lowered to it."""
    if limit is None:
        return value
    final = fallback if value is None else value
    if final <= limit:
        return value
    if typed:
        raise OptionError(f"{name} = {final} is over this server's limit of {limit}; "
                          f"choose 1-{limit}.")
    notes.append(f"{name} lowered from {final} to {limit}, this server's limit.")
    return limit


def _private(typed: bool | None, member: ImagePreferences, guild: GuildPreferences,
             notes: list[str]) -> bool:
    allowed = guild.limits.allow_private
    if typed is not None:
        if typed and not allowed:
            raise OptionError("private: private results are turned off in this server; "
                              "leave private out to post here.")
        return typed
    if member.private is not None:
        if member.private and not allowed:
            # Never post in public what the member asked to keep private: refuse instead.
            raise OptionError("private: your /settings default is private, but private "
                              "results are turned off in this server; add private:False "
                              "to post here, or change the default in /settings.")
        return member.private
    if guild.defaults.private and not allowed:
        notes.append("This server's default is private, but private results are turned "
                     "off here, so this one is posted in the channel.")
        return False
    return bool(guild.defaults.private)
