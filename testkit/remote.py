"""Real remote GPU workers (`python -m bot worker`) as subprocesses, for the tests and the
benches of celery mode."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

from bot.remote import keys


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    """A config.toml from nested dicts (strings, numbers and booleans)."""
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            if isinstance(value, bool):
                shown = "true" if value else "false"
            elif isinstance(value, str):
                shown = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
            else:
                shown = repr(value)
            lines.append(f"{key} = {shown}")
    path.write_text("\n".join(lines) + "\n")
    return path


class WorkerProcess:
    """One `python -m bot worker --name NAME`, with its output in a log file."""

    def __init__(self, config: Path, name: str, log_dir: Path, *,
                 step_delay: float | None = None, env: dict[str, str] | None = None,
                 prefix: list[str] | None = None) -> None:
        """`step_delay`: run testkit.slow_runner's worker, whose steps take that long;
        `prefix`: a command to run it under (e.g. taskset, for the benches)."""
        self.config, self.name = config, name
        self.log = log_dir / f"worker-{name}.log"
        # One torch thread each: workers share the machine with the bot and each other.
        self._env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                     "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1",
                     **(env or {})}
        self._step_delay = step_delay
        self._prefix = prefix or []
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        if self._step_delay is None:
            command = ["-m", "bot", "--config", str(self.config), "worker", "--name", self.name]
        else:
            command = ["-m", "testkit.slow_runner", str(self.config), self.name,
                       str(self._step_delay)]
        self.process = subprocess.Popen(
            [*self._prefix, sys.executable, *command], cwd=Path(__file__).parent.parent,
            stdout=self.log.open("ab"), stderr=subprocess.STDOUT, env=self._env)
        return self

    def kill(self) -> None:
        """SIGKILL: no clean-up, the heartbeat just stops."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


async def wait_for_workers(client: redis.Redis, names: list[str], *, timeout: float = 180,  # noqa: ASYNC109
                           processes: list[WorkerProcess] | None = None) -> None:
    """Until every named worker's heartbeat is in Redis and its Celery consumer is ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = await asyncio.to_thread(client.exists, *[keys.worker_key(n) for n in names])
        beating = found == len(names)
        ready = all(f"{p.name}@" in p.output() and " ready." in p.output()
                    for p in processes or [])
        if beating and ready:
            return
        for p in processes or []:
            if p.process is not None and p.process.poll() is not None:
                raise RuntimeError(f"worker {p.name} exited:\n{p.output()[-3000:]}")
        await asyncio.sleep(0.2)
    logs = "\n".join(p.output()[-2000:] for p in processes or [])
    raise TimeoutError(f"workers {names} did not come up within {timeout:.0f} s\n{logs}")


async def wait_until(predicate: Any, *, timeout: float = 60, what: str = "it") -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(predicate):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{what} did not happen within {timeout:.0f} s")
