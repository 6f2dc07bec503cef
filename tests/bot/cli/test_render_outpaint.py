"""`python -m bot render --image PATH --zoom-out FACTOR | --pan SIDE`: zoom out and pan
offline on the tiny model, with the bot's rules (max_side, clear refusals)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bot.__main__ import main
from bot.images.pnginfo import GenerationParameters, read_png_parameters
from bot.pipelines.tiny import TinyModelPaths


def write_config(tmp_path: Path, tiny: TinyModelPaths, max_side: int = 1024) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(f"""
[image]
model = "{tiny.image}"
steps = 2
max_side = {max_side}
device = "cpu"
[story]
model = "{tiny.story}"
""", encoding="utf-8")
    return config


def source_picture(tmp_path: Path) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(4)
    pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    path = tmp_path / "in.png"
    Image.fromarray(pixels).save(path)
    return path, pixels.astype(np.int16)


def only_output(out: Path) -> tuple[np.ndarray, GenerationParameters]:
    [path] = sorted(out.iterdir())
    params = read_png_parameters(path.read_bytes())
    assert params is not None
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16), params


def test_zoom_out_writes_the_bigger_picture_with_the_centre_kept(
    tiny_models: TinyModelPaths, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    source, original = source_picture(tmp_path)
    out = tmp_path / "out"
    code = main(["--config", str(write_config(tmp_path, tiny_models)), "render", "a valley",
                 "--image", str(source), "--zoom-out", "2", "--seed", "3", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    pixels, params = only_output(out)
    assert pixels.shape == (128, 128, 3)
    assert np.abs(pixels[40:88, 40:88] - original[8:56, 8:56]).max() <= 1
    assert params.extra["Zoom out"] == "2" and params.extra["Mask blur"] == "8"
    assert params.seed == 3


def test_pan_keeps_the_picture_on_its_side(
    tiny_models: TinyModelPaths, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    source, original = source_picture(tmp_path)
    out = tmp_path / "out"
    code = main(["--config", str(write_config(tmp_path, tiny_models)), "render", "a road",
                 "--image", str(source), "--pan", "left", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    pixels, params = only_output(out)
    assert pixels.shape == (64, 96, 3)
    assert np.abs(pixels[:, 32 + 8:] - original[:, 8:]).max() <= 1
    assert params.extra["Pan"] == "left"


@pytest.mark.parametrize(("extra", "message"), [
    (["--zoom-out", "2"], "--zoom-out and --pan widen a picture: give it with --image PATH."),
    (["--image", "IN", "--zoom-out", "9"], "--zoom-out = 9 is out of range; choose 1.1-4."),
    (["--image", "IN", "--zoom-out", "2", "--pan", "up"], "choose --zoom-out or --pan"),
    (["--image", "IN", "--pan", "up", "--strength", "0.5"], "--strength is for img2img"),
])
def test_bad_flags_are_refused_before_the_model_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str,
) -> None:
    source, _ = source_picture(tmp_path)
    args = [str(source) if a == "IN" else a for a in extra]
    assert main(["render", "x", "--model", str(tmp_path / "nowhere"), *args]) == 2
    assert message in capsys.readouterr().err


def test_a_pan_past_max_side_is_refused_saying_why(
    tiny_models: TinyModelPaths, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    source, _ = source_picture(tmp_path)
    out = tmp_path / "out"
    code = main(["--config", str(write_config(tmp_path, tiny_models, max_side=64)), "render",
                 "a road", "--image", str(source), "--pan", "right", "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert "Panning right would make this 64×64 picture 96×64" in err
    assert "image.max_side (64 px)" in err
    assert not out.exists()
