"""Prompt permutations, as Midjourney writes them: `{red, green, blue} fox` is three prompts.

Groups may nest (`{red {light, dark}, green} fox`) and repeat (`{a, b} {c, d}` is four);
`\\{`, `\\}` and `\\,` are literal characters. The number of prompts is counted before
any is written out, so a prompt that would make a million is refused without making them.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import TypeAlias

from bot.prompts.parsing import PromptError

# A piece of a prompt: literal text, or a group of alternatives (each a sequence of pieces).
Sequence_: TypeAlias = tuple["Piece", ...]
Piece: TypeAlias = str | tuple[Sequence_, ...]


@dataclass(frozen=True)
class Permutations:
    prompts: tuple[str, ...]

    @property
    def count(self) -> int:
        return len(self.prompts)


def has_groups(text: str) -> bool:
    """Whether the text has a permutation group at all (an unescaped `{`)."""
    return bool(re.search(r"(?<!\\)\{", text))


def count_permutations(text: str) -> int:
    """How many prompts `text` makes (1 without groups). Raises PromptError when a brace
    is not closed or not opened."""
    return _count(_parse(text))


def expand_permutations(text: str, cap: int) -> Permutations:
    """Every prompt `text` makes, in reading order; raises PromptError naming the count
    when it is over `cap`, or when the braces do not match."""
    tree = _parse(text)
    count = _count(tree)
    if count > cap:
        raise PromptError(
            f"prompt: the {{…}} groups make {count:,} prompts; at most {cap} are allowed at "
            "once (image.max_permutations). Use fewer options, or write \\{ for a brace.")
    prompts = tuple(_tidy(p) for p in _expand(tree))
    return Permutations(prompts)


def _parse(text: str) -> Sequence_:
    """A recursive-descent parse; positions in errors are 1-based characters."""
    pos = 0

    def sequence(inside: bool) -> Sequence_:
        nonlocal pos
        pieces: list[Piece] = []
        literal: list[str] = []
        while pos < len(text):
            ch = text[pos]
            if ch == "\\" and pos + 1 < len(text) and text[pos + 1] in "{},":
                literal.append(text[pos + 1])
                pos += 2
                continue
            if ch == "{":
                if literal:
                    pieces.append("".join(literal))
                    literal = []
                opened = pos
                pos += 1
                pieces.append(group(opened))
                continue
            if ch == "}":
                if not inside:
                    raise PromptError(f"prompt: a '}}' at character {pos + 1} closes no '{{'; "
                                      "write \\} for a literal brace.")
                break
            if ch == "," and inside:
                break
            literal.append(ch)
            pos += 1
        if literal:
            pieces.append("".join(literal))
        return tuple(pieces)

    def group(opened: int) -> tuple[Sequence_, ...]:
        nonlocal pos
        alternatives = [sequence(inside=True)]
        while pos < len(text) and text[pos] == ",":
            pos += 1
            alternatives.append(sequence(inside=True))
        if pos >= len(text):
            raise PromptError(f"prompt: the '{{' at character {opened + 1} is never closed; "
                              "write \\{ for a literal brace.")
        pos += 1  # the closing brace
        return tuple(alternatives)

    return sequence(inside=False)


def _count(seq: Sequence_) -> int:
    total = 1
    for piece in seq:
        if not isinstance(piece, str):
            total *= sum(_count(alt) for alt in piece)
    return total


def _expand(seq: Sequence_) -> list[str]:
    options: list[list[str]] = []
    for piece in seq:
        if isinstance(piece, str):
            options.append([piece])
        else:
            options.append([text for alt in piece for text in _expand(alt)])
    return ["".join(parts) for parts in itertools.product(*options)]


def _tidy(prompt: str) -> str:
    """Alternatives are written with spaces around them: one space between words, and none
    before a comma, whatever the group left."""
    prompt = re.sub(r"\s+", " ", prompt).strip()
    return re.sub(r" ([,.;:!?])", r"\1", prompt)
