"""Tiny random-weight models that load exactly like the real ones, for offline tests and demos.

`build_tiny_models(dir)` writes two folders:

* `dir/image`: a StableDiffusionPipeline with the sizes diffusers uses in its own pipeline tests
  (UNet blocks (32, 64), cross-attention 32, 2-block VAE, 5-layer CLIP text encoder with hidden
  size 32). Default output 64×64; 4 steps take ~0.2 s on 2 CPU cores.
* `dir/story`: a 2-layer GPTNeoForCausalLM with a byte-level BPE tokenizer trained in
  milliseconds on the built-in corpus below.

More builders, each to a folder of its own: a tiny SDXL (`build_tiny_sdxl_model`), an
inpainting model, a second SD unlike the first (`build_tiny_sd_variant`), and the tiny model's
weights with a turbo-like or an LCM scheduler config (`build_tiny_turbo_model`,
`build_tiny_lcm_model`), for several-model and model-family tests; a tiny instruct model with a
chat template (`build_tiny_chat_model`), for the story writer's chat prompts.

All are written with `save_pretrained`, so callers load them with plain `from_pretrained`,
the same code path real models take. The weights are random (seeded, so deterministic): the
images are noise and the text is gibberish, but every shape and code path is real.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_MARKER = ".greenheart-tiny-models-v1"
_SEED = 0

# A small English corpus for the story tokenizer: enough to learn common words and punctuation.
CORPUS = """\
Once upon a time, in a valley full of green hills, there lived a girl who kept a small garden.
Every morning she walked down to the river, filled her bucket, and sang to the tomatoes.
"Grow," she told them. "Grow tall, and one day we will feed the whole village!"
The old miller laughed at her. He said that nothing ever grew in that dry, stony ground.

But the seasons turned, and the rain came back. The garden grew and grew until it covered the
hillside. Children came to pick berries; the baker came for apples; even the miller came, with
his hat in his hands, to ask for a basket of beans. She gave him two.

Far away, beyond the mountains, a dragon slept on a pile of gold. It dreamed of the sea. When it
woke, it stretched its wings, looked at the grey sky, and wondered why it had stayed so long in
the dark. "I am tired of gold," said the dragon. "I want to see the waves."

So the dragon flew west. It crossed forests and cities and a great desert, where the sand sang
under the wind. At night it counted the stars; by day it followed the rivers. At last it reached
the coast, landed on a cliff, and watched the water for a very long time.

A ship sailed past. The sailors shouted and pointed, and the captain raised his telescope. "Is it
dangerous?" asked the cabin boy. "Only to those who are unkind," said the captain. Then he waved,
and the dragon, to everyone's surprise, waved back.

The robot in the lighthouse had not spoken to anyone in years. It cleaned the lamp, oiled the
gears, and wrote long letters that it never sent. One stormy evening, a knock came at the door.
Outside stood a wet cat, a lost fisherman, and a small dragon who had forgotten the way home.

"Come in," said the robot. "There is tea, and there is a fire, and there are stories."
And that is how the strangest friendship on the whole coast began.
"""


@dataclass(frozen=True)
class TinyModelPaths:
    """Folders written by `build_tiny_models`, each loadable with `from_pretrained`."""

    image: Path
    story: Path


def build_tiny_models(out_dir: Path) -> TinyModelPaths:
    """Write the tiny image and story models under `out_dir` (skipped when already built)."""
    out_dir = Path(out_dir)
    paths = TinyModelPaths(image=out_dir / "image", story=out_dir / "story")
    marker = out_dir / _MARKER
    if marker.exists():
        return paths
    # 1. Start clean: a half-written folder from an interrupted build must not be reused.
    for folder in (paths.image, paths.story):
        if folder.exists():
            shutil.rmtree(folder)
    out_dir.mkdir(parents=True, exist_ok=True)
    # 2. Build both, then mark the folder complete.
    _build_tiny_image_model(paths.image)
    _build_tiny_story_model(paths.story)
    marker.write_text("tiny models built by bot.pipelines.tiny\n", encoding="utf-8")
    return paths


# ---------------------------------------------------------------------------------------------
# Image model


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte → printable character table."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars), strict=True))


def _tiny_clip_tokenizer(folder: Path) -> object:
    """A CLIP tokenizer with a byte-level vocab and no merges: every byte is one token.

    CLIP's BPE marks the last piece of each word with "</w>", so each byte appears twice.
    """
    from transformers import CLIPTokenizer

    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in _bytes_to_unicode().values():
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    vocab_file = folder / "vocab.json"
    merges_file = folder / "merges.txt"
    vocab_file.write_text(json.dumps(vocab), encoding="utf-8")
    merges_file.write_text("#version: 0.2\n", encoding="utf-8")
    return CLIPTokenizer.from_pretrained(str(folder), model_max_length=77)


def _tiny_unet(in_channels: int) -> Any:
    from diffusers import UNet2DConditionModel

    # sample_size 32 latents × VAE scale factor 2 (two blocks) = 64×64 images by default.
    return UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=32,
        in_channels=in_channels,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
    )


def _tiny_scheduler() -> Any:
    from diffusers import PNDMScheduler

    # Same scheduler config as SD 1.5 ships; hand-made configs need steps_offset=1.
    return PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                         num_train_timesteps=1000, set_alpha_to_one=False,
                         skip_prk_steps=True, steps_offset=1)


def _tiny_vae() -> Any:
    """The 2-block VAE both tiny pipelines share (scale factor 2: 32² latents, 64² images)."""
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(_SEED)
    return AutoencoderKL(
        block_out_channels=(32, 64),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        sample_size=64,
    )


def _tiny_clip_config(**extra: Any) -> Any:
    """A 5-layer CLIP text config with hidden size 32 (diffusers' pipeline-test sizes)."""
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
        hidden_size=32,
        intermediate_size=37,
        layer_norm_eps=1e-05,
        num_attention_heads=4,
        num_hidden_layers=5,
        vocab_size=1000,
        max_position_embeddings=77,
        **extra,
    )


def _build_tiny_image_model(folder: Path) -> None:
    import torch
    from diffusers import (
        StableDiffusionPipeline,
    )
    from transformers import CLIPTextModel

    tokenizer = _tiny_clip_tokenizer(folder / "_tokenizer_src")
    torch.manual_seed(_SEED)
    unet = _tiny_unet(in_channels=4)
    vae = _tiny_vae()
    torch.manual_seed(_SEED)
    text_encoder = CLIPTextModel(_tiny_clip_config())
    scheduler = _tiny_scheduler()
    pipe: Any = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(str(folder))
    shutil.rmtree(folder / "_tokenizer_src")


def build_tiny_sdxl_model(folder: Path) -> Path:
    """Write a tiny random-weight StableDiffusionXLPipeline (64×64) to `folder` (idempotent).

    Sizes from diffusers' SDXL pipeline tests: two 5-layer CLIP text encoders (hidden 32, the
    second with a 32-d projection), UNet with text_time added conditioning. It exists to test
    the SDXL code paths (dual encoders, pooled embeddings) offline.
    """
    folder = Path(folder)
    marker = folder / _MARKER
    if marker.exists():
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    import torch
    from diffusers import (
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    tokenizer = _tiny_clip_tokenizer(folder / "_tokenizer_src")
    torch.manual_seed(_SEED)
    unet = UNet2DConditionModel(
        block_out_channels=(2, 4),
        norm_num_groups=1,
        layers_per_block=2,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=80,  # 6 time ids × 8 + pooled 32
        cross_attention_dim=64,  # both encoders' hidden states side by side
    )
    vae = _tiny_vae()
    config = _tiny_clip_config(hidden_act="gelu", projection_dim=32)
    torch.manual_seed(_SEED)
    text_encoder = CLIPTextModel(config)
    torch.manual_seed(_SEED + 1)
    text_encoder_2 = CLIPTextModelWithProjection(config)
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        timestep_spacing="leading",
    )
    pipe: Any = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=scheduler,
    )
    pipe.save_pretrained(str(folder))
    shutil.rmtree(folder / "_tokenizer_src")
    marker.write_text("tiny SDXL model built by bot.pipelines.tiny\n", encoding="utf-8")
    return folder


def build_tiny_sd_variant(folder: Path) -> Path:
    """Write a second tiny StableDiffusionPipeline, unlike the first (idempotent): one layer
    per UNet block, 16² latents (32×32 images by default) and an Euler scheduler. Its own
    weights and native size make a switch between two models observable offline."""

    def unet() -> Any:
        from diffusers import UNet2DConditionModel

        return UNet2DConditionModel(
            block_out_channels=(32, 64), layers_per_block=1, sample_size=16, in_channels=4,
            out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32)

    def scheduler() -> Any:
        from diffusers import EulerDiscreteScheduler

        return EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012,
                                      beta_schedule="scaled_linear", steps_offset=1)

    return _write_tiny_sd(folder, unet, scheduler, "tiny SD variant")


def build_tiny_turbo_model(folder: Path) -> Path:
    """The tiny image model's weights with a turbo-like scheduler config (Euler ancestral,
    "trailing" timestep spacing, as SD-Turbo ships), for family detection (idempotent)."""

    def scheduler() -> Any:
        from diffusers import EulerAncestralDiscreteScheduler

        return EulerAncestralDiscreteScheduler(beta_start=0.00085, beta_end=0.012,
                                               beta_schedule="scaled_linear",
                                               timestep_spacing="trailing", steps_offset=1)

    return _write_tiny_sd(folder, lambda: _tiny_unet(in_channels=4), scheduler,
                          "tiny turbo-like model")


def build_tiny_lcm_model(folder: Path) -> Path:
    """The tiny image model's weights with an LCMScheduler config, as LCM checkpoints ship
    (idempotent)."""

    def scheduler() -> Any:
        from diffusers import LCMScheduler

        return LCMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                            steps_offset=1)

    return _write_tiny_sd(folder, lambda: _tiny_unet(in_channels=4), scheduler,
                          "tiny LCM-like model")


def _write_tiny_sd(folder: Path, unet: Callable[[], Any], scheduler: Callable[[], Any],
                   what: str) -> Path:
    """A tiny StableDiffusionPipeline (the tiny VAE and CLIP, seeded) with this UNet and
    scheduler, saved to `folder` and marked complete; kept when already there."""
    folder = Path(folder)
    marker = folder / _MARKER
    if marker.exists():
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    import torch
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTextModel

    tokenizer = _tiny_clip_tokenizer(folder / "_tokenizer_src")
    torch.manual_seed(_SEED)
    pipe: Any = StableDiffusionPipeline(
        vae=_tiny_vae(), text_encoder=CLIPTextModel(_tiny_clip_config()), tokenizer=tokenizer,
        unet=unet(), scheduler=scheduler(), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(str(folder))
    shutil.rmtree(folder / "_tokenizer_src")
    marker.write_text(f"{what} built by bot.pipelines.tiny\n", encoding="utf-8")
    return folder


def build_tiny_inpaint_model(folder: Path) -> Path:
    """Write a tiny random-weight StableDiffusionInpaintPipeline (64×64) to `folder`
    (idempotent): the tiny image model's sizes with a 9-channel UNet (latents, mask, masked
    picture), as a dedicated inpainting checkpoint has. For `image.inpaint_model` offline."""
    folder = Path(folder)
    marker = folder / _MARKER
    if marker.exists():
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    import torch
    from diffusers import StableDiffusionInpaintPipeline
    from transformers import CLIPTextModel

    tokenizer = _tiny_clip_tokenizer(folder / "_tokenizer_src")
    torch.manual_seed(_SEED)
    # 9 input channels: the latents, the mask and the masked picture's latents.
    unet = _tiny_unet(in_channels=9)
    vae = _tiny_vae()
    torch.manual_seed(_SEED)
    text_encoder = CLIPTextModel(_tiny_clip_config())
    scheduler = _tiny_scheduler()
    pipe: Any = StableDiffusionInpaintPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
        scheduler=scheduler, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(str(folder))
    shutil.rmtree(folder / "_tokenizer_src")
    marker.write_text("tiny inpainting model built by bot.pipelines.tiny\n", encoding="utf-8")
    return folder


# ---------------------------------------------------------------------------------------------
# Story model

_EOS = "<|endoftext|>"


def _build_tiny_story_model(folder: Path) -> None:
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Tokenizer, GPTNeoConfig, GPTNeoForCausalLM

    # 1. Train a GPT-2 style byte-level BPE on the corpus (milliseconds).
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        CORPUS.splitlines(), vocab_size=1000, min_frequency=2, special_tokens=[_EOS]
    )
    state = json.loads(bpe.to_str())["model"]
    # tokenizers wants (left, right) tuples; newer files store pairs as lists, older as "l r".
    merges: Any = [tuple(m.split(" ") if isinstance(m, str) else m) for m in state["merges"]]
    tokenizer = GPT2Tokenizer(vocab=state["vocab"], merges=merges)
    tokenizer.model_max_length = 256
    # 2. A 2-layer GPT-Neo (one global, one local attention layer, like the real model's mix).
    torch.manual_seed(_SEED)
    config = GPTNeoConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_layers=2,
        num_heads=4,
        intermediate_size=256,
        attention_types=[[["global", "local"], 1]],
        max_position_embeddings=256,
        window_size=32,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = GPTNeoForCausalLM(config)
    # 3. Save both the way the hub copies are laid out.
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))


# ---------------------------------------------------------------------------------------------
# Chat model

# ChatML, as Qwen2.5 and SmolLM2 write it: <|im_start|>role\ncontent<|im_end|>\n per message.
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
_CHAT_SPECIALS = ["<|im_start|>", "<|im_end|>"]


def build_tiny_chat_model(folder: Path) -> Path:
    """A tiny instruct model: a 2-layer LlamaForCausalLM whose tokenizer has a ChatML chat
    template (what SmolLM2 and Qwen2.5 use), its end-of-turn token as EOS. Skipped when
    already built; returns `folder`."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Tokenizer, LlamaConfig, LlamaForCausalLM

    folder = Path(folder)
    marker = folder / _MARKER
    if marker.exists():
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS.splitlines(), vocab_size=1000, min_frequency=2,
                            special_tokens=[_EOS, *_CHAT_SPECIALS])
    state = json.loads(bpe.to_str())["model"]
    merges: Any = [tuple(m.split(" ") if isinstance(m, str) else m) for m in state["merges"]]
    tokenizer = GPT2Tokenizer(vocab=state["vocab"], merges=merges, eos_token="<|im_end|>",
                              bos_token=_EOS, pad_token=_EOS)
    tokenizer.add_special_tokens({"additional_special_tokens": _CHAT_SPECIALS})
    tokenizer.chat_template = TINY_CHAT_TEMPLATE
    tokenizer.model_max_length = 512
    torch.manual_seed(_SEED)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    marker.write_text("tiny chat model built by bot.pipelines.tiny\n", encoding="utf-8")
    return folder
