"""The benchmarks run: each in its --quick mode (a few steps, a few jobs, one repeat).

These prove the scripts work end to end and print their table; they assert nothing about
speed (the figures live in docs/PERFORMANCE.md, measured on a quiet machine).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bot.pipelines.tiny import TinyModelPaths

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture
def quick(tiny_models: TinyModelPaths) -> list[str]:
    return ["--quick", "--threads", "1", "--models", str(Path(tiny_models.image).parent)]


def _check(table: object, *figures: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = capsys.readouterr().out
    assert getattr(table, "title", "") and f"## {table.title}" in out  # type: ignore[attr-defined]
    values = table.figures  # type: ignore[attr-defined]
    for name in figures:
        assert name in values and not math.isnan(values[name]), (name, values)


def test_batching(quick: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from bench import batching

    table = batching.main(quick)
    _check(table, "ratio", "batched_vs_alone_mean", capsys=capsys)
    assert table.figures["batched_vs_alone_mean"] < 2  # batched ≈ alone, as in the tests
    assert all(row[3] in ("yes", "-") for row in table.rows)  # fair order


def test_overhead(quick: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from bench import overhead

    _check(overhead.main(quick), "extra", "direct_overhead_ms", capsys=capsys)


def test_responsiveness(quick: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from bench import responsiveness

    _check(responsiveness.main(quick), "busy_p99_ms", "idle_p99_ms", capsys=capsys)


def test_previews(quick: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from bench import previews

    table = previews.main(quick)
    _check(table, "share", "approx_vs_full_tiny", capsys=capsys)
    assert table.figures["approx_vs_full_tiny"] < 1  # the approximation is the cheap one


def test_gpu_profile_code_path_on_cpu(quick: list[str],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from bench import gpu

    table = gpu.main([*quick, "--device", "cpu", "--tiny"])
    _check(table, "diffusers defaults|1|images_s", capsys=capsys)
    assert len(table.rows) == 4  # two paths × batch 1 and 2


def test_helpers() -> None:
    from bench.common import Table, percentile

    assert percentile(list(range(1, 101)), 99) == 99
    assert percentile([5.0], 99) == 5.0
    table = Table("t", ["a", "b"])
    table.add(1, "x")
    assert "| 1 | x |" in table.render()


def test_precision(quick: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from bench import precision

    table = precision.main(quick)
    _check(table, "speedup tiny UNet, batch 2, 64² px", capsys=capsys)
    assert float(table.rows[0][-1]) < 0.1  # bfloat16 rounds; it does not compute garbage


def test_remote(quick: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Celery mode for real: redis-server and worker processes (testkit.redis_server raises
    a clear error when redis-server is not installed)."""
    from bench import remote

    table = remote.main(quick)
    _check(table, "overhead_ms", "overhead_outside_ms", "jobs_per_s_1", "jobs_per_s_2",
           "ratio", "ceiling_ratio", "ratio_equal_speed", "bot_cpu_ms_per_job",
           "others_part_1", capsys=capsys)
    assert table.figures["workers_used_1"] == 1
    assert table.figures["workers_used_2"] == 2  # both workers of the two-worker side ran
    assert len(table.rows) == 7


def test_story(quick: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from bench import story

    table = story.main(quick)
    _check(table, "line_ratio", "runner_ratio", "speed", capsys=capsys)
    assert 0 < table.figures["cached_tokens"] < table.figures["prompt_tokens"]
