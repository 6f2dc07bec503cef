"""Blocked terms: find which configured term, if any, a prompt contains.

Matching is NFKC + casefold and whole-word, ignores zero-width characters, tolerates
punctuation between the words of a phrase and spelled-out single words, and falls back
to substring matching for scripts written without spaces.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache

_SEP = r"[\W_]"  # anything but a letter or digit
_NOT_ALNUM_BEFORE = r"(?<![^\W_])"
_NOT_ALNUM_AFTER = r"(?![^\W_])"
# Scripts written without spaces between words: whole-word matching is meaningless there.
_UNSPACED = re.compile(
    "[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"
)


def _normalise(text: str) -> str:
    # NFKC folds fullwidth/compat forms; dropping format chars defeats zero-width splitting.
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in folded if unicodedata.category(ch) != "Cf")


def _spelled_pattern(letters: str) -> str:
    """Spelled-out form ("n.s.f.w", "n s f w"); neighbours must not be lone letters too."""
    body = f"{_SEP}{{1,3}}".join(map(re.escape, letters))
    # Not continuing a spelled-out sequence on either side ("c.l.a.s.s" is not "a.s.s").
    before = "".join(rf"(?<!(?<![^\W_])[^\W_]{_SEP}{{{n}}})" for n in (1, 2, 3))
    after = rf"(?!{_SEP}{{1,3}}[^\W_](?![^\W_]))"
    return _NOT_ALNUM_BEFORE + before + body + _NOT_ALNUM_AFTER + after


def _term_pattern(term: str) -> str | None:
    norm = _normalise(term).strip()
    if not norm:
        return None
    if _UNSPACED.search(norm):
        return re.escape(norm)
    words = re.findall(r"[^\W_]+", norm)
    if not words:
        return re.escape(norm)
    # Words of a phrase may be separated by any run of spaces/punctuation.
    plain = _NOT_ALNUM_BEFORE + f"{_SEP}+".join(map(re.escape, words)) + _NOT_ALNUM_AFTER
    if len(words) == 1 and len(words[0]) > 1:
        return f"{plain}|{_spelled_pattern(words[0])}"
    return plain


@lru_cache(maxsize=32)
def _compile_terms(terms: tuple[str, ...]) -> tuple[tuple[str, re.Pattern[str]], ...]:
    compiled = []
    for term in terms:
        pattern = _term_pattern(term)
        if pattern is not None:
            compiled.append((term, re.compile(pattern)))
    return tuple(compiled)


def find_blocked_term(text: str, terms: Sequence[str]) -> str | None:
    """The first of `terms` (in list order) that occurs in `text`, or None.

    Matching is NFKC + casefold, ignores zero-width/format characters, and is whole-word:
    "ass" does not match "class". Words of a phrase may be separated by any spaces or
    punctuation ("nude   woman", "nude_woman"), and a single word is also caught when
    spelled out with 1-3 separators between every letter ("n.s.f.w", "n s f w").
    Terms in unspaced scripts (Thai, CJK, kana, Khmer, Myanmar, Lao) match as substrings.
    Not handled: leetspeak, repeated letters, homoglyphs from other scripts.
    """
    haystack = _normalise(text)
    for term, pattern in _compile_terms(tuple(terms)):
        if pattern.search(haystack):
            return term
    return None
