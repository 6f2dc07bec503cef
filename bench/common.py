"""Shared helpers for the benchmarks: quiet libraries, pinned threads, interleaved repeats with
medians, a description of the machine, one printed table, tiny models and the plain-diffusers
baseline, and the real bot against the local Discord API double.

Method shared by every bench (see docs/PERFORMANCE.md):
- both sides run in the same process with the same torch thread count (`--threads`);
- a warm-up run of each side first (model load, first-call allocations are not measured);
- then `--repeats` rounds, each timing every side once, in alternating order so a change in
  machine load hurts both sides alike; the figure is the ratio of the medians;
- the 1-minute load average is printed before and after: re-run when it was high.
"""

from __future__ import annotations

import os

# Before anything imports huggingface_hub / diffusers / transformers (they read these at
# import time): never touch the network, and keep their progress bars and warnings quiet.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import asyncio
import contextlib
import datetime
import logging
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from bot.pipelines.tiny import TinyModelPaths
    from testkit.harness import BotHarness

warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)

T = TypeVar("T")
DEFAULT_MODELS_DIR = Path(tempfile.gettempdir()) / "greenheart-bench-models"
PROMPTS = (
    "a lighthouse on a cliff at dusk",
    "a fox in a snowy forest",
    "a red bicycle against a blue wall",
    "a bowl of ramen, steam rising",
    "an old robot reading a book",
    "a sailing ship in a storm",
    "a field of sunflowers under clouds",
    "a cat asleep on a windowsill",
)
NEGATIVE = "lowres, blurry, watermark, text, deformed"  # the bot's default negative prompt


# ----- arguments ---------------------------------------------------------------------------


def parser(description: str, *, repeats: int, warmup: int = 1) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--threads", type=int, default=0,
                   help="torch intra-op threads, the same for both sides (default 0: torch's "
                        "own default, one per core, as the bot runs; 1 is steadier on a "
                        "machine shared with other work)")
    p.add_argument("--repeats", type=int, default=repeats, help="measured rounds (median)")
    p.add_argument("--warmup", type=int, default=warmup, help="unmeasured rounds first")
    p.add_argument("--steps", type=int, default=20, help="denoising steps")
    p.add_argument("--models", type=Path, default=DEFAULT_MODELS_DIR,
                   help="where the tiny models are built (reused between runs)")
    p.add_argument("--quick", action="store_true",
                   help="a few steps and one repeat: proves the bench runs, measures nothing")
    return p


def apply_quick(args: argparse.Namespace, **values: Any) -> argparse.Namespace:
    """With --quick, override the heavy settings (steps, repeats...) with small ones."""
    if args.quick:
        args.steps = values.pop("steps", 2)
        args.repeats = values.pop("repeats", 1)
        args.warmup = values.pop("warmup", 0)
        for key, value in values.items():
            setattr(args, key, value)
    return args


# ----- the machine -------------------------------------------------------------------------


def pin_threads(threads: int) -> None:
    """The same torch intra-op thread count for every side (the worker thread inherits it)."""
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    quiet_progress_bars()


def quiet_progress_bars() -> None:
    import diffusers.utils.logging
    import transformers.utils.logging

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()


def load_average() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:  # pragma: no cover - not on every platform
        return float("nan")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return None


def machine_description() -> str:
    import diffusers
    import torch

    memory = _memory_gib()
    parts = [
        f"{_cpu_model()}, {os.cpu_count()} logical cores"
        + (f", {memory:.0f} GiB" if memory else ""),
        f"python {platform.python_version()}, torch {torch.__version__}, "
        f"diffusers {diffusers.__version__}, torch threads {torch.get_num_threads()}",
    ]
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        parts.append(f"GPU {props.name}, {props.total_memory / 2**30:.0f} GiB, "
                     f"CUDA {torch.version.cuda}")
    return "; ".join(parts)


def today() -> str:
    return datetime.date.today().isoformat()


# ----- timing ------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def interleaved(
    sides: dict[str, Callable[[], object]], *, repeats: int, warmup: int
) -> dict[str, list[float]]:
    """Time every side `repeats` times (seconds), after `warmup` unmeasured rounds; the
    order alternates each round so drifting machine load hurts all sides alike."""
    names = list(sides)
    for _ in range(warmup):
        for name in names:
            sides[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else reversed(names):
            times[name].append(timed(sides[name]))
    return times


def in_own_thread(fn: Callable[[], T]) -> T:
    """Run `fn` on a new thread that ends with it. For torch work (model building) before
    a bench's executor starts: each live thread that has run torch keeps its own OpenMP
    threads, and more of those than cores slows every thread's torch work down."""
    import threading

    out: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, name="bench-setup")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return out[0]


async def interleaved_async(
    sides: dict[str, Callable[[], Any]], *, repeats: int, warmup: int
) -> dict[str, list[float]]:
    """`interleaved` for sides that are coroutine functions (or plain functions). A side
    that returns a float reports its own time (one that must clean up after the measured
    part, e.g. wait for the bot's last status edit)."""

    async def call(fn: Callable[[], Any]) -> float:
        started = time.perf_counter()
        out = fn()
        if asyncio.iscoroutine(out):
            out = await out
        took = time.perf_counter() - started
        return float(out) if isinstance(out, float) else took

    names = list(sides)
    for _ in range(warmup):
        for name in names:
            await call(sides[name])
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else reversed(names):
            times[name].append(await call(sides[name]))
    return times


def paired_ratio(sides: Sequence[float], baseline: Sequence[float]) -> float:
    """The median over rounds of side ÷ baseline, each pair timed back to back: steadier
    than a ratio of medians when the machine's speed drifts during the run."""
    return median([a / b for a, b in zip(sides, baseline, strict=True) if b > 0])


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), nearest-rank: p99 of 100 values is the 99th smallest."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.4999)))
    return ordered[rank - 1]


# ----- the table ---------------------------------------------------------------------------


@dataclass
class Table:
    """What a bench prints: a title, rows, and notes (method, machine, load)."""

    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # The figure(s) the issue asks for, for callers (tests, docs) that want numbers.
    figures: dict[str, float] = field(default_factory=dict)

    def add(self, *cells: object) -> None:
        self.rows.append([str(c) for c in cells])

    def render(self) -> str:
        widths = [max(len(h), *(len(r[i]) for r in self.rows)) if self.rows else len(h)
                  for i, h in enumerate(self.headers)]

        def line(cells: Sequence[str]) -> str:
            return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) \
                + " |"

        out = [f"## {self.title}", "", line(self.headers),
               "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
        out += [line(r) for r in self.rows]
        if self.notes:
            out.append("")
            out += [f"- {n}" for n in self.notes]
        return "\n".join(out)

    def print(self) -> None:
        print(self.render(), flush=True)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def secs(seconds: float) -> str:
    return f"{seconds:.3f} s"


def standard_notes(args: argparse.Namespace, load_before: float) -> list[str]:
    others = others_cores()
    busy = "" if others is None else f"; other processes used {others:.2f} cores on average"
    return [
        f"machine: {machine_description()}",
        f"date {today()}; warm-up {args.warmup}, repeats {args.repeats} (median), "
        f"order alternating; 1-min load average {load_before:.2f} before, "
        f"{load_average():.2f} after{busy}" + (" (quick mode: not a measurement)"
                                               if args.quick else ""),
    ]


def _cpu_busy_seconds() -> float | None:
    """CPU seconds all processes have spent busy since boot (Linux /proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    ticks = [int(f) for f in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


_WATCH: dict[str, float] = {}


def others_cores() -> float | None:
    """How many cores other processes kept busy on average since `warn_if_busy` was called:
    the machine's busy CPU time minus this process's, over the wall time."""
    busy = _cpu_busy_seconds()
    if busy is None or "busy" not in _WATCH:
        return None
    wall = time.monotonic() - _WATCH["wall"]
    others = (busy - _WATCH["busy"]) - (_own_cpu_seconds() - _WATCH["own"])
    return max(0.0, others / wall) if wall > 0 else None


def warn_if_busy(threshold: float = 0.5) -> float:
    """The 1-minute load average, with a warning when other work is running; also starts
    watching how much CPU other processes use during the run (see `others_cores`)."""
    busy = _cpu_busy_seconds()
    if busy is not None:
        _WATCH.update(busy=busy, own=_own_cpu_seconds(), wall=time.monotonic())
    load = load_average()
    if load > threshold:
        print(f"note: 1-min load average is {load:.2f}: other work is running; the figures "
              "may be noisy (re-run when the machine is quiet)", flush=True)
    return load


# ----- models and the plain-diffusers baseline ---------------------------------------------


def tiny_models(models_dir: Path = DEFAULT_MODELS_DIR) -> TinyModelPaths:
    from bot.pipelines.tiny import build_tiny_models

    return build_tiny_models(models_dir)


def plain_pipeline(image_dir: Path, scheduler: str = "euler_a", device: str = "cpu",
                   dtype: Any = None) -> Any:
    """`StableDiffusionPipeline.from_pretrained` with the same sampler the bot is set to,
    and nothing else: diffusers' defaults, as a user of the library would call it
    (float32), or in `dtype` where a comparison must run both sides in the same precision."""
    import diffusers
    from diffusers import StableDiffusionPipeline

    from bot.pipelines.schedulers import SCHEDULERS

    extra = {} if dtype is None else {"dtype": dtype}
    pipe = StableDiffusionPipeline.from_pretrained(str(image_dir), **extra)
    spec = SCHEDULERS[scheduler]
    pipe.scheduler = getattr(diffusers, spec.class_name).from_config(
        pipe.scheduler.config, **dict(spec.kwargs))
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def plain_generate(pipe: Any, prompts: Sequence[str], seeds: Sequence[int], *, steps: int,
                   size: int = 64, guidance: float = 7.0,
                   negative: str = NEGATIVE) -> list[Any]:
    """One plain diffusers call for these prompts, one seeded CPU generator per image."""
    import torch

    out = pipe(
        prompt=list(prompts),
        negative_prompt=[negative] * len(prompts),
        num_inference_steps=steps,
        guidance_scale=guidance,
        width=size,
        height=size,
        generator=[torch.Generator("cpu").manual_seed(s) for s in seeds],
    )
    return list(out.images)


def mean_abs_diff(a: Any, b: Any) -> float:
    """Mean absolute difference of two PIL images, in uint8 levels (0-255)."""
    import numpy as np

    x = np.asarray(a.convert("RGB"), dtype=np.int16)
    y = np.asarray(b.convert("RGB"), dtype=np.int16)
    return float(np.abs(x - y).mean())


def max_abs_diff(a: Any, b: Any) -> int:
    import numpy as np

    x = np.asarray(a.convert("RGB"), dtype=np.int16)
    y = np.asarray(b.convert("RGB"), dtype=np.int16)
    return int(np.abs(x - y).max())


# ----- the real bot against the Discord double ---------------------------------------------


def bot_settings(models: TinyModelPaths, workdir: Path, double: Any, *, steps: int,
                 **overrides: dict[str, Any]) -> Any:
    """Production defaults (status edits, previews, limits) with the tiny model, the double's
    URLs and a private database and image folder."""
    from bot.config import settings_from_mapping

    raw: dict[str, dict[str, Any]] = {
        "discord": {"api_base": double.api_base, "gateway_url": double.gateway_url},
        "image": {"model": str(models.image), "steps": steps, "max_steps": max(steps, 60),
                  "device": "cpu"},
        "story": {"model": str(models.story)},
        "storage": {"database": str(workdir / "greenheart.sqlite3"),
                    "images": str(workdir / "images")},
    }
    for section, values in overrides.items():
        raw.setdefault(section, {}).update(values)
    return settings_from_mapping(raw, env={"DISCORD_TOKEN": double.token})


@contextlib.asynccontextmanager
async def running_bot(models: TinyModelPaths, *, steps: int,
                      double_options: dict[str, Any] | None = None,
                      runner_factory: Callable[[Any], Any] | None = None,
                      **overrides: dict[str, Any]) -> AsyncIterator[BotHarness]:
    """The whole bot (services, executor, SQLite, cogs) connected to a seeded Discord double
    in this process and event loop: testkit's BotHarness, as the end-to-end tests run it,
    with production settings. `runner_factory(settings)` replaces `bot.app.build_runner`
    (e.g. to time the runner)."""
    from bot.app import build_runner
    from testkit.discord_double.seeding import seeded_world, start_seeded_double
    from testkit.harness import BotHarness

    logging.getLogger("discord").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="greenheart-bench-") as tmp:
        double = await start_seeded_double(spec=None, **(double_options or {}))
        try:
            settings = bot_settings(models, Path(tmp), double, steps=steps, **overrides)
            harness = BotHarness(double, seeded_world(double), settings,
                                 runner_factory=runner_factory or build_runner)
            await harness.start()
            try:
                yield harness
            finally:
                await harness.stop()
        finally:
            await double.stop()


# ----- Stable Diffusion 1.5 architecture (random weights, no download) ----------------------

# The configs of stable-diffusion-v1-5's unet/, vae/ and text_encoder/ folders.
SD15_UNET: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280, 1280),
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                         "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                       "CrossAttnUpBlock2D"),
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "norm_num_groups": 32,
}
SD15_VAE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 512,
    "scaling_factor": 0.18215,
}
SD15_TEXT: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "projection_dim": 768,
}


# ----- timing the runner from outside --------------------------------------------------------


class TimedContext:
    """Wraps the executor's RunContext for a runner: adds up the time the runner's step
    callbacks spend in `progress` (events handed to the loop, previews included) and, apart,
    in decoding previews (latents → pictures, tiled into the job's grid)."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.progress_s = 0.0
        self.preview_s = 0.0
        self.previews = 0

    @property
    def max_batch(self) -> int:
        return int(self.ctx.max_batch)

    def cancelled(self, job_id: str) -> bool:
        return bool(self.ctx.cancelled(job_id))

    def notify(self, job: Any, text: str) -> None:
        self.ctx.notify(job, text)

    def line(self, job: Any, step: int, total: int, text: str) -> None:
        self.ctx.line(job, step, total, text)

    def progress(self, job: Any, step: int, total: int, preview: Any) -> None:
        def timed_preview() -> Any:
            started = time.perf_counter()
            try:
                return preview()
            finally:
                self.preview_s += time.perf_counter() - started
                self.previews += 1

        started = time.perf_counter()
        try:
            self.ctx.progress(job, step, total, timed_preview if preview is not None else None)
        finally:
            self.progress_s += time.perf_counter() - started


class TimedRunner:
    """A JobRunner around the real one that notes, per run: when it started and ended
    (monotonic clock, the event loop's), the time in progress callbacks and in previews."""

    def __init__(self, runner: Any) -> None:
        self.runner = runner
        self.runs: list[dict[str, float]] = []

    def batch_key(self, job: Any) -> Any:
        return self.runner.batch_key(job)

    def batch_size(self, job: Any) -> int:
        return int(self.runner.batch_size(job))

    def __getattr__(self, name: str) -> Any:  # warm_up, native_size, image_engine...
        return getattr(self.runner, name)

    def run(self, jobs: Any, ctx: Any) -> Any:
        timed = TimedContext(ctx)
        mark = {"start": time.monotonic()}
        try:
            return self.runner.run(jobs, timed)
        finally:
            mark.update(end=time.monotonic(), progress=timed.progress_s,
                        previews=timed.preview_s, count=float(timed.previews))
            self.runs.append(mark)
