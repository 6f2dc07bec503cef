"""Settings to the runner for several models: each model's options (its sampler, family's
first), LoRAs, the pool's memory settings, batch_limit "auto"; warm-up loads the default
model and only checks the others."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.app import build_runner, executor_limits, image_pool, lora_sources, model_loras
from bot.config import AUTO_BATCH_MAX, Settings, settings_from_mapping
from bot.pipelines.errors import ModelLoadError
from bot.pipelines.lora import LoraSource
from bot.pipelines.tiny import TinyModelPaths, build_tiny_lcm_model, build_tiny_sdxl_model


@pytest.fixture(scope="module")
def lcm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_lcm_model(tmp_path_factory.mktemp("lcm") / "lcm")


def settings_for(tiny: TinyModelPaths, models: dict[str, Any], **image: Any) -> Settings:
    return settings_from_mapping({
        "image": {"model": "base", "device": "cpu", "models": models, **image},
        "story": {"model": str(tiny.story)},
    })


def test_each_model_gets_its_path_and_sampler(tiny_models: TinyModelPaths, lcm: Path,
                                              tmp_path: Path) -> None:
    xl = build_tiny_sdxl_model(tmp_path / "xl")
    settings = settings_for(tiny_models, {
        "base": {"path": str(tiny_models.image)},
        "fast": {"path": str(lcm)},  # an LCMScheduler config: the LCM family
        "euler": {"path": str(tiny_models.image), "scheduler": "euler"},
        "xl": {"path": str(xl)},
    }, scheduler="dpmpp_2m", inpaint_model="some/inpainter", preview_vae="some/taesd",
        max_loaded=2, park_in_ram=True)
    pool = image_pool(settings)
    assert pool.names == ("base", "fast", "euler", "xl") and pool.default == "base"
    assert pool.max_loaded == 2 and pool.park_in_ram
    assert pool.options("fast").model == str(lcm)
    assert [pool.options(n).scheduler for n in pool.names] == [
        "dpmpp_2m", "lcm", "euler", "dpmpp_2m"]
    # Inpainting stays the default model's; the preview VAE only where the latents match.
    assert [pool.options(n).inpaint_model for n in pool.names] == [
        "some/inpainter", None, None, None]
    assert [pool.options(n).preview_vae for n in pool.names] == [
        "some/taesd", "some/taesd", "some/taesd", None]
    assert all(pool.options(n).device == "cpu" for n in pool.names)


def test_loras_and_a_models_own_one(tiny_models: TinyModelPaths, tmp_path: Path) -> None:
    settings = settings_for(
        tiny_models, {"base": {"path": str(tiny_models.image), "lora": "Grain"}},
        loras={"grain": {"path": str(tmp_path / "grain.safetensors"), "weight": 0.6},
               "dust": {"path": "owner/dust", "weight_name": "dust.safetensors"}})
    assert lora_sources(settings) == {
        "grain": LoraSource("grain", str(tmp_path / "grain.safetensors")),
        "dust": LoraSource("dust", "owner/dust", "dust.safetensors")}
    assert model_loras(settings) == {"base": (("grain", 0.6),)}
    runner = build_runner(settings)
    assert runner.model_loras == {"base": (("grain", 0.6),)}
    assert set(runner.loras) == {"grain", "dust"}


def test_batch_limit_auto_is_the_ceiling_with_the_runner_sizing() -> None:
    auto = executor_limits(Settings())
    assert auto.auto_batch and auto.batch_limit == AUTO_BATCH_MAX
    fixed = executor_limits(settings_from_mapping({"executor": {"batch_limit": 3}}))
    assert not fixed.auto_batch and fixed.batch_limit == 3


def test_warm_up_loads_the_default_and_checks_the_others(tiny_models: TinyModelPaths,
                                                         tmp_path: Path) -> None:
    good = settings_for(tiny_models, {"base": {"path": str(tiny_models.image)},
                                      "other": {"path": str(tiny_models.image)}})
    runner = build_runner(good)
    runner.warm_up()
    assert runner.pool.loads == {"base": 1}

    missing = settings_for(tiny_models, {"base": {"path": str(tiny_models.image)},
                                         "gone": {"path": str(tmp_path / "gone")}})
    runner = build_runner(missing)
    with pytest.raises(ModelLoadError, match=r"image\.models\.gone\.path"):
        runner.warm_up()
    assert "gone" not in runner.pool.loads
