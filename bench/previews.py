"""Previews: what a cheap preview costs, per preview and as a share of a job's run time.

    .venv/bin/python -m bench.previews [--threads N] [--repeats N] [--steps 20] [--quick]

Part 1, one preview of a batch of in-progress latents, three ways: the full VAE decode (the
baseline a naive preview would pay), the latent → RGB approximation the bot uses by default
(`latents_to_rgb`), and a tiny VAE (`TinyVaePreviewer`: AutoencoderTiny with taesd's sizes,
random weights, built here; the bot uses it when `image.preview_vae` is set). At the tiny
model's size (4 latents of 32×32, a default /imagine of 4 pictures) and, unless --quick, at
Stable Diffusion 1.5's (one 64×64 latent, a 512×512 picture; the SD 1.5 VAE is built from
its config with random weights).

Part 2, a default /imagine (4 pictures, 64×64, 20 steps) through the executor and the real
`ModelRunner`: without previews (the baseline), and with previews at the production settings
(every 2 steps, at most one per second per job, within 5 % of the run's time) decoded each
way; then with a preview at every second step and none of those limits (the worst case).
The preview cost is the time the worker spent decoding previews and tiling them into the
job's grid, measured inside the run; the goal is at most 5 % of the run time.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from bench.common import (
    NEGATIVE,
    PROMPTS,
    SD15_VAE,
    Table,
    TimedRunner,
    apply_quick,
    in_own_thread,
    interleaved,
    median,
    ms,
    parser,
    pin_threads,
    standard_notes,
    tiny_models,
    warn_if_busy,
)

GOAL = 0.05
COUNT = 4  # pictures in a default /imagine
SIZE = 64


def tiny_vae_dir(models_dir: Path) -> Path:
    """An AutoencoderTiny with taesd's architecture and random weights, saved like the hub
    copy (built once)."""
    import torch
    from diffusers import AutoencoderTiny

    folder = models_dir / "taesd-random"
    if not (folder / "config.json").exists():
        torch.manual_seed(0)
        vae: Any = AutoencoderTiny()
        vae.save_pretrained(str(folder))
    return folder


def _full_vae_preview(vae: Any, latents: Any) -> list[Any]:
    """What a preview with the model's own VAE would do: decode, then to PIL."""
    import torch
    from PIL import Image

    with torch.inference_mode():
        lat = latents.to(vae.dtype)  # the engine's VAE may be bfloat16 (image.dtype = auto)
        image = vae.decode(lat / vae.config.scaling_factor).sample
    image = ((image.float() + 1.0) / 2.0).clamp(0.0, 1.0)
    pixels = (image * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(p, "RGB") for p in pixels]


def per_preview(args: Any, engine: Any, taesd: Any, table: Table) -> None:
    import torch

    from bot.pipelines.preview import latents_to_rgb

    n = 1 if args.quick else COUNT
    cases: list[tuple[str, Any, Any]] = [
        (f"{n} latent(s) of 32×32 (tiny model, {n}×64×64 px)", engine.pipe.vae,
         torch.randn(n, 4, SIZE // 2, SIZE // 2)),
    ]
    if not args.quick:
        from diffusers import AutoencoderKL

        torch.manual_seed(0)
        sd_vae: Any = AutoencoderKL(**SD15_VAE)
        cases.append(("1 latent of 64×64 (SD 1.5, 512×512 px)", sd_vae.eval(),
                      torch.randn(1, 4, 64, 64)))
    for label, vae, latents in cases:
        sides: dict[str, Callable[[], object]] = {
            "full": partial(_full_vae_preview, vae, latents),
            "approx": partial(latents_to_rgb, latents, "sd"),
            "tiny": partial(taesd, latents),
        }
        repeats = args.repeats if vae is engine.pipe.vae else max(1, min(args.repeats, 2))
        times = interleaved(sides, repeats=repeats, warmup=args.warmup)
        base = median(times["full"])
        for key, name in (("full", "full VAE decode (baseline)"),
                          ("approx", "latent → RGB approximation (default)"),
                          ("tiny", "tiny VAE (image.preview_vae)")):
            t = median(times[key])
            table.add(f"preview: {name}", label, ms(t), f"{t / base:.3f}" if key != "full"
                      else "1.000", "")
        table.figures[f"approx_vs_full_{'sd' if 'SD' in label else 'tiny'}"] = (
            median(times["approx"]) / base)


async def _one_job(executor: Any, steps: int, count: int) -> None:
    from bot.executor.jobs import Done, ImageParams, Job

    params = ImageParams(prompt=PROMPTS[0], negative=NEGATIVE, subject=PROMPTS[0], style=None,
                         seeds=tuple(range(7, 7 + count)), steps=steps, guidance=7.0,
                         width=SIZE, height=SIZE)
    handle = await executor.submit(Job(user_id=1, params=params))
    # Drain the events, as the cog does (previews are handed over with them).
    async for event in handle.events():
        if isinstance(event, Done):
            break


async def per_job(args: Any, models: Any, taesd_dir: Path, table: Table) -> None:
    from bot.app import executor_limits, image_options
    from bot.config import Settings
    from bot.executor.executor import Executor, ExecutorLimits
    from bot.pipelines.runner import ModelRunner
    from bot.pipelines.text import TextModelOptions

    settings = Settings()
    production = executor_limits(settings)
    options = replace(image_options(settings), model=str(models.image), device="cpu")
    text = TextModelOptions(model=str(models.story))
    runners = {
        "approx": TimedRunner(ModelRunner(options, text)),
        "tiny": TimedRunner(ModelRunner(replace(options, preview_vae=str(taesd_dir)), text)),
    }
    every, interval, budget = (production.preview_every, production.preview_interval_s,
                               production.preview_budget)
    cases = {  # name: (runner, preview_every, interval, budget)
        "none": (runners["approx"], 0, interval, budget),
        "approx": (runners["approx"], every, interval, budget),
        "tiny": (runners["tiny"], every, interval, budget),
        "approx-all": (runners["approx"], 2, 0.0, float("inf")),
        "tiny-all": (runners["tiny"], 2, 0.0, float("inf")),
    }
    if args.quick:  # the tiny VAE decodes 256² previews: seconds on a CPU
        cases = {k: v for k, v in cases.items() if k in ("none", "approx")}
    stats: dict[str, list[tuple[float, float, int]]] = {name: [] for name in cases}
    times: dict[str, list[float]] = {name: [] for name in cases}
    count = 1 if args.quick else COUNT
    # One case after the other, each with its own executor for all its rounds (as in the bot,
    # it learns what a preview costs), stopped before the next starts: one thread runs torch
    # at a time (see bot/executor/executor.py). The figure, a share inside each run, does not
    # depend on the order.
    for name, (runner, every_n, interval_s, budget_share) in cases.items():
        limits = ExecutorLimits(preview_every=every_n, preview_interval_s=interval_s,
                                preview_budget=budget_share)
        async with Executor(runner, limits) as executor:
            await executor.call(runner.runner.warm_up)
            for round_ in range(args.warmup + args.repeats):
                runner.runs.clear()
                started = time.perf_counter()
                await _one_job(executor, args.steps, count)
                if round_ >= args.warmup:
                    times[name].append(time.perf_counter() - started)
                    mark = runner.runs[0]
                    stats[name].append((mark["end"] - mark["start"], mark["previews"],
                                        int(mark["count"])))
    base = median(times["none"])
    labels = {
        "none": "job: no previews (baseline)",
        "approx": "job: latent → RGB previews, production settings",
        "tiny": "job: tiny VAE previews, production settings",
        "approx-all": "job: latent → RGB previews every 2nd step, no limits",
        "tiny-all": "job: tiny VAE previews every 2nd step, no limits",
    }
    settings_text = (f"every {every} steps, ≤ 1 per {interval:g} s per job, within "
                     f"{budget:.0%} of the run's time")
    for name, label in labels.items():
        if name not in cases:
            continue
        runs = stats[name][-args.repeats:]
        run_s = median([r[0] for r in runs])
        preview_s = median([r[1] for r in runs])
        made = round(median([r[2] for r in runs]))
        share = preview_s / run_s if run_s else 0.0
        table.add(label, f"{count}×{SIZE}² px, {args.steps} steps",
                  f"{median(times[name]):.3f} s", f"{median(times[name]) / base:.3f}",
                  "-" if name == "none" else f"{made} previews, {preview_s * 1000:.1f} ms = "
                  f"{share:.1%} of the run")
        table.figures[f"share_{name}"] = share
    table.notes.append(f"production preview settings: {settings_text}")


async def measure(args: Any) -> Table:
    from bot.pipelines.preview import TinyVaePreviewer

    pin_threads(args.threads)
    load_before = warn_if_busy()
    # Built in a thread that then ends: part 2 runs torch on executor threads, and a second
    # live thread that has run torch would slow those down (see bot/executor/executor.py).
    models, taesd_dir = in_own_thread(lambda: (tiny_models(args.models),
                                               tiny_vae_dir(args.models)))
    table = Table("Previews: cost per preview and share of a job's run time (CPU)",
                  ["what", "size", "median", "× baseline", "preview cost"])
    await per_job(args, models, taesd_dir, table)

    import torch

    from bot.app import image_options
    from bot.config import Settings
    from bot.pipelines.diffusion import ImageEngine

    engine = ImageEngine(replace(image_options(Settings()), model=str(models.image),
                                 device="cpu"))
    engine.load()
    taesd = TinyVaePreviewer.load(str(taesd_dir), device=torch.device("cpu"),
                                  dtype=torch.float32)
    # Part 1 after part 2: on this (main) thread, which then keeps its torch threads.
    part2 = table.rows
    table.rows = []
    per_preview(args, engine, taesd, table)
    table.rows += part2
    share = table.figures["share_approx"]
    table.figures["share"] = share
    figure = table.figures.get
    table.notes[:0] = [
        f"goal: preview cost ≤ {GOAL:.0%} of the run time; measured {share:.2%} with the "
        f"latent → RGB approximation (the default) at the production settings, "
        f"{figure('share_approx-all', float('nan')):.2%} with a preview every 2nd step; "
        f"tiny VAE: {figure('share_tiny', float('nan')):.2%} / "
        f"{figure('share_tiny-all', float('nan')):.2%}",
        "preview cost = time on the worker thread decoding previews and tiling a job's "
        "pictures into one grid; the JPEG and the upload happen on the event loop",
    ]
    table.notes += standard_notes(args, load_before)
    return table


def main(argv: Sequence[str] | None = None) -> Table:
    # --quick: 4 steps, so that one preview is decoded (none at the last step).
    args = apply_quick(parser(__doc__.split("\n")[0], repeats=5).parse_args(argv), steps=4)
    table = asyncio.run(measure(args))
    table.print()
    return table


if __name__ == "__main__":
    main(sys.argv[1:])
