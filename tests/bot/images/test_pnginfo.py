"""AUTOMATIC1111 infotext and the PNG chunk that carries it."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from bot.images.pnginfo import (
    GenerationParameters,
    encode_png,
    format_parameters,
    parse_parameters,
    read_png_parameters,
)
from testkit.pictures import sample_parameters

# --------------------------------------------------------------------------- infotext


def test_format_matches_a1111_layout() -> None:
    params = sample_parameters(extra={"Denoising strength": "0.55", "Style": "watercolor"})
    assert format_parameters(params) == (
        "Oregon 💚, watercolor painting\n"
        "Negative prompt: blurry, lowres\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234, Size: 512x768, "
        "Model: sd_xl_base_1.0, Denoising strength: 0.55, Style: watercolor"
    )


def test_format_omits_empty_negative_and_model() -> None:
    text = format_parameters(sample_parameters(negative="", model="", cfg_scale=7.5))
    assert text == (
        "Oregon 💚, watercolor painting\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 1234, Size: 512x768"
    )


def test_extra_values_quoted_like_a1111() -> None:
    extra = {"Lora hashes": "add_detail: 7c6bad76eb54", "Note": 'a, "b"\nc', "Plain": '"x"'}
    line = format_parameters(sample_parameters(extra=extra)).splitlines()[-1]
    assert line.endswith(
        ', Lora hashes: "add_detail: 7c6bad76eb54", Note: "a, \\"b\\"\\nc", Plain: "\\"x\\""'
    )
    assert parse_parameters(format_parameters(sample_parameters(extra=extra))).extra == extra


@pytest.mark.parametrize("key", ["Seed", "bad,key", "x", "a:b"])
def test_bad_extra_keys_rejected(key: str) -> None:
    with pytest.raises(ValueError, match="extra key"):
        format_parameters(sample_parameters(extra={key: "1"}))


@pytest.mark.parametrize(
    "params",
    [
        sample_parameters(),
        sample_parameters(prompt="line one 💚\nline two ✨", negative=""),
        sample_parameters(negative="ugly\nbad hands", cfg_scale=4.25, seed=2**32 + 5),
        sample_parameters(prompt="ภาพวาดสีน้ำ, 日本", model="", extra={"Style": "pencil drawing"}),
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
    params = sample_parameters(extra={"A b": "1"})
    with pytest.raises(TypeError):
        params.extra["A b"] = "2"  # type: ignore[index]
    assert hash(params) == hash(sample_parameters(extra={"A b": "1"}))


# --------------------------------------------------------------------------- PNG chunks


def test_png_chunk_readable_by_plain_pillow() -> None:
    params = sample_parameters(prompt="emoji 💚 and\nnewline", negative="")
    data = encode_png(Image.new("RGB", (8, 8), "green"), params)
    assert b"iTXt" in data  # non-Latin-1 text needs the UTF-8 chunk type
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        assert image.info["parameters"] == format_parameters(params)
    assert read_png_parameters(data) == params


def test_latin1_text_uses_plain_text_chunk() -> None:
    data = encode_png(Image.new("RGB", (8, 8)), sample_parameters(prompt="café"))
    assert b"tEXtparameters\x00" in data
    assert read_png_parameters(data) == sample_parameters(prompt="café")


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
