"""The catalogue of models members may pick: names, defaults by family, suggestions."""

from __future__ import annotations

import pytest

from bot.config import ImageSettings, settings_from_mapping
from bot.images.models import ModelCatalog, UnknownModel, suggest_loras


def _image(**image: object) -> ImageSettings:
    return settings_from_mapping({"image": image}).image


SEVERAL = _image(
    model="sd15", draft_model="turbo",
    models={"sd15": {"path": "stable-diffusion-v1-5/stable-diffusion-v1-5",
                     "description": "quick and versatile", "steps": 20},
            "xl": {"path": "stabilityai/stable-diffusion-xl-base-1.0"},
            "turbo": {"path": "stabilityai/sd-turbo", "family": "turbo"},
            "lcm": {"path": "stable-diffusion-v1-5/stable-diffusion-v1-5", "lora": "lcm"}},
    loras={"lcm": {"path": "latent-consistency/lcm-lora-sdv1-5", "weight": 1.0},
           "pixel": {"path": "loras/pixel.safetensors", "triggers": ["pixel art"],
                     "description": "retro game look"}},
)


def test_one_model_configs_keep_working() -> None:
    catalog = ModelCatalog.read(ImageSettings(), {"stable-diffusion-v1-5": 512})
    assert [i.name for i in catalog] == ["stable-diffusion-v1-5"]
    assert catalog.default.family == "sd" and catalog.default.native_size == 512
    assert catalog.draft is None


def test_several_models_with_family_defaults() -> None:
    catalog = ModelCatalog.read(SEVERAL)
    assert [i.name for i in catalog] == ["sd15", "xl", "turbo", "lcm"]
    assert catalog.default.name == "sd15" and catalog.default.default_steps(SEVERAL) == 20
    xl, turbo, lcm = catalog.get("xl"), catalog.get("Turbo"), catalog.get("lcm")
    assert (xl.family, xl.native_size) == ("sdxl", 1024)
    assert (turbo.family, turbo.default_steps(SEVERAL), turbo.default_guidance(SEVERAL)) == (
        "turbo", 1, 0.0)
    assert turbo.steps_range(SEVERAL) == (1, 4)
    assert (lcm.family, lcm.scheduler(SEVERAL)) == ("lcm", "lcm")
    assert catalog.draft is turbo


def test_unknown_models_list_the_offered_ones() -> None:
    with pytest.raises(UnknownModel, match="choose one of: sd15, xl, turbo, lcm"):
        ModelCatalog.read(SEVERAL).get("midjourney")


def test_suggestions_match_names_then_descriptions() -> None:
    catalog = ModelCatalog.read(SEVERAL)
    assert [i.name for i in catalog.suggest("")] == ["sd15", "xl", "turbo", "lcm"]
    assert [i.name for i in catalog.suggest("versatile")] == ["sd15"]
    assert catalog.get("sd15").label == "sd15 — quick and versatile"
    assert catalog.get("turbo").label == "turbo — a turbo model"
    assert suggest_loras(SEVERAL, "retro") == [
        ("pixel", "pixel — retro game look (weight 0.8)")]
    assert [name for name, _ in suggest_loras(SEVERAL, "")] == ["lcm", "pixel"]


def test_families_are_detected_from_tiny_pipelines_files(tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    from bot.images.requests import ImageOptions, OptionError, build_image_params
    from bot.pipelines.tiny import build_tiny_lcm_model, build_tiny_turbo_model

    root = tmp_path_factory.mktemp("families")
    settings = _image(model="turbo", models={
        "turbo": {"path": str(build_tiny_turbo_model(root / "t"))},
        "lcm": {"path": str(build_tiny_lcm_model(root / "l"))}})
    catalog = ModelCatalog.read(settings)
    turbo, lcm = catalog.get("turbo"), catalog.get("lcm")
    assert (turbo.family, turbo.native_size, lcm.family) == ("turbo", 64, "lcm")
    p = build_image_params(ImageOptions(prompt="a fox"), settings, catalog=catalog)
    assert (p.steps, p.guidance, p.width) == (1, 0.0, 64)
    q = build_image_params(ImageOptions(prompt="a fox", model="lcm"), settings, catalog=catalog)
    assert (q.steps, q.guidance, lcm.scheduler(settings)) == (4, 1.5, "lcm")
    with pytest.raises(OptionError, match="choose 0-2"):
        build_image_params(ImageOptions(prompt="a fox", model="lcm", guidance=5), settings,
                           catalog=catalog)
