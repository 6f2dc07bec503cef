"""The executor's runner: owns the image and story models, on the worker thread only.

Image jobs name their model (`ImageParams.model`, "" = the default) and LoRAs: the pool
(bot/pipelines/pool.py) brings the model to the device, telling the batch's jobs while it
loads, and each batch runs with exactly its LoRAs active (the model's own always-on one
first).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from bot.executor.executor import OutOfMemory, RunContext
from bot.executor.jobs import (
    DescribeParams,
    GeneratedImage,
    ImageMode,
    ImageParams,
    ImageResult,
    Job,
    JobResult,
    TextParams,
    TextResult,
)
from bot.images.grids import make_grid
from bot.pipelines.capacity import DEFAULT_BATCH, PeakTable, images_that_fit
from bot.pipelines.caption import CaptionModelOptions
from bot.pipelines.pool import ImagePool

if TYPE_CHECKING:
    from PIL.Image import Image

    from bot.pipelines.caption import Captioner
    from bot.pipelines.diffusion import ImageEngine, ImageModelOptions, ImageSpec
    from bot.pipelines.lora import LoraAdapters, LoraSource
    from bot.pipelines.text import StoryWriter, TextModelOptions

log = logging.getLogger(__name__)

# Modes rendered as img2img from `source_path` at `strength`, batched like txt2img.
FROM_PICTURE = (ImageMode.VARIATION, ImageMode.IMG2IMG)
# Modes that run one job at a time (a 🎞 journey decodes a frame at many of its steps).
RUN_ALONE = (ImageMode.UPSCALE, ImageMode.OUTPAINT, ImageMode.JOURNEY)

TEXT_OUT_OF_MEMORY = ("The GPU ran out of memory while writing this line. Try again in a "
                      "moment; if it keeps happening, ask the host for a smaller story model "
                      "or a lower story.context_tokens.")


class ModelRunner:
    """Runs image and text jobs. Models load on first use (or `warm_up`), on one thread.

    `image` is the pool of image models, or one model's options (a pool of that one).
    `loras` are the LoRAs jobs may name; `model_loras` the (name, weight) LoRAs a model
    always runs with (its section's `lora`), by the pool's model name.
    """

    def __init__(
        self,
        image: ImagePool | ImageModelOptions,
        text_options: TextModelOptions,
        *,
        blocked_term: Callable[[str], str | None] = lambda text: None,
        describe_options: CaptionModelOptions | None = None,
        loras: Mapping[str, LoraSource] | None = None,
        model_loras: Mapping[str, Sequence[tuple[str, float]]] | None = None,
    ) -> None:
        self.pool = image if isinstance(image, ImagePool) else ImagePool.single(image)
        self.text_options = text_options
        self.blocked_term = blocked_term
        self.describe_options = describe_options or CaptionModelOptions()
        self.loras = dict(loras or {})
        self.model_loras = {name: tuple(pairs) for name, pairs in (model_loras or {}).items()}
        self._captioner: Captioner | None = None  # /describe's, loaded at its first job
        self._text: StoryWriter | None = None
        # One LoraAdapters per loaded engine; a freed engine takes its adapters with it.
        self._adapters: WeakKeyDictionary[ImageEngine, LoraAdapters] = WeakKeyDictionary()
        self._peaks = PeakTable()  # batch_limit "auto": measured on CUDA

    # ----- models ---------------------------------------------------------------------------

    @property
    def image_options(self) -> ImageModelOptions:
        """The default image model's options."""
        return self.pool.options()

    @property
    def image_engine(self) -> ImageEngine:
        """The default image model's engine (loaded, and on the device)."""
        return self.pool.engine()

    @property
    def story_writer(self) -> StoryWriter:
        if self._text is None:
            from bot.pipelines.text import StoryWriter

            writer = StoryWriter(self.text_options)
            writer.load()
            self._text = writer
        return self._text

    @property
    def model_names(self) -> tuple[str, str]:
        """The image and story models it serves, as configured (hub ids or folders)."""
        return (self.image_options.model, self.text_options.model)

    @property
    def native_size(self) -> int:
        """The default image model's own side in pixels (loads it if it never was)."""
        return self.pool.native_size()

    def warm_up(self, *, image: bool = True, text: bool = False) -> None:
        """Load models now, so a missing model is reported at start, not at first use: the
        default image model; the others' folders are only checked."""
        if image:
            _ = self.image_engine
            self.pool.check_sources()
        if text:
            _ = self.story_writer

    # ----- JobRunner ------------------------------------------------------------------------

    def batch_key(self, job: Job) -> Hashable | None:
        p = job.params
        if not isinstance(p, ImageParams) or p.mode in RUN_ALONE:
            return None
        # "" and the default's name are one model; a name nobody serves keeps its own key
        # (the run fails it with the reason).
        model = self.pool.find(p.model) or p.model
        return (model, p.loras, p.mode, p.steps, p.guidance, p.width, p.height,
                p.strength if p.mode in FROM_PICTURE else 0.0)

    def batch_size(self, job: Job) -> int:
        return job.params.count if isinstance(job.params, ImageParams) else 1

    def batch_capacity(self, job: Job) -> int | None:
        """How many pictures like `job`'s fit one call now (`executor.batch_limit =
        "auto"`); None: no bound from here. Called by the executor before each batch, on
        the worker thread under its lock, so it only reads what the runs measured plus
        one driver call.

        From the free device memory and the peak measured per picture for this model and
        size (scaled by pixels from its other sizes). Before any measurement, and always on
        a CPU, the old fixed default: there is no cheap per-picture peak there, and RAM is
        rarely what limits a batch on a CPU.
        """
        p = job.params
        if not isinstance(p, ImageParams) or p.mode in RUN_ALONE:
            return None
        model = self.pool.find(p.model)
        if model is None:
            return None
        per_image = self._peaks.estimate(model, p.width, p.height)
        if per_image is None:
            return DEFAULT_BATCH
        # A model that is not on the device now will be, in place of the ones that leave:
        # the free memory seen while it was there is the better guess.
        free = (_free_cuda_bytes() if self.pool.is_on_device(model)
                else self._peaks.free_seen.get(model, 0.0))
        return images_that_fit(free, per_image)

    def run(self, jobs: Sequence[Job], ctx: RunContext) -> list[JobResult | Exception]:
        first = jobs[0].params
        try:
            if isinstance(first, DescribeParams):
                from bot.pipelines.caption import run_describe

                return [run_describe(self._caption_model, job, ctx, self.blocked_term)
                        for job in jobs]
            if isinstance(first, TextParams):
                return [self._write_line(job, ctx) for job in jobs]
            if first.mode is ImageMode.UPSCALE:
                return [self._upscale(job, ctx) for job in jobs]
            if first.mode is ImageMode.OUTPAINT:
                return [self._outpaint(job, ctx) for job in jobs]
            if first.mode is ImageMode.JOURNEY:
                return [self._journey(job, ctx) for job in jobs]
            return self._generate(jobs, ctx)
        except Exception as exc:
            if _is_out_of_memory(exc):
                _free_device_memory()
                raise OutOfMemory(str(exc)) from exc
            raise

    # ----- image jobs -----------------------------------------------------------------------

    def _engine_for(self, jobs: Sequence[Job], ctx: RunContext) -> tuple[str, ImageEngine]:
        """The batch's model on the device (its jobs told while it loads), with exactly the
        batch's LoRAs active: a batch without any runs with none."""
        p = jobs[0].params
        assert isinstance(p, ImageParams)

        def loading(name: str) -> None:
            for job in jobs:
                _notify(ctx, job, f"loading model {name}")

        model = self.pool.resolve(p.model)
        engine = self.pool.engine(model, on_loading=loading)
        self._use_loras(engine, model, p.loras)
        return model, engine

    def _use_loras(self, engine: ImageEngine, model: str,
                   loras: Sequence[tuple[str, float]]) -> None:
        wanted = [*self.model_loras.get(model, ()), *loras]
        adapters = self._adapters.get(engine)
        if adapters is None:
            if not wanted:
                return  # this pipeline never had a LoRA: nothing to switch off
            from bot.pipelines.lora import LoraAdapters  # imports peft when first used

            adapters = self._adapters[engine] = LoraAdapters(engine.pipe)
        adapters.use([(self._lora_source(name), weight) for name, weight in wanted])

    def _lora_hashes(self, engine: ImageEngine,
                     loras: Sequence[tuple[str, float]]) -> tuple[tuple[str, str], ...]:
        """AUTOMATIC1111's short hash of each LoRA a job used, for its PNG info (hashed
        here, where the files are: a remote worker's bot has none)."""
        adapters = self._adapters.get(engine)
        if adapters is None or not loras:
            return ()
        return tuple((name, adapters.short_hash(self._lora_source(name).name))
                     for name, _ in loras)

    def _lora_source(self, name: str) -> LoraSource:
        source = self.loras.get(name) or next(
            (s for key, s in self.loras.items() if _fold(key) == _fold(name)), None)
        if source is None:
            known = ", ".join(self.loras) or "none"
            raise ValueError(f"LoRA {name!r} is not configured here (configured: {known}).")
        return source

    def _generate(self, jobs: Sequence[Job], ctx: RunContext) -> list[JobResult | Exception]:
        model, engine = self._engine_for(jobs, ctx)
        specs: list[ImageSpec] = []
        owners: list[int] = []  # specs[i] belongs to jobs[owners[i]]
        for j, job in enumerate(jobs):
            for spec in self._specs(job):
                specs.append(spec)
                owners.append(j)

        # A job may hold more images than fit the device at once (a style sweep has one per
        # preset): render in chunks of at most `max_batch`, reporting steps across chunks.
        chunk = max(1, ctx.max_batch)
        starts = list(range(0, len(specs), chunk))
        started = time.monotonic()
        images: list[Image] = []
        nsfw: list[bool] = []
        for n, first in enumerate(starts):
            part = specs[first:first + chunk]
            part_owners = owners[first:first + chunk]
            with self._measuring(engine, model, part[0].width, part[0].height, len(part)):
                out = engine.generate(
                    part,
                    on_step=self._step_reporter(jobs, part_owners, ctx, n, len(starts)),
                    should_stop=lambda: all(ctx.cancelled(job.id) for job in jobs),
                )
            if out.interrupted:
                return [RuntimeError("interrupted")] * len(jobs)
            images.extend(out.images)
            nsfw.extend(out.nsfw)
        seconds = time.monotonic() - started
        results: list[JobResult | Exception] = []
        for j, job in enumerate(jobs):
            p = job.params
            assert isinstance(p, ImageParams)
            mine = [i for i, o in enumerate(owners) if o == j]
            generated = tuple(
                GeneratedImage(images[i], p.seeds[k], nsfw[i],
                               p.labels[k] if k < len(p.labels) else "")
                for k, i in enumerate(mine)
            )
            results.append(ImageResult(generated, {"generate_s": seconds, "batch": len(jobs)},
                                       engine.model_name, engine.a1111_sampler,
                                       lora_hashes=self._lora_hashes(engine, p.loras)))
        return results

    @contextmanager
    def _measuring(self, engine: ImageEngine, model: str, width: int, height: int,
                   images: int) -> Iterator[None]:
        """On CUDA, the peak memory a call took above what was allocated before it, per
        picture, for `batch_capacity`; and the free memory while this model is loaded."""
        if engine.device.type != "cuda":
            yield
            return
        import torch

        self._peaks.free_seen[model] = _free_cuda_bytes()
        torch.cuda.reset_peak_memory_stats(engine.device)
        before = torch.cuda.memory_allocated(engine.device)
        yield  # an exception (out of memory) records nothing
        peak = torch.cuda.max_memory_allocated(engine.device) - before
        self._peaks.record(model, width, height, peak, images)

    @staticmethod
    def _step_reporter(
        jobs: Sequence[Job], owners: list[int], ctx: RunContext, chunk: int, chunks: int
    ) -> Callable[[int, int, Callable[[], list[Image]]], None]:
        """Progress for every job of a batch; a job's preview is a grid of its own images,
        decoded only when the executor asks for one."""

        def on_step(step: int, total: int, previews: Callable[[], list[Image]]) -> None:
            decoded: list[list[Image]] = []

            def preview_of(j: int) -> Image | None:
                if not decoded:
                    decoded.append(previews())
                mine = [img for img, o in zip(decoded[0], owners, strict=False) if o == j]
                return make_grid(mine) if mine else None

            for j, job in enumerate(jobs):
                if j in owners:
                    ctx.progress(job, chunk * total + step, chunks * total,
                                 lambda j=j: preview_of(j))  # type: ignore[misc]

        return on_step

    def _specs(self, job: Job) -> list[ImageSpec]:
        from bot.pipelines.diffusion import ImageSpec

        p = job.params
        assert isinstance(p, ImageParams)
        from_picture = p.mode in FROM_PICTURE or (
            p.mode is ImageMode.JOURNEY and p.strength > 0 and bool(p.source_path))
        init = _load_source(p) if from_picture else None
        if init is not None:
            init = init.resize((p.width, p.height))
        return [
            ImageSpec(prompt=p.prompt_for(i), negative=p.negative_for(i), seed=seed,
                      steps=p.steps, guidance=p.guidance, width=p.width, height=p.height,
                      init_image=init, strength=p.strength if init is not None else 0.0)
            for i, seed in enumerate(p.seeds)
        ]

    def _upscale(self, job: Job, ctx: RunContext) -> JobResult | Exception:
        from bot.pipelines.diffusion import ImageSpec

        p = job.params
        assert isinstance(p, ImageParams)
        _, engine = self._engine_for([job], ctx)
        source = _load_source(p)
        spec = ImageSpec(prompt=p.prompt, negative=p.negative, seed=p.seeds[0], steps=p.steps,
                         guidance=p.guidance, width=source.width * 2, height=source.height * 2,
                         strength=p.strength)
        started = time.monotonic()
        ctx.progress(job, 0, 1, None)
        image = engine.upscale(
            source, spec,
            on_step=lambda step, total, _previews: ctx.progress(job, step, total, None),
            should_stop=lambda: ctx.cancelled(job.id))
        if image is None:
            return RuntimeError("interrupted")
        ctx.progress(job, 1, 1, None)
        return ImageResult((GeneratedImage(image, p.seeds[0]),),
                           {"generate_s": time.monotonic() - started, "batch": 1},
                           engine.model_name, engine.a1111_sampler,
                           lora_hashes=self._lora_hashes(engine, p.loras))

    def _outpaint(self, job: Job, ctx: RunContext) -> JobResult | Exception:
        """Zoom out or pan: the source on the job's canvas, the border inpainted, the
        original blended back over the seam (bot.images.outpaint has the geometry)."""
        from bot.images.outpaint import Outpaint, OutpaintError, blend, layout_on, prepare
        from bot.pipelines.diffusion import ImageSpec

        p = job.params
        assert isinstance(p, ImageParams)
        _, engine = self._engine_for([job], ctx)
        source = _load_source(p)
        try:
            layout = layout_on(source.size, Outpaint.of(p), (p.width, p.height), p.mask_blur)
        except OutpaintError as exc:
            return exc
        canvas, mask = prepare(source, layout)
        spec = ImageSpec(prompt=p.prompt, negative=p.negative, seed=p.seeds[0], steps=p.steps,
                         guidance=p.guidance, width=p.width, height=p.height,
                         strength=p.strength)
        started = time.monotonic()

        def on_step(step: int, total: int, previews: Callable[[], list[Image]]) -> None:
            ctx.progress(job, step, total, lambda: next(iter(previews()), None))

        out = engine.outpaint(canvas, mask, spec, on_step=on_step,
                              should_stop=lambda: ctx.cancelled(job.id))
        if out.interrupted:
            return RuntimeError("interrupted")
        picture = blend(out.images[0], source, layout)
        return ImageResult((GeneratedImage(picture, p.seeds[0], out.nsfw[0]),),
                           {"generate_s": time.monotonic() - started, "batch": 1},
                           engine.inpaint_model_name, engine.a1111_sampler,
                           lora_hashes=self._lora_hashes(engine, p.loras))

    def _journey(self, job: Job, ctx: RunContext) -> JobResult | Exception:
        """🎞 The picture re-rendered as it was, with a frame (its predicted final image) at
        each journey step; the last frame is the finished picture itself."""
        p = job.params
        assert isinstance(p, ImageParams)
        _, engine = self._engine_for([job], ctx)
        started = time.monotonic()
        out = engine.generate(self._specs(job),
                              on_step=self._step_reporter([job], [0], ctx, 0, 1),
                              should_stop=lambda: ctx.cancelled(job.id), journey=True)
        if out.interrupted or not out.frames:
            return RuntimeError("interrupted")
        total = out.frames[-1][0]
        pictures = [images[0] for _, images in out.frames]
        pictures[-1] = out.images[0]  # the run's own last decode: exactly the picture
        # The label names the step: the frame's PNG info says "Steps: N" (bot.images.files).
        frames = tuple(GeneratedImage(picture, p.seeds[0], out.nsfw[0], f"step {step}/{total}")
                       for (step, _), picture in zip(out.frames, pictures, strict=True))
        return ImageResult(frames, {"generate_s": time.monotonic() - started, "batch": 1},
                           engine.model_name, engine.a1111_sampler,
                           lora_hashes=self._lora_hashes(engine, p.loras))

    # ----- describe jobs --------------------------------------------------------------------

    def _caption_model(self) -> Captioner:
        if self._captioner is None:
            from bot.pipelines.caption import Captioner

            captioner = Captioner(self.describe_options)
            captioner.load()
            self._captioner = captioner
        return self._captioner

    # ----- text jobs ------------------------------------------------------------------------

    def _write_line(self, job: Job, ctx: RunContext) -> JobResult | Exception:
        p = job.params
        assert isinstance(p, TextParams)
        writer = self.story_writer
        started = time.monotonic()
        ctx.progress(job, 0, 1, None)
        out_of_memory = False
        try:
            lines = writer.next_lines(
                p.seed_line, list(p.lines), rng_seed=p.rng_seed, candidates=p.candidates,
                cache_key=p.cache_key, is_blocked=self.blocked_term, max_chars=p.max_chars,
                # Each token is progress (the hang watchdog sees it) and a chance to stop.
                on_token=lambda n, total: ctx.progress(job, n, total, None),
                on_text=lambda n, total, text: _line(ctx, job, n, total, text),
                should_stop=lambda: ctx.cancelled(job.id))
        except Exception as exc:  # BlockedTextError and friends fail this job alone
            if not _is_out_of_memory(exc):
                return exc
            log.warning("job %s: the text model ran out of memory: %s", job.id, exc)
            out_of_memory = True
        if out_of_memory:
            # Freed after the except block, when its traceback (and the tensors its frames
            # hold) is gone; the job fails with words for members, not torch's text.
            writer.cache.clear()
            _free_device_memory()
            return RuntimeError(TEXT_OUT_OF_MEMORY)
        ctx.progress(job, 1, 1, None)
        stats = writer.last_stats
        timings = {"generate_s": time.monotonic() - started,
                   "prompt_tokens": float(stats.prompt_tokens),
                   "cached_tokens": float(stats.cached_tokens)}
        return TextResult(lines[0], timings, writer.model_name,
                          candidates=lines if p.candidates > 1 else ())


def _load_source(p: ImageParams) -> Image:
    from PIL import Image as PILImage

    if not p.source_path:
        raise ValueError("this job has no source image")
    try:
        with PILImage.open(p.source_path) as img:
            return img.convert("RGB")
    except FileNotFoundError as exc:
        raise ValueError("the source image is gone (it was deleted)") from exc


def _line(ctx: RunContext, job: Job, step: int, total: int, text: str) -> None:
    # Contexts written before live writing (test doubles, older wrappers) show no text.
    line = getattr(ctx, "line", None)
    if line is not None:
        line(job, step, total, text)


def _notify(ctx: RunContext, job: Job, text: str) -> None:
    # Contexts written before notices (wrappers in the benches) pass none on.
    notify = getattr(ctx, "notify", None)
    if notify is not None:
        notify(job, text)


def _free_cuda_bytes() -> float:
    """Free device memory, counting what torch's allocator holds cached (it is ours)."""
    import torch

    free, _total = torch.cuda.mem_get_info()
    return float(free + torch.cuda.memory_reserved() - torch.cuda.memory_allocated())


def _fold(name: str) -> str:
    return "".join(name.split()).casefold()


def _is_out_of_memory(exc: BaseException) -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def _free_device_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()

