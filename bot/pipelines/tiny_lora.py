"""A tiny random LoRA for the tiny image model (bot.pipelines.tiny), for offline tests.

`build_tiny_lora(pipeline_dir, out_file)` adds a seeded random peft LoRA to the tiny UNet's
attention projections (and, by default, the text encoder's), and writes it the way diffusers'
training scripts do (`save_lora_weights`), so `load_lora_weights` reads it like a real one.
Unlike a freshly initialised LoRA (B = 0, a no-op), both factors are random: it changes the
picture.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
TEXT_ENCODER_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")
# peft's random B is as large as A (kaiming); scaled down so the tiny model's pictures move
# clearly but stay away from saturation, where different weights could give equal pixels.
_B_SCALE = 0.5


def build_tiny_lora(pipeline_dir: Path, out_file: Path, *, seed: int = 0, rank: int = 4,
                    text_encoder: bool = True) -> Path:
    """Write a random LoRA for the tiny SD pipeline in `pipeline_dir` to `out_file`
    (a .safetensors file; skipped when it already exists). Returns `out_file`."""
    out_file = Path(out_file)
    if out_file.is_file():
        return out_file
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig, get_peft_model_state_dict
    from transformers import CLIPTextModel

    pipeline_dir = Path(pipeline_dir)
    torch.manual_seed(seed)
    unet: Any = UNet2DConditionModel.from_pretrained(str(pipeline_dir), subfolder="unet")
    unet.add_adapter(_config(LoraConfig, rank, UNET_TARGETS))
    layers: dict[str, Any] = {"unet_lora_layers": convert_state_dict_to_diffusers(
        _scaled(get_peft_model_state_dict(unet)))}
    if text_encoder:
        encoder: Any = CLIPTextModel.from_pretrained(str(pipeline_dir / "text_encoder"))
        encoder.add_adapter(_config(LoraConfig, rank, TEXT_ENCODER_TARGETS))
        layers["text_encoder_lora_layers"] = convert_state_dict_to_diffusers(
            _scaled(get_peft_model_state_dict(encoder)))
    # Written next to the target and renamed: an interrupted build leaves no file to reuse.
    out_file.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_file.parent) as tmp:
        StableDiffusionPipeline.save_lora_weights(tmp, weight_name=out_file.name, **layers)
        os.replace(Path(tmp) / out_file.name, out_file)
    return out_file


def _config(config_class: Any, rank: int, targets: tuple[str, ...]) -> Any:
    # lora_alpha = rank: a scale of 1, which is what a loader assumes without metadata.
    return config_class(r=rank, lora_alpha=rank, target_modules=list(targets),
                        init_lora_weights=False)


def _scaled(state: dict[str, Any]) -> dict[str, Any]:
    """peft's state dict (A and B already random: init_lora_weights=False), B scaled down."""
    return {key: (value * _B_SCALE if "lora_B" in key else value).detach().contiguous()
            for key, value in state.items()}
