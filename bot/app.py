"""The composition root: settings in, wired objects out. Nothing here is a global."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from bot.config import Settings
from bot.engine import ModelRunner
from bot.executor.executor import ExecutorLimits
from bot.prompts import find_blocked_term

if TYPE_CHECKING:
    from bot.pipelines.diffusion import ImageModelOptions
    from bot.pipelines.text import TextModelOptions


def image_options(settings: Settings) -> ImageModelOptions:
    from bot.pipelines.diffusion import ImageModelOptions

    s = settings.image
    return ImageModelOptions(
        model=str(s.model), scheduler=s.scheduler, device=s.device, dtype=s.dtype,
        attention_slicing=s.attention_slicing, vae_tiling=s.vae_tiling,
        cpu_offload=s.cpu_offload, safety_checker=s.safety_checker,
        upscaler=s.upscaler or None, preview_vae=s.preview_vae or None, compile=s.compile,
    )


def text_options(settings: Settings) -> TextModelOptions:
    from bot.pipelines.text import TextModelOptions

    s = settings.story
    return TextModelOptions(
        model=s.model, device=settings.image.device, dtype=settings.image.dtype,
        max_new_tokens=s.max_new_tokens, temperature=s.temperature, top_p=s.top_p,
        top_k=s.top_k, repetition_penalty=s.repetition_penalty,
        context_tokens=s.context_tokens, attempts=s.attempts,
    )


def build_runner(settings: Settings) -> ModelRunner:
    terms = settings.safety.blocked_terms
    return ModelRunner(
        image_options(settings),
        text_options(settings),
        blocked_term=lambda text: find_blocked_term(text, terms),
    )


def executor_limits(settings: Settings) -> ExecutorLimits:
    e = settings.executor
    return ExecutorLimits(
        queue_limit=e.queue_limit,
        per_user_limit=e.per_user_limit,
        batch_limit=e.batch_limit,
        preview_every=settings.image.preview_every,
    )


def with_model(settings: Settings, model: str | None) -> Settings:
    """Settings with another image model (the CLI's --model)."""
    if not model:
        return settings
    return replace(settings, image=replace(settings.image, model=model))
