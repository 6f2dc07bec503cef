"""Previews stay a small share of a run, however slow they are to decode."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable, Sequence

import pytest
from PIL import Image

from bot.executor.executor import BatchContext, Executor, ExecutorLimits, RunContext
from bot.executor.jobs import Job, JobEvent, JobResult, Progress, TextParams, TextResult
from bot.executor.previews import PreviewBudget, PreviewCost


class PreviewingRunner:
    """Steps of `step_s`; every job asks for a preview at every step; a decode takes
    `decode_s` and is shared by the jobs of a batch within one step (as the image runner's
    is)."""

    def __init__(self, steps: int, step_s: float, decode_s: float) -> None:
        self.steps, self.step_s, self.decode_s = steps, step_s, decode_s
        self.decodes = 0

    def batch_key(self, job: Job) -> Hashable | None:
        return "same"

    def batch_size(self, job: Job) -> int:
        return 1

    def run(self, jobs: Sequence[Job], ctx: RunContext) -> list[JobResult | Exception]:
        for step in range(1, self.steps + 1):
            time.sleep(self.step_s)
            decoded: list[Image.Image] = []

            def preview(decoded: list[Image.Image] = decoded) -> Image.Image:
                if not decoded:
                    time.sleep(self.decode_s)
                    self.decodes += 1
                    decoded.append(Image.new("RGB", (8, 8)))
                return decoded[0]

            for job in jobs:
                ctx.progress(job, step, self.steps, preview)
        return [TextResult("ok", {}, "scripted") for _ in jobs]


def job(user: int) -> Job:
    return Job(user_id=user, params=TextParams(seed_line="x", lines=(), rng_seed=0))


async def previews_of(executor: Executor, jobs: list[Job]) -> list[list[int]]:
    handles = [await executor.submit(j) for j in jobs]
    shown: list[list[int]] = []
    for handle in handles:
        steps = [e.step async for e in handle.events()
                 if isinstance(e, Progress) and e.preview is not None]
        shown.append(steps)
    return shown


async def test_a_slow_decoder_gets_few_previews() -> None:
    # Decoding takes 20 steps' time; at most 5 % of a run may go to previews.
    runner = PreviewingRunner(steps=20, step_s=0.01, decode_s=0.2)
    limits = ExecutorLimits(preview_every=1, preview_interval_s=0.0)
    async with Executor(runner, limits) as executor:
        first = await asyncio.wait_for(previews_of(executor, [job(1)]), 10)
        second = await asyncio.wait_for(previews_of(executor, [job(1)]), 10)
    assert first == [[1]]  # the first one is made (its cost is not known yet)...
    assert second == [[]]  # ...then its learned cost (0.2 s) is over 5 % of a 0.2 s run
    assert runner.decodes == 1


async def test_a_cheap_decoder_is_not_held_back_and_batch_mates_share_it() -> None:
    runner = PreviewingRunner(steps=6, step_s=0.02, decode_s=0.0)
    limits = ExecutorLimits(preview_every=2, preview_interval_s=0.0, batch_limit=2)
    async with Executor(runner, limits) as executor:
        shown = await asyncio.wait_for(previews_of(executor, [job(1), job(2)]), 10)
    assert shown == [[2, 4], [2, 4]]  # every second step but the last, for both jobs


# ----- PreviewBudget on its own: no threads, no executor, a clock the test moves ----------


class Clock:
    # Starts well above 0: a job never shown yet counts as last shown at 0.0, as it does
    # with time.monotonic().
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


PICTURE = Image.new("RGB", (8, 8))


def decoder(clock: Clock, seconds: float) -> Callable[[], Image.Image]:
    """A preview function whose decode takes `seconds` on the test's clock."""

    def make() -> Image.Image:
        clock.now += seconds
        return PICTURE

    return make


def free_limits(every: int = 1, interval_s: float = 0.0) -> ExecutorLimits:
    # A budget of the whole run: only the rule under test can say no.
    return ExecutorLimits(preview_every=every, preview_interval_s=interval_s,
                          preview_budget=1.0)


def shown_steps(budget: PreviewBudget, clock: Clock, job_id: str, steps: range, total: int,
                step_s: float = 0.0) -> list[int]:
    shown = []
    for step in steps:
        clock.now += step_s
        if budget.preview(job_id, step, total, decoder(clock, 0.0)) is not None:
            shown.append(step)
    return shown


def test_budget_previews_every_nth_step_but_not_the_last() -> None:
    clock = Clock()
    budget = PreviewBudget(free_limits(every=2), PreviewCost(), clock)
    assert shown_steps(budget, clock, "a", range(1, 7), total=6) == [2, 4]
    budget = PreviewBudget(free_limits(every=3), PreviewCost(), clock)
    assert shown_steps(budget, clock, "a", range(1, 10), total=9) == [3, 6]


def test_budget_preview_every_zero_disables_previews() -> None:
    clock = Clock()
    budget = PreviewBudget(free_limits(every=0), PreviewCost(), clock)
    decoded: list[int] = []

    def make() -> Image.Image:
        decoded.append(1)
        return PICTURE

    assert [budget.preview("a", step, 10, make) for step in range(1, 6)] == [None] * 5
    assert decoded == []  # nothing decoded either


def test_budget_keeps_the_interval_per_job() -> None:
    clock = Clock()
    budget = PreviewBudget(free_limits(every=1, interval_s=1.0), PreviewCost(), clock)
    shown: dict[str, list[int]] = {"a": [], "b": []}
    for step in range(1, 11):
        clock.now += 0.5
        for job_id in ("a", "b") if step > 1 else ("a",):  # b joins a step late
            if budget.preview(job_id, step, 20, decoder(clock, 0.0)) is not None:
                shown[job_id].append(step)
    # Each job gets one every second step (1 s apart); b's clock is its own, not a's.
    assert shown == {"a": [1, 3, 5, 7, 9], "b": [2, 4, 6, 8, 10]}


def test_budget_skips_a_decode_that_would_go_over_the_share() -> None:
    clock = Clock()
    cost = PreviewCost()
    cost.learn(0.1)  # a decode takes 0.1 s; 5 % of a run buys one per 2 s of it
    budget = PreviewBudget(ExecutorLimits(preview_every=1, preview_interval_s=0.0,
                                          preview_budget=0.05), cost, clock)
    make = decoder(clock, 0.1)
    clock.now = 101.9  # 1.9 s in: 0.095 s allowed, under one decode
    assert budget.preview("a", 1, 100, make) is None
    clock.now = 102.1  # 0.105 s allowed: one decode fits
    assert budget.preview("a", 2, 100, make) is PICTURE
    clock.now = 103.9  # 0.1 s spent + 0.1 s more is over the 0.195 s allowed
    assert budget.preview("a", 3, 100, make) is None
    clock.now = 104.1  # 0.2 s within 0.205 s
    assert budget.preview("a", 4, 100, make) is PICTURE
    clock.now = 105.0  # 0.3 s over 0.25 s
    assert budget.preview("a", 5, 100, make) is None


def test_budget_makes_the_first_preview_before_the_cost_is_known() -> None:
    clock = Clock()
    cost = PreviewCost()
    budget = PreviewBudget(ExecutorLimits(preview_every=1, preview_interval_s=0.0,
                                          preview_budget=0.05), cost, clock)
    assert budget.preview("a", 1, 10, decoder(clock, 2.0)) is PICTURE
    assert cost.seconds == 2.0
    clock.now += 1.0  # 3 s into the run: 0.15 s allowed, 2 s spent
    assert budget.preview("a", 2, 10, decoder(clock, 2.0)) is None


def test_batch_mates_at_the_decoded_step_reuse_it_free() -> None:
    clock = Clock()
    cost = PreviewCost()
    budget = PreviewBudget(ExecutorLimits(preview_every=1, preview_interval_s=0.0,
                                          preview_budget=0.05), cost, clock)
    assert budget.preview("a", 2, 10, decoder(clock, 1.0)) is PICTURE  # decodes: 1 s
    # Far over budget now, but b and c are at the step whose pictures exist already.
    assert budget.preview("b", 2, 10, decoder(clock, 0.0)) is PICTURE
    assert budget.preview("c", 2, 10, decoder(clock, 0.0)) is PICTURE
    assert cost.seconds == 1.0  # a reuse is no decode: it teaches nothing about the cost
    assert budget.preview("a", 3, 10, decoder(clock, 1.0)) is None  # a new step must pay


def test_budget_learns_a_moving_average_kept_across_runs() -> None:
    clock = Clock()
    cost = PreviewCost()
    assert cost.seconds == 0.0
    limits = free_limits()
    first = PreviewBudget(limits, cost, clock)
    assert first.preview("a", 1, 10, decoder(clock, 0.2)) is PICTURE  # cost unknown: free
    assert cost.seconds == pytest.approx(0.2)  # the first decode sets it
    second = PreviewBudget(limits, cost, clock)  # the next run, same estimate
    clock.now += 10.0  # so the whole-run budget affords the known cost
    assert second.preview("a", 1, 10, decoder(clock, 0.4)) is PICTURE
    assert cost.seconds == pytest.approx(0.7 * 0.2 + 0.3 * 0.4)
    assert second.preview("a", 2, 10, decoder(clock, 1.0)) is PICTURE
    assert cost.seconds == pytest.approx(0.7 * 0.26 + 0.3 * 1.0)


def test_a_failing_preview_is_none_and_still_charged() -> None:
    clock = Clock()
    cost = PreviewCost()
    budget = PreviewBudget(ExecutorLimits(preview_every=1, preview_interval_s=0.0,
                                          preview_budget=0.05), cost, clock)

    def broken() -> Image.Image:
        clock.now += 0.5
        raise RuntimeError("decoder exploded")

    assert budget.preview("a", 1, 10, broken) is None  # logged, not raised
    assert cost.seconds == 0.5
    clock.now += 1.0  # 1.5 s in: 0.075 s allowed, 0.5 s spent
    assert budget.preview("a", 2, 10, decoder(clock, 0.0)) is None


def test_batch_context_passes_previews_and_events_on() -> None:
    clock = Clock()
    events: list[tuple[str, JobEvent]] = []
    limit = [4]
    ctx = BatchContext(
        batch_limit=lambda: limit[0],
        emit=lambda job_id, event: events.append((job_id, event)),
        cancelled=lambda job_id: job_id == "gone",
        previews=PreviewBudget(free_limits(every=2), PreviewCost(), clock),
    )
    a, b = job(1), job(2)
    ctx.progress(a, 1, 4, decoder(clock, 0.0))
    ctx.progress(a, 2, 4, decoder(clock, 0.0))
    ctx.progress(b, 2, 4, None)  # no preview function: no preview, budget untouched
    assert events == [(a.id, Progress(1, 4, None)), (a.id, Progress(2, 4, PICTURE)),
                      (b.id, Progress(2, 4, None))]
    assert ctx.max_batch == 4
    limit[0] = 2  # lowered after running out of memory: read live
    assert ctx.max_batch == 2
    assert ctx.cancelled("gone") and not ctx.cancelled(a.id)
