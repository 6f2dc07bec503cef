"""🎞 The journey of a picture: the model's predicted final image (x0) at some steps of a
re-render, each decoded with the real VAE.

diffusers' step callback sees only the latents, which are noise until the last steps; the
prediction of the finished picture that the scheduler makes at every step shows the picture
forming. `X0Recorder` wraps `scheduler.step` for one call and keeps that prediction: the
schedulers' own `pred_original_sample` (Euler, Euler a, DDIM, LMS, Heun) or `denoised`
(LCM), else it is computed from the noise prediction (DPM++, UniPC, PLMS return only the
next sample). Frames are decoded with the full VAE, not the cheap preview: the member keeps
them as pictures. That costs one VAE decode per frame, on the worker thread (a GPU job like
any other), and `journey_steps` keeps the frames to at most 25.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from PIL import Image

MOST_FRAMES = 25  # a select menu's options: every frame can be kept
AIM_FRAMES = 20  # a long run is sampled every ceil(total / 20) steps


def journey_steps(total: int) -> tuple[int, ...]:
    """The 1-based steps whose x0 becomes a frame: every step of a short run, every k-th
    of a long one (at most MOST_FRAMES), always the last."""
    if total <= MOST_FRAMES:
        return tuple(range(1, total + 1))
    every = math.ceil(total / AIM_FRAMES)
    steps = list(range(every, total + 1, every))
    if steps[-1] != total:
        steps.append(total)
    return tuple(steps)


class X0Recorder:
    """Keeps the predicted original sample of the latest `scheduler.step` (see the module
    docstring); `latest` is None before the first step."""

    def __init__(self) -> None:
        self.latest: torch.Tensor | None = None

    @contextmanager
    def installed(self, scheduler: Any) -> Iterator[None]:
        """Wrap `scheduler.step` for the duration (an instance attribute over the class's
        method; the engine is used from one thread, so nothing else sees it)."""
        original: Callable[..., Any] = scheduler.step

        # wraps: pipelines read step's signature to decide whether to pass `eta` and the
        # `generator` (Euler a's noise); the wrapper must show the original's.
        @functools.wraps(original)
        def step(model_output: torch.Tensor, timestep: Any, sample: torch.Tensor,
                 *args: Any, return_dict: bool = True, **kwargs: Any) -> Any:
            out = original(model_output, timestep, sample, *args, return_dict=True, **kwargs)
            x0 = getattr(out, "pred_original_sample", None)
            if x0 is None:
                x0 = getattr(out, "denoised", None)
            if x0 is None:
                x0 = _x0_from_noise(scheduler, model_output, timestep, sample)
            self.latest = x0
            # What return_dict=False returns: the output's fields that are set, in order.
            return out if return_dict else out.to_tuple()

        scheduler.step = step
        try:
            yield
        finally:
            del scheduler.step  # the class's method again


def _x0_from_noise(scheduler: Any, model_output: torch.Tensor, timestep: Any,
                   sample: torch.Tensor) -> torch.Tensor:
    """x0 = (x_t - sqrt(1 - ᾱ_t) ε) / sqrt(ᾱ_t) (or its v- and sample-prediction forms), for
    the DDPM-family schedulers that keep x_t unscaled; without ᾱ, the latents themselves."""
    alphas = getattr(scheduler, "alphas_cumprod", None)
    if alphas is None:
        return sample
    index = min(max(int(timestep), 0), len(alphas) - 1)
    a = alphas[index].to(device=sample.device, dtype=torch.float32)
    x, out = sample.float(), model_output.float()
    kind = scheduler.config.get("prediction_type", "epsilon")
    if kind == "v_prediction":
        x0 = a.sqrt() * x - (1 - a).sqrt() * out
    elif kind == "sample":
        x0 = out
    else:
        x0 = (x - (1 - a).sqrt() * out) / a.sqrt()
    return x0.to(sample.dtype)


def decode_frames(pipe: Any, latents: torch.Tensor) -> list[Image.Image]:
    """Latents → pictures, as the pipeline's own final decode does (scaling factor, SDXL's
    latent mean and std, the fp16 VAE upcast some SDXL VAEs need)."""
    vae = pipe.vae
    config = vae.config
    mean, std = getattr(config, "latents_mean", None), getattr(config, "latents_std", None)
    if mean is not None and std is not None:
        shape = (1, len(mean), 1, 1)
        mean_t = torch.tensor(mean).view(shape).to(latents.device, latents.dtype)
        std_t = torch.tensor(std).view(shape).to(latents.device, latents.dtype)
        latents = latents * std_t / config.scaling_factor + mean_t
    else:
        latents = latents / config.scaling_factor
    upcast = vae.dtype == torch.float16 and bool(getattr(config, "force_upcast", False))
    if upcast:
        vae.to(dtype=torch.float32)
    try:
        decoded = vae.decode(latents.to(vae.dtype), return_dict=False)[0]
    finally:
        if upcast:
            vae.to(dtype=torch.float16)
    images: list[Image.Image] = pipe.image_processor.postprocess(decoded, output_type="pil")
    return images
