"""Zoom out and pan on the tiny model: the engine's inpainting (shared weights or a dedicated
inpainting model), and the runner under the executor making the right canvas with the
original kept."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bot.app import build_runner
from bot.config import settings_from_mapping
from bot.executor.executor import Executor, ExecutorLimits
from bot.executor.jobs import (
    Done,
    Failed,
    ImageMode,
    ImageParams,
    ImageResult,
    Job,
    Progress,
)
from bot.images.files import image_file
from bot.images.outpaint import Outpaint, plan, prepare
from bot.images.pnginfo import read_png_parameters
from bot.images.requests import outpainted
from bot.pipelines.diffusion import ImageEngine, ImageModelOptions, ImageSpec, ModelLoadError
from bot.pipelines.runner import ModelRunner
from bot.pipelines.tiny import TinyModelPaths, build_tiny_inpaint_model

pytestmark = [
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The `local_dir_use_symlinks`:UserWarning"),
]


def picture(size: tuple[int, int] = (64, 64), seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def px(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float64)


def spec_for(size: tuple[int, int], steps: int = 2) -> ImageSpec:
    return ImageSpec(prompt="a wide valley", negative="", seed=3, steps=steps, guidance=7.0,
                     width=size[0], height=size[1], strength=1.0)


# ----- the engine ----------------------------------------------------------------------------


def test_inpainting_shares_the_weights_and_paints_the_canvas(image_engine: ImageEngine) -> None:
    layout = plan((64, 64), Outpaint(zoom=2.0), 1024)
    canvas, mask = prepare(picture(), layout)
    steps: list[tuple[int, int]] = []
    previews: list[int] = []

    def on_step(step: int, total: int, preview: object) -> None:
        steps.append((step, total))
        previews.append(len(preview()))  # type: ignore[operator]

    out = image_engine.outpaint(canvas, mask, spec_for(layout.canvas), on_step=on_step)
    assert not out.interrupted and out.images[0].size == (128, 128)
    assert steps and steps[-1][0] == steps[-1][1] and set(previews) == {1}
    inpaint = image_engine._inpaint_pipeline()
    assert type(inpaint).__name__ == "StableDiffusionInpaintPipeline"
    assert inpaint.unet is image_engine.pipe.unet and inpaint.vae is image_engine.pipe.vae
    assert image_engine.pipe.vae.use_tiling is False  # temporary tiling switched back off
    painted, original = px(out.images[0]), px(canvas)
    assert np.abs(painted[:16] - original[:16]).mean() > 5  # painted, not the blurred fill


def test_inpainting_stops_when_asked(image_engine: ImageEngine) -> None:
    layout = plan((64, 64), Outpaint(pan="left"), 1024)
    canvas, mask = prepare(picture(), layout)
    seen: list[int] = []
    out = image_engine.outpaint(canvas, mask, spec_for(layout.canvas, steps=4),
                                on_step=lambda step, total, _: seen.append(step),
                                should_stop=lambda: bool(seen))
    assert out.interrupted and seen == [1]
    assert image_engine.outpaint(canvas, mask, spec_for(layout.canvas),
                                 should_stop=lambda: True).interrupted


def test_a_dedicated_inpainting_model(tiny_models: TinyModelPaths) -> None:
    folder = build_tiny_inpaint_model(tiny_models.image.parent / "inpaint")
    engine = ImageEngine(ImageModelOptions(model=str(tiny_models.image), device="cpu",
                                           inpaint_model=str(folder)))
    engine.load()
    assert engine._inpainter is None  # loaded on first use, on the thread that paints
    layout = plan((64, 64), Outpaint(pan="down"), 1024)
    canvas, mask = prepare(picture(), layout)
    out = engine.outpaint(canvas, mask, spec_for(layout.canvas))
    assert out.images[0].size == (64, 96)
    inpaint = engine._inpaint_pipeline()  # the one it loaded
    assert inpaint.unet.config.in_channels == 9 and inpaint.unet is not engine.pipe.unet
    assert engine.inpaint_model_name == "inpaint"  # a folder by its name, not its path
    engine.set_scheduler("euler")
    assert type(inpaint.scheduler).__name__ == "EulerDiscreteScheduler"
    assert inpaint.scheduler is not engine.pipe.scheduler  # made from its own config


def test_a_missing_inpainting_model_is_a_clear_load_error(
    tiny_models: TinyModelPaths, tmp_path: Path,
) -> None:
    engine = ImageEngine(ImageModelOptions(model=str(tiny_models.image), device="cpu",
                                           inpaint_model=str(tmp_path / "nowhere")))
    engine.load()
    layout = plan((64, 64), Outpaint(pan="up"), 1024)
    canvas, mask = prepare(picture(), layout)
    with pytest.raises(ModelLoadError, match=r"image\.inpaint_model"):
        engine.outpaint(canvas, mask, spec_for(layout.canvas))


# ----- the runner, under the executor -------------------------------------------------------


def runner_for(tiny: TinyModelPaths, **image: object) -> ModelRunner:
    settings = settings_from_mapping({"image": {"model": str(tiny.image), **image},
                                      "story": {"model": str(tiny.story)}})
    runner = build_runner(settings)
    runner.warm_up()
    return runner


def outpaint_job(source: Path, size: tuple[int, int], op: Outpaint,
                 max_side: int = 1024) -> Job:
    base = ImageParams(prompt="a wide valley", negative="", subject="a wide valley",
                       style=None, seeds=(5,), steps=2, guidance=7.0, width=size[0],
                       height=size[1])
    return Job(user_id=1, params=outpainted(base, 0, None, str(source), size, op, max_side))


async def run_jobs(runner: ModelRunner, jobs: list[Job]) -> list[object]:
    async with Executor(runner, ExecutorLimits(per_user_limit=10, batch_limit=4)) as ex:
        handles = [await ex.submit(job) for job in jobs]
        return [await h.wait() for h in handles]


def result_image(end: object) -> Image.Image:
    assert isinstance(end, Done) and isinstance(end.result, ImageResult), end
    return end.result.images[0].image


@pytest.fixture(scope="module")
def runner(tiny_models: TinyModelPaths) -> ModelRunner:
    return runner_for(tiny_models)


async def test_zoom_out_makes_the_canvas_bigger_and_keeps_the_centre(
    runner: ModelRunner, tmp_path: Path,
) -> None:
    source = tmp_path / "source.png"
    original = picture((64, 64), seed=1)
    original.save(source)
    job = outpaint_job(source, (64, 64), Outpaint(zoom=2.0))
    events: list[object] = []
    async with Executor(runner, ExecutorLimits(per_user_limit=10)) as ex:
        handle = await ex.submit(job)
        async for event in handle.events():
            events.append(event)
    image = result_image(events[-1])
    assert image.size == (128, 128)
    centre = px(image)[32 + 8:96 - 8, 32 + 8:96 - 8]
    assert np.abs(centre - px(original)[8:-8, 8:-8]).max() <= 1  # the original, kept
    seam = px(image)[32:96, 32:40]
    assert np.abs(seam - px(original)[:, :8]).mean() < 60  # blended towards the original
    assert any(isinstance(e, Progress) and e.step == e.total for e in events)
    # Its PNG says what was done, as AUTOMATIC1111 writes an outpaint (img2img + mask).
    assert isinstance(events[-1], Done) and isinstance(events[-1].result, ImageResult)
    data, _ = image_file(job, events[-1].result, 0)
    params = read_png_parameters(data)
    assert params is not None and (params.width, params.height) == (128, 128)
    assert params.extra["Denoising strength"] == "1" and params.extra["Mask blur"] == "8"
    assert params.extra["Zoom out"] == "2" and params.extra["Mode"] == "outpaint"


@pytest.mark.parametrize(("direction", "canvas", "where"), [
    ("left", (96, 64), (32, 0)), ("right", (96, 64), (0, 0)),
    ("up", (64, 96), (0, 32)), ("down", (64, 96), (0, 0)),
])
async def test_each_pan_keeps_the_picture_on_the_side_it_came_from(
    runner: ModelRunner, tmp_path: Path, direction: str, canvas: tuple[int, int],
    where: tuple[int, int],
) -> None:
    source = tmp_path / "source.png"
    original = picture((64, 64), seed=2)
    original.save(source)
    [end] = await run_jobs(runner, [outpaint_job(source, (64, 64), Outpaint(pan=direction))])
    image = result_image(end)
    assert image.size == canvas
    x, y = where
    placed = px(image)[y:y + 64, x:x + 64]
    # Away from the seam (8 px on the open side) every pixel is the original's.
    keep = {"left": np.s_[:, 8:], "right": np.s_[:, :-8], "up": np.s_[8:, :],
            "down": np.s_[:-8, :]}[direction]
    assert np.abs(placed[keep] - px(original)[keep]).max() <= 1


async def test_outpaint_jobs_run_one_at_a_time_and_a_lost_source_fails_clearly(
    runner: ModelRunner, tmp_path: Path,
) -> None:
    source = tmp_path / "source.png"
    picture().save(source)
    jobs = [outpaint_job(source, (64, 64), Outpaint(pan="right")),
            outpaint_job(tmp_path / "gone.png", (64, 64), Outpaint(pan="right"))]
    assert runner.batch_key(jobs[0]) is None
    assert jobs[0].params.mode is ImageMode.OUTPAINT  # type: ignore[union-attr]
    ends = await run_jobs(runner, jobs)
    assert result_image(ends[0]).size == (96, 64)
    assert isinstance(ends[1], Failed) and "source image is gone" in ends[1].reason


async def test_the_dedicated_model_loads_on_the_worker_thread(
    tiny_models: TinyModelPaths, tmp_path: Path,
) -> None:
    folder = build_tiny_inpaint_model(tiny_models.image.parent / "inpaint")
    runner = await asyncio.to_thread(runner_for, tiny_models, inpaint_model=str(folder))
    loaded_on: list[str] = []
    engine = runner.image_engine
    load = engine._load_inpaint_model

    def noting(name: str) -> object:
        loaded_on.append(threading.current_thread().name)
        return load(name)

    engine._load_inpaint_model = noting  # type: ignore[method-assign]
    source = tmp_path / "source.png"
    picture().save(source)
    [end] = await run_jobs(runner, [outpaint_job(source, (64, 64), Outpaint(zoom=1.5))])
    assert result_image(end).size == (96, 96)
    assert isinstance(end, Done) and isinstance(end.result, ImageResult)
    assert end.result.model == "inpaint" and loaded_on == ["gpu-worker"]
