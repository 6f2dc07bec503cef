"""Who renders: the in-process worker, or the remote GPU workers, as /queue and
`python -m bot workers` show them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    host: str
    models: tuple[str, ...]  # image model first, then the story model
    busy: bool
    images_per_s: float | None  # None until it has rendered a picture batch
    batches: int = 0  # batches it has run since it started


def worker_line(worker: WorkerInfo) -> str:
    """One line: "gpu-1 (host a) · model · busy · 1.8 img/s"."""
    where = worker.name if worker.host in ("", worker.name) else f"{worker.name} ({worker.host})"
    speed = ("speed not measured yet" if worker.images_per_s is None
             else f"{worker.images_per_s:.2f} img/s")
    models = ", ".join(worker.models) or "no models"
    return f"{where} · {models} · {'busy' if worker.busy else 'idle'} · {speed}"
