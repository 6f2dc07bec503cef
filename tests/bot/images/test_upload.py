"""Fitting pictures under an upload limit, keeping their parameters."""

from __future__ import annotations

import io
import random

from PIL import Image

from bot.images.pnginfo import encode_png, read_png_parameters
from bot.images.upload import fit_under
from testkit.pictures import sample_parameters


def _noise(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.frombytes(
        "RGB", (width, height), random.Random(seed).randbytes(width * height * 3)
    )


# --------------------------------------------------------------------------- size limits


def test_small_image_stays_full_size_png() -> None:
    params = sample_parameters()
    data, ext = fit_under(Image.new("RGB", (512, 512), "blue"), params=params)
    assert ext == "png"
    assert read_png_parameters(data) == params


def test_fitting_png_bytes_pass_through_untouched() -> None:
    original = encode_png(Image.new("RGB", (32, 32)), sample_parameters())
    assert fit_under(original) == (original, "png")


def test_noise_is_downscaled_until_png_fits() -> None:
    params = sample_parameters(width=3000, height=3000)
    data, ext = fit_under(_noise(3000, 3000), 10 * 1024 * 1024, params=params)
    assert ext == "png"
    assert len(data) <= 10 * 1024 * 1024
    with Image.open(io.BytesIO(data)) as image:
        assert image.width == image.height < 3000
        assert image.width > 1000  # one well-aimed step, not a collapse
    assert read_png_parameters(data) == params


def test_oversized_png_bytes_keep_their_embedded_parameters() -> None:
    params = sample_parameters()
    original = encode_png(_noise(400, 400), params)
    data, ext = fit_under(original, limit_bytes=len(original) // 2)
    assert ext == "png" and len(data) <= len(original) // 2
    assert read_png_parameters(data) == params


def test_jpeg_fallback_for_tiny_limits() -> None:
    data, ext = fit_under(_noise(300, 300), limit_bytes=4000)
    assert ext == "jpg" and len(data) <= 4000
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG"
