"""Prompt cleaning: repair mojibake, drop invisible/control characters, tidy whitespace.

clean_prompt is the one normalisation every user-supplied prompt string goes through.
"""

from __future__ import annotations

import re
import unicodedata

from bot.prompts.repair import repair_text

# Bidi overrides/isolates and BOM are invisible, can scramble how Discord shows the
# prompt, and mean nothing to the text encoder. ZWJ, ZWNJ, variation selectors and
# emoji tag characters are kept: emoji sequences and some scripts need them.
_STRIP_FORMAT = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff")


def _drop_char(ch: str) -> bool:
    if ch in _STRIP_FORMAT:
        return True
    category = unicodedata.category(ch)
    # Whitespace controls (\n, \t...) are kept here and collapsed to a space later.
    return (category == "Cc" and not ch.isspace()) or category == "Cs"


def clean_prompt(text: str) -> str:
    """repair_text, drop control chars, collapse all whitespace runs to one space, strip."""
    repaired = repair_text(text)
    kept = "".join(ch for ch in repaired if not _drop_char(ch))
    return re.sub(r"\s+", " ", kept).strip()
