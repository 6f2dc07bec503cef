"""{a, b} permutations: what a prompt expands to, how it is counted, and clear refusals."""

from __future__ import annotations

import pytest

from bot.prompts.parsing import PromptError
from bot.prompts.permutations import count_permutations, expand_permutations, has_groups


def prompts(text: str, cap: int = 12) -> tuple[str, ...]:
    return expand_permutations(text, cap).prompts


def test_groups_multiply_in_reading_order() -> None:
    assert prompts("{red, green, blue} fox") == ("red fox", "green fox", "blue fox")
    assert prompts("a {big, small} {fox, owl}") == (
        "a big fox", "a big owl", "a small fox", "a small owl")
    assert prompts("no groups at all") == ("no groups at all",)


def test_nested_groups_and_empty_alternatives() -> None:
    assert prompts("{red {light, dark}, green} fox") == (
        "red light fox", "red dark fox", "green fox")
    assert prompts("a {tiny,} cat, {watercolor}") == ("a tiny cat, watercolor", "a cat, watercolor")


def test_escapes_are_literal() -> None:
    assert prompts(r"a \{curly\} fox") == ("a {curly} fox",)
    assert prompts(r"{salt\, pepper, sugar} bowl") == ("salt, pepper bowl", "sugar bowl")
    assert not has_groups(r"a \{curly\} fox") and has_groups("{a, b}")


def test_counted_before_expanded_and_capped() -> None:
    huge = "{a,b,c,d,e,f,g,h,i,j}" * 6  # a million prompts: counted, never written out
    assert count_permutations(huge) == 10**6
    with pytest.raises(PromptError, match="make 1,000,000 prompts; at most 12"):
        expand_permutations(huge, 12)
    assert len(prompts("{a,b,c}{d,e,f}{g}", cap=9)) == 9


@pytest.mark.parametrize(("text", "where"), [
    ("{red, green fox", "the '{' at character 1 is never closed"),
    ("red} fox", "a '}' at character 4 closes no '{'"),
    ("{a, {b, c} fox", "the '{' at character 1 is never closed"),
])
def test_unbalanced_braces_say_where(text: str, where: str) -> None:
    with pytest.raises(PromptError, match=r"write \\[{}] for a literal brace") as err:
        expand_permutations(text, 12)
    assert where in str(err.value)
