"""clean_prompt: repair, then drop controls and collapse whitespace, keeping real Unicode."""

from __future__ import annotations

from bot.prompts.cleaning import clean_prompt


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
