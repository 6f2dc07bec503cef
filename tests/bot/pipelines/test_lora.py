"""LoRAs on the tiny image model: a real peft LoRA, loaded through diffusers, switched per
batch; plus where the weights are found and AUTOMATIC1111's short hash."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from bot.pipelines.diffusion import ImageEngine, ImageModelOptions, ImageSpec
from bot.pipelines.lora import (
    LoraAdapters,
    LoraLoadError,
    LoraSource,
    adapter_name,
    lora_file,
    lora_short_hash,
)
from bot.pipelines.tiny import TinyModelPaths
from bot.pipelines.tiny_lora import build_tiny_lora

pytestmark = [
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Already found a `peft_config`:UserWarning"),
]


@pytest.fixture(scope="module")
def second_lora(tiny_models: TinyModelPaths, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another random LoRA, on the UNet only."""
    out = tmp_path_factory.mktemp("lora-b") / "unet-only.safetensors"
    return build_tiny_lora(tiny_models.image, out, seed=1, text_encoder=False)


def load_pipe(folder: Path) -> Any:
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(
        str(folder), safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture
def pipe(tiny_models: TinyModelPaths) -> Any:
    return load_pipe(tiny_models.image)  # a fresh pipe per test: adapters stay in its modules


@pytest.fixture(scope="module")
def never_lora(tiny_models: TinyModelPaths) -> np.ndarray:
    """The picture of a pipe that never had a LoRA."""
    return render(load_pipe(tiny_models.image))


def render(pipe: Any) -> np.ndarray:
    out = pipe("a cat in a hat", num_inference_steps=2, width=64, height=64,
               generator=torch.Generator().manual_seed(3), output_type="np")
    return np.asarray(out.images[0], dtype=np.float64)


def diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max())


def source(name: str, path: Path | str, weight_name: str = "") -> LoraSource:
    return LoraSource(name=name, path=str(path), weight_name=weight_name)


# -- the tiny LoRA -------------------------------------------------------------------------------


def test_tiny_lora_is_a_random_lora_for_unet_and_text_encoder(tiny_lora: Path,
                                                             tiny_models: TinyModelPaths) -> None:
    state = load_file(str(tiny_lora))
    assert any(k.startswith("unet.") for k in state)
    assert any(k.startswith("text_encoder.") for k in state)
    ups = [v for k, v in state.items() if ".up." in k]
    assert ups and all(float(v.abs().max()) > 0 for v in ups)  # not peft's no-op init
    before = tiny_lora.stat().st_mtime_ns
    assert build_tiny_lora(tiny_models.image, tiny_lora) == tiny_lora
    assert tiny_lora.stat().st_mtime_ns == before  # already there: kept


# -- switching per batch -----------------------------------------------------------------------


def test_a_lora_changes_the_picture_and_leaves_nothing_behind(
        pipe: Any, tiny_lora: Path, never_lora: np.ndarray) -> None:
    adapters = LoraAdapters(pipe)
    adapters.use([])  # nothing loaded yet: nothing to switch
    assert diff(render(pipe), never_lora) == 0
    adapters.use([(source("tiny", tiny_lora), 1.0)])
    assert diff(render(pipe), never_lora) > 0.02
    adapters.use([])
    np.testing.assert_allclose(render(pipe), never_lora, atol=1e-6)  # the next job is clean


def test_weights_and_loras_switch_exactly(pipe: Any, tiny_lora: Path, second_lora: Path,
                                          never_lora: np.ndarray) -> None:
    a, b = source("a", tiny_lora), source("b", second_lora)
    adapters = LoraAdapters(pipe)
    adapters.use([(a, 1.0)])
    full = render(pipe)
    adapters.use([(a, 0.5)])
    half = render(pipe)
    adapters.use([(b, 1.0)])
    other = render(pipe)
    adapters.use([(a, 1.0), (b, 1.0)])
    both = render(pipe)
    for x, y in [(full, half), (full, other), (both, full), (both, other), (other, never_lora)]:
        assert diff(x, y) > 0.01
    adapters.use([(a, 1.0)])
    np.testing.assert_allclose(render(pipe), full, atol=1e-6)  # back to the same, exactly
    adapters.use([(b, 0.5), (b, 1.0)])  # named twice: the last weight wins
    np.testing.assert_allclose(render(pipe), other, atol=1e-6)
    adapters.use([])
    np.testing.assert_allclose(render(pipe), never_lora, atol=1e-6)


def test_each_lora_is_loaded_once(pipe: Any, tiny_lora: Path, second_lora: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = pipe.load_lora_weights

    def counting(path: str, **kwargs: Any) -> None:
        calls.append(kwargs["adapter_name"])
        real(path, **kwargs)

    monkeypatch.setattr(pipe, "load_lora_weights", counting)
    adapters = LoraAdapters(pipe)
    a, b = source("Pixel Art v1.5", tiny_lora), source("b", second_lora)  # not a peft name
    for loras in ([(a, 1.0)], [(a, 0.3)], [], [(a, 1.0), (b, 0.7)], [(b, 1.0)], [(a, 1.0)]):
        adapters.use(loras)
    assert calls == [adapter_name(a.name), adapter_name(b.name)]
    assert adapters.loaded == ("Pixel Art v1.5", "b")
    assert pipe.get_list_adapters() == {
        "unet": [adapter_name(a.name), adapter_name(b.name)],
        "text_encoder": [adapter_name(a.name)],  # b has no text-encoder part
    }


def test_adapter_names_are_valid_and_distinct() -> None:
    names = ["a.b", "a_b", "Pixel Art", "ünï", "a"]
    made = [adapter_name(n) for n in names]
    assert all(m.replace("_", "").isalnum() and m.isascii() for m in made)
    assert len(set(made)) == len(made)
    assert adapter_name("a.b") == adapter_name("a.b")  # the same name, the same adapter
    assert not any(x != y and x in y for x in made for y in made)


def test_fused_attention_is_unfused_so_the_lora_applies(
        pipe: Any, tiny_models: TinyModelPaths, tiny_lora: Path) -> None:
    """tune_for_gpu fuses q/k/v into to_qkv, which would skip the LoRA's q/k/v layers."""
    plain = load_pipe(tiny_models.image)
    LoraAdapters(plain).use([(source("a", tiny_lora), 1.0)])
    pipe.unet.fuse_qkv_projections()
    LoraAdapters(pipe).use([(source("a", tiny_lora), 1.0)])
    np.testing.assert_allclose(render(pipe), render(plain), atol=1e-4)


def test_through_the_image_engine_txt2img_and_img2img(tiny_models: TinyModelPaths,
                                                      tiny_lora: Path) -> None:
    """The engine encodes prompts itself (compel) and shares the modules with img2img."""
    engine = ImageEngine(ImageModelOptions(model=str(tiny_models.image), device="cpu",
                                           dtype="float32"))
    engine.load()
    adapters = LoraAdapters(engine.pipe)
    txt = ImageSpec(prompt="a cat", negative="", seed=5, steps=2, guidance=7.0, width=64,
                    height=64)
    init = engine.generate([txt]).images[0]
    img = ImageSpec(prompt="a cat", negative="", seed=5, steps=2, guidance=7.0, width=64,
                    height=64, init_image=init, strength=0.9)

    def pixels() -> list[np.ndarray]:
        out = engine.generate([txt]).images + engine.generate([img]).images
        return [np.asarray(i, dtype=np.float64) for i in out]

    clean = pixels()
    adapters.use([(source("a", tiny_lora), 1.0)])
    assert all(diff(x, y) > 5 for x, y in zip(pixels(), clean, strict=True))
    adapters.use([])
    assert all(diff(x, y) <= 1 for x, y in zip(pixels(), clean, strict=True))


# -- failures ----------------------------------------------------------------------------------


def test_a_missing_file_fails_clearly_and_changes_nothing(pipe: Any, tmp_path: Path,
                                                          tiny_lora: Path) -> None:
    adapters = LoraAdapters(pipe)
    adapters.use([(source("a", tiny_lora), 1.0)])
    missing = tmp_path / "loras" / "nope.safetensors"
    with pytest.raises(LoraLoadError, match="does not exist") as info:
        adapters.use([(source("a", tiny_lora), 1.0), (source("nope", missing), 1.0)])
    assert "image.loras.nope" in str(info.value) and str(missing) in str(info.value)
    assert info.value.lora == "nope"
    assert adapters.loaded == ("a",)


def test_a_broken_lora_leaves_the_pipe_as_it_was(pipe: Any, tmp_path: Path, tiny_lora: Path,
                                                 never_lora: np.ndarray) -> None:
    # The UNet part loads, the text encoder's does not fit: the UNet part must go again.
    state = load_file(str(tiny_lora))
    key = next(k for k in state if k.startswith("text_encoder.") and ".up." in k)
    state[key] = torch.ones(state[key].shape[0] + 3, state[key].shape[1])
    broken = tmp_path / "broken.safetensors"
    save_file(state, str(broken))
    adapters = LoraAdapters(pipe)
    adapters.use([(source("a", tiny_lora), 0.7)])
    with_a = render(pipe)
    with pytest.raises(LoraLoadError, match="could not be loaded") as info:
        adapters.use([(source("broken", broken), 1.0)])
    assert "image.loras.broken" in str(info.value) and "Cause:" in str(info.value)
    assert pipe.get_list_adapters() == {"unet": [adapter_name("a")],
                                        "text_encoder": [adapter_name("a")]}
    assert adapters.loaded == ("a",)
    np.testing.assert_allclose(render(pipe), with_a, atol=1e-6)  # still the last batch's
    adapters.use([])
    np.testing.assert_allclose(render(pipe), never_lora, atol=1e-6)


def test_a_file_that_is_not_a_lora_fails_clearly(pipe: Any, tmp_path: Path,
                                                 never_lora: np.ndarray) -> None:
    other = tmp_path / "checkpoint.safetensors"
    save_file({"model.weight": torch.zeros(4)}, str(other))
    adapters = LoraAdapters(pipe)
    with pytest.raises(LoraLoadError, match=r"image\.loras\.other: .*not a LoRA"):
        adapters.use([(source("other", other), 1.0)])
    assert adapters.loaded == ()
    np.testing.assert_allclose(render(pipe), never_lora, atol=1e-6)


# -- where the weights are ---------------------------------------------------------------------


def test_a_folder_with_one_file_or_a_weight_name(tmp_path: Path, tiny_lora: Path) -> None:
    folder = tmp_path / "pixel"
    folder.mkdir()
    (folder / "pixel-v2.safetensors").write_bytes(tiny_lora.read_bytes())
    assert lora_file(source("p", folder)) == folder / "pixel-v2.safetensors"
    (folder / "pixel-v1.safetensors").write_bytes(tiny_lora.read_bytes())
    with pytest.raises(LoraLoadError, match=r"several .*pixel-v1.*pixel-v2.*weight_name"):
        lora_file(source("p", folder))
    assert lora_file(source("p", folder, "pixel-v1.safetensors")) == folder / "pixel-v1.safetensors"
    with pytest.raises(LoraLoadError, match=r"no file other\.safetensors"):
        lora_file(source("p", folder, "other.safetensors"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LoraLoadError, match=r"no \.safetensors file"):
        lora_file(source("p", empty))


def test_an_uncached_hub_id_offline_fails_clearly(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(LoraLoadError, match="HF_HUB_OFFLINE") as info:
        lora_file(source("detail", "greenheart-tests/no-such-lora"))
    assert "hf download greenheart-tests/no-such-lora" in str(info.value)
    assert str(info.value).startswith("image.loras.detail: ")


def test_a_cached_hub_id_is_found_offline(tmp_path: Path, tiny_lora: Path, pipe: Any,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    # The hub cache's layout: refs/main names the snapshot that holds the files.
    repo = tmp_path / "hub" / "models--greenheart-tests--tiny-lora"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "tiny.safetensors").write_bytes(tiny_lora.read_bytes())
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    for weight_name in ("", "tiny.safetensors"):
        found = lora_file(source("hub", "greenheart-tests/tiny-lora", weight_name))
        assert found.resolve() == (snapshot / "tiny.safetensors").resolve()
    adapters = LoraAdapters(pipe)
    adapters.use([(source("hub", "greenheart-tests/tiny-lora"), 1.0)])
    assert adapters.loaded == ("hub",)
    assert adapters.short_hash("hub") == lora_short_hash(tiny_lora)


# -- AUTOMATIC1111's short hash ----------------------------------------------------------------


def write_safetensors_by_hand(path: Path, data: bytes) -> None:
    header = json.dumps({"__metadata__": {"ss_output_name": "x"},
                         "w": {"dtype": "U8", "shape": [len(data)],
                               "data_offsets": [0, len(data)]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)


def test_short_hash_of_safetensors_skips_the_header(tmp_path: Path) -> None:
    data = bytes(range(256)) * 5
    file = tmp_path / "Detail.SafeTensors"
    write_safetensors_by_hand(file, data)
    assert lora_short_hash(file) == hashlib.sha256(data).hexdigest()[:12]
    assert len(lora_short_hash(str(file))) == 12


def test_short_hash_of_other_files_is_the_whole_file(tmp_path: Path) -> None:
    file = tmp_path / "old.pt"
    file.write_bytes(b"pickled LoRA bytes")
    assert lora_short_hash(file) == hashlib.sha256(b"pickled LoRA bytes").hexdigest()[:12]


def test_short_hash_follows_file_changes(tmp_path: Path) -> None:
    file = tmp_path / "lora.safetensors"
    write_safetensors_by_hand(file, b"first")
    first = lora_short_hash(file)
    write_safetensors_by_hand(file, b"second!")  # another size, so another cache key
    os.utime(file, ns=(1, 1))
    assert lora_short_hash(file) == hashlib.sha256(b"second!").hexdigest()[:12] != first


def test_short_hash_of_the_loaded_lora(pipe: Any, tiny_lora: Path) -> None:
    adapters = LoraAdapters(pipe)
    assert adapters.short_hash("a") == ""  # not loaded
    adapters.use([(source("a", tiny_lora), 1.0)])
    raw = tiny_lora.read_bytes()
    body = raw[8 + int.from_bytes(raw[:8], "little"):]
    assert adapters.short_hash("a") == hashlib.sha256(body).hexdigest()[:12]
