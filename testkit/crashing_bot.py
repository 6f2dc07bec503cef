"""`python -m testkit.crashing_bot CONFIG`: the real bot, wired by `bot.app.open_app`, whose
runner kills the whole process (os._exit: no clean-up, no last writes), as a poison job that
crashes the GPU driver would, whenever a batch holds a picture whose subject says "poison".
For the crash-recovery tests; never part of the product."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any, cast

from bot.app import build_runner, open_app
from bot.config import Settings, load_settings
from bot.executor.executor import RunContext
from bot.executor.jobs import ImageParams, Job, JobResult
from bot.pipelines.runner import ModelRunner

POISON = "poison"
CRASH_EXIT_CODE = 70


class PoisonRunner:
    """The real runner, except that a batch with a poison picture ends the process."""

    def __init__(self, runner: ModelRunner) -> None:
        self.runner = runner

    def __getattr__(self, name: str) -> Any:  # warm_up, native_size, image_engine...
        return getattr(self.runner, name)

    def batch_key(self, job: Job) -> Hashable | None:
        return self.runner.batch_key(job)

    def batch_size(self, job: Job) -> int:
        return self.runner.batch_size(job)

    def run(self, jobs: Sequence[Job], ctx: RunContext) -> list[JobResult | Exception]:
        if any(isinstance(j.params, ImageParams) and POISON in j.params.subject for j in jobs):
            os._exit(CRASH_EXIT_CODE)
        return self.runner.run(jobs, ctx)


async def run(settings: Settings) -> None:
    assert settings.token
    runner = cast(ModelRunner, PoisonRunner(build_runner(settings)))
    async with open_app(settings, runner) as bot:
        await bot.start(settings.token)


if __name__ == "__main__":
    asyncio.run(run(load_settings(Path(sys.argv[1]))))
