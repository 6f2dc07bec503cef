"""Prompt parsing: turn "subject | style" input plus options into the final prompt pair.

Splits the inline style off the last top-level '|', resolves it (or an explicit style)
against the presets, enforces length limits after cleaning, and merges the negative
prompts. Problems are raised as PromptError with a user-facing message.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from bot.prompts.cleaning import clean_prompt
from bot.prompts.styles import StylePreset, find_style, style_names


class PromptError(ValueError):
    """A user-facing problem with a prompt option; the message says what and what's allowed."""


@dataclass(frozen=True)
class ParsedPrompt:
    subject: str
    style: StylePreset | None  # a preset, or an ad-hoc StylePreset for a free-form style
    prompt: str  # final positive prompt
    negative: str  # final negative prompt


_OPEN, _CLOSE = "([{<", ")]}>"


def _top_level_positions(text: str, char: str) -> list[int]:
    """Indexes of `char` outside ()[]{}<> so prompt syntax like "[cat|dog]" is left alone."""
    depth = 0
    found: list[int] = []
    for i, ch in enumerate(text):
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth = max(depth - 1, 0)
        elif ch == char and depth == 0:
            found.append(i)
    return found


def _split_inline_style(text: str) -> tuple[str, str]:
    bars = _top_level_positions(text, "|")
    if not bars:
        return text, ""
    return text[: bars[-1]].strip(), text[bars[-1] + 1 :].strip()


def _check_length(option: str, text: str, limit: int) -> None:
    if len(text) > limit:
        raise PromptError(f"{option} is {len(text)} characters; the limit is {limit}.")


def _resolve_style(
    styles: Sequence[StylePreset], explicit: str | None, inline: str
) -> StylePreset | None:
    explicit = clean_prompt(explicit or "")
    if explicit:
        preset = find_style(styles, explicit)
        if preset is None:
            choices = ", ".join(style_names(styles)) or "(no presets configured)"
            raise PromptError(f"style '{explicit}' is not a preset; choose one of: {choices}")
        return preset
    if not inline:
        return None
    # Unknown inline styles are free-form phrases ("a cat | in the style of ukiyo-e").
    return find_style(styles, inline) or StylePreset(name=inline, phrase=inline)


def _merge_negatives(*parts: str) -> str:
    """Join comma-separated terms, dropping empties and case-insensitive duplicates."""
    seen: set[str] = set()
    terms: list[str] = []
    for part in parts:
        cuts = [-1, *_top_level_positions(part, ","), len(part)]
        for a, b in itertools.pairwise(cuts):
            term = part[a + 1 : b].strip()
            if term and term.casefold() not in seen:
                seen.add(term.casefold())
                terms.append(term)
    return ", ".join(terms)


def parse_prompt(
    raw: str,
    *,
    styles: Sequence[StylePreset],
    style: str | None = None,
    negative: str | None = None,
    default_negative: str = "",
    max_chars: int = 1000,
    max_negative_chars: int = 1000,
) -> ParsedPrompt:
    """Clean and split "subject | style" input into the final prompt pair.

    The inline style follows the last top-level '|'; an explicit `style` overrides it
    (and must be a preset). Raises PromptError with a user-facing message.
    """
    text = clean_prompt(raw)
    _check_length("prompt", text, max_chars)
    subject, inline = _split_inline_style(text)
    if not subject:
        raise PromptError("prompt is empty")
    preset = _resolve_style(styles, style, inline)

    user_negative = clean_prompt(negative or "")
    _check_length("negative prompt", user_negative, max_negative_chars)
    final_negative = _merge_negatives(
        user_negative, preset.negative if preset else "", clean_prompt(default_negative)
    )
    final_prompt = f"{subject}, {preset.phrase}" if preset and preset.phrase else subject
    return ParsedPrompt(subject, preset, final_prompt, final_negative)
