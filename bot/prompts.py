"""Prompt text handling: mojibake repair, cleaning, style presets and the blocklist.

Pure Python (plus ftfy) so that it is cheap to import from cogs and tests.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import ftfy

__all__ = [
    "DEFAULT_STYLES",
    "ParsedPrompt",
    "PromptError",
    "StylePreset",
    "clean_prompt",
    "find_blocked_term",
    "find_style",
    "parse_prompt",
    "repair_text",
    "style_names",
    "suggest_styles",
]


# --------------------------------------------------------------------------- styles


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


# --------------------------------------------------------------------------- repair

# ftfy restricted to encoding repair: no quote uncurling, HTML unescaping, ligature or
# width folding, so legitimate punctuation like ’ “ … survives untouched.
_FTFY_CONFIG = ftfy.TextFixerConfig(
    unescape_html=False,
    remove_terminal_escapes=False,
    fix_encoding=True,
    restore_byte_a0=True,
    replace_lossy_sequences=True,
    decode_inconsistent_utf8=True,
    fix_c1_controls=True,
    fix_latin_ligatures=False,
    fix_character_width=False,
    uncurl_quotes=False,
    fix_line_breaks=False,
    fix_surrogates=True,
    remove_control_chars=False,
    normalization="NFC",
    explain=False,
)

_THAI_FIRST, _THAI_LAST = 0x0E01, 0x0E5B  # cp874 bytes 0xA1..0xFB, a linear mapping


def _build_cp874_reverse() -> dict[str, int]:
    """char -> byte for text that is UTF-8 bytes mis-decoded as Windows-874.

    Python's cp874 leaves most of 0x80-0x9F undefined, but the decoders seen in the
    wild fill them like cp1252 (0x9F -> 'Ÿ', 0x92 -> '’') or pass them through as
    the same-valued C1 control, so both spellings map back to the byte.
    """
    table = {chr(b): b for b in range(0x80)}
    for b in range(0x80, 0xA0):
        table[chr(b)] = b
        # cp1252 leaves 0x81 0x8D 0x8F 0x90 0x9D undefined: those only have the C1 form.
        with contextlib.suppress(UnicodeDecodeError):
            table[bytes([b]).decode("cp1252")] = b
    table["\xa0"] = 0xA0
    for cp in range(_THAI_FIRST, _THAI_LAST + 1):
        table[chr(cp)] = cp - 0x0E00 + 0xA0
    return table


_CP874_REVERSE = _build_cp874_reverse()
# A mojibake run: non-ASCII chars that map to bytes (UTF-8 multi-byte never contains ASCII).
_CP874_RUN = re.compile(
    "[" + "".join(re.escape(c) for c in sorted(_CP874_REVERSE) if ord(c) >= 0x80) + "]+"
)


def _is_thai(ch: str) -> bool:
    return 0x0E00 <= ord(ch) <= 0x0E7F


def _is_emoji_range(cp: int) -> bool:
    return 0x1F000 <= cp <= 0x1FAFF or 0xE0020 <= cp <= 0xE007F


def _is_strong(ch: str, seq: bytes) -> bool:
    """Decoded char that genuine Thai cannot produce: a symbol/emoji whose bytes include
    0x80-0xA0 (a cp1252 punctuation char, C1 control or NBSP in the Thai-looking text)."""
    # U+2000-27FF is E2 80..9F: 'โ' then a marker, impossible in Thai ('โ' precedes a
    # consonant). From U+2800 the second byte is a consonant ("โค…" is real Thai).
    cp = ord(ch)
    symbolish = 0x2000 <= cp <= 0x27FF or 0xFE00 <= cp <= 0xFE0F or _is_emoji_range(cp)
    return symbolish and any(0x80 <= b <= 0xA0 for b in seq)


# Punctuation that may legitimately follow genuine Thai text ("ไป…" is Thai, yet decodes).
_COMMON_MARKERS = frozenset("…‘’“”–—•™\xa0")


def _is_confident(ch: str, seq: bytes) -> bool:
    """Strong, or its bytes include a marker nobody types after Thai (œ, Š, a C1 control...)."""
    if _is_strong(ch, seq):
        return True
    rare = (b for b in seq if 0x80 <= b <= 0xA0)
    return any(bytes([b]).decode("cp1252", "replace") not in _COMMON_MARKERS for b in rare)


def _is_allowed(ch: str) -> bool:
    """Decoded char plausible as the original text (not Thai, controls, private use...)."""
    if _is_thai(ch):
        return False
    category = unicodedata.category(ch)
    if category == "Cn":  # allow emoji newer than this Python's Unicode database
        return _is_emoji_range(ord(ch))
    return category not in ("Cc", "Cs", "Co")


def _utf8_sequence_length(lead: int) -> int:
    """Length of the UTF-8 sequence a lead byte starts; 0 if it can't start one."""
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    return 4 if 0xF0 <= lead <= 0xF4 else 0


def _utf8_pieces(data: bytes) -> list[tuple[int, int, str]]:
    """Greedy scan for strictly valid multi-byte UTF-8 sequences: (start, end, char)."""
    pieces: list[tuple[int, int, str]] = []
    i = 0
    while i < len(data):
        size = _utf8_sequence_length(data[i])
        try:
            # Strict: rejects overlongs, surrogates, and truncated or ASCII continuations.
            ch = data[i : i + size].decode("utf-8") if size else ""
        except UnicodeDecodeError:
            ch = ""
        if ch:
            pieces.append((i, i + size, ch))
            i += size
        else:
            i += 1
    return pieces


@dataclass(frozen=True)
class _Fix:
    start: int  # offsets into the run (one char per byte)
    end: int
    text: str
    confident: bool  # True: genuine Thai cannot produce it; False: needs evidence


def _whole_span_fix(run: str, data: bytes) -> _Fix | None:
    """Decode the whole run, letting a few legit punctuation chars (e.g. ” …) trail it.

    The run starts at its first Thai char: chars for 0x80-0xA0 can never begin UTF-8.
    """
    start = next(i for i, c in enumerate(run) if _is_thai(c))
    last_thai = max(i for i, c in enumerate(run) if _is_thai(c))
    for end in range(len(run), max(last_thai, len(run) - 4), -1):
        pieces = _utf8_pieces(data[start:end])
        if sum(e - s for s, e, _ in pieces) != end - start:
            continue
        if not all(_is_allowed(ch) for _, _, ch in pieces):
            return None
        sure = any(_is_confident(ch, data[start + s : start + e]) for s, e, ch in pieces)
        return _Fix(start, end, "".join(ch for _, _, ch in pieces), sure)
    return None


def _plan_run(run: str) -> list[_Fix]:
    data = bytes(_CP874_REVERSE[c] for c in run)
    whole = _whole_span_fix(run, data)
    if whole is not None:
        return [whole]
    # Glued to genuine Thai: only lift out sequences genuine Thai cannot produce.
    return [
        _Fix(s, e, ch, True)
        for s, e, ch in _utf8_pieces(data)
        if _is_strong(ch, data[s:e]) and _is_allowed(ch)
    ]


def _fix_cp874_mojibake(text: str) -> str:
    runs = [m for m in _CP874_RUN.finditer(text) if any(_is_thai(c) for c in m.group())]
    plans = [(m.start(), _plan_run(m.group())) for m in runs]
    # Unsure fixes (e.g. "รฉ" -> "é": also a real Thai spelling) need a confident one
    # elsewhere in the text as evidence that it really is mojibake.
    evidence = any(f.confident for _, fixes in plans for f in fixes)
    out: list[str] = []
    pos = 0
    for offset, fixes in plans:
        for fix in fixes:
            if fix.confident or evidence:
                out.append(text[pos : offset + fix.start])
                out.append(fix.text)
                pos = offset + fix.end
    out.append(text[pos:])
    return "".join(out)


def repair_text(text: str) -> str:
    """Undo mojibake (UTF-8 read as cp1252/latin-1 via ftfy, or as Windows-874) and NFC it.

    >>> repair_text("Oregon ๐Ÿ’š")
    'Oregon 💚'
    """
    return ftfy.fix_text(_fix_cp874_mojibake(text), _FTFY_CONFIG)


# --------------------------------------------------------------------------- cleaning

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


# --------------------------------------------------------------------------- parsing


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


# --------------------------------------------------------------------------- blocklist

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
