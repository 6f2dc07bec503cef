"""Model families from config files (no loading): the rules each family brings."""

from __future__ import annotations

import json
from pathlib import Path

from bot.pipelines.families import (
    FAMILY_RULES,
    LCM,
    SD,
    SDXL,
    TURBO,
    ModelFacts,
    default_native_size,
    detect_family,
    read_model_facts,
)
from bot.pipelines.tiny import TinyModelPaths


def _write(folder: Path, name: str, data: dict[str, object]) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def test_the_tiny_model_reads_as_stable_diffusion(tiny_models: TinyModelPaths) -> None:
    facts = read_model_facts(str(tiny_models.image))
    assert facts.pipeline_class == "StableDiffusionPipeline"
    assert facts.native_size == 64  # sample size 32 × a 2-block VAE's scale 2
    assert detect_family(facts, str(tiny_models.image)) == SD


def test_family_from_the_scheduler_config(tmp_path: Path) -> None:
    _write(tmp_path, "model_index.json", {"_class_name": "StableDiffusionPipeline"})
    _write(tmp_path, "scheduler/scheduler_config.json", {"_class_name": "LCMScheduler"})
    assert detect_family(read_model_facts(str(tmp_path)), "models/dreamshaper") == LCM
    _write(tmp_path, "scheduler/scheduler_config.json",
           {"_class_name": "EulerAncestralDiscreteScheduler", "timestep_spacing": "trailing"})
    assert detect_family(read_model_facts(str(tmp_path)), "models/x") == TURBO
    _write(tmp_path, "model_index.json", {"_class_name": "StableDiffusionXLPipeline"})
    _write(tmp_path, "scheduler/scheduler_config.json",
           {"_class_name": "EulerDiscreteScheduler", "timestep_spacing": "leading"})
    assert detect_family(read_model_facts(str(tmp_path)), "models/x") == SDXL


def test_a_declared_family_wins_and_names_help_for_uncached_hub_ids() -> None:
    assert detect_family(ModelFacts(pipeline_class="StableDiffusionPipeline"), "a/b",
                         declared=TURBO) == TURBO
    assert detect_family(ModelFacts(), "stabilityai/sdxl-turbo") == TURBO
    assert detect_family(ModelFacts(), "stabilityai/stable-diffusion-xl-base-1.0") == SDXL
    # An LCM-LoRA on a base model makes it an LCM model.
    assert detect_family(ModelFacts(), "runwayml/sd15", lora_paths=("latent-consistency/"
                                                                    "lcm-lora-sdv1-5",)) == LCM
    assert detect_family(ModelFacts(), "stable-diffusion-v1-5/stable-diffusion-v1-5") == SD


def test_family_rules() -> None:
    assert FAMILY_RULES[TURBO].steps_range == (1, 4) and FAMILY_RULES[TURBO].guidance == 0
    assert FAMILY_RULES[LCM].scheduler == "lcm"
    assert FAMILY_RULES[SDXL].buckets and FAMILY_RULES[SDXL].buckets["16:9"] == (1344, 768)
    assert default_native_size(SDXL, ModelFacts()) == 1024
    assert default_native_size(SD, ModelFacts()) == 512
    assert default_native_size(SD, ModelFacts(native_size=768)) == 768


def test_missing_or_broken_files_read_as_unknown(tmp_path: Path) -> None:
    (tmp_path / "model_index.json").write_text("{not json")
    assert read_model_facts(str(tmp_path)) == ModelFacts()
    assert read_model_facts("nobody/nothing-cached") == ModelFacts()
