"""The bot's side of Redis: the worker list (also `python -m bot workers`), and what happens
when Redis is not there."""

from __future__ import annotations

import time
from pathlib import Path
from typing import cast

import pytest

from bot.__main__ import main
from bot.config import settings_from_mapping
from bot.executor.executor import ExecutorLimits
from bot.pipelines.runner import ModelRunner
from bot.remote.broker import Broker, BrokerDown, shown_url
from bot.remote.worker import WorkerNode
from testkit.executor import ScriptedRunner
from testkit.redis_server import RedisServer
from testkit.remote import write_config


class NamedRunner(ScriptedRunner):
    model_names = ("tiny-image", "tiny-story")


def test_passwords_never_shown() -> None:
    assert shown_url("redis://:s3cret@gpu-box:6380/0") == "redis://:***@gpu-box:6380/0"
    assert shown_url("rediss://user:pw@host/1") == "rediss://user:***@host/1"
    assert shown_url("redis://localhost:6379/0") == "redis://localhost:6379/0"


async def test_workers_are_listed_and_redis_down_is_broker_down(
        redis_server: RedisServer) -> None:
    settings = settings_from_mapping({"executor": {"mode": "celery",
                                                   "broker_url": redis_server.url}})
    node = WorkerNode(settings, cast(ModelRunner, NamedRunner()), ExecutorLimits(), "w1",
                      redis_server.client())
    node.beat_once()
    broker = Broker(settings)
    try:
        [seen] = await broker.workers()
        assert seen.info.name == "w1" and seen.info.models == ("tiny-image", "tiny-story")
        redis_server.kill()
        started = time.monotonic()
        with pytest.raises(BrokerDown):
            await broker.workers()
        assert time.monotonic() - started < 30, "a dead broker is noticed, not waited on"
    finally:
        await broker.close()


def test_the_workers_command(redis_server: RedisServer, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path / "config.toml", {
        "executor": {"mode": "celery", "broker_url": redis_server.url}})
    assert main(["--config", str(config), "workers"]) == 0
    assert "no GPU worker is up" in capsys.readouterr().out
    settings = settings_from_mapping({"executor": {"broker_url": redis_server.url}})
    WorkerNode(settings, cast(ModelRunner, NamedRunner()), ExecutorLimits(), "gpu-2",
               redis_server.client()).beat_once()
    assert main(["--config", str(config), "workers"]) == 0
    out = capsys.readouterr().out
    assert "gpu-2" in out and "tiny-image, tiny-story" in out and "idle" in out, out

    redis_server.kill()
    down = write_config(tmp_path / "down.toml", {"executor": {
        "mode": "celery", "broker_url": redis_server.url.replace("//", "//:hunter2@")}})
    assert main(["--config", str(down), "workers"]) == 1
    err = capsys.readouterr().err
    assert "unreachable" in err and "hunter2" not in err and ":***@" in err, err
