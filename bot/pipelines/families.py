"""Model families and the settings each one wants, read from a model's config files.

A turbo model (SD-Turbo, SDXL-Turbo) makes a picture in 1-4 steps without guidance; an LCM
model (or a base model with an LCM-LoRA) wants the LCM scheduler, about 4-8 steps and
guidance 1-2; SDXL renders at 1024² and its own aspect buckets. A member who asks a turbo
model for 30 steps at guidance 7 gets mush, so requests are checked against the family.

Importing this module is cheap (no torch, diffusers or transformers): the bot reads the
families on the event loop's side, from the JSON files `save_pretrained` writes, or from the
hub cache for a hub id (never the network).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SD, SDXL, TURBO, LCM = "sd", "sdxl", "turbo", "lcm"

# SDXL's trained aspect buckets (about one megapixel each), by the aspects /imagine offers.
SDXL_BUCKETS: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024), "3:2": (1216, 832), "2:3": (832, 1216),
    "16:9": (1344, 768), "9:16": (768, 1344),
}


@dataclass(frozen=True)
class FamilyRules:
    """What a family wants. None: the [image] setting (or the model section's) applies."""

    name: str
    label: str  # for messages: "a turbo model"
    steps: int | None = None
    steps_range: tuple[int, int] | None = None
    guidance: float | None = None
    guidance_range: tuple[float, float] | None = None
    scheduler: str | None = None  # the sampler it must use; None: the configured one
    buckets: Mapping[str, tuple[int, int]] | None = None  # native sizes by aspect


FAMILY_RULES: dict[str, FamilyRules] = {
    SD: FamilyRules(SD, "a Stable Diffusion 1.x/2.x model"),
    SDXL: FamilyRules(SDXL, "an SDXL model", buckets=SDXL_BUCKETS),
    TURBO: FamilyRules(TURBO, "a turbo model", steps=1, steps_range=(1, 4), guidance=0.0,
                       guidance_range=(0.0, 1.0)),
    LCM: FamilyRules(LCM, "an LCM model", steps=4, steps_range=(1, 8), guidance=1.5,
                     guidance_range=(0.0, 2.0), scheduler="lcm"),
}


@dataclass(frozen=True)
class ModelFacts:
    """What a model's config files say, read without loading it."""

    pipeline_class: str = ""  # model_index.json's _class_name ("" when unknown)
    scheduler_class: str = ""
    timestep_spacing: str = ""
    native_size: int = 0  # the UNet's sample size times the VAE's scale; 0 when unknown


def detect_family(facts: ModelFacts, name: str = "", declared: str = "",
                  lora_paths: tuple[str, ...] = ()) -> str:
    """The family: as declared in the model's section, else from its scheduler config and
    pipeline class (and, for hub ids not in the cache, the words in its name)."""
    if declared:
        return declared
    words = f"{name} {' '.join(lora_paths)}".casefold()
    if facts.scheduler_class == "LCMScheduler" or "lcm" in words:
        return LCM
    # Distilled few-step models (SD-Turbo, SDXL-Turbo) ship a scheduler with trailing
    # timestep spacing, which base checkpoints don't.
    if facts.timestep_spacing == "trailing" or "turbo" in words:
        return TURBO
    if facts.pipeline_class.startswith("StableDiffusionXL") or "xl" in name.casefold().split(
            "/")[-1].replace("-", " ").split():
        return SDXL
    return SD


def read_model_facts(source: str) -> ModelFacts:
    """Facts from a folder written by save_pretrained, or a hub id's cached files."""
    index = _read_json(source, "model_index.json")
    scheduler = _read_json(source, "scheduler/scheduler_config.json")
    unet = _read_json(source, "unet/config.json")
    vae = _read_json(source, "vae/config.json")
    native = 0
    sample = unet.get("sample_size")
    blocks = vae.get("block_out_channels")
    if sample and blocks:
        side = sample if isinstance(sample, int) else max(sample)
        native = int(side) * 2 ** (len(blocks) - 1)
    return ModelFacts(
        pipeline_class=str(index.get("_class_name", "")),
        scheduler_class=str(scheduler.get("_class_name", "")),
        timestep_spacing=str(scheduler.get("timestep_spacing", "")),
        native_size=native,
    )


def default_native_size(family: str, facts: ModelFacts) -> int:
    """The native side when the files do not tell: 1024 for SDXL, else 512."""
    if facts.native_size:
        return facts.native_size
    return 1024 if family == SDXL else 512


def _read_json(source: str, filename: str) -> dict[str, Any]:
    path = Path(source).expanduser() / filename
    if not path.is_file():
        cached = _hub_cached(source, filename)
        if cached is None:
            return {}
        path = cached
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _hub_cached(repo_id: str, filename: str) -> Path | None:
    if repo_id.count("/") != 1 or repo_id.startswith(("/", ".", "~")):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return None
    try:
        found = try_to_load_from_cache(repo_id, filename)
    except ValueError:  # not a valid repo id
        return None
    return Path(found) if isinstance(found, str) else None
