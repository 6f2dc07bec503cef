"""The tiny models load through the same from_pretrained calls as the real ones."""

from __future__ import annotations

import time
from pathlib import Path

from bot.pipelines.tiny import TinyModelPaths, build_tiny_models


def test_build_is_idempotent(tiny_models: TinyModelPaths) -> None:
    weights = tiny_models.image / "unet" / "diffusion_pytorch_model.safetensors"
    before = weights.stat().st_mtime_ns
    started = time.perf_counter()
    again = build_tiny_models(tiny_models.image.parent)
    assert again == tiny_models
    assert time.perf_counter() - started < 0.5
    assert weights.stat().st_mtime_ns == before


def test_image_model_loads_like_a_real_one(tiny_models: TinyModelPaths) -> None:
    from diffusers import AutoPipelineForText2Image
    from transformers import CLIPTokenizer

    pipe = AutoPipelineForText2Image.from_pretrained(str(tiny_models.image))
    assert type(pipe).__name__ == "StableDiffusionPipeline"
    assert pipe.unet.config.sample_size * pipe.vae_scale_factor == 64
    assert pipe.scheduler.config.steps_offset == 1
    tokenizer = CLIPTokenizer.from_pretrained(str(tiny_models.image / "tokenizer"))
    assert tokenizer.model_max_length == 77
    ids = tokenizer("a cat 🐱 (in a hat)")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    assert tokenizer.unk_token_id not in ids[1:-1]  # every byte has a token


def test_story_model_loads_like_a_real_one(tiny_models: TinyModelPaths) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_models.story))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_models.story))
    assert type(model).__name__ == "GPTNeoForCausalLM"
    assert tokenizer.eos_token == tokenizer.bos_token == "<|endoftext|>"
    text = "Once upon a time, the dragon said: “hello” 🐉"
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text  # byte-level: lossless
    assert model.config.vocab_size == len(tokenizer)


def test_the_tiny_chat_model_loads_with_its_chat_template(tiny_chat_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bot.pipelines.tiny import build_tiny_chat_model

    tokenizer = AutoTokenizer.from_pretrained(tiny_chat_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_chat_dir)
    text = tokenizer.apply_chat_template([{"role": "user", "content": "Hi."}],
                                         add_generation_prompt=True, tokenize=False)
    assert text == "<|im_start|>user\nHi.<|im_end|>\n<|im_start|>assistant\n"
    assert tokenizer.eos_token == "<|im_end|>" and model.config.model_type == "llama"
    assert len(tokenizer.encode("<|im_start|>", add_special_tokens=False)) == 1
    stamp = (tiny_chat_dir / "config.json").stat().st_mtime_ns
    assert build_tiny_chat_model(tiny_chat_dir) == tiny_chat_dir  # built once, then kept
    assert (tiny_chat_dir / "config.json").stat().st_mtime_ns == stamp
