"""GPU profile: Stable Diffusion 1.5's architecture, plain diffusers against the tuned path.

    .venv/bin/python -m bench.gpu                      # CUDA: 512², 25 steps, batch 1/4/8
    .venv/bin/python -m bench.gpu --no-compile         # without the torch.compile rows
    .venv/bin/python -m bench.gpu --device cpu --tiny  # smoke check of the same code (seconds)

The UNet, VAE and text encoder are built from SD 1.5's configs with random weights (no
download; the speed of a network does not depend on its weights) and saved once with
`save_pretrained` (float32, ~4 GB) under --models, so both sides load the same folder the way
they load a real model:

- diffusers defaults: `StableDiffusionPipeline.from_pretrained(folder).to("cuda")`, i.e.
  float32 with diffusers' default attention (PyTorch SDPA);
- tuned: the bot's own `ImageEngine` (fp16, SDPA, channels-last UNet, fused QKV
  projections), the exact path `python -m bot` runs;
- tuned + torch.compile: the same with `image.compile = true` (the first run at each batch
  size compiles; its time is shown apart and not in the figures).

For each path and batch size: it/s (denoising steps per second, from the step callbacks) and
images/s (whole calls: prompt encoding, denoising, VAE decode), median of --repeats after a
warm-up, and the peak GPU memory of that path (weights + activations; one path is on the GPU
at a time). Both sides use the bot's sampler (Euler a) and guidance 7. A time budget keeps
the whole run under 8 minutes on one GPU: paths that would overrun it are listed as skipped.
"""

from __future__ import annotations

import gc
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.common import (
    NEGATIVE,
    PROMPTS,
    SD15_TEXT,
    SD15_UNET,
    SD15_VAE,
    Table,
    apply_quick,
    median,
    parser,
    pin_threads,
    plain_pipeline,
    standard_notes,
    tiny_models,
    warn_if_busy,
)

GUIDANCE = 7.0
_MARKER = ".greenheart-sd15-random-v1"


def build_sd15_folder(folder: Path, device: str) -> Path:
    """SD 1.5's UNet, VAE and text encoder with random weights, saved as a diffusers folder
    (built once; the weights are initialised on `device`, which is quick on a GPU)."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline
    from diffusers import UNet2DConditionModel as UNet
    from transformers import CLIPTextConfig, CLIPTextModel

    from bot.pipelines.tiny import _tiny_clip_tokenizer

    if (folder / _MARKER).exists():
        return folder
    torch.manual_seed(0)
    with torch.device(device):
        unet = UNet(**SD15_UNET)
        vae = AutoencoderKL(**SD15_VAE)
        text_encoder = CLIPTextModel(CLIPTextConfig(**SD15_TEXT))
    # A byte-level CLIP tokenizer (no download); the ids it makes are valid for the encoder.
    tokenizer = _tiny_clip_tokenizer(folder / "_tokenizer_src")
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012,
                              beta_schedule="scaled_linear", num_train_timesteps=1000,
                              set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1)
    pipe: Any = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                        unet=unet, scheduler=scheduler, safety_checker=None,
                                        feature_extractor=None, requires_safety_checker=False)
    # float32 on disk, like the hub's main branch: from_pretrained's default is then float32.
    pipe.to("cpu", torch.float32)
    pipe.save_pretrained(str(folder))
    shutil.rmtree(folder / "_tokenizer_src")
    (folder / _MARKER).write_text("random-weight SD 1.5 architecture for bench/gpu.py\n")
    del pipe, unet, vae, text_encoder
    gc.collect()
    return folder


class _StepClock:
    """Times the denoising loop from the step callbacks: first to last step end, with the
    device synchronised at those two points only (so steps still overlap CPU and GPU)."""

    def __init__(self, sync: Callable[[], None]) -> None:
        self.sync = sync
        self.first = self.last = 0.0
        self.steps = 0

    def reset(self) -> None:
        self.first = self.last = 0.0
        self.steps = 0

    def tick(self, step: int, total: int) -> None:
        if step in (1, total):
            self.sync()
            now = time.perf_counter()
            if step == 1:
                self.first = now
            self.last = now
        self.steps = step

    def its(self) -> float:
        if self.steps < 2 or self.last <= self.first:
            return float("nan")
        return (self.steps - 1) / (self.last - self.first)


def _device_tools(device: str) -> tuple[Callable[[], None], Callable[[], None],
                                        Callable[[], float | None]]:
    import torch

    if device.startswith("cuda"):
        return (torch.cuda.synchronize, torch.cuda.reset_peak_memory_stats,
                lambda: torch.cuda.max_memory_allocated() / 2**30)
    return (lambda: None), (lambda: None), (lambda: None)


def _free(device: str) -> None:
    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def _plain_runner(folder: Path, device: str, clock: _StepClock, size: int, steps: int
                  ) -> Callable[[int], object]:
    import torch

    pipe = plain_pipeline(folder, "euler_a", device)

    def callback(p: Any, index: int, _t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        clock.tick(index + 1, steps)
        return {}

    def run(batch: int) -> object:
        return pipe(prompt=[PROMPTS[i % len(PROMPTS)] for i in range(batch)],
                    negative_prompt=[NEGATIVE] * batch, num_inference_steps=steps,
                    guidance_scale=GUIDANCE, width=size, height=size,
                    generator=[torch.Generator("cpu").manual_seed(i) for i in range(batch)],
                    callback_on_step_end=callback)

    return run


def _engine_runner(folder: Path, device: str, clock: _StepClock, size: int, steps: int, *,
                   compile: bool) -> Callable[[int], object]:
    from bot.app import image_options
    from bot.config import Settings
    from bot.pipelines.diffusion import ImageEngine, ImageSpec

    options = replace(image_options(Settings()), model=str(folder), device=device,
                      dtype="auto", scheduler="euler_a", compile=compile)
    engine = ImageEngine(options)
    engine.load()

    def run(batch: int) -> object:
        specs = [ImageSpec(PROMPTS[i % len(PROMPTS)], NEGATIVE, i, steps, GUIDANCE, size, size)
                 for i in range(batch)]
        return engine.generate(specs, on_step=lambda step, total, _p: clock.tick(step, total))

    return run


def _cpu_dtype_label() -> str:
    import torch

    from bot.pipelines.device import pick_dtype

    dtype = pick_dtype(torch.device("cpu"), "auto", bf16_on_capable_cpu=True)
    return "bf16" if dtype == torch.bfloat16 else "fp32"


def measure(args: Any) -> Table:
    import torch

    started = time.monotonic()
    pin_threads(args.threads)
    load_before = warn_if_busy() if args.device == "cpu" else 0.0
    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("bench.gpu: CUDA is not available here; for a smoke check of the "
                         "code run it with --device cpu --tiny")
    if args.tiny:
        folder = tiny_models(args.models).image
        size = args.size or 64
    else:
        folder = build_sd15_folder(args.models / "sd15-random", device)
        size = args.size or 512
    sync, reset_peak, peak = _device_tools(device)
    clock = _StepClock(sync)
    paths: list[tuple[str, Callable[[], Callable[[int], object]]]] = [
        ("diffusers defaults (fp32, SDPA)",
         lambda: _plain_runner(folder, device, clock, size, args.steps)),
        ("tuned: fp16, SDPA, channels_last, fused QKV" if device.startswith("cuda")
         else f"tuned path on the CPU ({_cpu_dtype_label()}, no GPU tuning)",
         lambda: _engine_runner(folder, device, clock, size, args.steps, compile=False)),
    ]
    if args.compile:
        paths.append(("tuned + torch.compile",
                      lambda: _engine_runner(folder, device, clock, size, args.steps,
                                             compile=True)))

    table = Table(
        f"GPU profile: SD 1.5 architecture (random weights), {size}×{size}, {args.steps} steps, "
        f"Euler a, guidance {GUIDANCE:g}, on {device}",
        ["path", "batch", "it/s", "images/s", "images/s × defaults", "peak memory",
         "first run (warm-up)"],
    )
    baseline: dict[int, float] = {}
    for name, make in paths:
        left = args.budget - (time.monotonic() - started)
        needs = 180 if "compile" in name else 30
        if left < needs:
            table.add(name, "-", "skipped: time budget", "", "", "", "")
            continue
        reset_peak()
        run = make()
        for batch in args.batches:
            if args.budget - (time.monotonic() - started) < 10:
                table.add(name, batch, "skipped: time budget", "", "", "", "")
                continue
            print(f"bench.gpu: {name}, batch {batch}", file=sys.stderr, flush=True)
            first = 0.0
            for _ in range(max(1, args.warmup)):  # the first run compiles, when compiling
                sync()
                t0 = time.perf_counter()
                run(batch)
                sync()
                first = first or time.perf_counter() - t0
            totals, rates = [], []
            for _ in range(args.repeats):
                clock.reset()
                sync()
                t0 = time.perf_counter()
                run(batch)
                sync()
                totals.append(time.perf_counter() - t0)
                rates.append(clock.its())
            images_s = batch / median(totals)
            if name.startswith("diffusers"):
                baseline[batch] = images_s
            gain = images_s / baseline[batch] if batch in baseline else float("nan")
            memory = peak()
            table.add(name, batch, f"{median(rates):.2f}", f"{images_s:.2f}", f"{gain:.2f}",
                      f"{memory:.2f} GiB" if memory is not None else "-", f"{first:.1f} s")
            table.figures[f"{name.split(':')[0].split(' (')[0]}|{batch}|it_s"] = median(rates)
            table.figures[f"{name.split(':')[0].split(' (')[0]}|{batch}|images_s"] = images_s
        del run
        _free(device)
    table.notes += [
        "it/s: denoising steps per second of the whole batch (classifier-free guidance runs "
        "the UNet on 2×batch latents per step); images/s: batch ÷ the whole call",
        "peak memory: torch.cuda.max_memory_allocated() while that path was loaded and ran "
        "(one path on the GPU at a time)",
        f"warm-up {args.warmup}, repeats {args.repeats} (median); whole run "
        f"{time.monotonic() - started:.0f} s (budget {args.budget:.0f} s)",
    ]
    if device == "cpu":
        table.notes.append(f"on the CPU the tuned path is diffusers' path in "
                           f"{_cpu_dtype_label()} (image.dtype = auto on this CPU): channels_"
                           "last, fused QKV and compile are CUDA-only (a smoke check; "
                           "bench.precision measures the CPU)")
        table.notes += standard_notes(args, load_before)
    else:
        from bench.common import machine_description, today

        table.notes.append(f"machine: {machine_description()}; date {today()}")
    return table


def main(argv: Sequence[str] | None = None) -> Table:
    p = parser(__doc__.split("\n")[0], repeats=3)
    p.set_defaults(steps=25)
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    p.add_argument("--tiny", action="store_true",
                   help="the tiny test model (64², seconds on a CPU) instead of SD 1.5")
    p.add_argument("--size", type=int, default=0, help="image side (default 512; tiny 64)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8])
    p.add_argument("--no-compile", dest="compile", action="store_false",
                   help="leave out the torch.compile rows")
    p.add_argument("--budget", type=float, default=450.0,
                   help="seconds for the whole run; paths that would overrun are skipped")
    args = p.parse_args(argv)
    if args.device == "cpu":
        args.compile = False  # compile is CUDA-only in the bot: the rows would repeat
    args = apply_quick(args, steps=3, repeats=1, warmup=1, batches=[1, 2])
    table = measure(args)
    table.print()
    return table


if __name__ == "__main__":
    main(sys.argv[1:])
