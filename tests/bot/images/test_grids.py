"""Grids of a job's pictures, with and without captions."""

from __future__ import annotations

import pytest
from PIL import Image

from bot.images.grids import GRID_BACKGROUND, grid_shape, make_grid

# --------------------------------------------------------------------------- grids


@pytest.mark.parametrize(
    ("count", "shape"),
    [
        *[(1, (1, 1)), (2, (2, 1)), (3, (2, 2)), (4, (2, 2)), (5, (3, 2)), (6, (3, 2))],
        *[(7, (3, 3)), (8, (3, 3)), (9, (3, 3)), (10, (4, 3)), (16, (4, 4)), (17, (5, 4))],
    ],
)
def test_grid_shape(count: int, shape: tuple[int, int]) -> None:
    assert grid_shape(count) == shape


@pytest.mark.parametrize("count", range(2, 10))
def test_grid_size_and_placement(count: int) -> None:
    colours = [(i * 25, 255 - i * 25, 100) for i in range(count)]
    images = [Image.new("RGB", (40, 30), c) for c in colours]
    grid = make_grid(images, gutter=4)
    columns, rows = grid_shape(count)
    assert grid.size == (columns * 40 + (columns - 1) * 4, rows * 30 + (rows - 1) * 4)
    for index, colour in enumerate(colours):
        x = (index % columns) * 44 + 20
        y = (index // columns) * 34 + 15
        assert grid.getpixel((x, y)) == colour
    if count < columns * rows:  # the empty cell is background
        assert grid.getpixel((grid.width - 5, grid.height - 5)) == GRID_BACKGROUND


def test_single_image_is_returned_as_is() -> None:
    image = Image.new("RGB", (16, 16))
    assert make_grid([image]) is image


def test_labels_drawn_in_caption_strip() -> None:
    images = [Image.new("RGB", (256, 256), "white") for _ in range(3)]
    labels = ["painting", "ภาพ 💚 日本", "a very long style name " * 5]
    grid = make_grid(images, labels=labels, gutter=8)
    assert grid.height > 2 * 256 + 8  # two rows, each with a caption strip
    for index in range(3):
        left = (index % 2) * (256 + 8)
        top = (index // 2) * (grid.height + 8) // 2 + 256
        strip = grid.crop((left, top + 1, left + 256, top + 20))
        colours = {colour for _, colour in strip.getcolors(maxcolors=256 * 20) or []}
        assert colours - {GRID_BACKGROUND}, f"no text drawn under tile {index}"


def test_single_labelled_image_gets_caption() -> None:
    grid = make_grid([Image.new("RGB", (64, 64))], labels=["watercolor"])
    assert grid.width == 64 and grid.height > 64


def test_mixed_sizes_and_alpha_are_centred() -> None:
    big = Image.new("RGB", (20, 20), "red")
    small = Image.new("RGBA", (10, 10), (0, 0, 255, 255))
    clear = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    grid = make_grid([big, small, clear], gutter=0)
    assert grid.getpixel((30, 10)) == (0, 0, 255)
    assert grid.getpixel((21, 1)) == GRID_BACKGROUND
    assert grid.getpixel((10, 30)) == GRID_BACKGROUND  # transparent tile shows background


def test_grid_argument_errors() -> None:
    with pytest.raises(ValueError, match="at least one image"):
        make_grid([])
    with pytest.raises(ValueError, match="labels"):
        make_grid([Image.new("RGB", (4, 4))] * 2, labels=["one"])
