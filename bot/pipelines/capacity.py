"""How many pictures fit one call (`executor.batch_limit = "auto"`): from the device's free
memory and the peak memory each picture took in the batches measured so far.

The measuring is the runner's (torch.cuda, on the worker thread); this module is the
arithmetic, pure and cheap: the executor asks before every batch, under its lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The batch limit before a model and size were measured, and on a CPU: the old fixed default.
# On a CPU there is no cheap per-picture peak (no allocator statistics), and RAM is rarely
# what limits a batch there; time is.
DEFAULT_BATCH = 4
# The share of the free memory a batch may plan to use: the allocator fragments, and a
# peak measured at one batch size is not exactly linear in the pictures.
MARGIN = 0.8


def images_that_fit(free_bytes: float, per_image_bytes: float, *, margin: float = MARGIN,
                    most: int | None = None) -> int:
    """Pictures whose measured peak fits `margin` of `free_bytes`: at least 1 (one picture
    always runs; out-of-memory is the executor's back-off), at most `most`."""
    if per_image_bytes <= 0:
        return DEFAULT_BATCH if most is None else min(DEFAULT_BATCH, most)
    fits = max(1, int(free_bytes * margin // per_image_bytes))
    return fits if most is None else min(fits, most)


@dataclass
class PeakTable:
    """The peak bytes per picture measured per (model, width, height), and the free memory
    seen while each model was on the device. Written and read on the worker thread."""

    per_image: dict[tuple[str, int, int], float] = field(default_factory=dict)
    free_seen: dict[str, float] = field(default_factory=dict)

    def record(self, model: str, width: int, height: int, peak_bytes: float,
               images: int) -> None:
        """A batch of `images` pictures took `peak_bytes` above what was allocated before
        it. The largest per picture is kept: planning for the worst seen is what avoids
        out-of-memory errors."""
        if images < 1 or peak_bytes <= 0:
            return
        key = (model, width, height)
        self.per_image[key] = max(self.per_image.get(key, 0.0), peak_bytes / images)

    def estimate(self, model: str, width: int, height: int) -> float | None:
        """Bytes per picture at this size: measured, or scaled by pixels from the model's
        most demanding measured size per pixel; None when the model was never measured."""
        exact = self.per_image.get((model, width, height))
        if exact is not None:
            return exact
        rates = [b / (w * h) for (m, w, h), b in self.per_image.items() if m == model]
        return max(rates) * width * height if rates else None
