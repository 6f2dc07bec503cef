"""bench.draft runs: its --quick mode (the tiny model as the draft model, one round). It
proves the script works end to end through the bot; the figures live in docs/PERFORMANCE.md."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bot.pipelines.tiny import TinyModelPaths

pytestmark = pytest.mark.filterwarnings("ignore")


def test_draft(tiny_models: TinyModelPaths, capsys: pytest.CaptureFixture[str]) -> None:
    from bench import draft

    table = draft.main(["--quick", "--threads", "1", "--models",
                        str(Path(tiny_models.image).parent)])
    assert f"## {table.title}" in capsys.readouterr().out
    assert not math.isnan(table.figures["ratio"]) and table.figures["plain_s"] > 0
    assert len(table.rows) == 2
