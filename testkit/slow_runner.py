"""The real runner and tiny model, with each denoising step taking longer, as on a real GPU
with a real model: long enough to see queues, progress and previews, and to stop a worker in
the middle of a batch. `python -m testkit.slow_runner CONFIG NAME [STEP_DELAY]` runs a remote
worker on it (the remote-worker tests); never part of the product."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bot.config import Settings, load_settings
from bot.executor.executor import RunContext
from bot.executor.jobs import Job
from bot.pipelines.runner import ModelRunner


class SlowGpuRunner(ModelRunner):
    step_delay = 0.12

    @staticmethod
    def _step_reporter(jobs: Sequence[Job], owners: list[int], ctx: RunContext, chunk: int,
                       chunks: int) -> Callable[..., None]:
        report = ModelRunner._step_reporter(jobs, owners, ctx, chunk, chunks)

        def slow(step: int, total: int, previews: Callable[[], Any]) -> None:
            time.sleep(SlowGpuRunner.step_delay)
            report(step, total, previews)

        return slow


def slow_runner(settings: Settings) -> ModelRunner:
    from bot.app import build_runner

    base = build_runner(settings)
    return SlowGpuRunner(base.pool, base.text_options, blocked_term=base.blocked_term,
                         describe_options=base.describe_options, loras=base.loras,
                         model_loras=base.model_loras)


if __name__ == "__main__":
    import logging

    from bot.remote.worker import run_worker

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(Path(sys.argv[1]))
    if len(sys.argv) > 3:
        SlowGpuRunner.step_delay = float(sys.argv[3])
    sys.exit(run_worker(settings, name=sys.argv[2], runner=slow_runner(settings)))
