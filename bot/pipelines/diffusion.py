"""Image generation: text-to-image, image-to-image and 2× upscale on one diffusers pipeline.

The engine is used from ONE worker thread (the executor's GPU worker). It is not thread-safe
by design: a diffusers pipeline keeps per-run state in its scheduler and on itself
(`_interrupt`, `_num_timesteps`), so two concurrent calls would corrupt each other.

Long prompts: CLIP reads 77 tokens. Prompts are encoded with compel in 77-token chunks, so
every word counts. Compel's weighting syntax ("(word)1.2", "word++", ".blend()") is NOT
applied: prompts come from chat users and are taken literally (we call compel's fragment
encoder directly and skip its parser).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from PIL import Image

from .device import pick_device, pick_dtype
from .errors import (
    ModelLoadError,
    load_failure,
    loader_errors,
    public_model_name,
    resolve_model_source,
)
from .journey import X0Recorder, decode_frames, journey_steps
from .preview import TinyVaePreviewer, latents_to_rgb
from .schedulers import a1111_name, make_scheduler

__all__ = [
    "GenerationOutput",
    "ImageEngine",
    "ImageModelOptions",
    "ImageSpec",
    "ModelLoadError",
    "PreviewFn",
    "StepCallback",
]

log = logging.getLogger(__name__)

PreviewFn = Callable[[], list[Image.Image]]
# on_step(step, total, preview): step is 1-based; preview() decodes a cheap preview on demand.
StepCallback = Callable[[int, int, PreviewFn], None]

class _UpscaleStopped(Exception):
    """Raised from an upscaler's step callback to end its run (it has no interrupt flag)."""


REFINE_STRENGTH = 0.3  # img2img strength of the refine pass after a Lanczos 2× resize


@dataclass(frozen=True)
class ImageModelOptions:
    """How to load and run the image model (the `[image]` config section)."""

    model: str  # hub id or folder (a diffusers pipeline: SD 1.x/2.x, SDXL, SD-Turbo…)
    scheduler: str = "euler_a"  # a key of schedulers.SCHEDULERS
    device: str = "auto"
    dtype: str = "auto"
    attention_slicing: bool = False  # less VRAM, slower (replaces SDPA attention)
    vae_tiling: bool = False  # decode/encode large images in tiles
    cpu_offload: bool = False  # model CPU offload (CUDA only): less VRAM, slower
    safety_checker: bool = False  # run the model's NSFW checker when it ships one
    upscaler: str | None = None  # optional SD upscaler pipeline (x2 latent or x4) for upscale()
    preview_vae: str | None = None  # optional tiny VAE (e.g. madebyollin/taesd) for previews
    compile: bool = False  # torch.compile the UNet (CUDA): faster steps, a slow first run
    # optional dedicated inpainting pipeline (e.g. a 9-channel SD inpainting checkpoint) for
    # outpaint(); None: the inpaint pipeline on the shared weights (from_pipe)
    inpaint_model: str | None = None


@dataclass(frozen=True)
class ImageSpec:
    """One image to make. Specs batched together must share steps/guidance/size/mode."""

    prompt: str
    negative: str
    seed: int
    steps: int
    guidance: float
    width: int
    height: int
    init_image: Image.Image | None = None  # set → image-to-image
    strength: float = 0.0  # img2img: 0 keeps the init image, 1 ignores it


@dataclass
class GenerationOutput:
    images: list[Image.Image]
    nsfw: list[bool]  # one per image; all False when the safety checker is off
    interrupted: bool  # should_stop() said stop: images are unfinished, discard them
    seconds: float
    # generate(journey=True): (step, one picture per spec) of the predicted final image at
    # each of journey_steps(total), the last step's included (bot/pipelines/journey.py).
    frames: list[tuple[int, list[Image.Image]]] = field(default_factory=list)


class ImageEngine:
    """One loaded image pipeline. Call `load()` once, then `generate()` / `upscale()`.

    Not thread-safe: use it from a single worker thread (see the module docstring).
    """

    def __init__(self, options: ImageModelOptions) -> None:
        self.options = options
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        self.pipe: Any = None
        self._img2img: Any = None
        self._upscaler: Any = None
        self._inpainter: Any = None
        self._inpaint_encoder: _PromptEncoder | None = None  # a dedicated model's own
        self._inpaint_scheduler_config: dict[str, Any] | None = None  # a dedicated model's
        self._encoder: _PromptEncoder | None = None
        self._previewer: TinyVaePreviewer | None = None
        self._base_scheduler_config: dict[str, Any] = {}
        self._scheduler_name = options.scheduler

    # -- facts about the loaded model ----------------------------------------------------

    @property
    def model_name(self) -> str:
        """What results (PNG parameters, embeds) call the model: never the host's path."""
        return public_model_name(self.options.model)

    @property
    def loaded(self) -> bool:
        return self.pipe is not None

    @property
    def is_sdxl(self) -> bool:
        return type(self._require_pipe()).__name__.startswith("StableDiffusionXL")

    @property
    def family(self) -> str:
        """Latent family for previews: "sdxl", "sd" (1.x/2.x) or the pipeline class name."""
        name = type(self._require_pipe()).__name__
        if name.startswith("StableDiffusionXL"):
            return "sdxl"
        return "sd" if name.startswith("StableDiffusion") else name

    @property
    def default_size(self) -> int:
        """The model's native side in pixels (512 for SD 1.5, 1024 for SDXL, 64 tiny)."""
        pipe = self._require_pipe()
        sample = pipe.unet.config.sample_size
        side = sample if isinstance(sample, int) else max(sample)
        return int(side * pipe.vae_scale_factor)

    @property
    def scheduler_name(self) -> str:
        return self._scheduler_name

    @property
    def a1111_sampler(self) -> str:
        return a1111_name(self._scheduler_name)

    def set_scheduler(self, name: str) -> None:
        """Switch the sampler (a SCHEDULERS key), always from the model's own config."""
        pipe = self._require_pipe()
        scheduler = make_scheduler(name, self._base_scheduler_config)
        pipe.scheduler = scheduler
        if self._img2img is not None:  # from_pipe copied the old scheduler reference
            self._img2img.scheduler = scheduler
        if self._inpainter is not None:
            config = self._inpaint_scheduler_config
            self._inpainter.scheduler = scheduler if config is None \
                else make_scheduler(name, config)
        self._scheduler_name = name

    # -- loading ---------------------------------------------------------------------------

    def load(self) -> None:
        """Load the pipeline (seconds to minutes). Raises ModelLoadError with a clear fix."""
        from diffusers import AutoPipelineForText2Image, DiffusionPipeline

        opts = self.options
        # 1. Where and in what precision.
        self.device = pick_device(opts.device)
        # bfloat16 on a CPU that computes it natively: ~1.6x faster steps (docs/PERFORMANCE.md).
        self.dtype = pick_dtype(self.device, opts.dtype, bf16_on_capable_cpu=True)
        source = resolve_model_source(
            opts.model, kind="Image model", config_file="model_index.json", setting="image.model"
        )
        # 2. Read model_index.json first: the cheap call that fails fast when offline.
        try:
            config = DiffusionPipeline.load_config(source)
            pipe = AutoPipelineForText2Image.from_pretrained(
                source, dtype=self.dtype, **self._component_overrides(config)
            )
        except loader_errors() as exc:
            raise load_failure(
                opts.model, kind="Image model", setting="image.model", cause=exc
            ) from exc
        # 3. Sampler, memory options, placement.
        self._base_scheduler_config = dict(pipe.scheduler.config)
        pipe.scheduler = make_scheduler(opts.scheduler, self._base_scheduler_config)
        self._scheduler_name = opts.scheduler
        pipe.set_progress_bar_config(disable=True)
        self._place(pipe)
        self.pipe = pipe
        self._img2img = None
        if self._inpaint_scheduler_config is None:  # from_pipe of the old pipeline
            self._inpainter = None
        # 4. Prompt encoder (after placement: compel remembers the text encoder's device).
        self._encoder = _PromptEncoder(pipe)
        if opts.preview_vae:
            self._previewer = self._load_preview_vae(opts.preview_vae)
        log.info(
            "image model %s loaded (%s, %s on %s, sampler %s)",
            opts.model,
            type(pipe).__name__,
            self.dtype,
            self.device,
            self.a1111_sampler,
        )

    def _component_overrides(self, config: dict[str, Any]) -> dict[str, Any]:
        has_checker = bool(config.get("safety_checker") and config["safety_checker"][0])
        if self.options.safety_checker:
            if not has_checker:
                log.warning("image.safety_checker is on but %s has none", self.options.model)
            return {}
        if "safety_checker" in config:
            # Skip loading it (saves ~1.2 GB) and silence diffusers' warning about that.
            return {"safety_checker": None, "requires_safety_checker": False}
        return {}

    def _place(self, pipe: Any) -> None:
        """Apply memory options and move to the device. SDPA attention is diffusers' default."""
        opts = self.options
        if opts.attention_slicing:
            pipe.enable_attention_slicing()
        if opts.vae_tiling and hasattr(pipe, "vae"):
            pipe.vae.enable_tiling()
        cuda = self.device.type == "cuda"
        if cuda:
            # Before placement: the fused weights then move (or offload) with the rest.
            tune_for_gpu(pipe, fuse_qkv=not opts.attention_slicing)
        if opts.cpu_offload and cuda:
            pipe.enable_model_cpu_offload(device=self.device)
        else:
            if opts.cpu_offload:
                log.warning("image.cpu_offload needs CUDA; running on %s instead", self.device)
            pipe.to(self.device)
        if opts.compile:
            if cuda:
                compile_unet(pipe)
            else:
                log.warning("image.compile needs CUDA; running uncompiled on %s", self.device)

    def _load_preview_vae(self, name: str) -> TinyVaePreviewer:
        source = resolve_model_source(
            name, kind="Preview VAE", config_file="config.json", setting="image.preview_vae"
        )
        try:
            return TinyVaePreviewer.load(source, device=self.device, dtype=self.dtype)
        except loader_errors() as exc:
            raise load_failure(
                name, kind="Preview VAE", setting="image.preview_vae", cause=exc
            ) from exc

    def _require_pipe(self) -> Any:
        if self.pipe is None:
            raise RuntimeError("ImageEngine.load() must be called first")
        return self.pipe

    # -- generation ------------------------------------------------------------------------

    def generate(
        self,
        specs: Sequence[ImageSpec],
        *,
        on_step: StepCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
        preview_every: int = 0,
        journey: bool = False,
    ) -> GenerationOutput:
        """Run ONE batched pipeline call for all specs; one seeded generator per image.

        `on_step(step, total, preview)` runs after each denoising step on this thread;
        `preview()` decodes cheap previews of the current latents only when called (call it
        inside on_step). With `preview_every=N > 0`, preview() is live only every N-th and the
        last step (elsewhere it returns []); 0 means every step. When `should_stop()` turns
        True the run stops within one step and `interrupted` is True. With `journey`, the
        predicted final image of some steps is decoded into `frames` (🎞).
        """
        pipe = self._require_pipe()
        first = _check_batch(specs)
        started = time.perf_counter()
        if should_stop is not None and should_stop():
            return GenerationOutput([], [], interrupted=True, seconds=0.0)
        state: dict[str, bool] = {"interrupted": False}
        recorder = X0Recorder() if journey else None
        frames: list[tuple[int, list[Image.Image]]] = []
        # 1. The common arguments: embeddings, sampling settings, seeds, step callback.
        kwargs: dict[str, Any] = {
            "num_inference_steps": first.steps,
            "guidance_scale": first.guidance,
            "generator": [_generator(s.seed) for s in specs],
            "callback_on_step_end": self._step_callback(on_step, should_stop, preview_every, state,
                                                        recorder, frames),
            "callback_on_step_end_tensor_inputs": ["latents"],
            "output_type": "pil",
        }
        # 2. Text-to-image, or image-to-image on the shared weights.
        runner = pipe
        if first.init_image is None:
            kwargs.update(width=first.width, height=first.height)
        else:
            runner = self._image_to_image()
            kwargs["image"] = [_fit_init(s.init_image, first.width, first.height) for s in specs]
            kwargs["strength"] = first.strength
        assert self._encoder is not None
        with torch.inference_mode(), (recorder.installed(runner.scheduler) if recorder
                                      else contextlib.nullcontext()):
            kwargs.update(
                self._encoder.encode([s.prompt for s in specs], [s.negative for s in specs],
                                     guided=first.guidance > 1)
            )
            out = runner(**kwargs)
        # 3. Results; the NSFW list is None when the checker is off or absent.
        images = list(out.images)
        flags = getattr(out, "nsfw_content_detected", None) or [False] * len(images)
        return GenerationOutput(
            images=images,
            nsfw=[bool(f) for f in flags],
            interrupted=state["interrupted"],
            seconds=time.perf_counter() - started,
            frames=frames,
        )

    def _step_callback(
        self,
        on_step: StepCallback | None,
        should_stop: Callable[[], bool] | None,
        preview_every: int,
        state: dict[str, bool],
        recorder: X0Recorder | None = None,
        frames: list[tuple[int, list[Image.Image]]] | None = None,
    ) -> Callable[[Any, int, Any, dict[str, Any]], dict[str, Any]]:
        def callback(pipe: Any, index: int, _t: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            step, total = index + 1, int(pipe.num_timesteps)
            if recorder is not None and frames is not None and recorder.latest is not None \
                    and step in journey_steps(total):
                frames.append((step, decode_frames(pipe, recorder.latest)))
            if on_step is not None:
                latents = tensors["latents"]
                live = preview_every <= 0 or step % preview_every == 0 or step == total
                on_step(step, total, (lambda: self.preview(latents)) if live else _no_preview)
            if should_stop is not None and should_stop():
                # diffusers skips the remaining steps; it still decodes what it has.
                pipe._interrupt = True
                state["interrupted"] = True
            return {}  # nothing changed

        return callback

    def preview(self, latents: torch.Tensor) -> list[Image.Image]:
        """Cheap RGB previews of in-progress latents (tiny VAE when configured)."""
        if self._previewer is not None:
            return self._previewer(latents)
        return latents_to_rgb(latents, self.family)

    def _image_to_image(self) -> Any:
        if self._img2img is None:
            from diffusers import AutoPipelineForImage2Image

            # Shares every module with the text-to-image pipeline (no extra memory). Pass the
            # dtype: from_pipe otherwise casts the SHARED modules to float32.
            self._img2img = AutoPipelineForImage2Image.from_pipe(self.pipe, dtype=self.dtype)
            self._img2img.set_progress_bar_config(disable=True)
        return self._img2img

    # -- outpainting (zoom out, pan) -------------------------------------------------------

    @property
    def inpaint_model_name(self) -> str:
        """What an outpainted picture names as its model: the dedicated one, if configured."""
        return public_model_name(self.options.inpaint_model or self.options.model)

    def outpaint(
        self,
        canvas: Image.Image,
        mask: Image.Image,
        spec: ImageSpec,
        *,
        on_step: StepCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
        preview_every: int = 0,
    ) -> GenerationOutput:
        """Paint the white part of `mask` on `canvas` (both spec's width × height), keeping
        the black part: diffusers' inpaint pipeline, on the shared weights (a 4-channel UNet:
        the kept latents are blended back at every step) or on `options.inpaint_model`
        (loaded here, on first use). `spec.strength` is the denoising strength of the
        painted part (0, unset, means 1: painted from noise). Steps, previews and stopping
        work as in `generate`. VAE tiling is on while the canvas is larger than the
        model's native size, as for an upscale's refine pass."""
        self._require_pipe()
        first = _check_batch([replace(spec, init_image=None)])
        started = time.perf_counter()
        if should_stop is not None and should_stop():
            return GenerationOutput([], [], interrupted=True, seconds=0.0)
        pipe = self._inpaint_pipeline()
        encoder = self._inpaint_encoder or self._encoder
        assert encoder is not None
        state: dict[str, bool] = {"interrupted": False}
        size = (first.width, first.height)
        kwargs: dict[str, Any] = {
            "image": canvas.convert("RGB").resize(size) if canvas.size != size else canvas,
            "mask_image": mask.convert("L").resize(size) if mask.size != size else mask,
            "width": first.width,
            "height": first.height,
            "strength": first.strength if 0.0 < first.strength <= 1.0 else 1.0,
            "num_inference_steps": first.steps,
            "guidance_scale": first.guidance,
            "generator": [_generator(first.seed)],
            "callback_on_step_end": self._step_callback(on_step, should_stop, preview_every, state),
            "callback_on_step_end_tensor_inputs": ["latents"],
            "output_type": "pil",
        }
        vae = pipe.vae
        tile = not self.options.vae_tiling and max(size) > self.default_size
        if tile:
            vae.enable_tiling()
        try:
            with torch.inference_mode():
                kwargs.update(encoder.encode([first.prompt], [first.negative]))
                out = pipe(**kwargs)
        finally:
            if tile:
                vae.disable_tiling()
        images = list(out.images)
        flags = getattr(out, "nsfw_content_detected", None) or [False] * len(images)
        return GenerationOutput(images=images, nsfw=[bool(f) for f in flags],
                                interrupted=state["interrupted"],
                                seconds=time.perf_counter() - started)

    def _inpaint_pipeline(self) -> Any:
        if self._inpainter is not None:
            return self._inpainter
        if self.options.inpaint_model:
            self._inpainter = self._load_inpaint_model(self.options.inpaint_model)
            return self._inpainter
        from diffusers import AutoPipelineForInpainting

        # Shares every module with the text-to-image pipeline, as img2img does; with a
        # 4-channel UNet diffusers keeps the unmasked latents by blending them back each step.
        pipe = AutoPipelineForInpainting.from_pipe(self.pipe, dtype=self.dtype)
        pipe.set_progress_bar_config(disable=True)
        self._inpainter = pipe
        return pipe

    def _load_inpaint_model(self, name: str) -> Any:
        from diffusers import AutoPipelineForInpainting, DiffusionPipeline

        source = resolve_model_source(name, kind="Inpainting model",
                                      config_file="model_index.json",
                                      setting="image.inpaint_model")
        try:
            config = DiffusionPipeline.load_config(source)
            pipe = AutoPipelineForInpainting.from_pretrained(
                source, dtype=self.dtype, **self._component_overrides(config))
        except loader_errors() as exc:
            raise load_failure(name, kind="Inpainting model", setting="image.inpaint_model",
                               cause=exc) from exc
        self._inpaint_scheduler_config = dict(pipe.scheduler.config)
        pipe.scheduler = make_scheduler(self._scheduler_name, self._inpaint_scheduler_config)
        pipe.set_progress_bar_config(disable=True)
        self._place(pipe)
        # After placement, as for the main pipeline: compel remembers the encoder's device.
        self._inpaint_encoder = _PromptEncoder(pipe)
        log.info("inpainting model %s loaded (%s)", name, type(pipe).__name__)
        return pipe

    # -- upscaling -------------------------------------------------------------------------

    def upscale(self, image: Image.Image, spec: ImageSpec, *,
                on_step: StepCallback | None = None,
                should_stop: Callable[[], bool] | None = None) -> Image.Image | None:
        """Return `image` at 2× its size, re-detailed using `spec`'s prompt and seed; None
        when `should_stop` ended it early (checked at every refine step).

        With `options.upscaler` that upscaler pipeline runs; otherwise a Lanczos 2× resize is
        refined by an img2img pass at `spec.strength` (0.3 when unset, i.e. 0), with VAE
        tiling on while the image is larger than the model's native size, reporting each
        refine step to `on_step`. The size fields of `spec` are ignored: the output is 2×
        `image` (rounded down to multiples of 8).
        """
        self._require_pipe()
        if should_stop is not None and should_stop():
            return None
        target = (image.width * 2 // 8 * 8, image.height * 2 // 8 * 8)
        if self.options.upscaler:
            return self._upscale_with_model(image.convert("RGB"), spec, target, on_step,
                                            should_stop)
        return self._upscale_with_refine(image.convert("RGB"), spec, target, on_step,
                                         should_stop)

    def _upscale_with_refine(
        self, image: Image.Image, spec: ImageSpec, target: tuple[int, int],
        on_step: StepCallback | None, should_stop: Callable[[], bool] | None,
    ) -> Image.Image | None:
        big = image.resize(target, Image.Resampling.LANCZOS)
        strength = spec.strength if 0.0 < spec.strength <= 1.0 else REFINE_STRENGTH
        refine = replace(
            spec,
            init_image=big,
            strength=strength,
            width=target[0],
            height=target[1],
            steps=max(spec.steps, math.ceil(1 / strength)),  # at least one real step
        )
        vae = self.pipe.vae
        tile = not self.options.vae_tiling and max(target) > self.default_size
        if tile:
            vae.enable_tiling()
        try:
            out = self.generate([refine], on_step=on_step, should_stop=should_stop)
        finally:
            if tile:
                vae.disable_tiling()
        return None if out.interrupted else out.images[0]

    def _upscale_with_model(
        self, image: Image.Image, spec: ImageSpec, target: tuple[int, int],
        on_step: StepCallback | None = None, should_stop: Callable[[], bool] | None = None,
    ) -> Image.Image | None:
        upscaler = self._load_upscaler()

        def each_step(step: int, _timestep: Any, _latents: Any) -> None:
            # The upscale pipelines take only the old per-step callback: report the step,
            # and end the run by raising when asked to stop.
            if on_step is not None:
                on_step(step + 1, spec.steps, list)
            if should_stop is not None and should_stop():
                raise _UpscaleStopped

        kwargs: dict[str, Any] = {
            "prompt": spec.prompt,
            "negative_prompt": spec.negative or None,
            "image": image,
            "num_inference_steps": spec.steps,
            "generator": _generator(spec.seed),
            "callback": each_step,
            "callback_steps": 1,
        }
        if type(upscaler).__name__ == "StableDiffusionLatentUpscalePipeline":
            kwargs["guidance_scale"] = 0.0  # what the x2 latent upscaler was trained for
        else:
            kwargs["noise_level"] = 20  # x4 upscaler: light re-noising keeps detail
        try:
            with torch.inference_mode():
                result = upscaler(**kwargs).images[0]
        except _UpscaleStopped:
            return None
        if result.size != target:  # the x4 upscaler overshoots; bring it to 2×
            result = result.resize(target, Image.Resampling.LANCZOS)
        return result

    def _load_upscaler(self) -> Any:
        if self._upscaler is not None:
            return self._upscaler
        from diffusers import (
            DiffusionPipeline,
            StableDiffusionLatentUpscalePipeline,
            StableDiffusionUpscalePipeline,
        )

        name = str(self.options.upscaler)
        source = resolve_model_source(
            name, kind="Upscaler", config_file="model_index.json", setting="image.upscaler"
        )
        classes: dict[str, Any] = {
            "StableDiffusionLatentUpscalePipeline": StableDiffusionLatentUpscalePipeline,
            "StableDiffusionUpscalePipeline": StableDiffusionUpscalePipeline,
        }
        try:
            class_name = DiffusionPipeline.load_config(source)["_class_name"]
            if class_name not in classes:
                raise ModelLoadError(
                    name,
                    f"Upscaler '{name}' is a {class_name}, not an upscaler; use e.g. "
                    "stabilityai/sd-x2-latent-upscaler or "
                    "stabilityai/stable-diffusion-x4-upscaler.",
                )
            upscaler = classes[class_name].from_pretrained(source, dtype=self.dtype)
        except loader_errors() as exc:
            raise load_failure(name, kind="Upscaler", setting="image.upscaler", cause=exc) from exc
        upscaler.set_progress_bar_config(disable=True)
        self._place(upscaler)
        self._upscaler = upscaler
        return upscaler


# ---------------------------------------------------------------------------------------------
# The tuned GPU path (bench/gpu.py measures it against diffusers' defaults)


def tune_for_gpu(pipe: Any, *, fuse_qkv: bool = True) -> None:
    """Speed-ups that change no result beyond rounding: channels-last UNet convolutions
    (faster on tensor cores) and fused query/key/value projections (one matrix product
    instead of three in every attention block). Fusing replaces the attention processors, so
    it is skipped when attention slicing (a processor of its own) is on."""
    unet = getattr(pipe, "unet", None)
    if unet is None:
        return
    unet.to(memory_format=torch.channels_last)
    if not fuse_qkv:
        return
    for module in (unet, getattr(pipe, "vae", None)):
        fuse = getattr(module, "fuse_qkv_projections", None)
        if fuse is None:
            continue
        try:
            fuse()
        except (ValueError, NotImplementedError) as exc:  # e.g. added-KV attention blocks
            log.info("not fusing the attention projections of %s: %s",
                     type(module).__name__, exc)


def compile_unet(pipe: Any) -> None:
    """torch.compile the UNet in place (the pipeline keeps the same module object). The
    first run at each new batch size or image size compiles for a minute or more."""
    unet = getattr(pipe, "unet", None)
    if unet is not None:
        unet.compile()
        log.info("image.compile: the UNet compiles on its first run at each new size")


# ---------------------------------------------------------------------------------------------
# Helpers


def _no_preview() -> list[Image.Image]:
    return []


def _generator(seed: int) -> torch.Generator:
    # A CPU generator on purpose: the same seed gives the same starting noise on CUDA, MPS and
    # CPU (and with CPU offload); diffusers draws on the CPU and moves the noise, a trivial cost.
    return torch.Generator("cpu").manual_seed(seed)


def _check_batch(specs: Sequence[ImageSpec]) -> ImageSpec:
    """Validate that `specs` can run as one batch; return the first (the shared settings)."""
    if not specs:
        raise ValueError("generate() needs at least one ImageSpec")
    first = specs[0]

    def shared(s: ImageSpec) -> tuple[object, ...]:
        img2img = s.init_image is not None
        return (s.steps, s.guidance, s.width, s.height, img2img, s.strength if img2img else None)

    if any(shared(s) != shared(first) for s in specs[1:]):
        raise ValueError(
            "Specs in one batch must share steps, guidance, width, height and mode "
            "(txt2img, or img2img with the same strength)"
        )
    if first.steps < 1:
        raise ValueError(f"steps must be at least 1, got {first.steps}")
    if first.width % 8 or first.height % 8 or first.width < 8 or first.height < 8:
        raise ValueError(
            f"width and height must be multiples of 8, got {first.width}×{first.height}"
        )
    if first.init_image is not None:
        if not 0.0 < first.strength <= 1.0:
            raise ValueError(f"img2img strength must be in (0, 1], got {first.strength}")
        if int(first.steps * first.strength) < 1:
            raise ValueError(
                f"steps × strength must be at least 1 (got {first.steps} × {first.strength})"
            )
    return first


def _fit_init(image: Image.Image | None, width: int, height: int) -> Image.Image:
    assert image is not None
    image = image.convert("RGB")
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    return image


class _PromptEncoder:
    """Prompt embeddings through compel, whole (77-token chunks) and taken literally.

    We call compel's fragment encoder (`conditioning_provider`) with the prompt as one
    fragment of weight 1.0: that is exactly what compel does after parsing a prompt without
    syntax, minus the parser, so "(word)1.2", "a+", "x.blend()" and emoji stay plain text.
    Pipelines other than SD 1.x/2.x and SDXL get plain strings (the pipeline truncates).
    """

    def __init__(self, pipe: Any) -> None:
        from compel import Compel, ReturnedEmbeddingsType

        self.kind = "plain"
        self.force_zeros_for_empty_negative = False
        self.compels: list[Any] = []
        name = type(pipe).__name__
        te, te2 = getattr(pipe, "text_encoder", None), getattr(pipe, "text_encoder_2", None)
        if name.startswith("StableDiffusionXL") and te is not None and te2 is not None:
            self.kind = "sdxl"
            penultimate = ReturnedEmbeddingsType.PENULTIMATE_HIDDEN_STATES_NON_NORMALIZED
            self.compels = [
                Compel(
                    pipe.tokenizer,
                    te,
                    truncate_long_prompts=False,
                    returned_embeddings_type=penultimate,
                    requires_pooled=False,
                ),
                Compel(
                    pipe.tokenizer_2,
                    te2,
                    truncate_long_prompts=False,
                    returned_embeddings_type=penultimate,
                    requires_pooled=True,
                ),
            ]
            # SDXL base uses zeros, not the embedding of "", for an empty negative prompt.
            self.force_zeros_for_empty_negative = bool(
                pipe.config.get("force_zeros_for_empty_prompt", False)
            )
        elif name.startswith("StableDiffusion") and te is not None:
            self.kind = "sd"
            self.compels = [Compel(pipe.tokenizer, te, truncate_long_prompts=False)]

    def encode(self, prompts: list[str], negatives: list[str], *,
               guided: bool = True) -> dict[str, Any]:
        """Pipeline keyword arguments for these prompts (embeddings, or plain strings).
        Unguided (guidance ≤ 1: turbo drafts, diffusers then skips classifier-free
        guidance) the negative prompts are not encoded: nothing would read them, and a
        second text-encoder pass is a noticeable share of a 1-step draft."""
        if self.kind == "plain":
            return {"prompt": prompts, "negative_prompt": negatives}
        negatives = negatives if guided else []
        texts = prompts + negatives
        n = len(prompts)
        if self.kind == "sd":
            embeds = self._embed_all(self.compels[0], texts)
            out = {"prompt_embeds": torch.cat(embeds[:n])}
            if negatives:
                out["negative_prompt_embeds"] = torch.cat(embeds[n:])
            return out
        return self._encode_sdxl(texts, n, negatives)

    def _encode_sdxl(self, texts: list[str], n: int, negatives: list[str]) -> dict[str, Any]:
        first, second = self.compels
        left, right = self._embed_all(first, texts), self._embed_all(second, texts)
        length = max(left[0].shape[1], right[0].shape[1])
        left, right = _pad_to(first, left, length), _pad_to(second, right, length)
        embeds = [torch.cat(pair, dim=-1) for pair in zip(left, right, strict=True)]
        provider = second.conditioning_provider
        pooled_by_text = {t: provider.get_pooled_embeddings([t], device=second.device)
                          for t in dict.fromkeys(texts)}
        pooled = [pooled_by_text[t] for t in texts]
        if self.force_zeros_for_empty_negative:
            for i, negative in enumerate(negatives, start=n):
                if not negative:
                    embeds[i], pooled[i] = torch.zeros_like(embeds[i]), torch.zeros_like(pooled[i])
        out = {"prompt_embeds": torch.cat(embeds[:n]),
               "pooled_prompt_embeds": torch.cat(pooled[:n])}
        if negatives:
            out["negative_prompt_embeds"] = torch.cat(embeds[n:])
            out["negative_pooled_prompt_embeds"] = torch.cat(pooled[n:])
        return out

    @staticmethod
    def _embed_all(compel: Any, texts: list[str]) -> list[torch.Tensor]:
        # Each distinct text once: a 4-picture job repeats its prompt and negative 4 times.
        by_text = {
            text: compel.conditioning_provider.get_embeddings_for_weighted_prompt_fragments(
                text_batch=[[text]], fragment_weights_batch=[[1.0]], device=compel.device
            )
            for text in dict.fromkeys(texts)
        }
        embeds = [by_text[text] for text in texts]
        return list(compel.pad_conditioning_tensors_to_same_length(embeds))


def _pad_to(compel: Any, embeds: list[torch.Tensor], length: int) -> list[torch.Tensor]:
    """Pad same-length embeddings with compel's empty-prompt chunks up to `length` tokens."""
    if embeds[0].shape[1] >= length:
        return embeds
    # A zero "guide" of the target length makes compel pad the others to it; then drop it.
    guide = embeds[0].new_zeros((1, length, embeds[0].shape[2]))
    return list(compel.pad_conditioning_tensors_to_same_length([*embeds, guide]))[:-1]
