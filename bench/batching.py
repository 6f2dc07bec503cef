"""Micro-batching: 8 jobs from 4 users through the executor, against plain diffusers one by one.

    .venv/bin/python -m bench.batching [--threads N] [--repeats N] [--steps 20] [--quick]

The project side is the real `Executor` with the real `ModelRunner` (fair queue, batching by
`batch_key`, one `ImageEngine.generate` call per batch with a generator per image, progress
events and previews at the production settings). All jobs are submitted at once; the clock
runs from the first submit to the last `Done`. It runs at several batch limits: 1 (no
batching), the config default, and one that takes every job.

The baseline is `StableDiffusionPipeline.from_pretrained(tiny)` called once per job with the
same prompt, negative prompt, seed, steps, guidance, size and sampler: diffusers' defaults, so
float32. The bot runs in its own `image.dtype` (`--dtype`, default "auto": bfloat16 on a CPU
that computes it natively, float32 on others). When that is not float32, a second plain side
runs diffusers one by one in the bot's dtype too, so the table shows what batching adds on its
own and what the precision adds.

It also checks what batching must not break: every batched image matches the same job
rendered alone (mean and max difference in uint8 levels), and the first batch serves every
user once before anyone's second job (fairness).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from bench.common import (
    NEGATIVE,
    PROMPTS,
    Table,
    apply_quick,
    in_own_thread,
    interleaved_async,
    max_abs_diff,
    mean_abs_diff,
    median,
    paired_ratio,
    parser,
    pin_threads,
    plain_generate,
    plain_pipeline,
    secs,
    standard_notes,
    tiny_models,
    warn_if_busy,
)

GOAL = 1.6
USERS = 4
JOBS_PER_USER = 2
SIZE = 64
GUIDANCE = 7.0


def make_jobs(steps: int, users: int = USERS, per_user: int = JOBS_PER_USER) -> list[Any]:
    """Jobs in arrival order: each user sends their jobs back to back (user 1's two jobs,
    then user 2's...), the order that would starve the others without the fair queue."""
    from bot.executor.jobs import ImageParams, Job

    jobs = []
    for u in range(users):
        for k in range(per_user):
            i = u * per_user + k
            prompt = PROMPTS[i % len(PROMPTS)]
            params = ImageParams(prompt=prompt, negative=NEGATIVE, subject=prompt, style=None,
                                 seeds=(1000 + i,), steps=steps, guidance=GUIDANCE,
                                 width=SIZE, height=SIZE)
            jobs.append(Job(user_id=100 + u, params=params, id=f"u{u + 1}j{k + 1}"))
    return jobs


class BatchRecorder:
    """A ModelRunner wrapper that records the batches the executor formed."""

    def __init__(self, runner: Any) -> None:
        self.runner = runner
        self.batches: list[list[str]] = []

    def batch_key(self, job: Any) -> Any:
        return self.runner.batch_key(job)

    def batch_size(self, job: Any) -> int:
        return int(self.runner.batch_size(job))

    def run(self, jobs: Sequence[Any], ctx: Any) -> Any:
        self.batches.append([j.id for j in jobs])
        return self.runner.run(jobs, ctx)


async def run_through_executor(executor: Any, runner: BatchRecorder, jobs: list[Any],
                               batch_limit: int) -> dict[str, Any]:
    """Submit every job at once, wait for all; returns {job id: ImageResult}. One executor
    serves every side (its `batch_limit` set per side), so one thread runs all torch work."""
    from bot.executor.jobs import Done, Job

    fresh = [Job(user_id=j.user_id, params=j.params, id=j.id) for j in jobs]
    executor.batch_limit = batch_limit  # the executor is idle between sides
    runner.batches.clear()
    handles = [await executor.submit(job) for job in fresh]
    finals = await asyncio.gather(*(h.wait() for h in handles))
    results = {}
    for job, final in zip(fresh, finals, strict=True):
        if not isinstance(final, Done):
            raise RuntimeError(f"job {job.id} did not finish: {final}")
        results[job.id] = final.result
    return results


def fair(batches: list[list[str]], users: int) -> bool:
    """Round-robin: no user's second job runs before every user's first job has started."""
    order = [job for batch in batches for job in batch]
    firsts = {f"u{u + 1}j1" for u in range(users)}
    seconds_at = [i for i, job in enumerate(order) if not job.endswith("j1")]
    firsts_at = [i for i, job in enumerate(order) if job in firsts]
    if not seconds_at:
        return True
    # Within one batch every job starts at once: compare batch indexes, not positions.
    index = {job: b for b, batch in enumerate(batches) for job in batch}
    return max(index[order[i]] for i in firsts_at) <= min(index[order[i]] for i in seconds_at)


async def measure(args: Any) -> Table:
    import torch

    from bot.app import image_options
    from bot.config import Settings
    from bot.executor.executor import Executor, ExecutorLimits
    from bot.pipelines.runner import ModelRunner
    from bot.pipelines.text import TextModelOptions

    pin_threads(args.threads)
    load_before = warn_if_busy()
    models = in_own_thread(lambda: tiny_models(args.models))  # no torch on this thread
    default_limit = Settings().executor.batch_limit
    users, per_user = (2, 2) if args.quick else (USERS, JOBS_PER_USER)
    jobs = make_jobs(args.steps, users, per_user)
    if args.limits:
        limits = sorted(set(args.limits))
    else:
        limits = sorted({1, default_limit, len(jobs)}) if not args.quick else [len(jobs)]

    settings = Settings()
    options = image_options(settings)
    options = replace(options, model=str(models.image), device="cpu", dtype=args.dtype)
    runner = BatchRecorder(ModelRunner(options, TextModelOptions(model=str(models.story))))
    async with Executor(runner, ExecutorLimits(per_user_limit=per_user)) as executor:
        # Every side's torch work on the executor's worker thread, loading included: the
        # plain side through `call`, as a plain-diffusers script would run on its one thread.
        await executor.call(runner.runner.warm_up)
        bot_dtype = runner.runner.image_engine.dtype
        pipe = await executor.call(lambda: plain_pipeline(models.image, settings.image.scheduler))
        same_precision = (await executor.call(lambda: plain_pipeline(
            models.image, settings.image.scheduler, dtype=bot_dtype))
            if bot_dtype != torch.float32 else None)

        def one_by_one(plain: Any) -> list[Any]:
            out = []
            for job in jobs:
                p = job.params
                out += plain_generate(plain, [p.prompt], p.seeds, steps=p.steps, size=SIZE,
                                      guidance=p.guidance, negative=p.negative)
            return out

        batches_seen: dict[int, list[list[str]]] = {}

        def executor_side(limit: int) -> Any:
            async def side() -> None:
                await run_through_executor(executor, runner, jobs, limit)
                batches_seen[limit] = [list(b) for b in runner.batches]

            return side

        sides: dict[str, Any] = {"plain": lambda: executor.call(lambda: one_by_one(pipe))}
        if same_precision is not None:
            sides["plain-same-dtype"] = lambda: executor.call(
                lambda: one_by_one(same_precision))
        for limit in limits:
            sides[f"executor-{limit}"] = executor_side(limit)
        times = await interleaved_async(sides, repeats=args.repeats, warmup=args.warmup)

        # Batched images against the same jobs rendered alone (the engine, one spec per call).
        batched = await run_through_executor(executor, runner, jobs, max(limits))
        alone = await run_through_executor(executor, runner, jobs, 1)
        plain_images = await executor.call(lambda: one_by_one(pipe))
    mean_diffs = [mean_abs_diff(batched[j.id].images[0].image, alone[j.id].images[0].image)
                  for j in jobs]
    max_diffs = [max_abs_diff(batched[j.id].images[0].image, alone[j.id].images[0].image)
                 for j in jobs]
    plain_diffs = [mean_abs_diff(img, alone[j.id].images[0].image)
                   for img, j in zip(plain_images, jobs, strict=True)]

    base = median(times["plain"])
    table = Table(
        f"Micro-batching: {len(jobs)} jobs from {users} users, {args.steps} steps, "
        f"{SIZE}×{SIZE}, tiny SD model",
        ["side", "batch limit", "batches (jobs each)", "fair", "median time", "images/s",
         "throughput × plain (paired)"],
    )
    table.add("plain diffusers (defaults: float32), one call per job", "-", f"{len(jobs)}×1",
              "-", secs(base), f"{len(jobs) / base:.2f}", "1.00")
    if same_precision is not None:
        t = median(times["plain-same-dtype"])
        ratio = paired_ratio(times["plain"], times["plain-same-dtype"])
        table.add(f"plain diffusers in {_name(bot_dtype)}, one call per job", "-",
                  f"{len(jobs)}×1", "-", secs(t), f"{len(jobs) / t:.2f}", f"{ratio:.2f}")
        table.figures["ratio_plain_same_dtype"] = ratio
    for limit in limits:
        t = median(times[f"executor-{limit}"])
        seen = batches_seen.get(limit, [])
        shape = " + ".join(str(len(b)) for b in seen)
        label = f"bot executor, {_name(bot_dtype)}" + (" (config default)"
                                                      if limit == default_limit else "")
        ratio = paired_ratio(times["plain"], times[f"executor-{limit}"])
        table.add(label, limit, shape, "yes" if fair(seen, users) else "NO", secs(t),
                  f"{len(jobs) / t:.2f}", f"{ratio:.2f}")
        table.figures[f"ratio_limit_{limit}"] = ratio
    table.figures["ratio"] = table.figures[f"ratio_limit_{max(limits)}"]
    table.figures["ratio_default"] = table.figures.get(f"ratio_limit_{default_limit}",
                                                       float("nan"))
    if same_precision is not None:
        # Batching's own share: the bot against diffusers one by one in the same precision.
        same = times["plain-same-dtype"]
        for limit in limits:
            table.figures[f"batching_only_limit_{limit}"] = paired_ratio(
                same, times[f"executor-{limit}"])
    table.figures["batched_vs_alone_mean"] = max(mean_diffs)
    table.figures["batched_vs_alone_max"] = max(max_diffs)
    table.notes += [
        f"goal: throughput ≥ {GOAL}× plain diffusers one by one "
        f"(largest batch limit: {table.figures['ratio']:.2f}×, config default "
        f"{default_limit}: {table.figures['ratio_default']:.2f}×)",
        f"bot image dtype: {_name(bot_dtype)} (--dtype {args.dtype})" + (
            "; batching alone, against plain diffusers one by one in the same dtype: " + ", ".join(
                f"limit {limit} {table.figures[f'batching_only_limit_{limit}']:.2f}×"
                for limit in limits) if same_precision is not None else ""),
        f"batched vs the same job alone: mean |Δ| ≤ {max(mean_diffs):.2f}, "
        f"max |Δ| ≤ {max(max_diffs)} (uint8 levels, worst of {len(jobs)} images)",
        f"bot (alone) vs plain diffusers (float32), same seed: mean |Δ| ≤ "
        f"{max(plain_diffs):.2f}" + (" (mostly bfloat16's rounding)"
                                      if bot_dtype != torch.float32 else ""),
        "all torch work (both sides, model loading too) on the executor's one worker thread",
        "first submit → last Done; production executor limits (previews every 2 steps, "
        "at most 1/s per job, within 5 % of the run); sampler euler_a on both sides; guidance 7",
        *standard_notes(args, load_before),
    ]
    return table


def _name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def main(argv: Sequence[str] | None = None) -> Table:
    p = parser(__doc__.split("\n")[0], repeats=5)
    p.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16"),
                   help="the bot's image.dtype (default auto, as the bot runs)")
    p.add_argument("--limits", type=int, nargs="+",
                   help="executor batch limits to run (default: 1, the config's, all jobs)")
    args = apply_quick(p.parse_args(argv))
    table = asyncio.run(measure(args))
    table.print()
    return table


if __name__ == "__main__":
    main(sys.argv[1:])
