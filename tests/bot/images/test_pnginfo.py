from __future__ import annotations

import io
import random

import pytest
from PIL import Image

from bot.images import (
    GRID_BACKGROUND,
    GenerationParameters,
    encode_png,
    fit_under,
    format_parameters,
    grid_shape,
    make_grid,
    parse_parameters,
    read_png_parameters,
)


def _params(**changes: object) -> GenerationParameters:
    base: dict[str, object] = {
        "prompt": "Oregon 💚, watercolor painting",
        "negative": "blurry, lowres",
        "steps": 20,
        "sampler": "Euler a",
        "cfg_scale": 7.0,
        "seed": 1234,
        "width": 512,
        "height": 768,
        "model": "sd_xl_base_1.0",
    }
    base.update(changes)
    return GenerationParameters(**base)  # type: ignore[arg-type]


def _noise(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.frombytes(
        "RGB", (width, height), random.Random(seed).randbytes(width * height * 3)
    )


# --------------------------------------------------------------------------- infotext


def test_format_matches_a1111_layout() -> None:
    params = _params(extra={"Denoising strength": "0.55", "Style": "watercolor"})
    assert format_parameters(params) == (
        "Oregon 💚, watercolor painting\n"
        "Negative prompt: blurry, lowres\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234, Size: 512x768, "
        "Model: sd_xl_base_1.0, Denoising strength: 0.55, Style: watercolor"
    )


def test_format_omits_empty_negative_and_model() -> None:
    text = format_parameters(_params(negative="", model="", cfg_scale=7.5))
    assert text == (
        "Oregon 💚, watercolor painting\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 1234, Size: 512x768"
    )


def test_extra_values_quoted_like_a1111() -> None:
    extra = {"Lora hashes": "add_detail: 7c6bad76eb54", "Note": 'a, "b"\nc', "Plain": '"x"'}
    line = format_parameters(_params(extra=extra)).splitlines()[-1]
    assert line.endswith(
        ', Lora hashes: "add_detail: 7c6bad76eb54", Note: "a, \\"b\\"\\nc", Plain: "\\"x\\""'
    )
    assert parse_parameters(format_parameters(_params(extra=extra))).extra == extra


@pytest.mark.parametrize("key", ["Seed", "bad,key", "x", "a:b"])
def test_bad_extra_keys_rejected(key: str) -> None:
    with pytest.raises(ValueError, match="extra key"):
        format_parameters(_params(extra={key: "1"}))


@pytest.mark.parametrize(
    "params",
    [
        _params(),
        _params(prompt="line one 💚\nline two ✨", negative=""),
        _params(negative="ugly\nbad hands", cfg_scale=4.25, seed=2**32 + 5),
        _params(prompt="ภาพวาดสีน้ำ, 日本", model="", extra={"Style": "pencil drawing"}),
    ],
)
def test_round_trip(params: GenerationParameters) -> None:
    assert parse_parameters(format_parameters(params)) == params


def test_parse_known_a1111_infotext() -> None:
    text = (
        "girl with an artist's beret, determined, blue eyes, ((eyeshadow)), (coquettish)\n"
        "Negative prompt: ugly, fat, (((deformed))), [blurry], bad anatomy\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 965400086, Size: 512x512, "
        "Model hash: 45dee52b"
    )
    params = parse_parameters(text)
    assert params == GenerationParameters(
        prompt="girl with an artist's beret, determined, blue eyes, ((eyeshadow)), (coquettish)",
        negative="ugly, fat, (((deformed))), [blurry], bad anatomy",
        steps=20,
        sampler="Euler a",
        cfg_scale=7.0,
        seed=965400086,
        width=512,
        height=512,
        model="",
        extra={"Model hash": "45dee52b"},
    )


def test_parse_modern_a1111_infotext() -> None:
    text = (
        "masterpiece, a fox <lora:add_detail:0.5>\r\n"
        "  second line  \r\n"
        "Negative prompt: blurry\r\n"
        "Steps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7.0, Seed: 42, "
        'Size: 832x1216, Model hash: 4496b36d48, Model: dreamshaperXL, Lora hashes: "add_detail: '
        '7c6bad76eb54", Version: v1.10.1'
    )
    params = parse_parameters(text)
    assert params.prompt == "masterpiece, a fox <lora:add_detail:0.5>\nsecond line"
    assert params.negative == "blurry"
    assert (params.sampler, params.cfg_scale, params.width, params.height) == (
        "DPM++ 2M",
        7.0,
        832,
        1216,
    )
    assert params.model == "dreamshaperXL"
    assert dict(params.extra) == {
        "Schedule type": "Karras",
        "Model hash": "4496b36d48",
        "Lora hashes": "add_detail: 7c6bad76eb54",
        "Version": "v1.10.1",
    }


@pytest.mark.parametrize(
    "text",
    [
        "just a prompt",
        "a prompt\nSteps: 20, Seed: 1",  # fewer than 3 settings: A1111 reads it as prompt
        "p\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1",  # no Size
        "p\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: big",
        "p\nSteps: many, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 8x8",
    ],
)
def test_parse_rejects_non_infotext(text: str) -> None:
    with pytest.raises(ValueError):
        parse_parameters(text)


def test_parameters_are_immutable() -> None:
    params = _params(extra={"A b": "1"})
    with pytest.raises(TypeError):
        params.extra["A b"] = "2"  # type: ignore[index]
    assert hash(params) == hash(_params(extra={"A b": "1"}))


# --------------------------------------------------------------------------- PNG chunks


def test_png_chunk_readable_by_plain_pillow() -> None:
    params = _params(prompt="emoji 💚 and\nnewline", negative="")
    data = encode_png(Image.new("RGB", (8, 8), "green"), params)
    assert b"iTXt" in data  # non-Latin-1 text needs the UTF-8 chunk type
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        assert image.info["parameters"] == format_parameters(params)
    assert read_png_parameters(data) == params


def test_latin1_text_uses_plain_text_chunk() -> None:
    data = encode_png(Image.new("RGB", (8, 8)), _params(prompt="café"))
    assert b"tEXtparameters\x00" in data
    assert read_png_parameters(data) == _params(prompt="café")


def test_read_png_parameters_absent_or_invalid() -> None:
    assert read_png_parameters(encode_png(Image.new("RGB", (8, 8)), None)) is None
    assert read_png_parameters(b"not an image") is None
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "no settings line")
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG", pnginfo=info)
    assert read_png_parameters(buffer.getvalue()) is None


def test_encode_png_converts_unsupported_modes() -> None:
    data = encode_png(Image.new("CMYK", (4, 4)), None)
    with Image.open(io.BytesIO(data)) as image:
        assert image.mode == "RGB"


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


# --------------------------------------------------------------------------- size limits


def test_small_image_stays_full_size_png() -> None:
    params = _params()
    data, ext = fit_under(Image.new("RGB", (512, 512), "blue"), params=params)
    assert ext == "png"
    assert read_png_parameters(data) == params


def test_fitting_png_bytes_pass_through_untouched() -> None:
    original = encode_png(Image.new("RGB", (32, 32)), _params())
    assert fit_under(original) == (original, "png")


def test_noise_is_downscaled_until_png_fits() -> None:
    params = _params(width=3000, height=3000)
    data, ext = fit_under(_noise(3000, 3000), 10 * 1024 * 1024, params=params)
    assert ext == "png"
    assert len(data) <= 10 * 1024 * 1024
    with Image.open(io.BytesIO(data)) as image:
        assert image.width == image.height < 3000
        assert image.width > 1000  # one well-aimed step, not a collapse
    assert read_png_parameters(data) == params


def test_oversized_png_bytes_keep_their_embedded_parameters() -> None:
    params = _params()
    original = encode_png(_noise(400, 400), params)
    data, ext = fit_under(original, limit_bytes=len(original) // 2)
    assert ext == "png" and len(data) <= len(original) // 2
    assert read_png_parameters(data) == params


def test_jpeg_fallback_for_tiny_limits() -> None:
    data, ext = fit_under(_noise(300, 300), limit_bytes=4000)
    assert ext == "jpg" and len(data) <= 4000
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG"
