"""🎞 The journey's frames on the tiny model: which steps, the predicted final image of each,
decoded with the real VAE; the re-render is the picture itself."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from PIL import Image

from bot.pipelines.diffusion import ImageEngine, ImageSpec
from bot.pipelines.journey import MOST_FRAMES, X0Recorder, _x0_from_noise, journey_steps
from bot.pipelines.schedulers import SCHEDULERS, scheduler_names

pytestmark = [
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]


def spec(steps: int = 6, seed: int = 5, **changes: object) -> ImageSpec:
    base = ImageSpec(prompt="a lighthouse at dawn", negative="", seed=seed, steps=steps,
                     guidance=7.0, width=64, height=64)
    return ImageSpec(**{**base.__dict__, **changes})  # type: ignore[arg-type]


def diff(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
                 .mean())


@pytest.fixture
def engine(image_engine: ImageEngine) -> Iterator[ImageEngine]:
    yield image_engine
    image_engine.set_scheduler("euler_a")


@pytest.mark.parametrize(("total", "expected"), [
    (1, (1,)), (4, (1, 2, 3, 4)), (25, tuple(range(1, 26))),
    (26, (2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26)),
    (50, (*range(3, 49, 3), 50)),
])
def test_journey_steps(total: int, expected: tuple[int, ...]) -> None:
    assert journey_steps(total) == expected


@pytest.mark.parametrize("total", range(1, 151))
def test_journey_steps_fit_a_select_and_end_at_the_last_step(total: int) -> None:
    steps = journey_steps(total)
    assert 1 <= len(steps) <= MOST_FRAMES and steps[-1] == total
    assert list(steps) == sorted(set(steps)) and steps[0] >= 1
    assert len(steps) >= min(total, 10)  # about 10-25 frames whenever there are steps for it


def test_a_journey_is_the_picture_forming(engine: ImageEngine) -> None:
    plain = engine.generate([spec()])
    out = engine.generate([spec()], journey=True)
    assert [step for step, _ in out.frames] == [1, 2, 3, 4, 5, 6]
    assert all(len(images) == 1 and images[0].size == (64, 64) for _, images in out.frames)
    # Recording and decoding change nothing in the render: the same picture as without.
    assert diff(out.images[0], plain.images[0]) == 0
    # Euler a's prediction at the last step is the final sample: the last frame is it.
    assert diff(out.frames[-1][1][0], out.images[0]) < 1.0
    # The first frame is far from the finished picture, each later one nearer (roughly).
    distances = [diff(images[0], out.images[0]) for _, images in out.frames]
    assert distances[0] > 5 * max(distances[-1], 0.2)
    assert distances[0] > distances[len(distances) // 2]
    # The scheduler is itself again afterwards (the wrapper was an instance attribute).
    assert "step" not in vars(engine.pipe.scheduler)


def test_no_frames_without_journey(engine: ImageEngine) -> None:
    assert engine.generate([spec(steps=2)]).frames == []


@pytest.mark.parametrize("name", scheduler_names())
def test_every_scheduler_gives_frames_ending_at_the_picture(engine: ImageEngine,
                                                           name: str) -> None:
    if not SCHEDULERS[name].available():
        pytest.skip(f"{name} needs a package that is not installed")
    engine.set_scheduler(name)
    out = engine.generate([spec(steps=5)], journey=True)
    steps = [step for step, _ in out.frames]
    assert steps == list(journey_steps(steps[-1])) and steps[-1] >= 5  # PLMS, Heun: more
    # Whatever the scheduler provides (its own x0, or ours from the noise prediction), the
    # last prediction is close to the picture it finishes as.
    assert diff(out.frames[-1][1][0], out.images[0]) < 2.0, name


def test_img2img_journey_counts_the_steps_it_runs(engine: ImageEngine) -> None:
    init = Image.new("RGB", (64, 64), (200, 40, 40))
    out = engine.generate([spec(steps=8, init_image=init, strength=0.5)], journey=True)
    assert [step for step, _ in out.frames] == [1, 2, 3, 4]


def test_x0_from_the_noise_prediction_inverts_the_forward_process() -> None:
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler()
    generator = torch.Generator().manual_seed(0)
    x0 = torch.randn((1, 4, 8, 8), generator=generator)
    noise = torch.randn((1, 4, 8, 8), generator=generator)
    t = torch.tensor(600)
    noisy = scheduler.add_noise(x0, noise, t)
    assert torch.allclose(_x0_from_noise(scheduler, noise, t, noisy), x0, atol=1e-4)
    v = scheduler.get_velocity(x0, noise, t)
    scheduler.register_to_config(prediction_type="v_prediction")
    assert torch.allclose(_x0_from_noise(scheduler, v, t, noisy), x0, atol=1e-4)


def test_the_recorder_unwraps_on_an_error() -> None:
    from diffusers import EulerDiscreteScheduler

    scheduler = EulerDiscreteScheduler()
    recorder = X0Recorder()
    with pytest.raises(RuntimeError), recorder.installed(scheduler):
        assert "step" in vars(scheduler)
        raise RuntimeError("out of memory")
    assert "step" not in vars(scheduler)
