"""The runner with several image models and LoRAs, on real tiny models: each batch renders
with its job's model (told while it loads), never two models or two LoRA sets in one call,
and each batch has exactly its LoRAs active."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from bot.executor.executor import Executor, ExecutorLimits
from bot.executor.jobs import Done, ImageMode, ImageParams, ImageResult, Job, JobResult
from bot.images.outpaint import Outpaint
from bot.images.requests import outpainted
from bot.pipelines.capacity import DEFAULT_BATCH
from bot.pipelines.diffusion import ImageModelOptions
from bot.pipelines.lora import LoraSource
from bot.pipelines.pool import ImagePool, ModelNotServed
from bot.pipelines.runner import ModelRunner
from bot.pipelines.text import TextModelOptions
from bot.pipelines.tiny import TinyModelPaths, build_tiny_sd_variant
from bot.pipelines.tiny_lora import build_tiny_lora
from testkit.executor import text_job

pytestmark = [
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Already found a `peft_config`:UserWarning"),
]


class Recorder:
    """A RunContext that notes what the runner told each job, in order."""

    def __init__(self, max_batch: int = 4) -> None:
        self.max_batch = max_batch
        self.events: list[tuple[str, str, object]] = []

    def progress(self, job: Job, step: int, total: int, preview: Any) -> None:
        self.events.append((job.id, "step", step))

    def notify(self, job: Job, text: str) -> None:
        self.events.append((job.id, "note", text))

    def cancelled(self, job_id: str) -> bool:
        return False

    def notes(self) -> list[tuple[str, object]]:
        return [(job, text) for job, kind, text in self.events if kind == "note"]


@pytest.fixture(scope="module")
def variant(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_sd_variant(tmp_path_factory.mktemp("variant") / "variant")


@pytest.fixture(scope="module")
def grain(tiny_models: TinyModelPaths, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_lora(tiny_models.image, tmp_path_factory.mktemp("lora") / "grain.safetensors")


def make_runner(tiny: TinyModelPaths, variant: Path, grain: Path | None = None,
                **runner: Any) -> ModelRunner:
    pool = ImagePool({"sd": ImageModelOptions(model=str(tiny.image), device="cpu"),
                      "variant": ImageModelOptions(model=str(variant), device="cpu")},
                     "sd", max_loaded=1)
    loras = {"grain": LoraSource("grain", str(grain))} if grain else {}
    return ModelRunner(pool, TextModelOptions(model=str(tiny.story), device="cpu"),
                       loras=loras, **runner)


def job(model: str = "", loras: tuple[tuple[str, float], ...] = (), seeds: tuple[int, ...] = (1,),
        **params: Any) -> Job:
    params = {"steps": 2, "width": 32, "height": 32, **params}
    return Job(user_id=1, params=ImageParams(
        prompt="a harbour", negative="", subject="a harbour", style=None, seeds=seeds,
        guidance=7.0, model=model, loras=loras, **params))


def result(outcome: JobResult | Exception | object) -> ImageResult:
    if isinstance(outcome, Done):
        outcome = outcome.result
    assert isinstance(outcome, ImageResult), outcome
    return outcome


def pixels(outcome: JobResult | Exception) -> np.ndarray:
    return np.asarray(result(outcome).images[0].image, dtype=np.int16)


def test_each_batch_renders_with_its_jobs_model(tiny_models: TinyModelPaths,
                                                variant: Path) -> None:
    runner = make_runner(tiny_models, variant)
    [on_default] = runner.run([job("")], Recorder())
    [on_variant] = runner.run([job("variant")], Recorder())
    # Results name the model as PNG info does: a folder by its own name.
    assert result(on_default).model == "image" and result(on_variant).model == "variant"
    assert not np.array_equal(pixels(on_default), pixels(on_variant))
    assert runner.pool.on_device == ("variant",)
    # The default model's facts stay at hand for the code that asks for them.
    assert runner.native_size == 64 and runner.image_options.model == str(tiny_models.image)


def test_the_batch_is_told_before_a_model_that_is_not_on_the_device(
        tiny_models: TinyModelPaths, variant: Path) -> None:
    runner = make_runner(tiny_models, variant)
    jobs = [job("variant", seeds=(1,)), job("variant", seeds=(2,))]
    first = Recorder()
    runner.run(jobs, first)
    assert first.events[:2] == [(jobs[0].id, "note", "loading model variant"),
                                (jobs[1].id, "note", "loading model variant")]
    assert all(kind == "step" for _, kind, _ in first.events[2:])
    again = Recorder()
    runner.run(jobs, again)
    assert again.notes() == []  # already there: nothing to wait for


def test_a_batch_never_mixes_models_or_loras(tiny_models: TinyModelPaths,
                                             variant: Path) -> None:
    runner = make_runner(tiny_models, variant)
    key = runner.batch_key
    assert key(job("")) == key(job("sd")) == key(job(str(tiny_models.image)))
    assert key(job("variant")) != key(job(""))
    assert key(job("", loras=(("grain", 0.8),))) != key(job(""))
    assert key(job("", loras=(("grain", 0.8),))) != key(job("", loras=(("grain", 0.5),)))
    assert key(job("nobody")) != key(job(""))  # it fails alone, with its reason


async def test_the_executor_batches_jobs_of_one_model_only(tiny_models: TinyModelPaths,
                                                           variant: Path) -> None:
    runner = make_runner(tiny_models, variant)
    await asyncio.to_thread(runner.warm_up)
    async with Executor(runner, ExecutorLimits(batch_limit=4, per_user_limit=9)) as ex:
        blocker = await ex.submit(job("", steps=8))
        handles = [await ex.submit(replace(j, user_id=u))
                   for u, j in enumerate([job(""), job("variant"), job("sd")], start=2)]
        await blocker.wait()
        ends = [await h.wait() for h in handles]
    batches = [result(e).timings["batch"] for e in ends]
    assert [result(e).model for e in ends] == ["image", "variant", "image"]
    assert batches == [2, 1, 2]


def test_a_model_nobody_serves_fails_with_the_ones_there_are(tiny_models: TinyModelPaths,
                                                              variant: Path) -> None:
    runner = make_runner(tiny_models, variant)
    with pytest.raises(ModelNotServed, match=r"'nobody'.*sd, variant"):
        runner.run([job("nobody")], Recorder())


def test_upscale_and_outpaint_use_the_jobs_model(tiny_models: TinyModelPaths, variant: Path,
                                                 tmp_path: Path) -> None:
    runner = make_runner(tiny_models, variant)
    source = tmp_path / "source.png"
    Image.new("RGB", (32, 32), (120, 80, 40)).save(source)
    upscale = job("variant", mode=ImageMode.UPSCALE, strength=0.5, source_path=str(source))
    [up] = runner.run([upscale], Recorder())
    assert result(up).model == "variant" and result(up).images[0].image.size == (64, 64)

    base = job("variant").params
    assert isinstance(base, ImageParams)
    wide = tmp_path / "wide.png"
    Image.new("RGB", (64, 64), (40, 80, 120)).save(wide)
    params = outpainted(base, 0, None, str(wide), (64, 64), Outpaint(pan="right"), 1024)
    [out] = runner.run([Job(user_id=1, params=params)], Recorder())
    assert result(out).model == "variant" and result(out).images[0].image.size == (96, 64)


def test_capacity_on_a_cpu_is_the_old_default(tiny_models: TinyModelPaths,
                                              variant: Path) -> None:
    runner = make_runner(tiny_models, variant)
    assert runner.batch_capacity(job("variant")) == DEFAULT_BATCH
    assert runner.batch_capacity(job("", mode=ImageMode.UPSCALE)) is None
    assert runner.batch_capacity(text_job(1, "a")) is None


# ----- LoRAs ------------------------------------------------------------------------------------


def test_each_batch_has_exactly_its_loras(tiny_models: TinyModelPaths, variant: Path,
                                          grain: Path) -> None:
    runner = make_runner(tiny_models, variant, grain)
    [plain] = runner.run([job("")], Recorder())
    [grained] = runner.run([job("", loras=(("grain", 1.0),))], Recorder())
    [after] = runner.run([job("")], Recorder())
    assert not np.array_equal(pixels(plain), pixels(grained))
    assert np.array_equal(pixels(after), pixels(plain))  # nothing left over from the last


def test_a_models_own_lora_is_always_on(tiny_models: TinyModelPaths, variant: Path,
                                        grain: Path) -> None:
    with_job_lora = make_runner(tiny_models, variant, grain)
    [asked] = with_job_lora.run([job("", loras=(("grain", 1.0),))], Recorder())
    always = make_runner(tiny_models, variant, grain, model_loras={"sd": (("grain", 1.0),)})
    [own] = always.run([job("")], Recorder())
    assert np.array_equal(pixels(own), pixels(asked))


def test_an_unknown_lora_fails_the_job(tiny_models: TinyModelPaths, variant: Path,
                                       grain: Path) -> None:
    runner = make_runner(tiny_models, variant, grain)
    with pytest.raises(ValueError, match=r"LoRA 'nope' is not configured here.*grain"):
        runner.run([job("", loras=(("nope", 1.0),))], Recorder())
