"""The real runner and tiny models under the executor: the event loop keeps its beat while
the worker renders, batched images match images rendered alone, seeds reproduce."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from bot.app import build_runner, image_options, open_services, text_options
from bot.config import settings_from_mapping
from bot.executor.executor import Executor, ExecutorLimits, RunContext
from bot.executor.jobs import (
    Done,
    Failed,
    ImageParams,
    ImageResult,
    Job,
    JobResult,
    TextParams,
    TextResult,
)
from bot.images.files import image_file
from bot.images.pnginfo import read_png_parameters
from bot.pipelines.runner import ModelRunner
from bot.pipelines.text import GenerationStopped
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
    # Generous: a loaded 2-core CI machine (or a parallel test worker) delays wake-ups by
    # tens of ms; a render on the loop's thread would stall it for whole steps (seconds).
    assert max(lateness) < 0.5, f"the event loop stalled for {max(lateness) * 1000:.0f} ms"


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


class OutOfMemoryWriter:
    """A StoryWriter stand-in whose model runs out of device memory on every line."""

    model_name = "stand-in"
    loaded = True

    def __init__(self) -> None:
        from bot.pipelines.kv_cache import PrefixCache

        self.cache = PrefixCache(1 << 20)  # dropped with the memory it holds

    def next_lines(self, *args: object, **kwargs: object) -> tuple[str, ...]:
        import torch

        raise torch.OutOfMemoryError(
            "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity)")


async def test_a_text_model_out_of_memory_frees_the_cache_and_fails_in_plain_words(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bot.pipelines import runner as runner_module

    freed: list[bool] = []
    monkeypatch.setattr(runner_module, "_free_device_memory", lambda: freed.append(True))
    settings = settings_from_mapping({})
    runner = ModelRunner(image_options(settings), text_options(settings))
    runner._text = OutOfMemoryWriter()  # type: ignore[assignment]
    async with Executor(runner, ExecutorLimits()) as ex:
        handle = await ex.submit(Job(user_id=1, params=TextParams(
            seed_line="Once upon a time", lines=(), rng_seed=1)))
        final = await handle.wait()
    assert isinstance(final, Failed)
    assert final.reason == runner_module.TEXT_OUT_OF_MEMORY
    assert "CUDA" not in final.reason and "Tried to allocate" not in final.reason
    assert freed == [True]


async def test_results_name_a_folder_model_by_its_folder_not_the_host_path(
    tiny_models: TinyModelPaths,
) -> None:
    """What every posted picture and story line carries names `image`, not /home/…/image."""
    runner = await asyncio.to_thread(runner_for, tiny_models)
    image = image_job(1, "a kite", 1, steps=2)
    line = Job(user_id=1, params=TextParams(seed_line="The sky", lines=(), rng_seed=1))
    async with Executor(runner, ExecutorLimits(per_user_limit=5)) as ex:
        pictured, written = [await (await ex.submit(job)).wait() for job in (image, line)]
    assert isinstance(pictured, Done) and isinstance(pictured.result, ImageResult)
    assert isinstance(written, Done) and isinstance(written.result, TextResult)
    assert pictured.result.model == tiny_models.image.name == "image"
    assert written.result.model == tiny_models.story.name
    data, _ = image_file(image, pictured.result, 0)
    params = read_png_parameters(data)
    assert params is not None and params.model == "image"
    parent = str(tiny_models.image.parent).encode()
    assert parent not in data and str(tiny_models.image.parent.name).encode() not in data
    assert tiny_models.image.exists()  # loading used the full path


class CancelAfter:
    """A RunContext whose job is cancelled once it has reported `tokens` steps."""

    def __init__(self, tokens: int) -> None:
        self.tokens = tokens
        self.steps: list[tuple[int, int]] = []

    @property
    def max_batch(self) -> int:
        return 1

    def progress(self, job: Job, step: int, total: int, preview: object) -> None:
        self.steps.append((step, total))

    def cancelled(self, job_id: str) -> bool:
        return len(self.steps) > self.tokens


def test_a_story_line_reports_its_tokens_and_stops_at_a_cancel(
    tiny_models: TinyModelPaths,
) -> None:
    settings = settings_from_mapping({"story": {"model": str(tiny_models.story),
                                                "max_new_tokens": 40}})
    runner = build_runner(settings)
    job = Job(user_id=1, params=TextParams(seed_line="Once upon a time", lines=(), rng_seed=3))
    whole = CancelAfter(tokens=10_000)
    [done] = runner.run([job], whole)
    assert isinstance(done, TextResult)
    assert len(whole.steps) > 3 and whole.steps[1] == (1, 40)  # (0, 1) first, then tokens
    stopped = CancelAfter(tokens=3)
    [outcome] = runner.run([job], stopped)
    assert isinstance(outcome, GenerationStopped)
    assert len(stopped.steps) == 4  # the start and three tokens: then it stopped


async def test_a_story_line_with_candidates_and_live_text_through_the_executor(
    tiny_models: TinyModelPaths,
) -> None:
    import dataclasses

    from bot.executor.jobs import Progress
    from testkit.executor import events_of

    settings = settings_from_mapping({"story": {"model": str(tiny_models.story)}})
    options = dataclasses.replace(text_options(settings), live_every_s=0.0)
    runner = ModelRunner(image_options(settings), options)
    params = TextParams(seed_line="Once upon a time, a dragon slept.", lines=(), rng_seed=2,
                        candidates=3, cache_key="story:1:1")
    async with Executor(runner, ExecutorLimits(per_user_limit=5)) as ex:
        first = await ex.submit(Job(user_id=1, params=params))
        events = await events_of(first)
        grown = dataclasses.replace(params, lines=("It dreamed of the sea.",), rng_seed=3)
        second = await (await ex.submit(Job(user_id=1, params=grown))).wait()
    done = events[-1]
    assert isinstance(done, Done) and isinstance(done.result, TextResult)
    assert len(done.result.candidates) == 3 and done.result.text == done.result.candidates[0]
    texts = [e.text for e in events if isinstance(e, Progress) and e.text]
    assert texts  # the first candidate, live
    assert isinstance(second, Done) and isinstance(second.result, TextResult)
    timings = second.result.timings
    assert 0 < timings["cached_tokens"] < timings["prompt_tokens"]  # the seed came cached
