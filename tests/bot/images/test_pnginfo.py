"""AUTOMATIC1111 infotext and the PNG chunk that carries it."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from bot.images.pnginfo import (
    GenerationParameters,
    LoraUse,
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
    # The LoRA tag is read out of the prompt, with its hash out of "Lora hashes".
    assert params.prompt == "masterpiece, a fox\nsecond line"
    assert params.loras == (LoraUse("add_detail", 0.5, "7c6bad76eb54"),)
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



# ------------------------------------------------- prompts that say "Negative prompt:" themselves


def a1111_split(text: str) -> tuple[str, str]:
    """AUTOMATIC1111's own reading (modules/infotext_utils.py, parse_generation_parameters),
    written out again here so that the tests do not trust our parser to mirror it."""
    prompt, negative, done_with_prompt = "", "", False
    *lines, _settings = text.strip().split("\n")
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            done_with_prompt = True
            line = line[16:].strip()
        if done_with_prompt:
            negative += ("" if negative == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line
    return prompt, negative


def test_prompt_starting_with_the_negative_marker_is_read_back_as_the_prompt() -> None:
    params = sample_parameters(prompt="Negative prompt: a cat, watercolor painting",
                               negative="blurry")
    text = format_parameters(params)
    assert text.startswith("\\Negative prompt: a cat, watercolor painting\n"
                           "Negative prompt: blurry\n")
    assert parse_parameters(text) == params
    # A1111 reads the escaped line as prompt text (the backslash shows, nothing is lost).
    assert a1111_split(text) == ("\\Negative prompt: a cat, watercolor painting", "blurry")
    no_negative = sample_parameters(prompt="Negative prompt: a cat", negative="")
    assert parse_parameters(format_parameters(no_negative)) == no_negative
    assert a1111_split(format_parameters(no_negative)) == ("\\Negative prompt: a cat", "")


def test_ordinary_prompts_are_written_exactly_as_before() -> None:
    for prompt in ("a cat", "negative prompt: lowercase is not the marker",
                   "a \\ backslash and Negative prompt: inside a line", "line\n\\ two"):
        params = sample_parameters(prompt=prompt, negative="blurry")
        assert format_parameters(params).startswith(f"{prompt}\nNegative prompt: blurry\n")
        assert parse_parameters(format_parameters(params)) == params


TRICKY_LINES = [
    "Negative prompt:",
    "Negative prompt: a fox",
    "Negative prompt:Negative prompt: twice",
    "\\Negative prompt: escaped by hand",
    "\\\\Negative prompt: two backslashes",
    "\\",
    "negative prompt: lower case",
    "Negative prompt : spaced colon",
    "a Negative prompt: in the middle",
    "Steps: 1, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 8x8",
    "Oregon 💚",
    "",
]


def test_round_trip_of_tricky_prompts_and_negatives() -> None:
    """Property-style: every prompt and negative of 1-3 tricky lines survives format →
    parse exactly, and A1111 reads the prompt and negative apart in the same places."""
    import itertools
    import random

    rng = random.Random(1111)
    pieces = [*TRICKY_LINES, *("x", "y z")]
    texts = ["\n".join(combo) for n in (1, 2) for combo in itertools.product(pieces, repeat=n)]
    texts += ["\n".join(rng.choice(pieces) for _ in range(3)) for _ in range(300)]
    # Lines are stripped and the infotext trimmed (A1111's rule, ours too): such texts only.
    texts = [t for t in texts if t.strip() == t and t.strip()]
    checked = 0
    for prompt in texts:
        for negative in (rng.choice(["", *texts]), ""):
            params = sample_parameters(prompt=prompt, negative=negative)
            text = format_parameters(params)
            assert parse_parameters(text) == params, text
            a_prompt, a_negative = a1111_split(text)
            # A1111 splits where we do: as many lines on each side, the same text bar the
            # escaping backslash.
            assert a_prompt.count("\n") == prompt.count("\n"), text
            assert a_negative.count("\n") == negative.count("\n"), text
            assert unescaped(a_prompt) == prompt, text
            # The first negative line follows the marker on its own line: never escaped.
            assert unescaped(a_negative, skip_first=True) == negative, text
            checked += 1
    assert checked > 300


def unescaped(text: str, *, skip_first: bool = False) -> str:
    """Drop the one backslash our writer puts before a line's "Negative prompt:"."""
    lines = text.split("\n")
    return "\n".join(
        line[1:] if (i or not skip_first) and line.startswith("\\")
        and line.lstrip("\\").startswith("Negative prompt:") else line
        for i, line in enumerate(lines))


def test_a1111_negative_with_a_second_marker_line_reads_as_a1111_does() -> None:
    text = ("a cat\nNegative prompt: blurry\nNegative prompt: lowres\n"
            "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 64x64")
    assert (parse_parameters(text).prompt, parse_parameters(text).negative) == a1111_split(text)


# --------------------------------------------------------------------------- LoRAs

PIXEL = LoraUse("pixel art", 0.8, "0123456789ab")
DETAIL = LoraUse("detail", -0.5, "ba9876543210")


def test_loras_are_written_as_a1111_does() -> None:
    params = sample_parameters(loras=(PIXEL, DETAIL), extra={"Denoising strength": "0.55"})
    assert format_parameters(params) == (
        "Oregon 💚, watercolor painting <lora:pixel art:0.8> <lora:detail:-0.5>\n"
        "Negative prompt: blurry, lowres\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234, Size: 512x768, "
        'Model: sd_xl_base_1.0, Lora hashes: "pixel art: 0123456789ab, detail: ba9876543210", '
        "Denoising strength: 0.55"
    )
    # A1111 finds the tags in the prompt itself, where its users type them.
    assert a1111_split(format_parameters(params))[0].endswith(
        "<lora:pixel art:0.8> <lora:detail:-0.5>")


@pytest.mark.parametrize(
    "params",
    [
        sample_parameters(loras=(PIXEL,)),
        sample_parameters(loras=(PIXEL, DETAIL), negative=""),
        sample_parameters(prompt="", loras=(PIXEL, DETAIL)),
        sample_parameters(prompt="line one\nline two", loras=(LoraUse("x", 1.0),)),
        sample_parameters(loras=(LoraUse("no hash", 1.25), DETAIL)),
        sample_parameters(loras=(LoraUse("a, b", 4.0, "00000000000a"), LoraUse("c", 1e-05))),
        sample_parameters(prompt="Negative prompt: a cat", loras=(PIXEL,)),
    ],
)
def test_round_trip_with_loras(params: GenerationParameters) -> None:
    assert parse_parameters(format_parameters(params)) == params
    data = encode_png(Image.new("RGB", (8, 8)), params)
    assert read_png_parameters(data) == params


def test_hashes_written_only_for_loras_that_have_one() -> None:
    text = format_parameters(sample_parameters(loras=(LoraUse("a", 1.0), DETAIL)))
    assert text.splitlines()[-1].endswith(', Lora hashes: "detail: ba9876543210"')
    text = format_parameters(sample_parameters(loras=(LoraUse("a", 1.0),)))
    assert "Lora hashes" not in text and "<lora:a:1>" in text


def test_hash_names_lose_colons_and_commas_as_in_a1111() -> None:
    text = format_parameters(sample_parameters(loras=(LoraUse("a, b", 1, "0123456789ab"),)))
    assert 'Lora hashes: "a b: 0123456789ab"' in text


@pytest.mark.parametrize("name", ["", " x", "a:b", "a>b", "x\ny"])
def test_lora_names_that_would_break_the_tag_are_rejected(name: str) -> None:
    with pytest.raises(ValueError, match="LoRA name"):
        format_parameters(sample_parameters(loras=(LoraUse(name, 1.0),)))


def test_lora_hashes_twice_is_rejected() -> None:
    params = sample_parameters(loras=(PIXEL,), extra={"Lora hashes": "pixel art: 0"})
    with pytest.raises(ValueError, match="Lora hashes"):
        format_parameters(params)


def test_foreign_tags_anywhere_and_hashes_not_matching_them() -> None:
    text = ("a <lora:fox:0.7>, castle <LORA:not-a-tag> <lora:x:1:2> <lora:bare>\n"
            "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 64x64, "
            'Lora hashes: "fox: 111111111111, other: 222222222222"')
    params = parse_parameters(text)
    assert params.prompt == "a, castle <LORA:not-a-tag> <lora:x:1:2>"
    assert params.loras == (LoraUse("fox", 0.7), LoraUse("bare", 1.0))
    # "other" has no tag here: the field stays as it was, nothing is lost or misassigned.
    assert params.extra == {"Lora hashes": "fox: 111111111111, other: 222222222222"}


def test_loras_are_part_of_the_immutable_value() -> None:
    params = sample_parameters(loras=[PIXEL])
    assert params.loras == (PIXEL,)
    assert hash(params) == hash(sample_parameters(loras=(PIXEL,)))
    assert params != sample_parameters(loras=(LoraUse("pixel art", 0.9, PIXEL.hash),))


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
