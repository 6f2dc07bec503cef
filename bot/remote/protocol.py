"""What travels between the bot and its remote GPU workers, as JSON.

The bot sends a batch (one Celery task per batch: the bot batches, see docs/ARCHITECTURE.md);
a worker sends back events while it runs (pub/sub, lossy by design: only progress) and one
result per batch (a Redis key that waits for the bot, see bot/remote/keys.py). Jobs travel
without their Discord origin: a worker needs only what to render. Pictures travel as PNG
bytes (base64), so results are exact; a variation or upscale carries its source picture,
as a /describe job its member's picture, because the worker cannot read the bot's files.
"""

from __future__ import annotations

import base64
import dataclasses
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.executor.jobs import (
    DescribeParams,
    GeneratedImage,
    ImageParams,
    ImageResult,
    Job,
    JobKind,
    JobResult,
    TextResult,
    params_from_json,
)

if TYPE_CHECKING:
    from PIL.Image import Image

TASK_NAME = "greenheart.run_batch"


def queue_for(kind: JobKind, model: str) -> str:
    """The Celery queue of batches of this kind on this model: a worker consumes the queues
    of the models it serves, so a batch only reaches a worker that has its model."""
    return f"greenheart.{kind.value}.{model}"


# ----- pictures ----------------------------------------------------------------------------


def png_b64(image: Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def preview_b64(image: Image) -> str:
    """A preview for the status message: lossy is fine, and it keeps pub/sub messages small."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=80)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def image_from_b64(data: str) -> Image:
    from PIL import Image as PILImage

    with PILImage.open(io.BytesIO(base64.b64decode(data))) as img:
        img.load()
        return img.copy()


# ----- batches (bot → worker) -----------------------------------------------------------------


@dataclass(frozen=True)
class BatchTask:
    """One batch as a worker receives it."""

    batch_id: str
    queue: str
    jobs: tuple[Job, ...]
    sources: dict[str, str]  # job id → its source picture (PNG, base64): V, U, /describe
    # The most pictures to render in one call: the bot's batch limit, which it lowers after
    # a worker ran out of memory (a worker never goes over its own executor.batch_limit).
    max_batch: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "batch": self.batch_id,
            "queue": self.queue,
            "jobs": [_job_json(j) for j in self.jobs],
            "sources": self.sources,
            "max_batch": self.max_batch,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BatchTask:
        return cls(batch_id=str(data["batch"]), queue=str(data["queue"]),
                   jobs=tuple(_job_from_json(j) for j in data["jobs"]),
                   sources={str(k): str(v) for k, v in data.get("sources", {}).items()},
                   max_batch=int(data.get("max_batch", 0)))


def batch_task(batch_id: str, queue: str, jobs: list[Job], max_batch: int = 0) -> BatchTask:
    """The task for `jobs`, with the source pictures read from the bot's files (a missing
    one is left out: the worker's runner then fails that job with the runner's message)."""
    sources: dict[str, str] = {}
    for job in jobs:
        path = (job.params.source_path
                if isinstance(job.params, ImageParams | DescribeParams) else None)
        if not path:
            continue
        try:
            sources[job.id] = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        except OSError:  # gone or unreadable: the worker's runner says so for this job
            continue
    return BatchTask(batch_id, queue, tuple(jobs), sources, max_batch)


def with_local_sources(task: BatchTask, folder: Path) -> list[Job]:
    """Worker side: the task's jobs, their source pictures written under `folder` and their
    params pointing there (the runner reads sources from files, as in local mode)."""
    jobs = []
    for job in task.jobs:
        p = job.params
        if isinstance(p, ImageParams | DescribeParams) and p.source_path:
            path = folder / f"{job.id}.png"
            if job.id in task.sources:
                path.write_bytes(base64.b64decode(task.sources[job.id]))
            # else: a path that does not exist here, so the runner says the source is gone
            job = dataclasses.replace(job, params=dataclasses.replace(p, source_path=str(path)))
        jobs.append(job)
    return jobs


def _job_json(job: Job) -> dict[str, Any]:
    return {"id": job.id, "user_id": job.user_id, "kind": job.kind.value,
            "params": job.params.to_json(), "attempts": job.attempts,
            "created_at": job.created_at}


def _job_from_json(data: dict[str, Any]) -> Job:
    params = params_from_json(JobKind(data["kind"]), data["params"])
    return Job(user_id=int(data["user_id"]), params=params, id=str(data["id"]),
               attempts=int(data.get("attempts", 0)),
               created_at=float(data.get("created_at", 0.0)))


# ----- results (worker → bot) -----------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One job's outcome: a result, or the reason it failed."""

    job_id: str
    result: JobResult | None = None
    error: str | None = None


@dataclass(frozen=True)
class BatchResult:
    """What a worker made of one batch. `error` is set when the whole batch raised (then
    `outcomes` is empty); `oom` says it ran out of device memory, so the bot retries its
    jobs in smaller batches."""

    batch_id: str
    worker: str
    seconds: float
    outcomes: tuple[Outcome, ...] = ()
    error: str | None = None
    oom: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"batch": self.batch_id, "worker": self.worker, "seconds": self.seconds,
                "error": self.error, "oom": self.oom,
                "outcomes": [_outcome_json(o) for o in self.outcomes]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BatchResult:
        return cls(batch_id=str(data["batch"]), worker=str(data["worker"]),
                   seconds=float(data["seconds"]), error=data.get("error"),
                   oom=bool(data.get("oom")),
                   outcomes=tuple(_outcome_from_json(o) for o in data.get("outcomes", ())))


def _outcome_json(outcome: Outcome) -> dict[str, Any]:
    data: dict[str, Any] = {"job": outcome.job_id, "error": outcome.error}
    result = outcome.result
    if isinstance(result, ImageResult):
        data["image"] = {
            "images": [{"png": png_b64(g.image), "seed": g.seed, "nsfw": g.nsfw,
                        "label": g.label} for g in result.images],
            "timings": result.timings, "model": result.model, "sampler": result.sampler,
            "lora_hashes": [list(pair) for pair in result.lora_hashes],
        }
    elif isinstance(result, TextResult):
        data["text"] = {"text": result.text, "timings": result.timings, "model": result.model,
                        "candidates": list(result.candidates)}
    return data


def _outcome_from_json(data: dict[str, Any]) -> Outcome:
    result: JobResult | None = None
    if image := data.get("image"):
        result = ImageResult(
            images=tuple(GeneratedImage(image_from_b64(g["png"]), int(g["seed"]),
                                        bool(g.get("nsfw")), str(g.get("label", "")))
                         for g in image["images"]),
            timings={str(k): float(v) for k, v in image.get("timings", {}).items()},
            model=str(image["model"]), sampler=str(image["sampler"]),
            lora_hashes=tuple((str(n), str(h)) for n, h in image.get("lora_hashes", ())))
    elif text := data.get("text"):
        result = TextResult(text=str(text["text"]),
                            timings={str(k): float(v) for k, v in text["timings"].items()},
                            model=str(text["model"]),
                            candidates=tuple(str(c) for c in text.get("candidates", ())))
    error = data.get("error")
    return Outcome(str(data["job"]), result, None if error is None else str(error))
