"""The chain picture: every round side by side (a grid past four), texts wrapped under the
pictures and cut with "…", an empty square for a picture that is gone, within the limit."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageFont

from bot.story.models import Author
from bot.telephone.chain import PAD, PER_ROW, TILE, chain_picture, chain_png, wrap
from bot.telephone.models import Round


def rounds(tmp_path: Path, count: int, text: str = "a fox in the snow") -> list[Round]:
    made = []
    for n in range(1, count + 1):
        path = tmp_path / f"{n}.png"
        Image.new("RGB", (64, 48), (n * 20, 90, 40)).save(path)
        made.append(Round(game_id=1, number=n, text=text, author=Author(1, "alice"),
                          created_at=0.0, image_path=path))
    return made


def test_rounds_in_a_row_then_a_grid(tmp_path: Path) -> None:
    three = chain_picture(rounds(tmp_path, 3))
    assert three.width == PAD + 3 * (TILE + PAD)
    six = chain_picture(rounds(tmp_path, 6))
    assert six.width == PAD + PER_ROW * (TILE + PAD)
    assert six.height > 2 * TILE > three.height - 2 * PAD - TILE
    # The first picture fills its square, centred (64×48 scaled up to TILE wide).
    assert three.getpixel((PAD + TILE // 2, PAD + TILE // 2)) == (20, 90, 40)


def test_a_picture_that_is_gone_leaves_an_empty_square(tmp_path: Path) -> None:
    made = rounds(tmp_path, 2)
    made[1].image_path.unlink()  # type: ignore[union-attr]
    sheet = chain_picture(made)
    assert sheet.getpixel((2 * PAD + TILE + TILE // 2, PAD + TILE // 2)) == (225, 228, 222)


def test_long_texts_are_wrapped_and_cut() -> None:
    font = ImageFont.load_default(16)
    lines = wrap("word " * 200, font, 200, 3)
    assert len(lines) == 3 and lines[-1].endswith("…")
    assert all(font.getlength(line) <= 200 for line in lines)
    assert wrap("a fox", font, 200, 3) == ["a fox"]


def test_the_chain_fits_the_limit(tmp_path: Path) -> None:
    data = chain_png(rounds(tmp_path, 8, "a long description " * 20), 60_000)
    assert len(data) <= 60_000
