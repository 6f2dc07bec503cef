"""`python -m bot story`: the same story and export as in Discord, without Discord."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.__main__ import main
from bot.pipelines.tiny import TinyModelPaths


def write_config(tmp_path: Path, tiny: TinyModelPaths) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(f"""
[image]
model = "{tiny.image}"
steps = 4
max_side = 64
device = "cpu"
[story]
model = "{tiny.story}"
max_new_tokens = 16
steps = 4
[storage]
database = "never-used.sqlite3"
""", encoding="utf-8")
    return config


def test_cli_writes_the_export(tmp_path: Path, tiny_models: TinyModelPaths,
                               capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, tiny_models)
    out = tmp_path / "out"
    code = main(["--config", str(config), "story", "The sky", "--lines", "3", "--style",
                 "painting", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.split() == [str(out / "the-sky.html"), str(out / "the-sky.md")]
    markdown = (out / "the-sky.md").read_text(encoding="utf-8")
    page = (out / "the-sky.html").read_text(encoding="utf-8")
    pictures = re.findall(r"\]\((images/\d+\.png)\)", markdown)
    assert pictures == [f"images/0{n}.png" for n in range(1, 5)]  # the seed + 3 lines
    for picture in pictures:
        assert (out / picture).read_bytes().startswith(b"\x89PNG")
    assert page.count("data:image/png;base64,") == 4
    assert "\nThe sky\n" in markdown and "style “painting”" in markdown
    # The progress went to stderr, line by line.
    assert re.findall(r"^\s+(\d)\. ", captured.err, re.M) == ["1", "2", "3", "4"]
    assert not (tmp_path / "never-used.sqlite3").exists()  # the story lives in a temp db


def test_cli_refuses_bad_options(tmp_path: Path, tiny_models: TinyModelPaths,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, tiny_models)
    assert main(["--config", str(config), "story", "The sky", "--style", "crayon"]) == 2
    assert "`style` 'crayon' is not a style preset" in capsys.readouterr().err
    assert main(["--config", str(config), "story", "The sky", "--lines", "0"]) == 2
    assert "--lines 0 is out of range; choose 1-50" in capsys.readouterr().err
