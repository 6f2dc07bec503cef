"""Style presets: the named styles a prompt can ask for, and looking them up by name.

A preset's phrase is appended to the subject and its negative to the negative prompt;
names match ignoring case, width, whitespace, '-' and '_', and autocomplete suggests
prefix matches before substring matches.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class StylePreset:
    """A named style: `phrase` is appended to the subject, `negative` to the negative prompt."""

    name: str
    phrase: str
    negative: str = ""


DEFAULT_STYLES: tuple[StylePreset, ...] = (
    StylePreset(
        "painting",
        "oil painting, visible brushstrokes, rich colors, canvas texture, fine art",
        "photo, photograph, 3d render",
    ),
    StylePreset(
        "pencil drawing",
        "pencil drawing, graphite sketch, detailed shading, cross-hatching, on white paper",
        "color, photo",
    ),
    StylePreset(
        "watercolor",
        "watercolor painting, soft washes, paper texture, delicate color bleeds",
        "photo, 3d render",
    ),
    StylePreset(
        "fantasy",
        "fantasy art, epic, magical atmosphere, dramatic lighting, highly detailed",
        "photo, mundane",
    ),
    StylePreset(
        "cyberpunk",
        "cyberpunk, neon lights, rain-slick city streets, futuristic, high tech, night",
        "daylight, rustic",
    ),
    StylePreset(
        "science fiction painting",
        "science fiction painting, retro-futurism, vast spaceships, alien worlds, matte painting",
        "photo, medieval",
    ),
    StylePreset(
        "psychedelic surrealism",
        "psychedelic surrealism, vivid swirling colors, dreamlike, melting forms, "
        "intricate patterns",
        "muted colors, monochrome",
    ),
)


def _style_key(name: str) -> str:
    """Case-, width- and whitespace-insensitive key: "Pencil-Drawing" == "pencil drawing"."""
    return re.sub(r"[\s_\-]+", "", unicodedata.normalize("NFKC", name).casefold())


def find_style(styles: Sequence[StylePreset], name: str) -> StylePreset | None:
    """The preset whose name matches `name` ignoring case, whitespace, '-' and '_'; else None."""
    key = _style_key(name)
    if not key:
        return None
    return next((s for s in styles if _style_key(s.name) == key), None)


def style_names(styles: Sequence[StylePreset]) -> list[str]:
    return [s.name for s in styles]


def suggest_styles(styles: Sequence[StylePreset], partial: str, limit: int = 25) -> list[str]:
    """Autocomplete choices: prefix matches first, then substring matches, each in preset order."""
    needle = " ".join(partial.casefold().split())
    prefix = [s.name for s in styles if s.name.casefold().startswith(needle)]
    inner = [s.name for s in styles if needle in s.name.casefold() and s.name not in prefix]
    return (prefix + inner)[: max(limit, 0)]
