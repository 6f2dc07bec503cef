"""Previews stay a small share of a run, however slow they are to decode."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Hashable, Sequence

from PIL import Image

from bot.executor.executor import Executor, ExecutorLimits, RunContext
from bot.executor.jobs import Job, JobResult, Progress, TextParams, TextResult


class PreviewingRunner:
    """Steps of `step_s`; every job asks for a preview at every step; a decode takes
    `decode_s` and is shared by the jobs of a batch within one step (as the image runner's
    is)."""

    def __init__(self, steps: int, step_s: float, decode_s: float) -> None:
        self.steps, self.step_s, self.decode_s = steps, step_s, decode_s
        self.decodes = 0

    def batch_key(self, job: Job) -> Hashable | None:
        return "same"

    def batch_size(self, job: Job) -> int:
        return 1

    def run(self, jobs: Sequence[Job], ctx: RunContext) -> list[JobResult | Exception]:
        for step in range(1, self.steps + 1):
            time.sleep(self.step_s)
            decoded: list[Image.Image] = []

            def preview(decoded: list[Image.Image] = decoded) -> Image.Image:
                if not decoded:
                    time.sleep(self.decode_s)
                    self.decodes += 1
                    decoded.append(Image.new("RGB", (8, 8)))
                return decoded[0]

            for job in jobs:
                ctx.progress(job, step, self.steps, preview)
        return [TextResult("ok", {}, "scripted") for _ in jobs]


def job(user: int) -> Job:
    return Job(user_id=user, params=TextParams(seed_line="x", lines=(), rng_seed=0))


async def previews_of(executor: Executor, jobs: list[Job]) -> list[list[int]]:
    handles = [await executor.submit(j) for j in jobs]
    shown: list[list[int]] = []
    for handle in handles:
        steps = [e.step async for e in handle.events()
                 if isinstance(e, Progress) and e.preview is not None]
        shown.append(steps)
    return shown


async def test_a_slow_decoder_gets_few_previews() -> None:
    # Decoding takes 20 steps' time; at most 5 % of a run may go to previews.
    runner = PreviewingRunner(steps=20, step_s=0.01, decode_s=0.2)
    limits = ExecutorLimits(preview_every=1, preview_interval_s=0.0)
    async with Executor(runner, limits) as executor:
        first = await asyncio.wait_for(previews_of(executor, [job(1)]), 10)
        second = await asyncio.wait_for(previews_of(executor, [job(1)]), 10)
    assert first == [[1]]  # the first one is made (its cost is not known yet)...
    assert second == [[]]  # ...then its learned cost (0.2 s) is over 5 % of a 0.2 s run
    assert runner.decodes == 1


async def test_a_cheap_decoder_is_not_held_back_and_batch_mates_share_it() -> None:
    runner = PreviewingRunner(steps=6, step_s=0.02, decode_s=0.0)
    limits = ExecutorLimits(preview_every=2, preview_interval_s=0.0, batch_limit=2)
    async with Executor(runner, limits) as executor:
        shown = await asyncio.wait_for(previews_of(executor, [job(1), job(2)]), 10)
    assert shown == [[2, 4], [2, 4]]  # every second step but the last, for both jobs
