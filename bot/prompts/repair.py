"""Mojibake repair: undo UTF-8 text that was mis-decoded before it reached the bot.

ftfy (restricted to encoding repair) handles UTF-8 read as cp1252/latin-1; the cp874
machinery here handles UTF-8 read as Windows-874 (Thai), as in "Oregon ๐Ÿ’š", while
leaving genuine Thai text alone. repair_text applies both and NFCs the result.
"""

from __future__ import annotations

import contextlib
import re
import unicodedata
from dataclasses import dataclass

import ftfy

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
