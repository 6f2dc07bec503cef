"""Options to job parameters: defaults, limits with clear messages, style sweeps, seeds."""

from __future__ import annotations

import pytest

from bot.config import ImageSettings
from bot.executor.jobs import ImageMode, Job
from bot.images.requests import (
    ALL_STYLES,
    ImageOptions,
    OptionError,
    build_image_params,
    derived,
    rerolled,
    restyled,
    size_for,
)
from bot.pipelines.diffusion import ImageModelOptions
from bot.pipelines.runner import ModelRunner
from bot.pipelines.text import TextModelOptions
from bot.prompts import PromptError, StylePreset, find_style

SETTINGS = ImageSettings()


def test_defaults_and_seed_series() -> None:
    p = build_image_params(ImageOptions(prompt="Oregon 💚|watercolor", seed=41), SETTINGS)
    assert p.subject == "Oregon 💚"
    assert p.style == "watercolor"
    assert p.prompt.startswith("Oregon 💚, watercolor")
    assert p.seeds == (41, 42, 43, 44)
    assert (p.steps, p.guidance, p.width, p.height) == (25, 7.0, 512, 512)
    assert "watermark" in p.negative


@pytest.mark.parametrize(("aspect", "size"), [("1:1", (512, 512)), ("3:2", (640, 448)),
                                              ("2:3", (448, 640)), ("16:9", (704, 384)),
                                              ("9:16", (384, 704))])
def test_aspects_keep_about_the_same_area(aspect: str, size: tuple[int, int]) -> None:
    assert size_for(aspect, SETTINGS) == size


@pytest.mark.parametrize(("options", "message"), [
    (ImageOptions(prompt="x", steps=61), "steps = 61 is out of range; choose 1-60."),
    (ImageOptions(prompt="x", count=5), "count = 5 is out of range; choose 1-4."),
    (ImageOptions(prompt="x", guidance=31), "guidance = 31 is out of range; choose 0-30."),
    (ImageOptions(prompt="x", aspect="4:3"), "aspect '4:3' is not offered; choose one of: 1:1"),
    (ImageOptions(prompt="x", seed=-1), "seed = -1 is out of range"),
])
def test_bad_options_say_what_is_allowed(options: ImageOptions, message: str) -> None:
    with pytest.raises(OptionError) as info:
        build_image_params(options, SETTINGS)
    assert message in str(info.value)


def test_unknown_style_option_lists_presets() -> None:
    with pytest.raises(PromptError, match="painting"):
        build_image_params(ImageOptions(prompt="x", style="vaporwave"), SETTINGS)


def test_all_styles_sweep_one_image_per_preset_same_seed() -> None:
    p = build_image_params(ImageOptions(prompt="Oregon 💚", style=ALL_STYLES, seed=7), SETTINGS)
    assert p.labels == tuple(s.name for s in SETTINGS.styles)
    assert set(p.seeds) == {7} and len(p.seeds) == len(SETTINGS.styles)
    assert all(pr.startswith("Oregon 💚, ") for pr in p.prompts)
    assert len(set(p.prompts)) == len(p.prompts)


def test_a_sweep_over_more_presets_than_max_sweep_takes_the_first_and_says_so() -> None:
    presets = tuple(StylePreset(f"style {i}", f"phrase {i}") for i in range(12))
    settings = ImageSettings(styles=presets, max_sweep=8)
    p = build_image_params(ImageOptions(prompt="a fox", style=ALL_STYLES, seed=3), settings)
    assert p.labels == tuple(f"style {i}" for i in range(8))
    assert p.count == len(p.prompts) == 8 and p.styles_left_out == 4
    assert rerolled(p).styles_left_out == 4  # 🔄 makes the same capped sweep again
    # Each picture counts as one image: against the batch limit and in the ETA.
    job = Job(user_id=1, params=p)
    runner = ModelRunner(ImageModelOptions(model="unused"), TextModelOptions(model="unused"))
    assert runner.batch_size(job) == 8
    assert job.work_units == p.steps * 8
    # Presets within the cap: all of them, nothing left out.
    few = build_image_params(ImageOptions(prompt="a fox", style=ALL_STYLES),
                             ImageSettings(styles=presets[:5], max_sweep=8))
    assert few.count == 5 and few.styles_left_out == 0


def test_reroll_restyle_and_derive() -> None:
    p = build_image_params(ImageOptions(prompt="a fox", seed=5, count=2), SETTINGS)
    again = rerolled(p)
    assert again.count == 2 and again.prompt == p.prompt and again.seeds != p.seeds
    cyber = restyled(p, find_style(SETTINGS.styles, "cyberpunk"), SETTINGS)  # type: ignore[arg-type]
    assert cyber.seeds == p.seeds and cyber.style == "cyberpunk" and "neon" in cyber.prompt
    up = derived(p, ImageMode.UPSCALE, 1, "abc123", "/x.png", 0.3)
    assert (up.mode, up.seeds, up.source_index, up.source_path) == (ImageMode.UPSCALE, (6,), 1,
                                                                    "/x.png")
    var = derived(p, ImageMode.VARIATION, 0, "abc123", "/x.png", 0.55)
    assert var.count == 4 and var.strength == 0.55


# ----- several models, families, drafts ---------------------------------------------------

def _several() -> ImageSettings:
    from bot.config import settings_from_mapping

    return settings_from_mapping({"image": {
        "model": "sd15", "draft_model": "turbo",
        "models": {"sd15": {"path": "stable-diffusion-v1-5/stable-diffusion-v1-5",
                            "negative_prompt": "blurry"},
                   "xl": {"path": "stabilityai/stable-diffusion-xl-base-1.0", "steps": 30},
                   "turbo": {"path": "stabilityai/sd-turbo", "family": "turbo"},
                   "lcm": {"path": "stable-diffusion-v1-5/stable-diffusion-v1-5",
                           "lora": "lcm"}},
        "loras": {"lcm": {"path": "latent-consistency/lcm-lora-sdv1-5", "weight": 1.0},
                  "pixel": {"path": "loras/pixel.safetensors", "triggers": ["pixel art"]}},
        "max_side": 1344}}).image


def _catalog(settings: ImageSettings):  # type: ignore[no-untyped-def]
    from bot.images.models import ModelCatalog

    return ModelCatalog.read(settings)


def test_the_model_and_its_defaults_are_recorded() -> None:
    settings = _several()
    p = build_image_params(ImageOptions(prompt="a fox"), settings, catalog=_catalog(settings))
    assert (p.model, p.steps, p.negative) == ("sd15", 25, "blurry")
    xl = build_image_params(ImageOptions(prompt="a fox", model="XL", aspect="16:9"), settings,
                            catalog=_catalog(settings))
    assert (xl.model, xl.steps, xl.width, xl.height) == ("xl", 30, 1344, 768)  # SDXL's bucket
    turbo = build_image_params(ImageOptions(prompt="a fox", model="turbo"), settings,
                               catalog=_catalog(settings))
    assert (turbo.steps, turbo.guidance) == (1, 0.0)
    lcm = build_image_params(ImageOptions(prompt="a fox", model="lcm"), settings,
                             catalog=_catalog(settings))
    # The model's own LoRA is the runner's to apply, not the job's.
    assert (lcm.steps, lcm.guidance, lcm.loras) == (4, 1.5, ())


@pytest.mark.parametrize(("options", "message"), [
    (ImageOptions(prompt="x", model="turbo", steps=25),
     "steps = 25 is out of range for the model turbo (a turbo model); choose 1-4."),
    (ImageOptions(prompt="x", model="turbo", guidance=7),
     "guidance = 7 is out of range for the model turbo (a turbo model); choose 0-1."),
    (ImageOptions(prompt="x", model="lcm", steps=20),
     "steps = 20 is out of range for the model lcm (an LCM model); choose 1-8."),
    (ImageOptions(prompt="x", model="dalle"),
     "model: model 'dalle' is not offered here; choose one of: sd15, xl, turbo, lcm."),
])
def test_out_of_family_values_are_refused_clearly(options: ImageOptions, message: str) -> None:
    settings = _several()
    with pytest.raises(OptionError) as info:
        build_image_params(options, settings, catalog=_catalog(settings))
    assert str(info.value) == message


def test_loras_by_option_and_inline_with_their_trigger_words() -> None:
    settings = _several()
    p = build_image_params(ImageOptions(prompt="a castle <lora:pixel:0.6> | watercolor"),
                           settings, catalog=_catalog(settings))
    assert p.loras == (("pixel", 0.6),)
    assert "<lora" not in p.prompt and "pixel art" in p.subject
    q = build_image_params(ImageOptions(prompt="a castle", loras=(("Pixel", None),)),
                           settings, catalog=_catalog(settings))
    assert q.loras == (("pixel", 0.8),)
    with pytest.raises(PromptError, match="pixel"):
        build_image_params(ImageOptions(prompt="a castle <lora:nope:1>"), settings,
                           catalog=_catalog(settings))


def test_a_draft_renders_with_the_draft_model_and_finalizes_with_the_chosen_one() -> None:
    from bot.images.requests import drafted, finalized

    settings = _several()
    catalog = _catalog(settings)
    p = build_image_params(ImageOptions(prompt="a fox", model="xl", draft=True, seed=7),
                           settings, catalog=catalog)
    assert (p.model, p.draft, p.final_model, p.steps, p.guidance) == ("turbo", True, "xl", 1,
                                                                       0.0)
    done = finalized(p, 2, "draftjob", "/x/2.png", settings, catalog)
    assert (done.model, done.mode, done.strength, done.seeds) == ("xl", ImageMode.IMG2IMG,
                                                                  0.55, (9,))
    assert (done.steps, done.width, done.height, done.draft) == (30, 1024, 1024, False)
    assert (done.source_job, done.source_path, done.source_index) == ("draftjob", "/x/2.png", 2)
    # ⚡ on a final result: its seeds as drafts, finalized back with its own model.
    final = build_image_params(ImageOptions(prompt="a fox", model="xl", seed=3, aspect="3:2"),
                               settings, catalog=catalog)
    d = drafted(final, settings, catalog)
    assert (d.model, d.final_model, d.seeds, d.steps) == ("turbo", "xl", (3, 4, 5, 6), 1)
    assert d.width > d.height
    with pytest.raises(OptionError, match=r"image\.draft_model"):
        build_image_params(ImageOptions(prompt="a fox", draft=True), SETTINGS)


def test_buttons_keep_the_parent_model_and_loras() -> None:
    settings = _several()
    p = build_image_params(ImageOptions(prompt="a fox <lora:pixel>", model="xl"), settings,
                           catalog=_catalog(settings))
    for child in (rerolled(p), derived(p, ImageMode.VARIATION, 0, "j", "/x.png", 0.5),
                  restyled(p, settings.styles[0], settings)):
        assert (child.model, child.loras) == ("xl", (("pixel", 0.8),))
