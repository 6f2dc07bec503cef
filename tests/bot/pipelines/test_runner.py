"""The real runner and tiny models under the executor: the event loop keeps its beat while
the worker renders, batched images match images rendered alone, seeds reproduce."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bot.app import build_runner, image_options, open_services, text_options
from bot.config import settings_from_mapping
from bot.executor.executor import Executor, ExecutorLimits, RunContext
from bot.executor.jobs import Done, ImageParams, ImageResult, Job, JobResult
from bot.pipelines.runner import ModelRunner
from bot.pipelines.tiny import TinyModelPaths


def image_job(user: int, prompt: str, seed: int, steps: int = 12) -> Job:
    return Job(user_id=user, params=ImageParams(
        prompt=prompt, negative="", subject=prompt, style=None, seeds=(seed,), steps=steps,
        guidance=7.0, width=64, height=64))


def runner_for(tiny: TinyModelPaths):  # type: ignore[no-untyped-def]
    settings = settings_from_mapping({"image": {"model": str(tiny.image)},
                                      "story": {"model": str(tiny.story)}})
    runner = build_runner(settings)
    runner.warm_up()
    return runner


async def test_heartbeat_stays_on_time_while_the_worker_renders(
    tiny_models: TinyModelPaths,
) -> None:
    runner = await asyncio.to_thread(runner_for, tiny_models)
    async with Executor(runner, ExecutorLimits(per_user_limit=10, batch_limit=1)) as ex:
        handles = [await ex.submit(image_job(u, f"job {u}", u, steps=20)) for u in range(4)]
        lateness: list[float] = []
        while not all(h.state.finished for h in handles):
            before = time.perf_counter()
            await asyncio.sleep(0.02)
            lateness.append(time.perf_counter() - before - 0.02)
        ends = await asyncio.gather(*(h.wait() for h in handles))
    assert all(isinstance(e, Done) for e in ends)
    assert len(lateness) > 10
    assert max(lateness) < 0.1, f"the event loop stalled for {max(lateness) * 1000:.0f} ms"


def pixels(result: object) -> np.ndarray:
    assert isinstance(result, Done) and isinstance(result.result, ImageResult)
    return np.asarray(result.result.images[0].image, dtype=np.float64)


async def test_batched_jobs_match_the_same_jobs_alone(tiny_models: TinyModelPaths) -> None:
    runner = await asyncio.to_thread(runner_for, tiny_models)
    jobs = [("a red fox", 1), ("a blue whale", 2), ("a green frog", 3)]
    async with Executor(runner, ExecutorLimits(batch_limit=1)) as alone_ex:
        alone = [await (await alone_ex.submit(image_job(i, p, s))).wait()
                 for i, (p, s) in enumerate(jobs)]
    async with Executor(runner, ExecutorLimits(batch_limit=4, per_user_limit=5)) as ex:
        blocker = await ex.submit(image_job(9, "warm", 0, steps=30))
        handles = [await ex.submit(image_job(i, p, s)) for i, (p, s) in enumerate(jobs)]
        await blocker.wait()
        batched = [await h.wait() for h in handles]
    assert all(isinstance(b, Done) and b.result.timings["batch"] == 3  # type: ignore[union-attr]
               for b in batched)
    for a, b in zip(alone, batched, strict=True):
        assert np.abs(pixels(a) - pixels(b)).mean() < 2  # same seed: same picture, ±1 in uint8
    assert np.abs(pixels(alone[0]) - pixels(alone[1])).mean() > 10


class ThreadNotingRunner(ModelRunner):
    """The real runner, noting which OS thread loads the models and runs the jobs."""

    threads: list[tuple[str, str]]

    def warm_up(self, *, image: bool = True, text: bool = False) -> None:
        self.threads.append(("load", threading.current_thread().name))
        super().warm_up(image=image, text=text)

    def run(self, jobs: Sequence[Job], ctx: RunContext) -> list[JobResult | Exception]:
        self.threads.append(("run", threading.current_thread().name))
        return super().run(jobs, ctx)


async def test_models_load_on_the_thread_that_runs_them(
    tiny_models: TinyModelPaths, tmp_path: Path,
) -> None:
    """A second OS thread running torch halves CPU speed (OpenMP teams; see executor.py)."""
    settings = settings_from_mapping({
        "image": {"model": str(tiny_models.image)}, "story": {"model": str(tiny_models.story)},
        "storage": {"database": str(tmp_path / "db.sqlite3"), "images": str(tmp_path / "img")}})
    runner = ThreadNotingRunner(image_options(settings), text_options(settings))
    runner.threads = []
    async with open_services(settings, runner) as services:
        assert runner.image_engine.loaded and runner.story_writer.loaded
        handle = await services.executor.submit(image_job(1, "a kite", 1, steps=2))
        assert isinstance(await handle.wait(), Done)
    assert runner.threads == [("load", "gpu-worker"), ("run", "gpu-worker")]
