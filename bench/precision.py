"""CPU precision: the image model in float32 against bfloat16, per denoising step and decode.

    .venv/bin/python -m bench.precision [--threads N] [--repeats N] [--size 512] [--quick]

What `image.dtype = "auto"` buys on a CPU that computes bfloat16 natively (AVX512-BF16 or
AMX: AMD Zen 4+, Intel Sapphire Rapids+), where the bot picks bfloat16 instead of diffusers'
float32 default. Measured on SD 1.5's UNet and VAE built from their configs with random weights
(no download): one UNet call at batch 2 (one picture with classifier-free guidance) at
`--size` pixels, one VAE decode of one latent; and the tiny model's UNet at batch 2 and 16
(the batching bench's shapes). The output of each bfloat16 call is compared with float32's
(relative L2 difference).

On a CPU without native bfloat16 the script still runs, and shows why `auto` stays float32
there (torch then emulates bfloat16).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from bench.common import (
    SD15_UNET,
    SD15_VAE,
    Table,
    apply_quick,
    interleaved,
    median,
    ms,
    parser,
    pin_threads,
    standard_notes,
    tiny_models,
    warn_if_busy,
)


def _unet_call(unet: Any, batch: int, latent: int, context: int, dtype: Any) -> Callable[[], Any]:
    import torch

    gen = torch.Generator().manual_seed(0)
    sample = torch.randn(batch, 4, latent, latent, generator=gen).to(dtype)
    hidden = torch.randn(batch, 77, context, generator=gen).to(dtype)
    step = torch.tensor(500.0)

    def call() -> Any:
        with torch.inference_mode():
            return unet(sample, step, hidden).sample.float()

    return call


def _tiny_unet_call(unet: Any, dtype: Any, *, batch: int, context: int) -> Callable[[], Any]:
    return _unet_call(unet, batch, 32, context, dtype)


def _vae_call(vae: Any, latent: int, dtype: Any) -> Callable[[], Any]:
    import torch

    lat = torch.randn(1, 4, latent, latent, generator=torch.Generator().manual_seed(0))

    def call() -> Any:
        with torch.inference_mode():
            return vae.decode(lat.to(dtype) / vae.config.scaling_factor).sample.float()

    return call


def _relative_difference(a: Any, b: Any) -> float:
    return float((a - b).norm() / b.norm())


def _compare(table: Table, label: str, model: Any, make: Callable[[Any, Any], Callable[[], Any]],
             args: Any, repeats: int) -> None:
    """Time `make(model, dtype)()` in float32 and bfloat16 (a bfloat16 copy of the model)."""
    import copy

    import torch

    low = copy.deepcopy(model).to(torch.bfloat16)
    calls = {"float32": make(model, torch.float32), "bfloat16": make(low, torch.bfloat16)}
    times = interleaved(calls, repeats=repeats, warmup=args.warmup)
    diff = _relative_difference(calls["bfloat16"](), calls["float32"]())
    base = median(times["float32"])
    fast = median(times["bfloat16"])
    table.add(label, ms(base), ms(fast), f"{base / fast:.2f}", f"{diff:.4f}")
    table.figures[f"speedup {label}"] = base / fast
    del low


def measure(args: Any) -> Table:
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from bot.pipelines.device import cpu_computes_bf16, pick_dtype

    pin_threads(args.threads)
    load_before = warn_if_busy()
    native = cpu_computes_bf16()
    auto = pick_dtype(torch.device("cpu"), "auto", bf16_on_capable_cpu=True)
    table = Table("CPU precision: float32 (diffusers' default) against bfloat16 (the bot's "
                  "auto on this CPU)" if native else
                  "CPU precision: float32 against bfloat16 (emulated on this CPU)",
                  ["call", "float32", "bfloat16", "× float32", "relative difference"])
    models = tiny_models(args.models)
    tiny = UNet2DConditionModel.from_pretrained(str(models.image / "unet")).eval()
    context = tiny.config.cross_attention_dim
    for batch in ((2,) if args.quick else (2, 16)):
        _compare(table, f"tiny UNet, batch {batch}, 64² px", tiny,
                 partial(_tiny_unet_call, batch=batch, context=context), args, args.repeats)
    if not args.quick:
        latent = args.size // 8
        torch.manual_seed(0)
        unet: Any = UNet2DConditionModel(**SD15_UNET)
        _compare(table, f"SD 1.5 UNet, batch 2, {args.size}² px", unet.eval(),
                 lambda m, d: _unet_call(m, 2, latent, 768, d), args, max(1, args.repeats // 2))
        del unet
        vae: Any = AutoencoderKL(**SD15_VAE)
        _compare(table, f"SD 1.5 VAE decode, 1 image, {args.size}² px", vae.eval(),
                 lambda m, d: _vae_call(m, latent, d), args, max(1, args.repeats // 2))
    table.notes += [
        f"this CPU computes bfloat16 natively: {'yes' if native else 'no'}; "
        f"image.dtype = auto picks {str(auto).removeprefix('torch.')} here",
        "random weights (SD 1.5 built from its configs): the relative difference shows the "
        "rounding of bfloat16, not the quality of a trained model",
        *standard_notes(args, load_before),
    ]
    return table


def main(argv: Sequence[str] | None = None) -> Table:
    p = parser(__doc__.split("\n")[0], repeats=4)
    p.add_argument("--size", type=int, default=512, help="SD 1.5 image side in pixels")
    args = apply_quick(p.parse_args(argv))
    table = measure(args)
    table.print()
    return table


if __name__ == "__main__":
    main(sys.argv[1:])
