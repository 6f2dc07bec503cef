"""Zoom out in celery mode: the picture to widen travels to a remote worker (the worker
cannot read the bot's files) and the widened one comes back, its centre kept."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from bot.pipelines.tiny import TinyModelPaths
from testkit.discord_double import DiscordDouble
from testkit.discord_double.models import Message
from testkit.discord_double.seeding import SeededWorld
from testkit.harness import BotHarness, harness_settings
from testkit.imagine import click_for_result, imagine, job_id_of
from testkit.redis_server import RedisServer
from testkit.remote import WorkerProcess, wait_for_workers, write_config


def pixels_of(message: Message) -> np.ndarray:
    with Image.open(io.BytesIO(message.attachments[0].data)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


async def test_a_zoom_out_runs_on_a_remote_worker(
    tiny_models: TinyModelPaths, tmp_path: Path, discord_double: DiscordDouble,
    discord_world: SeededWorld, redis_server: RedisServer,
) -> None:
    executor = {"mode": "celery", "broker_url": redis_server.url, "worker_timeout_s": 3,
                "batch_limit": 1}
    size = {"width": 64, "height": 64}
    harness = BotHarness(discord_double, discord_world, harness_settings(
        tiny_models, tmp_path, discord_double, image={**size, "steps": 3},
        executor={**executor, "stop_grace_s": 0}))
    config = write_config(tmp_path / "worker.toml", {
        "image": {"model": str(tiny_models.image), **size},
        "story": {"model": str(tiny_models.story)},
        "executor": executor,
    })
    worker = WorkerProcess(config, "w1", tmp_path).start()
    try:
        await wait_for_workers(redis_server.client(), ["w1"], processes=[worker])
        await harness.start()
        _, result = await imagine(harness, prompt="a far island", seed=2, count=1)
        original = pixels_of(result)
        zoomed = await click_for_result(harness, result, f"gh:zoom2:{job_id_of(result)}:0")
        pixels = pixels_of(zoomed)
        assert pixels.shape == (128, 128, 3)
        assert np.abs(pixels[40:88, 40:88] - original[8:56, 8:56]).max() <= 1
    finally:
        await harness.stop()
        worker.kill()
