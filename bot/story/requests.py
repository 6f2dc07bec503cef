"""From what members typed to validated story values, and from a story to job parameters.

Pure functions: the cog, the CLI and the tests share the same checks and messages. Seeds are
derived from the story id and line number (a picture showing a cast member: from the story and
the character, see `bot.story.cast`), so a story's pictures (and texts) can be reproduced,
and a redraw or rewrite gets a new but still deterministic seed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from bot.config import Settings
from bot.executor.jobs import ImageParams, TextParams
from bot.images.requests import base_size
from bot.prompts import clean_prompt, find_blocked_term, find_style, parse_prompt, style_names
from bot.story.cast import (
    CastMember,
    TokenCounter,
    cast_seed,
    estimate_tokens,
    mentioned,
    picture_prompt,
)

MAX_LINE_CHARS = 1500  # leaves room for the decorations in a 2000-character message
MAX_TITLE_CHARS = 100  # Discord's limit for a thread name
DEFAULT_TITLE_CHARS = 60
# Lines sent to the text model are trimmed to about this many characters per context token;
# the writer trims exactly by tokens, this only keeps a 200-line story's job row small.
CHARS_PER_TOKEN = 8
# Lines beyond that budget are dropped this many at a time (see `recent_lines`).
TRIM_BLOCK_LINES = 8


class StoryOptionError(ValueError):
    """A bad option: the message names it, says what was wrong and what is allowed."""


def clean_line(text: str, settings: Settings, *, option: str = "text",
               nsfw_allowed: bool = False) -> str:
    """A member's line (or the seed), cleaned; raises StoryOptionError. Terms listed in
    safety.nsfw_terms pass only where `nsfw_allowed` (a channel marked NSFW)."""
    line = clean_prompt(text)
    if not line:
        raise StoryOptionError(f"`{option}` is empty; write a sentence for the story.")
    if len(line) > MAX_LINE_CHARS:
        raise StoryOptionError(
            f"`{option}` is {len(line)} characters; a line may have at most {MAX_LINE_CHARS}.")
    _refuse_blocked(line, settings, option, nsfw_allowed)
    return line


def clean_title(title: str | None, seed: str, settings: Settings, *,
                nsfw_allowed: bool = False) -> str:
    """The given title, or the seed's first words; raises StoryOptionError."""
    if title is not None and title.strip():
        cleaned = clean_prompt(title)
        if len(cleaned) > MAX_TITLE_CHARS:
            raise StoryOptionError(f"`title` is {len(cleaned)} characters; the limit is "
                                   f"{MAX_TITLE_CHARS}.")
        _refuse_blocked(cleaned, settings, "title", nsfw_allowed)
        if cleaned:
            return cleaned
    return shorten(seed, DEFAULT_TITLE_CHARS).rstrip(".…!?,;: ") or "A story"


def resolve_style(style: str | None, settings: Settings) -> str | None:
    """A preset name for the story's pictures: the given one, else the configured default."""
    wanted = (style or "").strip()
    if not wanted:
        default = settings.story.style
        preset = find_style(settings.image.styles, default) if default else None
        return preset.name if preset else None
    preset = find_style(settings.image.styles, wanted)
    if preset is None:
        choices = ", ".join(style_names(settings.image.styles)) or "(no presets configured)"
        raise StoryOptionError(f"`style` {wanted!r} is not a style preset; choose one of: "
                               f"{choices}.")
    return preset.name


def _refuse_blocked(text: str, settings: Settings, option: str, nsfw_allowed: bool) -> None:
    # The term itself is not echoed: the refusal may be seen by others.
    if find_blocked_term(text, settings.safety.blocked_terms) is not None:
        raise StoryOptionError(f"`{option}` contains a blocked term; please rephrase it.")
    if not nsfw_allowed and find_blocked_term(text, settings.safety.nsfw_terms) is not None:
        raise StoryOptionError(f"`{option}` contains a term that is only allowed in channels "
                               "marked NSFW; please rephrase it.")


def shorten(text: str, limit: int) -> str:
    """`text` cut at a word boundary to at most `limit` characters (with "…" when cut)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    if " " in head[limit // 2 :]:
        head = head.rsplit(" ", 1)[0]
    return head.rstrip(",;:-– ") + "…"


# ----- seeds ----------------------------------------------------------------------------------


def derive_seed(story_id: int, number: int, variant: int, purpose: str) -> int:
    """A 32-bit seed for one line's picture or text; `variant` counts redraws or rewrites."""
    key = f"greenheart-story:{purpose}:{story_id}:{number}:{variant}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=4).digest(), "big")


# ----- job parameters -------------------------------------------------------------------------


def recent_lines(lines: Sequence[str], budget_chars: int) -> tuple[str, ...]:
    """The newest lines whose total length fits `budget_chars` (the writer trims exactly),
    dropped from the front TRIM_BLOCK_LINES at a time: a first line that moved at every
    Continue would make the worker's key/value cache of the prompt useless."""
    kept = 0
    used = 0
    for line in reversed(lines):
        used += len(line) + 1
        if used > budget_chars:
            break
        kept += 1
    drop = len(lines) - kept
    aligned = -(-drop // TRIM_BLOCK_LINES) * TRIM_BLOCK_LINES
    return tuple(lines[aligned if drop > 0 and aligned < len(lines) else drop:])


def text_params(
    story_id: int, texts: Sequence[str], number: int, revision: int, settings: Settings, *,
    branch: int = 1, candidates: int = 1,
) -> TextParams:
    """The text job for line `number` of `branch`, written after `texts` (the seed first):
    `candidates` lines to choose from, in one call. A branch other than the first gets
    seeds of its own, or a rewound story would write the same lines again."""
    if not texts:
        raise ValueError("a story always has its seed line")
    budget = settings.story.context_tokens * CHARS_PER_TOKEN
    purpose = "text" if branch == 1 else f"text-b{branch}"
    return TextParams(
        seed_line=texts[0],
        lines=recent_lines(texts[1:], budget),
        rng_seed=derive_seed(story_id, number, revision, purpose),
        max_chars=MAX_LINE_CHARS,
        candidates=candidates,
        cache_key=f"story:{story_id}:{branch}",
    )


def illustration_params(
    story_id: int, style: str | None, text: str, number: int, redraws: int, settings: Settings,
    native: int = 512, *, cast: Sequence[CastMember] = (),
    count_tokens: TokenCounter = estimate_tokens,
) -> ImageParams:
    """The picture of one line: the line as the subject, then the looks of the `cast`
    members it names and the story's style, fitted to CLIP by `count_tokens` (see
    `bot.story.cast.picture_prompt`). `native` is the image model's own side, used where
    the config leaves the size at 0."""
    image = settings.image
    width, height = base_size(image, native)
    preset = find_style(image.styles, style) if style else None
    # A '|' would be read as an inline style; the whole line is the subject here.
    subject = text.replace("|", "/")
    room = image.max_prompt_chars - (len(preset.phrase) + 2 if preset else 0)
    parsed = parse_prompt(
        shorten(subject, max(room, 10)),
        styles=image.styles,
        style=preset.name if preset else None,
        default_negative=image.negative_prompt,
        max_chars=image.max_prompt_chars,
    )
    shown = mentioned(parsed.subject, cast)
    prompt = picture_prompt(parsed.subject, shown, preset.phrase if preset else "",
                            count_tokens, max_chars=image.max_prompt_chars)
    # A character keeps their seed from line to line; other lines get one of their own.
    seed = (cast_seed(story_id, shown[0].name, redraws) if shown
            else derive_seed(story_id, number, redraws, "image"))
    return ImageParams(
        prompt=prompt,
        negative=parsed.negative,
        subject=parsed.subject,
        style=preset.name if preset else None,
        seeds=(seed,),
        steps=settings.story.steps or image.steps,
        guidance=image.guidance,
        width=width,
        height=height,
    )
