"""bench.models runs: its --quick mode (the tiny variant in place of SD 1.5, two rounds).
It proves the script works end to end; the figures live in docs/PERFORMANCE.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.pipelines.tiny import TinyModelPaths

pytestmark = pytest.mark.filterwarnings("ignore")


def test_models(tiny_models: TinyModelPaths, capsys: pytest.CaptureFixture[str]) -> None:
    from bench import models

    table = models.main(["--quick", "--threads", "1", "--models",
                         str(Path(tiny_models.image).parent)])
    assert f"## {table.title}" in capsys.readouterr().out
    assert table.figures["cold_reads"] == 3  # the first load, then once a round
    assert table.figures["warm_reads"] == 1  # parked: never read again
    assert table.figures["ratio"] > 0 and len(table.rows) == 2
