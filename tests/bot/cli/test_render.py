"""`python -m bot render --image PATH [--strength S]`: img2img from a picture on disk, with
the same checks as a member's upload."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from bot.__main__ import main
from bot.images.pnginfo import read_png_parameters
from bot.pipelines.tiny import TinyModelPaths


def config_for(tmp_path: Path, tiny: TinyModelPaths) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(f'[image]\nmodel = "{tiny.image}"\nsteps = 4\ndevice = "cpu"\n'
                      f'[story]\nmodel = "{tiny.story}"\n', encoding="utf-8")
    return config


def test_renders_from_a_picture_at_its_aspect(tiny_models: TinyModelPaths, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "wide.png"
    Image.new("RGB", (200, 100), (10, 160, 90)).save(source)
    out = tmp_path / "out"
    code = main(["--config", str(config_for(tmp_path, tiny_models)), "render", "a meadow",
                 "--image", str(source), "--strength", "0.5", "--count", "1",
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    [path] = sorted(out.iterdir())
    with Image.open(path) as img:
        assert img.size == (128, 64)  # 2:1 kept, the short side at the 64 px minimum
    info = read_png_parameters(path.read_bytes())
    assert info is not None and info.extra["Denoising strength"] == "0.5"
    assert info.extra["Mode"] == "img2img"


@pytest.mark.parametrize(("args", "message"), [
    (["--strength", "0.5"], "--strength only applies with --image"),
    (["--image", "missing.png"], "can't be read"),
    (["--image", "{text}", "--strength", "2"], "--strength = 2 is out of range"),
    (["--image", "{text}"], "not a picture this bot can read"),
])
def test_bad_input_is_refused_before_anything_renders(
        tiny_models: TinyModelPaths, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        args: list[str], message: str) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    args = [a.replace("{text}", str(text)) for a in args]
    out = tmp_path / "out"
    code = main(["--config", str(config_for(tmp_path, tiny_models)), "render", "a fox",
                 *args, "--out", str(out)])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
