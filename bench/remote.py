"""Celery mode: per-job overhead against local mode, and two remote workers against one.

    .venv/bin/python -m bench.remote [--repeats 20] [--overhead-steps 4] [--steps 12]
                                     [--jobs 16] [--users 4] [--rounds 5] [--quick]

Everything is the real thing: the bot's services (`bot.app.open_services`: the executor of
`executor.mode`, the SQLite job store, the image files) in this process and event loop, a
real `redis-server` (testkit.redis_server) and real worker processes (`python -m bot
--config X worker --name N`, testkit.remote.WorkerProcess), all on the tiny models, 64×64,
in the precision the bot picks (`image.dtype = "auto"`). No Discord: jobs go straight to the
executor, as the cogs hand them over.

1. Per-job overhead (goal: celery mode at most 50 ms more per job than local mode). The same
   single-picture jobs (`--repeats`, default 20; `--overhead-steps`, default 4), submitted
   one at a time: the clock runs from `submit` to the job's record written (`Done`, then
   `JobHandle.recorded`: the row and the picture's file), through

   - a local-mode bot: the model on the executor's worker thread in this process, and
   - a celery-mode bot with one worker process: the model in that process; the batch, its
     progress events and its result (PNG, base64) travel through Redis.

   Each round runs one job in each mode, in alternating order. Torch gets the same thread
   count on both sides (`--threads`, default 1: this process calls torch.set_num_threads,
   the worker process gets OMP_NUM_THREADS) and the same core: the worker process runs under
   `taskset -c C`, the local executor's worker thread is pinned to C (sched_setaffinity, on
   that thread). The bot itself (event loop, SQLite, PNG files) is not pinned, in either
   mode. Reported: mean, median and p90 wall time per job in each mode and their difference;
   and, apart, the runner's own time (`timings["gpu_s"]`: `ModelRunner.run`, in whichever
   process ran it) and the time outside it, so that a difference in torch's speed between
   the two processes (this VM drifts by ±15 % between processes) can be told from the
   overhead of the mode itself.

2. Throughput, one worker process against two (goal: ≥ 1.7×). `--jobs` (16) single-picture
   jobs from `--users` (4) members, each member's jobs back to back, `--steps` (12) steps so
   that a job takes ~0.5-1 s on one core, all submitted at once; the clock runs from the first
   submit to the last job recorded. Two celery-mode bots, each with its own redis-server so
   that the idle one is not in the way: one with one worker (core 0), one with two (cores 0
   and 1), each worker limited to its core by taskset. `executor.batch_limit` is 1 by default
   (`--batch-limit`), so the figure is about workers, not batching. The bot's own process is
   not pinned: it shares the machine's cores with the workers.

   The ceiling, in the same rounds: the workers' `ImageEngine` in plain processes (no bot,
   no Redis; `ceiling_child`), pinned the same way, `--ceiling-jobs` (6) jobs each, one
   process alone and then two at once: what the machine itself gives two processes of this
   work. Each round runs every side once, the order alternating; the ratios are medians of
   the per-round ratios. Other processes' CPU use is measured per round (/proc/stat, less this
   bench's processes): a round where they kept more than 0.1 core busy is not clean, and the
   clean rounds' figures are given apart.

The workers of the other parts stay up but idle (a heartbeat every few seconds), as does the
local executor during part 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.common import (
    NEGATIVE,
    PROMPTS,
    Table,
    _cpu_busy_seconds,
    apply_quick,
    in_own_thread,
    median,
    ms,
    parser,
    percentile,
    pin_threads,
    secs,
    standard_notes,
    tiny_models,
    warn_if_busy,
)

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.executor.executor import Executor
    from bot.executor.jobs import Job
    from bot.pipelines.tiny import TinyModelPaths
    from bot.services import Services
    from testkit.redis_server import RedisServer
    from testkit.remote import WorkerProcess

OVERHEAD_GOAL_MS = 50.0
THROUGHPUT_GOAL = 1.7
QUIET_CORES = 0.1  # a round with other processes busier than this is not a clean one
SIZE = 64
GUIDANCE = 7.0


# ----- jobs --------------------------------------------------------------------------------


def image_job(index: int, steps: int, user: int = 1) -> Job:
    """One 64×64 picture; the same index gives the same prompt and seed (a fresh job id)."""
    from bot.executor.jobs import ImageParams, Job

    prompt = PROMPTS[index % len(PROMPTS)]
    params = ImageParams(prompt=prompt, negative=NEGATIVE, subject=prompt, style=None,
                         seeds=(2000 + index,), steps=steps, guidance=GUIDANCE,
                         width=SIZE, height=SIZE)
    return Job(user_id=user, params=params)


@dataclass
class JobTiming:
    wall_s: float  # submit → the job's record written
    runner_s: float  # inside ModelRunner.run (the job's share of its batch)
    worker: str


async def run_one(executor: Executor, job: Job) -> JobTiming:
    """Submit a job, wait for its final event and its record; the times it took."""
    from bot.executor.jobs import Done, ImageResult

    started = time.perf_counter()
    handle = await executor.submit(job)
    final = await handle.wait()
    if not isinstance(final, Done):
        raise RuntimeError(f"job {job.id} did not finish: {final}")
    await handle.recorded()
    wall = time.perf_counter() - started
    result = final.result
    assert isinstance(result, ImageResult)
    return JobTiming(wall, float(result.timings.get("gpu_s", float("nan"))), result.worker)


async def run_all(executor: Executor, jobs: Sequence[Job]) -> tuple[float, list[JobTiming]]:
    """Submit every job at once (in order), wait until all are recorded: the wall time and
    each job's timings."""
    from bot.executor.jobs import Done, ImageResult

    started = time.perf_counter()
    handles = [await executor.submit(job) for job in jobs]
    finals = await asyncio.gather(*(h.wait() for h in handles))
    await asyncio.gather(*(h.recorded() for h in handles))
    wall = time.perf_counter() - started
    timings = []
    for job, final in zip(jobs, finals, strict=True):
        if not isinstance(final, Done) or not isinstance(final.result, ImageResult):
            raise RuntimeError(f"job {job.id} did not finish: {final}")
        timings.append(JobTiming(float("nan"), float(final.result.timings.get("gpu_s", 0.0)),
                                 final.result.worker))
    return wall, timings


def throughput_jobs(count: int, users: int, steps: int) -> list[Job]:
    """`count` jobs from `users` members in arrival order: each member's jobs back to back
    (member 1's, then member 2's...), as in bench.batching."""
    per_user = -(-count // users)
    return [image_job(i, steps, user=100 + i // per_user) for i in range(count)]


# ----- the bots and their workers ----------------------------------------------------------


def bot_settings(models: TinyModelPaths, folder: Path, *, mode: str, broker_url: str = "",
                 batch_limit: int, per_user_limit: int, steps: int) -> Settings:
    """Production defaults with the tiny models, a private database and image folder."""
    from bot.config import settings_from_mapping

    executor: dict[str, Any] = {"mode": mode, "batch_limit": batch_limit,
                                "per_user_limit": per_user_limit}
    if broker_url:
        executor["broker_url"] = broker_url
    raw: dict[str, dict[str, Any]] = {
        "image": {"model": str(models.image), "device": "cpu", "steps": steps,
                  "max_steps": max(steps, 60)},
        "story": {"model": str(models.story)},
        "executor": executor,
        "storage": {"database": str(folder / "greenheart.sqlite3"),
                    "images": str(folder / "images")},
    }
    return settings_from_mapping(raw, env={})


def worker_config(models: TinyModelPaths, path: Path, *, broker_url: str,
                  batch_limit: int) -> Path:
    from testkit.remote import write_config

    return write_config(path, {
        "image": {"model": str(models.image), "device": "cpu"},
        "story": {"model": str(models.story)},
        "executor": {"mode": "celery", "broker_url": broker_url, "batch_limit": batch_limit},
    })


def usable_cores() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return list(range(os.cpu_count() or 1))


def pin_prefix(core: int) -> list[str]:
    """`taskset -c CORE`, or nothing where taskset is missing (noted in the table)."""
    taskset = shutil.which("taskset")
    return [taskset, "-c", str(core)] if taskset else []


def pin_this_thread(core: int) -> None:
    """Linux: pid 0 is the calling thread, so only it (and threads it starts) move."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {core})


@dataclass
class Remote:
    """A redis-server and worker processes for one celery-mode bot."""

    name: str
    server: RedisServer
    workers: list[WorkerProcess] = field(default_factory=list)


@contextlib.asynccontextmanager
async def remotes(models: TinyModelPaths, folder: Path, layout: dict[str, list[int]], *,
                  threads: int, batch_limit: int) -> AsyncIterator[dict[str, Remote]]:
    """For each name in `layout`: a redis-server and one worker process per listed core,
    pinned to it; all started at once (`ready` waits for them). Killed on the way out."""
    from testkit.redis_server import RedisServer
    from testkit.remote import WorkerProcess

    started: dict[str, Remote] = {}
    try:
        for name, cores in layout.items():
            server = RedisServer(folder / f"redis-{name}")
            server.start()
            remote = started[name] = Remote(name, server)
            config = worker_config(models, folder / f"worker-{name}.toml",
                                   broker_url=server.url, batch_limit=batch_limit)
            for i, core in enumerate(cores):
                remote.workers.append(WorkerProcess(
                    config, f"{name}-w{i + 1}", folder, prefix=pin_prefix(core),
                    env={"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)},
                ).start())
        yield started
    finally:
        for remote in started.values():
            for worker in remote.workers:
                worker.kill()
            remote.server.kill()


async def ready(started: dict[str, Remote]) -> None:
    """Until every worker's heartbeat is in its Redis and its Celery consumer is up."""
    from testkit.remote import wait_for_workers

    for remote in started.values():
        await wait_for_workers(remote.server.client(), [w.name for w in remote.workers],
                               processes=remote.workers)


@contextlib.asynccontextmanager
async def services(settings: Settings) -> AsyncIterator[Services]:
    from bot.app import open_services

    async with open_services(settings) as opened:
        yield opened


# ----- what the machine allows: the same torch work in plain processes ----------------------

_CHILD = "import sys; from bench.remote import ceiling_child; ceiling_child(*sys.argv[1:])"


def ceiling_child(image_model: str, story_model: str, steps: str, count: str) -> None:
    """A process of the ceiling measurement: the workers' `ImageEngine` (built from the same
    settings by `build_runner`), no bot, no Redis. Prints "ready" once warm; then, for each
    line on stdin, renders `count` single-picture jobs and prints the seconds they took."""
    from bench.common import quiet_progress_bars
    from bot.app import build_runner
    from bot.config import settings_from_mapping
    from bot.pipelines.diffusion import ImageSpec

    out, sys.stdout = sys.stdout, sys.stderr  # stdout carries the answers, nothing else
    quiet_progress_bars()
    settings = settings_from_mapping({"image": {"model": image_model, "device": "cpu"},
                                      "story": {"model": story_model}}, env={})
    engine = build_runner(settings).image_engine

    def spec(i: int) -> ImageSpec:
        prompt = PROMPTS[i % len(PROMPTS)]
        return ImageSpec(prompt, NEGATIVE, 2000 + i, int(steps), GUIDANCE, SIZE, SIZE)

    engine.generate([spec(0)])  # warm-up
    print("ready", file=out, flush=True)
    for _line in sys.stdin:
        started = time.perf_counter()
        for i in range(int(count)):
            engine.generate([spec(i)])
        print(f"{time.perf_counter() - started:.6f}", file=out, flush=True)


class CeilingProcess:
    """One `ceiling_child`, pinned to a core."""

    def __init__(self, models: TinyModelPaths, core: int, *, steps: int, count: int,
                 threads: int, log: Path) -> None:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": str(threads),
               "MKL_NUM_THREADS": str(threads)}
        self.process = subprocess.Popen(
            [*pin_prefix(core), sys.executable, "-c", _CHILD, str(models.image),
             str(models.story), str(steps), str(count)],
            cwd=Path(__file__).parent.parent, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=log.open("ab"), env=env, text=True, bufsize=1)

    def _line(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"a ceiling process exited ({self.process.wait()})")
        return line.strip()

    async def ready(self) -> None:
        while await asyncio.to_thread(self._line) != "ready":
            pass  # anything a library printed first

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    async def seconds(self) -> float:
        return float(await asyncio.to_thread(self._line))

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(30)


async def ceiling_round(processes: Sequence[CeilingProcess]) -> float:
    """Every process renders its jobs at once: the seconds until the last one is done."""
    for process in processes:
        process.go()
    return max([await process.seconds() for process in processes])


# ----- other work on the machine, per part -------------------------------------------------


def _children_cpu_seconds(command: str = "") -> float:
    """CPU seconds of this process's live children (workers, redis-servers, plain
    processes: all started directly by it), or only of those whose name is `command`."""
    me = str(os.getpid())
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            name, rest = stat.read_text().split(" (", 1)[1].rsplit(")", 1)
            fields = rest.split()
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        # fields[1]: the parent's pid; [11] and [12]: utime and stime (stat's 14th, 15th)
        if fields[1] == me and (not command or name == command):
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _own_cpu_seconds() -> float:
    """CPU seconds of this process, every thread (the bots: loop, SQLite, thread pool)."""
    t = os.times()
    return t.user + t.system


def _our_cpu_seconds() -> float:
    """This process, its reaped children and its live ones."""
    t = os.times()
    return _own_cpu_seconds() + t.children_user + t.children_system + _children_cpu_seconds()


class OthersWatch:
    """How many cores processes other than this bench's kept busy during a part of it (the
    machine's busy CPU time, /proc/stat, less ours, over the wall time): the standard notes
    count the whole run, while the bench's children run and after."""

    def __init__(self) -> None:
        self.parts: dict[str, float] = {}
        self._mark: tuple[float, float, float] | None = None

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        busy = _cpu_busy_seconds()
        return None if busy is None else (time.monotonic(), busy, _our_cpu_seconds())

    def start(self) -> None:
        self._mark = self._sample()

    def stop(self, part: str) -> None:
        now = self._sample()
        if self._mark is not None and now is not None and now[0] > self._mark[0]:
            others = (now[1] - self._mark[1]) - (now[2] - self._mark[2])
            self.parts[part] = max(0.0, others / (now[0] - self._mark[0]))
        self._mark = None

    def describe(self) -> str:
        return ", ".join(f"{part} {busy:.2f}" for part, busy in self.parts.items()) or "n/a"


# ----- the measurement ---------------------------------------------------------------------


async def measure(args: Any) -> Table:
    import logging

    import torch

    from bot.executor.executor import LOCAL_WORKER

    pin_threads(args.threads)
    for noisy in ("celery", "kombu", "bot.remote", "bot.executor"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    load_before = warn_if_busy()
    models = in_own_thread(lambda: tiny_models(args.models))  # no torch on this thread
    cores = usable_cores()
    torch_core = cores[0]
    pair = [cores[0], cores[1 % len(cores)]]
    per_user = -(-args.jobs // args.users)
    folder = Path(tempfile.mkdtemp(prefix="greenheart-bench-remote-"))
    layout = {"one": [torch_core], "two": pair}
    overhead_jobs: dict[str, list[JobTiming]] = {"local": [], "celery": []}
    rounds: dict[str, list[float]] = {"one": [], "two": [], "plain-one": [], "plain-two": []}
    spread: dict[str, dict[str, int]] = {"one": {}, "two": {}}
    runner_times: dict[str, list[float]] = {"one": [], "two": []}
    bot_cpu: dict[str, list[float]] = {"one": [], "two": []}  # this process, per round
    redis_cpu: dict[str, list[float]] = {"one": [], "two": []}  # the redis-servers
    watch = OthersWatch()
    started = time.monotonic()
    plain: list[CeilingProcess] = []
    try:
        async with contextlib.AsyncExitStack() as stack:
            # Every process first: they load their models while this one loads its own (and
            # the bots open their databases); then wait for them.
            plain += [CeilingProcess(models, core, steps=args.steps, count=args.ceiling_jobs,
                                     threads=args.threads, log=folder / f"ceiling-{i}.log")
                      for i, core in enumerate(pair)]
            up = await stack.enter_async_context(remotes(
                models, folder, layout, threads=args.threads, batch_limit=args.batch_limit))
            common = {"batch_limit": args.batch_limit, "per_user_limit": max(per_user, 3),
                      "steps": args.steps}
            local = await stack.enter_async_context(services(bot_settings(
                models, folder / "local", mode="local", **common)))
            celery = {name: await stack.enter_async_context(services(bot_settings(
                models, folder / f"celery-{name}", mode="celery",
                broker_url=remote.server.url, **common))) for name, remote in up.items()}
            # The local model runs on the executor's worker thread: pin that thread.
            await local.executor.call(lambda: pin_this_thread(torch_core))
            local_threads = await local.executor.call(torch.get_num_threads)
            await ready(up)

            # 1. per-job overhead: one job at a time, local and celery in alternating order
            modes = {"local": local.executor, "celery": celery["one"].executor}
            watch.start()
            expected = {"local": {LOCAL_WORKER}, "celery": {w.name for w in up["one"].workers}}
            for r in range(args.warmup + args.repeats):
                order = list(modes) if r % 2 == 0 else list(reversed(modes))
                for mode in order:
                    timing = await run_one(modes[mode], image_job(r, args.overhead_steps))
                    if timing.worker not in expected[mode]:  # measure what the row says
                        raise RuntimeError(f"a {mode}-mode job ran on {timing.worker!r}")
                    if r >= args.warmup:
                        overhead_jobs[mode].append(timing)

            watch.stop("part 1")

            # 2. throughput: every job at once, one worker against two; and the ceiling, the
            # same engine in plain processes, in the same rounds (so under the same load)
            jobs_of = {name: celery[name].executor for name in layout}
            for name, executor in jobs_of.items():  # warm-up: each worker runs jobs first
                if args.warmup:
                    await run_all(executor, throughput_jobs(
                        2 * len(layout[name]), len(layout[name]), args.steps))
            for process in plain:
                await process.ready()
            plain_of = {"plain-one": plain[:1], "plain-two": plain}
            sides = [*jobs_of, *plain_of]
            for r in range(args.rounds):
                watch.start()
                for name in sides if r % 2 == 0 else list(reversed(sides)):
                    if name in plain_of:
                        rounds[name].append(await ceiling_round(plain_of[name]))
                        continue
                    cpu = (_own_cpu_seconds(), _children_cpu_seconds("redis-server"))
                    wall, timings = await run_all(jobs_of[name], throughput_jobs(
                        args.jobs, args.users, args.steps))
                    bot_cpu[name].append(_own_cpu_seconds() - cpu[0])
                    redis_cpu[name].append(_children_cpu_seconds("redis-server") - cpu[1])
                    rounds[name].append(wall)
                    runner_times[name] += [t.runner_s for t in timings]
                    for t in timings:
                        spread[name][t.worker] = spread[name].get(t.worker, 0) + 1
                watch.stop(f"round {r + 1}")
    finally:
        for process in plain:
            process.kill()
        shutil.rmtree(folder, ignore_errors=True)
    took = time.monotonic() - started
    return report(args, load_before, overhead_jobs, rounds, runner_times, spread,
                  local_threads=local_threads, cores=cores, layout=layout, took=took,
                  others=watch, bot_cpu=bot_cpu, redis_cpu=redis_cpu)


def report(args: Any, load_before: float, overhead_jobs: dict[str, list[JobTiming]],
           rounds: dict[str, list[float]], runner_times: dict[str, list[float]],
           spread: dict[str, dict[str, int]], *,
           local_threads: int, cores: list[int], layout: dict[str, list[int]], took: float,
           others: OthersWatch, bot_cpu: dict[str, list[float]],
           redis_cpu: dict[str, list[float]]) -> Table:
    table = Table(
        f"Celery mode: per-job overhead vs local mode ({args.overhead_steps} steps) and "
        f"1 vs 2 worker processes ({args.jobs} jobs from {args.users} users, "
        f"{args.steps} steps), 1 picture {SIZE}×{SIZE}, tiny SD model",
        ["side", "jobs", "mean", "median", "p90", "in the runner (median)",
         "outside it (median)", "jobs/s", "ratio"],
    )
    stats: dict[str, dict[str, float]] = {}
    for mode, timings in overhead_jobs.items():
        walls = [t.wall_s for t in timings]
        outside = [t.wall_s - t.runner_s for t in timings]
        stats[mode] = {
            "mean": statistics.fmean(walls) if walls else float("nan"),
            "median": median(walls), "p90": percentile(walls, 90),
            "runner": median([t.runner_s for t in timings]), "outside": median(outside),
            "outside_mean": statistics.fmean(outside) if outside else float("nan"),
        }
    labels = {"local": "1. local mode: the model on the bot's worker thread",
              "celery": "1. celery mode: 1 worker process, via Redis"}
    for mode, label in labels.items():
        s = stats[mode]
        table.add(label, len(overhead_jobs[mode]), ms(s["mean"]), ms(s["median"]),
                  ms(s["p90"]), ms(s["runner"]), ms(s["outside"]),
                  f"{1 / s['mean']:.2f}" if s["mean"] > 0 else "-", "-")
    diff = {k: (stats["celery"][k] - stats["local"][k]) * 1000 for k in stats["local"]}
    pairs = [(c.wall_s - a.wall_s) * 1000 for c, a in
             zip(overhead_jobs["celery"], overhead_jobs["local"], strict=True)]
    table.add("   celery − local, per job", "", f"{diff['mean']:+.1f} ms",
              f"{diff['median']:+.1f} ms", f"{diff['p90']:+.1f} ms",
              f"{diff['runner']:+.1f} ms", f"{diff['outside']:+.1f} ms", "", "")

    # Per round: the throughput ratio of 2 workers to 1 (t1 / t2), and the ceiling's, the
    # same engine in plain processes (2 × the jobs in t(plain-two) against t(plain-one)).
    medians = {name: median(values) for name, values in rounds.items()}
    count = args.ceiling_jobs
    bot_ratios = [a / b for a, b in zip(rounds["one"], rounds["two"], strict=True)]
    plain_ratios = [2 * a / b for a, b in
                    zip(rounds["plain-one"], rounds["plain-two"], strict=True)]
    round_busy = [others.parts.get(f"round {r + 1}", float("nan"))
                  for r in range(len(bot_ratios))]
    clean = [r for r, b in enumerate(round_busy) if b < QUIET_CORES]
    ratio, ceiling_ratio = median(bot_ratios), median(plain_ratios)
    share = median([b / c for b, c in zip(bot_ratios, plain_ratios, strict=True)])
    rows = {
        "one": (f"2. celery, 1 worker (core {layout['one'][0]})", args.jobs, 1.0),
        "two": (f"2. celery, 2 workers (cores {', '.join(map(str, layout['two']))})",
                args.jobs, ratio),
        "plain-one": (f"2'. ceiling: the engine alone, 1 process (core {layout['one'][0]})",
                      count, 1.0),
        "plain-two": ("2'. ceiling: 2 plain processes at once (cores "
                      f"{', '.join(map(str, layout['two']))})", 2 * count, ceiling_ratio),
    }
    for name, (label, jobs, side_ratio) in rows.items():
        t = medians[name]
        # per job: in the runner (the workers), or a plain process's time over its jobs
        runner = median(runner_times[name]) if name in runner_times else t / count
        table.add(label, jobs, "-", "-", "-", ms(runner), "-",
                  f"{jobs / t:.2f}" if t > 0 else "-", f"{side_ratio:.2f}")
    # How fast each worker ran beside the other, against alone: the cap the two workers'
    # own speed set on the bot's ratio.
    worker_ceiling = 2 * median(runner_times["one"]) / median(runner_times["two"])
    # The lone worker is another process than the pair's, and this VM's speed drifts between
    # processes: the ratio as it would be had the lone worker rendered as fast per job as
    # each of the pair did (the dispatch's own share of the figure).
    equal_speed = ratio * median(runner_times["two"]) / median(runner_times["one"])
    # What the bot's side costs in CPU per job while the workers render (this process: the
    # bots' loop, SQLite, files, thread pool; and the redis-servers), and the share of the
    # two cores it takes at the 2-worker side's pace.
    bot_ms = 1000 * median(bot_cpu["two"]) / args.jobs
    redis_ms = 1000 * median(redis_cpu["two"]) / args.jobs
    bot_share = (median(bot_cpu["two"]) + median(redis_cpu["two"])) / medians["two"] / 2

    table.figures.update(
        overhead_ms=diff["mean"], overhead_median_ms=diff["median"],
        overhead_paired_median_ms=median(pairs), overhead_outside_ms=diff["outside"],
        overhead_outside_mean_ms=diff["outside_mean"],
        local_mean_ms=stats["local"]["mean"] * 1000,
        celery_mean_ms=stats["celery"]["mean"] * 1000,
        jobs_per_s_1=args.jobs / medians["one"], jobs_per_s_2=args.jobs / medians["two"],
        ratio=ratio, ceiling_ratio=ceiling_ratio, worker_speed_ceiling=worker_ceiling,
        ratio_equal_speed=equal_speed, bot_cpu_ms_per_job=bot_ms,
        redis_cpu_ms_per_job=redis_ms, bot_share_of_cores=bot_share,
        ratio_of_ceiling=share, clean_rounds=float(len(clean)),
        ratio_clean=median([bot_ratios[r] for r in clean]),
        ceiling_ratio_clean=median([plain_ratios[r] for r in clean]),
        workers_used_1=float(len(spread["one"])),
        workers_used_2=float(len(spread["two"])))
    for part, busy in others.parts.items():
        table.figures[f"others_{part.replace(' ', '_')}"] = busy
    spreads = "; ".join(f"{'1 worker' if n == 'one' else '2 workers'}: " + ", ".join(
        f"{w} {c}" for w, c in sorted(s.items())) for n, s in spread.items())
    met_overhead = "met" if diff["mean"] <= OVERHEAD_GOAL_MS else "NOT met"
    met_ratio = "met" if ratio >= THROUGHPUT_GOAL else "NOT met"
    pinned = "taskset" if shutil.which("taskset") else "no taskset here: not pinned"
    table.notes += [
        f"goal 1: celery mode ≤ {OVERHEAD_GOAL_MS:.0f} ms more per job than local mode; "
        f"measured {diff['mean']:+.1f} ms (mean; median {diff['median']:+.1f} ms, "
        f"median of the per-round differences {median(pairs):+.1f} ms): {met_overhead}",
        f"goal 2: 2 workers ≥ {THROUGHPUT_GOAL}× the throughput of 1; measured {ratio:.2f}× "
        f"(median of the per-round ratios; medians {secs(medians['one'])} and "
        f"{secs(medians['two'])} for {args.jobs} jobs): {met_ratio}",
        f"what this machine allows: the same engine and jobs in two plain processes (no bot, "
        f"no Redis), pinned like the workers, in the same rounds: {ceiling_ratio:.2f}× one "
        f"alone; the bot's ratio is {share:.0%} of the ceiling's (median per round). Each "
        f"worker beside the other rendered at "
        f"{median(runner_times['one']) / median(runner_times['two']):.0%} of its speed alone "
        f"(in the runner), which caps the bot's ratio at {worker_ceiling:.2f}×; at equal "
        f"speed per job the bot's ratio would be {equal_speed:.2f}× "
        f"({equal_speed / 2:.0%} of 2×: the cost of dispatch and of the bot's own CPU)",
        f"the bot's side while 2 workers render: {bot_ms:.1f} ms CPU per job in this process "
        f"(loop, SQLite, files; the idle bots' ticks included) and {redis_ms:.1f} ms in "
        f"redis-server, {bot_share:.1%} of the two cores at that pace (1 worker: "
        f"{1000 * median(bot_cpu['one']) / args.jobs:.1f} + "
        f"{1000 * median(redis_cpu['one']) / args.jobs:.1f} ms per job)",
        f"rounds with other processes under {QUIET_CORES} core: {len(clean)} of "
        f"{len(bot_ratios)}" + (
            f"; in those, 2 workers {table.figures['ratio_clean']:.2f}×, ceiling "
            f"{table.figures['ceiling_ratio_clean']:.2f}×" if clean else "") + "; per round "
        "(2 workers × / ceiling × / other processes' cores): " + ", ".join(
            f"{b:.2f} / {c:.2f} / {o:.2f}"
            for b, c, o in zip(bot_ratios, plain_ratios, round_busy, strict=True)),
        "part 1: submit → Done → record written, one job at a time; 'in the runner' is "
        "ModelRunner.run (timings['gpu_s']) in the process that ran it, 'outside it' the "
        f"rest (dispatch, Redis, events, result transfer, SQLite, PNG): celery − local "
        f"{diff['outside']:+.1f} ms (median), {diff['outside_mean']:+.1f} ms (mean)",
        f"part 2: all jobs submitted at once, first submit → last record, batch limit "
        f"{args.batch_limit}, {args.rounds} round(s) after a warm-up, order alternating; "
        f"jobs per worker: {spreads}",
        f"torch threads: {local_threads} in the local executor's worker thread, "
        f"OMP_NUM_THREADS={args.threads} in each worker process; torch pinned to one core "
        f"each ({pinned}; usable cores {', '.join(map(str, cores))}); the bot process "
        "(event loop, SQLite, files) unpinned, sharing the cores with the workers",
        f"whole run {took:.0f} s, worker start-up included; cores other processes kept "
        f"busy: {others.describe()} (re-run when above ~{QUIET_CORES}: part 2 needs both "
        "cores)",
        *standard_notes(args, load_before),
    ]
    return table


def main(argv: Sequence[str] | None = None) -> Table:
    p = parser(__doc__.split("\n")[0], repeats=20, warmup=2)
    p.set_defaults(threads=1, steps=12)
    p.add_argument("--overhead-steps", type=int, default=4,
                   help="denoising steps of part 1's jobs (default 4)")
    p.add_argument("--jobs", type=int, default=16, help="part 2: jobs per round (default 16)")
    p.add_argument("--users", type=int, default=4, help="part 2: members sending them")
    p.add_argument("--rounds", type=int, default=5,
                   help="part 2: measured rounds, each of every side (default 5)")
    p.add_argument("--ceiling-jobs", type=int, default=6,
                   help="part 2: jobs per plain process per round, for the ceiling (default 6)")
    p.add_argument("--batch-limit", type=int, default=1,
                   help="executor.batch_limit of every bot and worker (default 1)")
    args = apply_quick(p.parse_args(argv), steps=2, repeats=2, warmup=0, overhead_steps=2,
                       jobs=4, users=2, rounds=1, ceiling_jobs=1)
    if args.threads < 1:
        p.error("--threads must be at least 1 here: the workers get it as OMP_NUM_THREADS")
    table = asyncio.run(measure(args))
    table.print()
    return table


if __name__ == "__main__":
    main(sys.argv[1:])
