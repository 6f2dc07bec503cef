"""A ⚡ draft: one 512² picture in 1 step on SD-Turbo's architecture, through the whole bot,
against the same call in plain diffusers.

    .venv/bin/python -m bench.draft [--threads N] [--repeats N] [--quick]

SD-Turbo is SD 2.1's architecture (a 865M-parameter UNet with 1024-wide cross-attention, the
OpenCLIP ViT-H text encoder, SD's VAE) distilled to render in one step without guidance. Its
configs are written here and the weights are random (no download): the time of a step
depends on the shapes, not the values. The sides:

1. plain diffusers: `StableDiffusionPipeline.from_pretrained(folder)(prompt, 1 step,
   guidance 0, 512×512)` with the same sampler, in the precision the bot picked;
2. the whole bot: `/imagine draft:True` sent by the local Discord double, the draft model
   set up as `image.draft_model` (a `[image.models.NAME]` of the turbo family, so 1 step at
   guidance 0 are its defaults); the clock stops when the double stores the result.

Both run their torch work on the bot's worker thread, alternating, after a warm-up of each.
Goal: the bot at most 1.05× plain diffusers. `--quick` runs the tiny model instead (for the
smoke test: it proves the bench runs and measures nothing).
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import (
    DEFAULT_MODELS_DIR,
    SD15_UNET,
    SD15_VAE,
    Table,
    apply_quick,
    in_own_thread,
    interleaved_async,
    median,
    paired_ratio,
    parser,
    pin_threads,
    plain_pipeline,
    running_bot,
    secs,
    standard_notes,
    tiny_models,
    warn_if_busy,
)

GOAL = 1.05
PROMPT = "a lighthouse on a cliff at dusk"
SEED = 1234
_MARKER = ".greenheart-sd-turbo-architecture-v1"

# stabilityai/sd-turbo's unet/ and text_encoder/ configs (SD 2.1 at 512², OpenCLIP ViT-H).
TURBO_UNET: dict[str, Any] = {
    **SD15_UNET,  # the same blocks and channels as SD 1.5, with SD 2.1's attention
    "cross_attention_dim": 1024,
    "attention_head_dim": (5, 10, 20, 20),
    "use_linear_projection": True,
}
TURBO_TEXT: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 23,
    "num_attention_heads": 16,
    "max_position_embeddings": 77,
    "hidden_act": "gelu",
    "projection_dim": 512,
}
# Its scheduler: Euler with trailing timestep spacing (one step starts from pure noise).
TURBO_SCHEDULER: dict[str, Any] = {
    "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000, "timestep_spacing": "trailing", "steps_offset": 1,
}


def build_turbo_folder(folder: Path) -> Path:
    """SD-Turbo's architecture with random weights, saved as a diffusers folder (once)."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline
    from diffusers import UNet2DConditionModel as UNet
    from transformers import CLIPTextConfig, CLIPTextModel

    from bot.pipelines.tiny import _tiny_clip_tokenizer

    if (folder / _MARKER).exists():
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    torch.manual_seed(0)
    unet = UNet(**TURBO_UNET)
    vae = AutoencoderKL(**SD15_VAE)
    text_encoder = CLIPTextModel(CLIPTextConfig(**TURBO_TEXT))
    # A byte-level CLIP tokenizer (no download); the ids it makes are valid for the encoder.
    tokenizer = _tiny_clip_tokenizer(folder / "_tokenizer_src")
    scheduler = EulerDiscreteScheduler(**TURBO_SCHEDULER)
    pipe: Any = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                        unet=unet, scheduler=scheduler, safety_checker=None,
                                        feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(str(folder))
    shutil.rmtree(folder / "_tokenizer_src")
    (folder / _MARKER).write_text("random-weight SD-Turbo architecture for bench/draft.py\n")
    return folder


async def measure(args: Any) -> Table:
    import torch

    pin_threads(args.threads)
    load_before = warn_if_busy()
    models = in_own_thread(lambda: tiny_models(args.models))
    if args.quick:
        folder, size = models.image, 64
    else:
        folder = in_own_thread(lambda: build_turbo_folder(args.models / "sd-turbo-arch"))
        size = 512
    image = {"model": "full", "draft_model": "turbo", "max_side": max(size, 64),
             "models": {"full": {"path": str(models.image)},
                        "turbo": {"path": str(folder), "family": "turbo",
                                  "width": size, "height": size}}}
    async with running_bot(models, steps=4, image=image) as session:
        double = session.double
        studio = int(session.world.studio.id)
        executor = session.services.executor
        dtype = session.services.runner.image_engine.dtype
        scheduler = session.services.settings.image.scheduler
        pipe = await executor.call(lambda: plain_pipeline(folder, scheduler, dtype=dtype))

        def plain() -> Any:
            return pipe(prompt=[PROMPT], negative_prompt=[""], num_inference_steps=1,
                        guidance_scale=0.0, width=size, height=size,
                        generator=[torch.Generator("cpu").manual_seed(SEED)]).images

        async def whole_bot() -> float:
            before = {m.id for m in double.channel_messages(studio)}
            started = time.monotonic()
            rec = await session.slash("imagine", prompt=PROMPT, seed=SEED, count=1, draft=True)
            await double.wait_for_message(
                lambda m: m.id not in before and bool(m.attachments)
                and any(c.startswith("gh:info:") for c in m.custom_ids), timeout=600)
            ended = time.monotonic()
            await rec.wait_original(lambda m: m.content.startswith("✅"), timeout=60)
            return ended - started

        sides = {"plain": lambda: executor.call(plain), "bot": whole_bot}
        times = await interleaved_async(sides, repeats=args.repeats, warmup=args.warmup)
        double.assert_clean()

    base, bot = median(times["plain"]), median(times["bot"])
    ratio = paired_ratio(times["bot"], times["plain"])
    what = "tiny model (--quick)" if args.quick else "SD-Turbo architecture (random weights)"
    table = Table(f"A draft: one {size}×{size} picture in 1 step, {what}",
                  ["side", "median", "× plain (paired)"])
    table.add("1. plain diffusers pipeline call (baseline)", secs(base), "1.000")
    table.add("2. whole bot: /imagine draft:True via the Discord double → result posted",
              secs(bot), f"{ratio:.3f}")
    table.figures.update(ratio=ratio, plain_s=base, bot_s=bot)
    table.notes += [
        f"goal: the bot ≤ {GOAL:.2f}× plain diffusers; measured {ratio:.3f}× "
        f"(median of the per-round ratios), {bot - base:+.2f} s per draft",
        f"precision on both sides: {str(dtype).removeprefix('torch.')} (image.dtype = auto); "
        f"sampler {scheduler} on the model's trailing-spacing config, guidance 0",
        *standard_notes(args, load_before),
    ]
    return table


def main(argv: Sequence[str] | None = None) -> Table:
    args = apply_quick(parser(__doc__.split("\n")[0], repeats=5).parse_args(argv))
    if args.models == DEFAULT_MODELS_DIR:
        args.models.mkdir(parents=True, exist_ok=True)
    table = asyncio.run(measure(args))
    table.print()
    return table


if __name__ == "__main__":
    main(sys.argv[1:])
