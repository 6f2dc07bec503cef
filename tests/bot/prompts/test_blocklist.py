"""find_blocked_term: whole-word, width/case-folded, spelled-out and unspaced-script matching."""

from __future__ import annotations

import pytest

from bot.prompts.blocklist import find_blocked_term

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
