"""Mojibake repair: Windows-874 and cp1252 round trips, genuine Thai and legit text untouched."""

from __future__ import annotations

import random
import unicodedata

import pytest

from bot.prompts.repair import repair_text


def as_windows_874(text: str) -> str:
    """Simulate the bug: UTF-8 bytes decoded as Windows-874 with cp1252 in 0x80-0x9F
    (C1 controls where cp1252 has nothing), as in the reported "Oregon ๐Ÿ’š"."""
    chars = []
    for byte in text.encode("utf-8"):
        if byte < 0x80 or byte == 0xA0:
            chars.append(chr(byte))
        elif byte < 0xA0:
            decoded = bytes([byte]).decode("cp1252", "replace")
            chars.append(chr(byte) if decoded == "\ufffd" else decoded)
        else:
            chars.append(chr(byte - 0xA0 + 0x0E00))
    return "".join(chars)


def test_reported_example_is_repaired() -> None:
    assert repair_text("Oregon ๐Ÿ’š") == "Oregon 💚"
    assert as_windows_874("Oregon 💚") == "Oregon ๐Ÿ’š"


@pytest.mark.parametrize(
    "original",
    [
        "Oregon 💚 watercolor",
        "💚💚 twice and 🔥 apart",
        "❤️ with variation selector",
        "👍🏽 skin tone",
        "👨‍👩‍👧 zwj family",
        "🏴󠁧󠁢󠁳󠁣󠁴󠁿 tag flag",
        "“quoted” — it’s…",
        "🌠 has a 0xA0 byte",
        "日本の猫 💚",
        "naïve café ✨",
    ],
)
def test_windows_874_mojibake_round_trips(original: str) -> None:
    assert repair_text(as_windows_874(original)) == original


def test_mojibake_hugged_by_legit_punctuation() -> None:
    assert repair_text("“๐Ÿ’š”") == "“💚”"
    assert repair_text("love ๐Ÿ’š…") == "love 💚…"


def test_mojibake_glued_to_genuine_thai() -> None:
    assert repair_text("ภาพ๐Ÿ’š") == "ภาพ💚"


@pytest.mark.parametrize(
    "text",
    [
        "ภาพวาดสีน้ำ",
        "แมวน่ารัก ภาพวาดสีน้ำ",
        "ไป…",  # decodes to a CJK char, but is ordinary Thai
        "โค…",  # decodes to an arrow symbol (U+2905)
        "“ไป”",
        "รถ",  # "car"; also UTF-8 for "ö"
        "ฉันจะไป… วันนี้",
        "cafรฉ",  # ambiguous without evidence: left alone
    ],
)
def test_genuine_thai_is_untouched(text: str) -> None:
    assert repair_text(text) == text


def test_ambiguous_latin_fixed_when_text_is_clearly_mojibake() -> None:
    assert repair_text(as_windows_874("café 💚")) == "café 💚"
    # 'œ' never follows genuine Thai, so "รœ" alone is evidence enough.
    assert repair_text(as_windows_874("Ünïcödé")) == "Ünïcödé"


def test_mojibaked_thai_stays_because_decoding_to_thai_is_not_trusted() -> None:
    # Per policy a decode that yields Thai is never applied; the ellipsis still is.
    assert repair_text(as_windows_874("ไป…")) == as_windows_874("ไป") + "…"


def test_cp1252_mojibake_fixed_by_ftfy() -> None:
    assert repair_text("OregonÂ ðŸ’š") == "Oregon\xa0💚"
    assert repair_text("cafÃ© â€œhiâ€\x9d") == "café “hi”"


@pytest.mark.parametrize(
    "text",
    [
        "a plain ascii prompt, 4k, (masterpiece:1.2)",
        "it’s a “test”… – done",
        "&amp; stays as typed",
        "ﬁ ligature and ＦＵＬＬ width",
        "emoji 💚🔥 already fine",
        "Ελληνικά и кириллица",
    ],
)
def test_legit_text_unchanged(text: str) -> None:
    assert repair_text(text) == text


def test_random_thai_and_ascii_only_gets_nfc() -> None:
    rng = random.Random(874)
    alphabet = [chr(cp) for cp in range(0x0E01, 0x0E5C)] + list("abc .,!?-")
    for _ in range(2000):
        text = "".join(rng.choices(alphabet, k=rng.randint(1, 12)))
        assert repair_text(text) == unicodedata.normalize("NFC", text)


def test_random_mojibake_with_emoji_round_trips() -> None:
    rng = random.Random(1252)
    alphabet = [*"abc xyz-", *"éüñçøåßàê", *"日本語猫", *"💚🔥✨⭐❤🎨", "’", "“", "”", "…"]
    for _ in range(1000):
        text = "".join(rng.choices(alphabet, k=rng.randint(0, 10))) + "💚"
        assert repair_text(as_windows_874(text)) == text
