"""Fitting a member's picture to the model: its aspect kept, within the limits."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from bot.config import settings_from_mapping
from bot.images.inputs import InputPictureError, check_upload, fit_size, read_picture

IMAGE = settings_from_mapping({"image": {"max_side": 768}}).image


@pytest.mark.parametrize(("size", "native", "fitted"), [
    ((512, 512), 512, (512, 512)),
    ((4000, 3000), 512, (584, 440)),  # the model's area at 4:3
    ((30, 10), 512, (768, 256)),  # small: scaled up to the area, max_side caps it
    ((100, 2000), 512, (64, 768)),  # 20:1 cannot keep both limits: the short side wins
])
def test_fit_size(size: tuple[int, int], native: int, fitted: tuple[int, int]) -> None:
    width, height = fit_size(size, IMAGE, native)
    assert (width, height) == fitted
    assert width % 8 == 0 and height % 8 == 0 and max(width, height) <= IMAGE.max_side


def test_transparency_goes_onto_white_and_the_size_is_fitted() -> None:
    buffer = io.BytesIO()
    Image.new("RGBA", (128, 128), (255, 0, 0, 0)).save(buffer, format="PNG")
    picture = read_picture(buffer.getvalue(), "clear.png", IMAGE, native=64)
    assert picture.size == (64, 64) and picture.original_size == (128, 128)
    assert picture.image.mode == "RGB" and picture.image.getpixel((10, 10)) == (255, 255, 255)


def test_declared_type_and_size_are_checked_first() -> None:
    check_upload("a.webp", 1000, "image/webp", IMAGE)
    check_upload("a.png", 1000, None, IMAGE)  # Discord did not say: the decode decides
    with pytest.raises(InputPictureError, match="is video/mp4, not a picture"):
        check_upload("clip.mp4", 1000, "video/mp4", IMAGE)
    with pytest.raises(InputPictureError, match="at most 10 MB"):
        check_upload("big.png", 11 * 2**20, "image/png", IMAGE)
