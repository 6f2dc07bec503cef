from __future__ import annotations

import random
import unicodedata

import pytest

from bot.prompts import (
    DEFAULT_STYLES,
    ParsedPrompt,
    PromptError,
    StylePreset,
    clean_prompt,
    find_blocked_term,
    find_style,
    parse_prompt,
    repair_text,
    style_names,
    suggest_styles,
)


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


# --------------------------------------------------------------------------- repair_text


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


# --------------------------------------------------------------------------- clean_prompt


def test_clean_prompt_collapses_whitespace_and_strips() -> None:
    assert clean_prompt("  a  cat\n\n on\t a\r\nmat \u3000 ") == "a cat on a mat"


def test_clean_prompt_drops_controls_keeps_emoji_sequences() -> None:
    family = "👨\u200d👩\u200d👧"
    heart = "❤\ufe0f"
    text = f"a\x00b\x1b[31m {family} {heart} \u202eevil\u202c \ufeff"
    assert clean_prompt(text) == f"ab[31m {family} {heart} evil"


def test_clean_prompt_repairs_then_cleans() -> None:
    assert clean_prompt("  Oregon\u00a0๐Ÿ’š \n") == "Oregon 💚"


def test_clean_prompt_keeps_unicode_exactly() -> None:
    text = "ภาพวาดสีน้ำ 日本 Ελληνικά (cat:1.2) [dog|fox] ＡＢ ﬁ 🏳️‍🌈"
    assert clean_prompt(text) == text


# --------------------------------------------------------------------------- styles


def test_default_styles() -> None:
    assert style_names(DEFAULT_STYLES) == [
        "painting",
        "pencil drawing",
        "watercolor",
        "fantasy",
        "cyberpunk",
        "science fiction painting",
        "psychedelic surrealism",
    ]
    assert all(s.phrase for s in DEFAULT_STYLES)
    assert find_style(DEFAULT_STYLES, "pencil drawing").negative == "color, photo"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "name", ["Watercolor", " WATERCOLOR ", "pencil  drawing", "Pencil-Drawing"]
)
def test_find_style_is_case_and_space_insensitive(name: str) -> None:
    assert find_style(DEFAULT_STYLES, name) is not None


def test_find_style_unknown_or_empty() -> None:
    assert find_style(DEFAULT_STYLES, "vaporwave") is None
    assert find_style(DEFAULT_STYLES, "  ") is None


def test_suggest_styles_prefix_before_substring() -> None:
    assert suggest_styles(DEFAULT_STYLES, "p") == [
        "painting",
        "pencil drawing",
        "psychedelic surrealism",
        "cyberpunk",
        "science fiction painting",
    ]
    assert suggest_styles(DEFAULT_STYLES, "PAINT") == ["painting", "science fiction painting"]
    assert suggest_styles(DEFAULT_STYLES, "") == style_names(DEFAULT_STYLES)
    assert suggest_styles(DEFAULT_STYLES, "", limit=2) == ["painting", "pencil drawing"]
    assert suggest_styles(DEFAULT_STYLES, "zzz") == []


# --------------------------------------------------------------------------- parse_prompt


def _parse(raw: str, **kwargs: object) -> ParsedPrompt:
    return parse_prompt(raw, styles=DEFAULT_STYLES, **kwargs)  # type: ignore[arg-type]


def _preset(name: str) -> StylePreset:
    preset = find_style(DEFAULT_STYLES, name)
    assert preset is not None
    return preset


@pytest.mark.parametrize(
    "raw", ["Oregon 💚|painting", "Oregon 💚 | Painting ", "Oregon ๐Ÿ’š|painting"]
)
def test_inline_preset(raw: str) -> None:
    parsed = _parse(raw)
    painting = _preset("painting")
    assert parsed.subject == "Oregon 💚"
    assert parsed.style == painting
    assert parsed.prompt == f"Oregon 💚, {painting.phrase}"
    assert parsed.negative == painting.negative


def test_inline_free_form_style() -> None:
    parsed = _parse("a cat | in the style of ukiyo-e")
    assert parsed.style == StylePreset("in the style of ukiyo-e", "in the style of ukiyo-e")
    assert parsed.prompt == "a cat, in the style of ukiyo-e"


def test_split_on_last_top_level_bar() -> None:
    parsed = _parse("a | b | watercolor")
    assert parsed.subject == "a | b"
    assert parsed.style == _preset("watercolor")
    # A1111 alternation syntax inside brackets is not a style separator.
    assert _parse("a [cat|dog] hybrid").prompt == "a [cat|dog] hybrid"


def test_no_style() -> None:
    parsed = _parse("  just a cat  ")
    assert parsed == ParsedPrompt("just a cat", None, "just a cat", "")
    assert _parse("a cat |").style is None


def test_explicit_style_overrides_inline() -> None:
    parsed = _parse("a cat | watercolor", style="Cyberpunk")
    assert parsed.subject == "a cat"
    assert parsed.style == _preset("cyberpunk")


def test_explicit_unknown_style_lists_presets() -> None:
    with pytest.raises(PromptError) as info:
        _parse("a cat", style="vaporwave")
    assert str(info.value) == (
        "style 'vaporwave' is not a preset; choose one of: painting, pencil drawing, "
        "watercolor, fantasy, cyberpunk, science fiction painting, psychedelic surrealism"
    )


@pytest.mark.parametrize("raw", ["", "   \n ", "| painting", "\x00"])
def test_empty_prompt(raw: str) -> None:
    with pytest.raises(PromptError, match=r"^prompt is empty"):
        _parse(raw)


def test_length_limits_after_cleaning() -> None:
    assert _parse("a" + " " * 50 + "b", max_chars=3).subject == "a b"
    with pytest.raises(PromptError) as info:
        _parse("x" * 1203)
    assert str(info.value) == "prompt is 1203 characters; the limit is 1000."
    with pytest.raises(PromptError, match=r"^negative prompt is 11 characters; the limit is 10\.$"):
        _parse("cat", negative="x" * 11, max_negative_chars=10)


def test_negative_merge_order_dedupe_and_empties() -> None:
    parsed = _parse(
        "a cat | pencil drawing",
        negative=" blurry,, Photo ,(ugly, bad:1.2) ",
        default_negative="blurry, lowres, ",
    )
    assert parsed.negative == "blurry, Photo, (ugly, bad:1.2), color, lowres"


def test_prompt_error_is_value_error() -> None:
    assert issubclass(PromptError, ValueError)


# --------------------------------------------------------------------------- blocklist

TERMS = ["nsfw", "ass", "nude woman", "ภาพโป๊", "血"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("kick ass", "ass"),
        ("NSFW", "nsfw"),
        ("nsfw,1girl", "nsfw"),
        ("ｎｓｆｗ", "nsfw"),
        ("n.s.f.w art", "nsfw"),
        ("a cat, N S F W", "nsfw"),
        ("n-s-f-w", "nsfw"),
        ("n . s . f . w", "nsfw"),
        ("n\u200bsfw", "nsfw"),
        ("nude   woman", "nude woman"),
        ("Nude_Woman", "nude woman"),
        ("ภาพโป๊สวย", "ภาพโป๊"),
        ("bloody 血 scene", "血"),
        ("a class act", None),
        ("grass and glass", None),
        ("c.l.a.s.s", None),
        ("nudes women", None),
        ("", None),
    ],
)
def test_find_blocked_term(text: str, expected: str | None) -> None:
    assert find_blocked_term(text, TERMS) == expected


def test_find_blocked_term_returns_term_as_listed_and_skips_empty() -> None:
    assert find_blocked_term("some GORE here", ["", "  ", "Gore"]) == "Gore"
    assert find_blocked_term("anything", []) is None
