"""A story's cast: characters with a look, put into the pictures of the lines that name them.

Pure functions; names and looks are checked by `bot.story.cast_options`, the cast is
stored by `bot.story.cast_repository`.

- Mentions: a line mentions a character when it holds the name as a whole word, in any case
  ("mira", "Mira's"); the longer name wins where two overlap ("Tom Baker" over "Tom").
- The picture prompt: the line's own words first, then each mentioned character as
  "NAME: LOOK" (in order of mention), then the story's style phrase, cut at word boundaries
  to fit CLIP (`picture_prompt`).
- Seeds: a line that shows characters derives its picture's seed from the story and the
  first-mentioned character (the line's subject, whose look comes first and is cut last), so
  a character drawn again starts from the same noise and keeps their look better; the line's
  redraw count is part of it, so 🎨 Redraw still gives a new picture.

The cast is not put into the text model's context: GPT-Neo continues prose, and a
"Characters:" preface would come back as lists of names. So a cast change leaves the story
model's key/value cache (`TextParams.cache_key`) valid: the text it has read is unchanged.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.story.models import Author

# CLIP reads 77 tokens: a start and an end marker around 75 of the prompt's own.
CHUNK_TOKENS = 75

TokenCounter = Callable[[str], int]  # a text's CLIP tokens, without the start/end markers

_WORD_OR_MARK = re.compile(r"[^\W_]+|[^\w\s]")


@dataclass(frozen=True)
class CastMember:
    story_id: int
    name: str
    look: str
    added_by: Author
    added_at: float
    updated_at: float

    @property
    def key(self) -> str:
        return name_key(self.name)


def name_key(name: str) -> str:
    """What makes two names the same character: case and spacing ignored."""
    return " ".join(name.split()).casefold()


# ----- mentions -------------------------------------------------------------------------------


def mentioned(text: str, cast: Sequence[CastMember]) -> list[CastMember]:
    """The characters `text` names, in the order they first appear."""
    if not cast:
        return []
    by_key = {member.key: member for member in cast}
    # Longest first: the alternation takes the first that matches at a position.
    names = sorted((member.name for member in by_key.values()), key=len, reverse=True)
    body = "|".join(r"\s+".join(map(re.escape, name.split())) for name in names)
    # Not inside a longer word; "Mira's" and "Mira." still mention Mira.
    pattern = re.compile(rf"(?<!\w)(?:{body})(?!\w)", re.IGNORECASE)
    found: dict[str, CastMember] = {}
    for match in pattern.finditer(text):
        member = by_key.get(name_key(match.group(0)))
        if member is not None:
            found.setdefault(member.key, member)
    return list(found.values())


# ----- the picture prompt ---------------------------------------------------------------------


def estimate_tokens(text: str) -> int:
    """A CLIP token count without the tokenizer (the image model's files are not on this
    host): each mark one, each word one per 7 letters begun. CLIP's vocabulary holds most
    English words whole, so this errs high: what it fits, the real tokenizer fits too."""
    return sum(-(-len(piece) // 7) for piece in _WORD_OR_MARK.findall(text))


def picture_prompt(line: str, cast: Sequence[CastMember], style_phrase: str,
                   count_tokens: TokenCounter = estimate_tokens, *,
                   max_chars: int = 1000) -> str:
    """The line, then "NAME: LOOK" for each of `cast` (the characters it mentions), then the
    style phrase, cut from the end at word boundaries to fill the line's CLIP chunks.

    The image engine encodes long prompts with compel in 75-token chunks, so nothing is lost
    to truncation; but each chunk is encoded on its own and the first one steers the picture
    most. A look in a chunk of its own is read apart from the line that puts the character
    in the scene, and then ignored or drawn as someone else: the seed of this project had
    "a man was standing there" lost that way. So the line is kept whole, and the looks and
    the style only fill what is left of the line's last chunk (the first, for any line of
    under 75 tokens); what does not fit is dropped, the style before the looks."""
    prompt = line
    used = count_tokens(line)
    budget = max(1, math.ceil(used / CHUNK_TOKENS)) * CHUNK_TOKENS
    parts = [(f"{member.name}: {member.look}", len(member.name.split()) + 1)
             for member in cast]
    parts.append((style_phrase, 1))
    for part, min_words in parts:
        if not part.strip():
            continue
        fitted = _fit(prompt, part, min_words, budget, count_tokens, max_chars)
        if fitted is None:
            break  # no room left: what follows matters less than what did not fit
        prompt = fitted
    return prompt


def _fit(prompt: str, part: str, min_words: int, budget: int, count_tokens: TokenCounter,
         max_chars: int) -> str | None:
    """`prompt, part`, with `part` cut to its longest word prefix (of at least `min_words`)
    that stays within `budget` tokens and `max_chars`; None when none does."""
    words = part.split()

    def joined(k: int) -> str:
        cut = " ".join(words[:k])
        if k < len(words):
            cut = cut.rstrip(",;:.-– ")
        return f"{prompt}, {cut}"

    def fits(k: int) -> bool:
        text = joined(k)
        return len(text) <= max_chars and count_tokens(text) <= budget

    low, high = min(min_words, len(words)), len(words)
    if not fits(low):
        return None
    while low < high:  # the most words that fit: more words never take fewer tokens
        mid = (low + high + 1) // 2
        if fits(mid):
            low = mid
        else:
            high = mid - 1
    return joined(low)


# ----- seeds ----------------------------------------------------------------------------------


def cast_seed(story_id: int, name: str, redraws: int) -> int:
    """A 32-bit picture seed for the lines showing character `name`; `redraws` counts the
    line's 🎨 Redraws (0 for its first picture)."""
    key = f"greenheart-story:cast:{story_id}:{name_key(name)}:{redraws}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=4).digest(), "big")
