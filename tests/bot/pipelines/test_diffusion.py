"""ImageEngine on the tiny random-weight model, plus device, scheduler and preview helpers."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from bot.pipelines.device import cpu_computes_bf16, pick_device, pick_dtype
from bot.pipelines.diffusion import ImageEngine, ImageModelOptions, ImageSpec, ModelLoadError
from bot.pipelines.preview import latents_to_rgb
from bot.pipelines.schedulers import SCHEDULERS, a1111_name, make_scheduler, scheduler_names
from bot.pipelines.tiny import TinyModelPaths, build_tiny_sdxl_model

# Noise from the libraries (numpy 2 vs torch tensors in diffusers' schedulers; a deprecated
# huggingface_hub argument diffusers still passes), not from our code.
pytestmark = [
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The `local_dir_use_symlinks`:UserWarning"),
]

LONG_PROMPT = " ".join(
    f"a {adjective} castle on hill number {i}"
    for i, adjective in enumerate(["red", "tall", "misty", "ancient"] * 5)
)  # 120 words, well over CLIP's 77 tokens


def spec(prompt: str = "a cat in a hat", seed: int = 1, **changes: object) -> ImageSpec:
    base = ImageSpec(
        prompt=prompt, negative="blurry", seed=seed, steps=4, guidance=7.0, width=64, height=64
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float64)


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(pixels(a) - pixels(b)).mean())


@pytest.fixture
def engine(image_engine: ImageEngine) -> Iterator[ImageEngine]:
    yield image_engine
    image_engine.set_scheduler("euler_a")  # tests may switch the sampler


# -- loading ------------------------------------------------------------------------------------


def test_loaded_engine_facts(engine: ImageEngine, tiny_image_dir: Path) -> None:
    assert engine.model_name == tiny_image_dir.name == "image"  # not the host's path
    assert engine.default_size == 64
    assert engine.is_sdxl is False
    assert engine.family == "sd"
    assert engine.a1111_sampler == "Euler a"
    assert type(engine.pipe.scheduler).__name__ == "EulerAncestralDiscreteScheduler"
    assert engine.pipe.safety_checker is None


def test_missing_folder_is_a_clear_load_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelLoadError, match="does not exist") as info:
        ImageEngine(ImageModelOptions(model=str(missing))).load()
    assert str(missing) in str(info.value)


def test_folder_that_is_not_a_pipeline_is_a_clear_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"model_index\.json") as info:
        ImageEngine(ImageModelOptions(model=str(tmp_path))).load()
    assert str(tmp_path) in str(info.value)


def test_unknown_hub_id_offline_is_a_clear_load_error() -> None:
    name = "greenheart-tests/no-such-model"
    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE") as info:
        ImageEngine(ImageModelOptions(model=name)).load()
    message = str(info.value)
    assert name in message and "tiny-models" in message
    assert info.value.model == name


# -- txt2img ------------------------------------------------------------------------------------


def test_generate_one(engine: ImageEngine) -> None:
    out = engine.generate([spec()])
    assert len(out.images) == 1 and out.images[0].size == (64, 64)
    assert out.nsfw == [False]
    assert out.interrupted is False and out.seconds > 0


def test_same_seed_same_image_and_batch_matches_alone(engine: ImageEngine) -> None:
    alone = engine.generate([spec(seed=7)]).images[0]
    again = engine.generate([spec(seed=7)]).images[0]
    batch = engine.generate([spec(seed=7), spec("a dog on a boat", seed=8, negative="")])
    assert len(batch.images) == 2
    assert mean_abs_diff(alone, again) < 2
    assert mean_abs_diff(alone, batch.images[0]) < 2  # batched ≈ alone (±1 in uint8 is normal)
    assert mean_abs_diff(batch.images[0], batch.images[1]) > 10  # other seed and prompt


def test_different_seeds_differ(engine: ImageEngine) -> None:
    first, second = engine.generate([spec(seed=1), spec(seed=2)]).images
    assert mean_abs_diff(first, second) > 10


def test_batch_must_share_settings(engine: ImageEngine) -> None:
    with pytest.raises(ValueError, match="share"):
        engine.generate([spec(), spec(steps=5)])
    with pytest.raises(ValueError, match="multiples of 8"):
        engine.generate([spec(width=60)])


def test_long_prompt_is_encoded_whole(engine: ImageEngine) -> None:
    assert engine._encoder is not None
    tokens = engine.pipe.tokenizer(LONG_PROMPT)["input_ids"]
    assert len(tokens) > 77
    embeds = engine._encoder.encode([LONG_PROMPT, "a cat"], ["", "blurry"])
    assert embeds["prompt_embeds"].shape[0] == 2
    assert embeds["prompt_embeds"].shape[1] >= 2 * 77  # chunks, not a 77-token cut
    assert embeds["negative_prompt_embeds"].shape == embeds["prompt_embeds"].shape
    out = engine.generate([spec(LONG_PROMPT)])
    assert out.images[0].size == (64, 64)


def test_prompt_syntax_and_emoji_are_taken_literally(engine: ImageEngine) -> None:
    """Short prompts give exactly the pipeline's own embeddings: compel syntax is not parsed."""
    assert engine._encoder is not None
    prompt = 'a (cat)1.5 ++ in a [hat] --, 🐱🎩 "quoted".blend() AND x'
    ours = engine._encoder.encode([prompt], ["ugly (bad)0.5"])
    with torch.inference_mode():
        theirs, negative = engine.pipe.encode_prompt(prompt, "cpu", 1, True, "ugly (bad)0.5")
    torch.testing.assert_close(ours["prompt_embeds"], theirs, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(ours["negative_prompt_embeds"], negative, atol=1e-5, rtol=1e-4)
    out = engine.generate([spec("🐉🔥 dragon ✨ (((epic)))")])
    assert out.images[0].size == (64, 64)


# -- steps, previews, interruption -------------------------------------------------------------


def test_on_step_runs_every_step_with_lazy_previews(engine: ImageEngine) -> None:
    seen: list[tuple[int, int, int]] = []

    def on_step(step: int, total: int, preview: object) -> None:
        images = preview()  # type: ignore[operator]
        assert all(isinstance(im, Image.Image) for im in images)
        seen.append((step, total, len(images)))

    engine.generate([spec(seed=1), spec(seed=2)], on_step=on_step)
    assert seen == [(1, 4, 2), (2, 4, 2), (3, 4, 2), (4, 4, 2)]


def test_preview_every_limits_previews(engine: ImageEngine) -> None:
    counts: list[int] = []
    engine.generate(
        [spec(steps=5)], on_step=lambda s, t, p: counts.append(len(p())), preview_every=2
    )
    assert counts == [0, 1, 0, 1, 1]  # steps 2 and 4, and always the last


def test_should_stop_interrupts_after_the_first_step(engine: ImageEngine) -> None:
    steps: list[int] = []
    out = engine.generate(
        [spec(steps=10)], on_step=lambda s, t, p: steps.append(s), should_stop=lambda: bool(steps)
    )
    assert steps == [1]
    assert out.interrupted is True


def test_should_stop_before_start_runs_nothing(engine: ImageEngine) -> None:
    out = engine.generate([spec()], should_stop=lambda: True)
    assert out.interrupted is True and out.images == []


def test_tiny_vae_previews(tiny_models: TinyModelPaths, tmp_path: Path) -> None:
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    tiny_vae: Any = AutoencoderTiny(
        encoder_block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        num_encoder_blocks=(1, 1, 1, 1),
        num_decoder_blocks=(1, 1, 1, 1),
        latent_channels=4,
    )
    tiny_vae.save_pretrained(str(tmp_path / "taesd"))
    options = ImageModelOptions(
        model=str(tiny_models.image), device="cpu", preview_vae=str(tmp_path / "taesd")
    )
    engine = ImageEngine(options)
    engine.load()
    sizes: list[tuple[int, int]] = []
    engine.generate([spec(steps=2)], on_step=lambda s, t, p: sizes.extend(i.size for i in p()))
    assert sizes == [(256, 256), (256, 256)]  # 32×32 latents × 8


# -- img2img and upscale ------------------------------------------------------------------------


def _blocks(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
    return Image.fromarray(np.kron(cells, np.ones((8, 8, 1), dtype=np.uint8)))


def test_img2img_follows_the_init_image_more_at_low_strength(engine: ImageEngine) -> None:
    """Random weights can't "resemble" visually; measure the init image's influence instead."""
    a, b = _blocks(1), _blocks(2)

    def influence(strength: float) -> float:
        out_a = engine.generate([spec(seed=5, init_image=a, strength=strength)]).images[0]
        out_b = engine.generate([spec(seed=5, init_image=b, strength=strength)]).images[0]
        assert out_a.size == (64, 64)
        assert mean_abs_diff(out_a, a) > 1  # it changed the image
        return mean_abs_diff(out_a, out_b)

    low, high = influence(0.25), influence(0.75)
    assert low > 2 * high and low > 3
    assert engine._image_to_image().unet is engine.pipe.unet  # shared weights, no copy


def test_img2img_batch_with_other_size_init(engine: ImageEngine) -> None:
    init = _blocks(3).resize((100, 80))
    specs = [spec(seed=s, init_image=init, strength=0.5) for s in (1, 2)]
    out = engine.generate(specs)
    assert [im.size for im in out.images] == [(64, 64), (64, 64)]


def test_upscale_doubles_the_size(engine: ImageEngine) -> None:
    image = engine.generate([spec()]).images[0]
    big = engine.upscale(image, spec())
    assert big.size == (128, 128)
    assert engine.pipe.vae.use_tiling is False  # temporary tiling was switched back off


def _build_tiny_latent_upscaler(folder: Path) -> None:
    """StableDiffusionLatentUpscalePipeline with the sizes of diffusers' own tests."""
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionLatentUpscalePipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        act_fn="gelu",
        attention_head_dim=8,
        norm_num_groups=None,
        block_out_channels=[32, 32, 64, 64],
        time_cond_proj_dim=160,
        conv_in_kernel=1,
        conv_out_kernel=1,
        cross_attention_dim=32,
        down_block_types=("KDownBlock2D",) + ("KCrossAttnDownBlock2D",) * 3,
        in_channels=8,
        mid_block_type=None,
        only_cross_attention=False,
        out_channels=5,
        resnet_time_scale_shift="scale_shift",
        time_embedding_type="fourier",
        timestep_post_act="gelu",
        up_block_types=("KCrossAttnUpBlock2D",) * 3 + ("KUpBlock2D",),
    )
    vae = AutoencoderKL(
        block_out_channels=[32, 32, 64, 64],
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        latent_channels=4,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=5,
            vocab_size=1000,
            hidden_act="quick_gelu",
        )
    )
    pipe: Any = StableDiffusionLatentUpscalePipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=CLIPTokenizer.from_pretrained(str(folder.parent / "image" / "tokenizer")),
        unet=unet,
        scheduler=EulerDiscreteScheduler(prediction_type="sample"),
    )
    pipe.save_pretrained(str(folder))


def test_upscale_reports_refine_steps_and_stops_when_asked(engine: ImageEngine) -> None:
    image = engine.generate([spec()]).images[0]
    steps: list[tuple[int, int]] = []
    big = engine.upscale(image, spec(), on_step=lambda step, total, _: steps.append((step, total)))
    assert big is not None and steps and steps[-1][0] == steps[-1][1]
    seen: list[int] = []
    stopped = engine.upscale(image, spec(), on_step=lambda step, total, _: seen.append(step),
                             should_stop=lambda: bool(seen))
    assert stopped is None and seen == [1]  # stopped after its first refine step
    assert engine.pipe.vae.use_tiling is False  # tiling switched back off on the way out


def test_upscale_with_an_upscaler_model(tiny_models: TinyModelPaths, tmp_path: Path) -> None:
    upscaler = tiny_models.image.parent / "latent-upscaler"
    if not (upscaler / "model_index.json").exists():
        _build_tiny_latent_upscaler(upscaler)
    options = ImageModelOptions(model=str(tiny_models.image), device="cpu", upscaler=str(upscaler))
    engine = ImageEngine(options)
    engine.load()
    image = engine.generate([spec(steps=1)]).images[0]
    assert engine.upscale(image, spec(steps=1)).size == (128, 128)  # type: ignore[union-attr]
    seen: list[int] = []
    stopped = engine.upscale(image, spec(steps=3),
                             on_step=lambda step, total, _: seen.append(step),
                             should_stop=lambda: bool(seen))
    assert stopped is None and seen == [1]  # its own pipeline stops at a step too


def test_upscaler_that_is_not_an_upscaler(image_engine: ImageEngine) -> None:
    options = replace(image_engine.options, upscaler=image_engine.options.model)
    engine = ImageEngine(options)
    engine.pipe = image_engine.pipe  # no need to load it twice
    with pytest.raises(ModelLoadError, match="not an upscaler"):
        engine.upscale(Image.new("RGB", (64, 64)), spec())


# -- schedulers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", scheduler_names())
def test_every_scheduler_runs_one_step(engine: ImageEngine, name: str) -> None:
    if not SCHEDULERS[name].available():
        with pytest.raises(ValueError, match="needs the package"):
            engine.set_scheduler(name)
        return
    engine.set_scheduler(name)
    assert type(engine.pipe.scheduler).__name__ == SCHEDULERS[name].class_name
    assert engine.a1111_sampler == a1111_name(name)
    out = engine.generate([spec(steps=1)])
    assert out.images[0].size == (64, 64)


def test_scheduler_table() -> None:
    assert a1111_name("euler_a") == "Euler a"
    assert a1111_name("dpmpp_2m_karras") == "DPM++ 2M Karras"
    assert scheduler_names()[0] == "euler"
    with pytest.raises(ValueError, match="Unknown scheduler"):
        a1111_name("nope")
    base = {"num_train_timesteps": 1000, "beta_schedule": "scaled_linear", "steps_offset": 1}
    karras = make_scheduler("dpmpp_2m_karras", {**base, "use_karras_sigmas": False})
    plain = make_scheduler("dpmpp_2m", {**base, "use_karras_sigmas": True})
    assert karras.config.use_karras_sigmas is True and plain.config.use_karras_sigmas is False


def test_schedulers_module_does_not_import_diffusers() -> None:
    code = "import sys, bot.pipelines.schedulers; sys.exit('diffusers' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# -- device and preview helpers -----------------------------------------------------------------


def test_pick_device_and_dtype() -> None:
    assert pick_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert pick_device("auto").type in ("cpu", "mps")
        with pytest.raises(ValueError, match="CUDA is not available"):
            pick_device("cuda")
    with pytest.raises(ValueError, match="Unknown device"):
        pick_device("tpu-9000")
    assert pick_dtype(torch.device("cpu")) == torch.float32
    assert pick_dtype(torch.device("cuda")) == torch.float16
    assert pick_dtype(torch.device("cpu"), "bfloat16") == torch.bfloat16
    with pytest.raises(ValueError, match="Unknown dtype"):
        pick_dtype(torch.device("cpu"), "float8")


def test_cpu_bfloat16_only_where_the_cpu_computes_it() -> None:
    assert cpu_computes_bf16({"avx512_bf16": True, "avx512_f": True})
    assert cpu_computes_bf16({"amx_bf16": True})
    # AVX-512 without BF16 (Skylake-X, Ice Lake) emulates bfloat16: slower than float32.
    assert not cpu_computes_bf16({"avx512_bf16": False, "avx512_f": True, "avx2": True})
    assert not cpu_computes_bf16({})
    cpu = torch.device("cpu")
    native = torch.bfloat16 if cpu_computes_bf16() else torch.float32
    assert pick_dtype(cpu, "auto", bf16_on_capable_cpu=True) == native
    assert pick_dtype(cpu, "float32", bf16_on_capable_cpu=True) == torch.float32
    assert pick_dtype(torch.device("cuda"), bf16_on_capable_cpu=True) == torch.float16


def test_engine_auto_dtype_follows_the_cpu(engine: ImageEngine) -> None:
    expected = torch.bfloat16 if cpu_computes_bf16() else torch.float32
    assert engine.dtype == expected
    assert engine.pipe.unet.dtype == expected


def test_bfloat16_engine_renders_batches_and_previews(tiny_image_dir: Path) -> None:
    """bfloat16 on any CPU (emulated where not native: slow but correct): a batch matches the
    same images alone, pictures stay close to float32's, previews decode."""
    bf16 = ImageEngine(ImageModelOptions(model=str(tiny_image_dir), device="cpu",
                                         dtype="bfloat16", scheduler="euler_a"))
    bf16.load()
    fp32 = ImageEngine(ImageModelOptions(model=str(tiny_image_dir), device="cpu",
                                         dtype="float32", scheduler="euler_a"))
    fp32.load()
    assert bf16.pipe.unet.dtype == torch.bfloat16
    specs = [spec("a red fox", seed=1), spec("a blue whale", seed=2)]
    previews: list[int] = []
    batch = bf16.generate(specs, on_step=lambda step, total, preview: previews.append(
        len(preview())))
    alone = [bf16.generate([s]).images[0] for s in specs]
    reference = [fp32.generate([s]).images[0] for s in specs]
    for together, single, full in zip(batch.images, alone, reference, strict=True):
        assert together.size == (64, 64)
        assert mean_abs_diff(together, single) < 1
        assert mean_abs_diff(together, full) < 4
    assert previews and set(previews) == {2}


@pytest.mark.parametrize("family", ["sd", "sdxl", "unknown"])
def test_latents_to_rgb(family: str) -> None:
    latents = torch.randn(3, 4, 64, 48)
    images = latents_to_rgb(latents, family)
    assert len(images) == 3
    assert all(im.size == (192, 256) and im.mode == "RGB" for im in images)


# -- SDXL (dual text encoders, pooled embeddings) ----------------------------------------------


@pytest.fixture(scope="module")
def sdxl_engine(tmp_path_factory: pytest.TempPathFactory) -> ImageEngine:
    folder = build_tiny_sdxl_model(tmp_path_factory.mktemp("tiny-sdxl") / "sdxl")
    engine = ImageEngine(ImageModelOptions(model=str(folder), device="cpu"))
    engine.load()
    return engine


def test_sdxl_generates_a_batch(sdxl_engine: ImageEngine) -> None:
    assert sdxl_engine.is_sdxl and sdxl_engine.family == "sdxl"
    assert sdxl_engine.default_size == 64
    previews: list[int] = []
    out = sdxl_engine.generate(
        [spec(seed=1), spec("🐉 (dragon)1.3", seed=2, negative="")],
        on_step=lambda s, t, p: previews.append(len(p())),
    )
    assert [im.size for im in out.images] == [(64, 64), (64, 64)]
    assert out.nsfw == [False, False] and previews == [2, 2, 2, 2]


def test_sdxl_embeddings_match_the_pipeline(sdxl_engine: ImageEngine) -> None:
    """Short prompts: exactly what SDXL's own encode_prompt gives.

    An empty negative means "no negative prompt": zeros, as the pipeline does for None.
    """
    assert sdxl_engine._encoder is not None
    prompt = "a (cat)1.5 ++ 🐱"
    for negative in ("ugly", ""):
        ours = sdxl_engine._encoder.encode([prompt], [negative])
        with torch.inference_mode():
            theirs = sdxl_engine.pipe.encode_prompt(
                prompt,
                device="cpu",
                do_classifier_free_guidance=True,
                negative_prompt=negative or None,
            )
        names = [
            "prompt_embeds",
            "negative_prompt_embeds",
            "pooled_prompt_embeds",
            "negative_pooled_prompt_embeds",
        ]
        for name, expected in zip(names, theirs, strict=True):
            torch.testing.assert_close(ours[name], expected, atol=1e-5, rtol=1e-4)


def test_repeated_texts_are_encoded_once(sdxl_engine: ImageEngine) -> None:
    """A 4-picture job repeats its prompt and negative: 2 texts, not 8, reach each encoder;
    the embeddings are the same as encoding one picture's texts."""
    encoder = sdxl_engine._encoder
    assert encoder is not None
    pipe = sdxl_engine.pipe
    calls = {"text_encoder": 0, "text_encoder_2": 0}

    def counting(name: str) -> Any:
        def hook(*_: object) -> None:
            calls[name] += 1
        return hook

    hooks = [getattr(pipe, name).register_forward_hook(counting(name)) for name in calls]
    try:
        four = encoder.encode(["a cat"] * 4, ["blurry"] * 4)
    finally:
        for hook in hooks:
            hook.remove()
    assert calls == {"text_encoder": 2, "text_encoder_2": 4}  # embeddings + pooled
    one = encoder.encode(["a cat"], ["blurry"])
    for name, value in one.items():
        torch.testing.assert_close(four[name], value.expand_as(four[name]))


def test_sdxl_long_prompt(sdxl_engine: ImageEngine) -> None:
    assert sdxl_engine._encoder is not None
    embeds = sdxl_engine._encoder.encode([LONG_PROMPT], [""])
    assert embeds["prompt_embeds"].shape[1] >= 2 * 77
    assert embeds["pooled_prompt_embeds"].shape == (1, 32)
    assert sdxl_engine.generate([spec(LONG_PROMPT, steps=2)]).images[0].size == (64, 64)


def test_unguided_runs_skip_the_negative_prompt_and_draw_the_same(engine: ImageEngine) -> None:
    """Guidance ≤ 1 (turbo drafts): diffusers does no classifier-free guidance, so the
    negative prompt is not encoded at all, and the picture is what it was with it."""
    assert engine._encoder is not None
    unguided = engine._encoder.encode(["a fox"], ["blurry"], guided=False)
    assert set(unguided) == {"prompt_embeds"}
    guided = engine._encoder.encode(["a fox"], ["blurry"])
    assert set(guided) == {"prompt_embeds", "negative_prompt_embeds"}
    assert torch.equal(unguided["prompt_embeds"], guided["prompt_embeds"])
    out = engine.generate([spec(guidance=0.0, negative="blurry")]).images[0]
    pipe = engine.pipe
    with torch.inference_mode():
        plain = pipe(prompt_embeds=guided["prompt_embeds"],
                     negative_prompt_embeds=guided["negative_prompt_embeds"],
                     num_inference_steps=4, guidance_scale=0.0, width=64, height=64,
                     generator=torch.Generator("cpu").manual_seed(1)).images[0]
    assert mean_abs_diff(out, plain) < 1.0
