"""LoRAs named in a prompt the way AUTOMATIC1111 users write them (`<lora:NAME:0.8>`), and
matching requested LoRAs against the configured ones ([image.loras.NAME])."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot.prompts.parsing import PromptError

if TYPE_CHECKING:  # bot.config imports bot.prompts: only the type here
    from bot.config import ImageSettings

__all__ = ["MAX_WEIGHT", "extract_loras", "resolve_loras", "trigger_words"]

MAX_WEIGHT = 4.0  # the same range as image.loras.NAME.weight
_FORM = "<lora:NAME:WEIGHT> (the weight may be left out: <lora:NAME>)"
_TAG = re.compile(r"<lora:([^<>]*)>", re.IGNORECASE)
_OPENING = re.compile(r"<lora:", re.IGNORECASE)
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")  # no "inf", "nan" or exponents
_LISTED = 25  # most LoRA names an "unknown LoRA" message lists


def extract_loras(prompt: str) -> tuple[str, tuple[tuple[str, float | None], ...]]:
    """The prompt without its `<lora:…>` tags, and the (name, weight or None) pairs in order.

    The text around a removed tag is tidied (no doubled spaces or commas, none left at the
    ends); a prompt without tags comes back as it is. A malformed tag raises PromptError.
    """
    pieces: list[str] = []
    found: list[tuple[str, float | None]] = []
    start = 0
    for match in _TAG.finditer(prompt):
        pieces.append(prompt[start:match.start()])
        found.append(_parse_tag(match.group(0), match.group(1)))
        start = match.end()
    rest = prompt[start:]
    if _OPENING.search(rest) or any(_OPENING.search(p) for p in pieces):
        raise PromptError(f"A <lora:…> tag in the prompt is not closed with '>'; write {_FORM}.")
    if not found:
        return prompt, ()
    text = pieces[0]
    for piece in [*pieces[1:], rest]:
        text = _join(text, piece)
    return text.strip().strip(",").strip(), tuple(found)


def _parse_tag(tag: str, body: str) -> tuple[str, float | None]:
    name, *weights = (part.strip() for part in body.split(":"))
    if not name:
        raise PromptError(f"{tag} names no LoRA; write {_FORM}.")
    if len(weights) > 1:
        raise PromptError(f"{tag} has more than one weight; write {_FORM}.")
    if not weights:
        return name, None
    if not _NUMBER.fullmatch(weights[0]):
        raise PromptError(f"{tag}: '{weights[0]}' is not a number; write {_FORM}, e.g. "
                          f"<lora:{name}:0.8>.")
    return name, float(weights[0])


def _join(left: str, right: str) -> str:
    """Two pieces a tag stood between: one space (or the line break there), one comma."""
    left, right = left.rstrip(" \t"), right.lstrip(" \t")
    if left.endswith(",") and right.startswith(","):
        right = right[1:].lstrip(" \t")
    if left.endswith("\n") and right.startswith("\n"):  # a tag on a line of its own
        right = right[1:]
    if not left or not right or left.endswith("\n") or right.startswith(("\n", ",")):
        return left + right
    return f"{left} {right}"


def resolve_loras(requested: Sequence[tuple[str, float | None]],
                  settings: ImageSettings) -> tuple[tuple[str, float], ...]:
    """The configured LoRAs these requests mean, as (name as configured, weight).

    Names match ignoring case and spaces; a missing weight is the LoRA's default; a LoRA
    asked for twice keeps its first place and its last weight. Raises PromptError for an
    unknown name, a weight outside -4..4, or more LoRAs than image.max_loras.
    """
    chosen: dict[str, float] = {}
    for name, weight in requested:
        profile = settings.lora(name)
        if profile is None:
            raise PromptError(_unknown(name, settings))
        value = profile.weight if weight is None else float(weight)
        if not -MAX_WEIGHT <= value <= MAX_WEIGHT:
            raise PromptError(f"LoRA '{profile.name}' weight {value:g} is out of range: use a "
                              f"weight from {-MAX_WEIGHT:g} to {MAX_WEIGHT:g}.")
        chosen[profile.name] = value
    if len(chosen) > settings.max_loras:
        raise PromptError(f"This asks for {len(chosen)} LoRAs; a picture may use at most "
                          f"{settings.max_loras}.")
    return tuple(chosen.items())


def _unknown(name: str, settings: ImageSettings) -> str:
    if not settings.loras:
        return f"There is no LoRA '{name}': no LoRAs are configured on this bot."
    names = [lo.name for lo in settings.loras]
    shown = ", ".join(names[:_LISTED]) + (", …" if len(names) > _LISTED else "")
    return f"There is no LoRA '{name}'. LoRAs offered: {shown}."


def trigger_words(loras: Sequence[tuple[str, float]], settings: ImageSettings) -> list[str]:
    """The trigger words of the LoRAs used, in order, each once (case ignored)."""
    seen: set[str] = set()
    words: list[str] = []
    for name, _ in loras:
        profile = settings.lora(name)
        for word in profile.triggers if profile is not None else ():
            if word.casefold() not in seen:
                seen.add(word.casefold())
                words.append(word)
    return words
