"""Which progress steps get a preview picture, so previews stay a small share of a run.

Worker thread only, so nothing here takes a lock: the executor makes one `PreviewCost` that
lives as long as it does (what a decode costs hardly changes between runs, and the first run
must not pay to learn it again), and one `PreviewBudget` per run of a batch, which a
`BatchContext` consults on each step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from PIL.Image import Image

log = logging.getLogger(__name__)


class PreviewLimits(Protocol):
    """The preview settings of `ExecutorLimits` (read only, so a frozen dataclass fits)."""

    @property
    def preview_every(self) -> int:
        """Steps between previews; 0 disables them."""
        ...

    @property
    def preview_interval_s(self) -> float:
        """The least time between two previews of one job."""
        ...

    @property
    def preview_budget(self) -> float:
        """The most of a run's time that previews may take, as a share (0.05 is 5 %)."""
        ...


class PreviewCost:
    """A moving average of what decoding one preview takes, in seconds; 0 until learned."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def learn(self, seconds: float) -> None:
        previous = self.seconds
        self.seconds = seconds if previous == 0 else 0.7 * previous + 0.3 * seconds


class PreviewBudget:
    """One run's previews: decides which steps get one and charges their time to the run.

    A step gets a preview when all of these hold: it is a multiple of `preview_every`, it is
    not the last step (the result follows at once), the job's last preview is at least
    `preview_interval_s` old, and either the step's latents were decoded already (batch-mates
    at the step just decoded reuse its pictures, free) or one more decode at the learned cost
    keeps the run's previews within `preview_budget` of its time so far.
    """

    def __init__(
        self,
        limits: PreviewLimits,
        cost: PreviewCost,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = limits
        self._cost = cost
        self._clock = clock
        self._started = clock()  # the run's time so far is what the share is taken of
        self._last_shown: dict[str, float] = {}  # job id -> when its last preview was made
        self._spent = 0.0  # seconds this run has spent making previews
        self._decoded_step = -1  # the step whose latents were decoded last

    def preview(
        self, job_id: str, step: int, total: int, make: Callable[[], Image | None]
    ) -> Image | None:
        """The job's preview at this step, or None when it gets none (or `make` failed:
        a preview must never fail the job)."""
        now = self._clock()
        if not self._wants(job_id, step, total, now):
            return None
        self._last_shown[job_id] = now
        # The runner decodes once per step and hands the batch-mates the same pictures, so
        # only the first preview at a step tells what a decode costs.
        decodes = step != self._decoded_step
        self._decoded_step = step
        image = None
        try:
            image = make()
        except Exception:
            log.exception("preview failed for job %s", job_id)
        spent = self._clock() - now
        self._spent += spent
        if decodes:
            self._cost.learn(spent)
        return image

    def _wants(self, job_id: str, step: int, total: int, now: float) -> bool:
        every = self._limits.preview_every
        return (
            every > 0
            and step % every == 0
            and step < total
            and now - self._last_shown.get(job_id, 0.0) >= self._limits.preview_interval_s
            and (step == self._decoded_step or self._affordable(now))
        )

    def _affordable(self, now: float) -> bool:
        """Whether one more decode keeps previews within the budget share of this run."""
        allowed = self._limits.preview_budget * (now - self._started)
        return self._spent + self._cost.seconds <= allowed
