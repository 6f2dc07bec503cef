"""A stand-in for the models: instant, deterministic lines and solid-colour pictures.

Used where the tests are about the story logic, not the models (those run in the bot tests
with the tiny models)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence

from PIL import Image

from bot.executor.executor import RunContext
from bot.executor.jobs import (
    GeneratedImage,
    ImageParams,
    ImageResult,
    Job,
    JobResult,
    TextParams,
    TextResult,
)


class FakeRunner:
    def __init__(self) -> None:
        self.blocked: Callable[[str], str | None] = lambda text: None
        self.refuse_images = False
        self.text_gate = threading.Event()
        self.text_gate.set()
        self.jobs: list[Job] = []

    def batch_key(self, job: Job) -> Hashable | None:
        return None

    def batch_size(self, job: Job) -> int:
        return 1

    def run(self, jobs: Sequence[Job], ctx: RunContext) -> list[JobResult | Exception]:
        self.jobs.extend(jobs)
        return [self._one(job, ctx) for job in jobs]

    def _one(self, job: Job, ctx: RunContext) -> JobResult | Exception:
        p = job.params
        if isinstance(p, TextParams):
            while not self.text_gate.wait(0.01):
                if ctx.cancelled(job.id):
                    return RuntimeError("interrupted")
            text = f"Line after {len(p.lines) + 1} lines, seed {p.rng_seed}."
            if self.blocked(text):
                return RuntimeError("The story model kept writing a blocked term.")
            return TextResult(text, {}, "EleutherAI/gpt-neo-125M")
        assert isinstance(p, ImageParams)
        colour = (p.seeds[0] % 256, 90, 160)
        return ImageResult((GeneratedImage(Image.new("RGB", (p.width, p.height), colour),
                                           p.seeds[0]),), {}, "tiny-sd", "Euler a")
