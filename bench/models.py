"""Model switch time: a model parked in RAM against one read again from disk.

    .venv/bin/python -m bench.models [--rounds 5] [--device cpu|cuda] [--quick]

SD 1.5's UNet, VAE and text encoder are built from their configs with random weights
(`bench.gpu.build_sd15_folder`: no download; float32 on disk, ~4 GB, built once under
--models). The other model is the tiny test model. Both sides are the bot's own `ImagePool`
with `image.max_loaded = 1`, in float32 on a CPU (float16 on CUDA), and each round switches
to the tiny model and back, timing the switch back to SD 1.5 (`pool.engine("sd15")` until
it returns the engine, ready to render):

- cold (`image.park_in_ram = false`): SD 1.5 was freed when the tiny model came, so it is
  read from disk again (`from_pretrained`; after the first round the files are in the OS's
  page cache, as on a host that switches back and forth);
- warm (`image.park_in_ram = true`): SD 1.5 was parked in RAM, so it comes back by a copy to
  the device (on a CPU the device is the RAM: nothing moves, and what is left is the pool's
  own work).

The two pools live side by side and each round times both, the order alternating. Reported:
the median, fastest and slowest switch of each side, the first picture after it (one step at
64², where weights only mapped from the files would be read), how many reads from disk each
side made, and the ratio cold / warm of the median switches. With --quick the "SD 1.5" is
the tiny variant model (seconds; the smoke test runs it so the bench cannot rot).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import (
    Table,
    apply_quick,
    median,
    parser,
    pin_threads,
    standard_notes,
    tiny_models,
    warn_if_busy,
)

BIG = "sd15"
OTHER = "tiny"


def _pools(big: Path, other: Path, device: str) -> dict[str, Any]:
    from bot.pipelines.diffusion import ImageModelOptions
    from bot.pipelines.pool import ImagePool

    dtype = "float16" if device.startswith("cuda") else "float32"
    models = {BIG: ImageModelOptions(model=str(big), device=device, dtype=dtype),
              OTHER: ImageModelOptions(model=str(other), device=device, dtype=dtype)}
    return {side: ImagePool(models, BIG, max_loaded=1, park_in_ram=park)
            for side, park in (("cold", False), ("warm", True))}


def _switch_back(pool: Any, sync: Any) -> tuple[float, float]:
    """Seconds to bring SD 1.5 back, and for its first picture after (1 step, 64²): weights
    read lazily (memory-mapped files) would be paid there."""
    from bot.pipelines.diffusion import ImageSpec

    pool.engine(OTHER)
    sync()
    started = time.perf_counter()
    engine = pool.engine(BIG)
    sync()
    switched = time.perf_counter()
    engine.generate([ImageSpec(prompt="a lighthouse", negative="", seed=1, steps=1,
                               guidance=7.0, width=64, height=64)])
    sync()
    return switched - started, time.perf_counter() - switched


def measure(args: Any) -> Table:
    import torch

    pin_threads(args.threads)
    load_before = warn_if_busy() if args.device == "cpu" else 0.0
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("bench.models: CUDA is not available here; run it with --device cpu")
    other = tiny_models(args.models).image
    if args.quick:
        from bot.pipelines.tiny import build_tiny_sd_variant

        big = build_tiny_sd_variant(args.models / "tiny-variant")
        what = "the tiny variant model (quick mode)"
    else:
        from bench.gpu import build_sd15_folder

        print("bench.models: building SD 1.5 (random weights, once)", file=sys.stderr,
              flush=True)
        big = build_sd15_folder(args.models / "sd15-random", "cpu")
        what = "SD 1.5 architecture (random weights)"
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    pools = _pools(big, other, args.device)
    for pool in pools.values():
        pool.engine(BIG)  # the first load is a read from disk on both sides: not timed
    times: dict[str, list[float]] = {side: [] for side in pools}
    renders: dict[str, list[float]] = {side: [] for side in pools}
    for n in range(args.rounds):
        order = list(pools) if n % 2 == 0 else list(reversed(pools))
        for side in order:
            print(f"bench.models: round {n + 1}, {side}", file=sys.stderr, flush=True)
            switch, render = _switch_back(pools[side], sync)
            times[side].append(switch)
            renders[side].append(render)

    table = Table(
        f"Model switch: back to {what} from the tiny model, image.max_loaded = 1, "
        f"on {args.device}",
        ["side", "switch back (median)", "fastest", "slowest", "first picture after (median)",
         "reads of SD 1.5 from disk"],
    )
    for side, label in (("cold", "cold: freed, read from disk (park_in_ram off)"),
                        ("warm", "warm: parked in RAM (park_in_ram on)")):
        t = times[side]
        table.add(label, f"{median(t):.3f} s", f"{min(t):.3f} s", f"{max(t):.3f} s",
                  f"{median(renders[side]):.3f} s", pools[side].loads[BIG])
        table.figures[f"{side}_s"] = median(t)
        table.figures[f"{side}_first_picture_s"] = median(renders[side])
    table.figures["ratio"] = table.figures["cold_s"] / max(table.figures["warm_s"], 1e-9)
    table.figures["cold_reads"] = pools["cold"].loads[BIG]
    table.figures["warm_reads"] = pools["warm"].loads[BIG]
    table.notes += [
        f"cold / warm (medians): {table.figures['ratio']:.0f}×; {args.rounds} rounds, both "
        "sides in each, the order alternating; the first load of each side is not timed",
        "reads from disk count the first load too: cold reads once more every round, warm "
        "never again",
        "first picture after: one step at 64² right after the switch, where weights that a "
        "switch only mapped from the files would be read",
    ]
    if args.device == "cpu":
        table.notes.append("on a CPU the device is the RAM: parking moves nothing, so warm is "
                           "the pool's own work; on a GPU it adds the copy to the device")
        table.notes += standard_notes(args, load_before)
    else:
        from bench.common import machine_description, today

        table.notes.append(f"machine: {machine_description()}; date {today()}")
    return table


def main(argv: Sequence[str] | None = None) -> Table:
    p = parser(__doc__.split("\n")[0], repeats=1)
    p.add_argument("--rounds", type=int, default=5, help="switches timed per side")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    args = p.parse_args(argv)
    args = apply_quick(args, rounds=2)
    table = measure(args)
    table.print()
    return table


if __name__ == "__main__":
    main(sys.argv[1:])
