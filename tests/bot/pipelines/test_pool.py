"""The image pool on real tiny models (two SD 1.x of different shapes and an SDXL): loading
on demand, the least recently used leaving the device first, parked models coming back
without a read from disk, freed ones really gone."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import numpy as np
import pytest

from bot.pipelines.diffusion import ImageModelOptions, ImageSpec
from bot.pipelines.errors import ModelLoadError
from bot.pipelines.pool import ImagePool, ModelNotServed
from bot.pipelines.tiny import TinyModelPaths, build_tiny_sd_variant, build_tiny_sdxl_model


@pytest.fixture(scope="module")
def folders(tiny_models: TinyModelPaths, tmp_path_factory: pytest.TempPathFactory,
            ) -> dict[str, str]:
    root = tmp_path_factory.mktemp("pool-models")
    return {"sd": str(tiny_models.image),
            "variant": str(build_tiny_sd_variant(root / "variant")),
            "xl": str(build_tiny_sdxl_model(root / "xl"))}


def pool_of(folders: dict[str, str], **options: object) -> ImagePool:
    models = {name: ImageModelOptions(model=folder, device="cpu")
              for name, folder in folders.items()}
    return ImagePool(models, "sd", **options)  # type: ignore[arg-type]


def render(pool: ImagePool, name: str) -> np.ndarray:
    spec = ImageSpec(prompt="a lighthouse", negative="", seed=3, steps=2, guidance=7.0,
                     width=32, height=32)
    return np.asarray(pool.engine(name).generate([spec]).images[0], dtype=np.int16)


def test_models_load_on_demand_and_the_least_recently_used_leaves_first(
        folders: dict[str, str]) -> None:
    pool = pool_of(folders, max_loaded=2)
    assert pool.on_device == () and not pool.loads

    pool.engine("sd")
    pool.engine("variant")
    pool.engine("sd")  # used again: "variant" is now the least recently used
    pool.engine("xl")

    assert pool.on_device == ("sd", "xl")
    assert pool.parked == ()  # park_in_ram is off: "variant" was freed
    assert pool.loads == {"sd": 1, "variant": 1, "xl": 1}
    assert pool.engine("xl").is_sdxl and not pool.engine("sd").is_sdxl


def test_a_parked_model_comes_back_from_ram_not_from_disk(folders: dict[str, str]) -> None:
    pool = pool_of(folders, max_loaded=1, park_in_ram=True)
    first = pool.engine("sd")
    pipe = first.pipe
    before = render(pool, "sd")

    pool.engine("variant")
    assert pool.on_device == ("variant",) and pool.parked == ("sd",)

    back = pool.engine("sd")
    assert back is first and back.pipe is pipe
    assert pool.loads == {"sd": 1, "variant": 1}
    assert pool.on_device == ("sd",) and pool.parked == ("variant",)
    assert np.array_equal(render(pool, "sd"), before)  # the same weights, the same picture


def test_a_freed_model_releases_its_pipeline_and_loads_again(
        folders: dict[str, str]) -> None:
    pool = pool_of(folders, max_loaded=1, park_in_ram=False)
    gone = weakref.ref(pool.engine("sd").pipe)

    pool.engine("variant")
    gc.collect()
    assert gone() is None
    assert pool.parked == ()

    pool.engine("sd")
    assert pool.loads == {"sd": 2, "variant": 1}


def test_on_loading_is_told_only_when_a_model_must_come(folders: dict[str, str]) -> None:
    pool = pool_of(folders, max_loaded=1, park_in_ram=True)
    told: list[str] = []
    pool.engine("sd", told.append)
    pool.engine("", told.append)  # the default, already there
    pool.engine("variant", told.append)
    pool.engine("sd", told.append)  # from RAM: still a wait worth telling
    assert told == ["sd", "variant", "sd"]


def test_each_model_keeps_its_own_native_size(folders: dict[str, str]) -> None:
    pool = pool_of({"sd": folders["sd"], "variant": folders["variant"]}, max_loaded=1)
    assert pool.native_size("variant") == 32
    assert pool.native_size("") == 64
    loads = dict(pool.loads)
    assert pool.native_size("variant") == 32  # remembered: not loaded again for it
    assert pool.loads == loads


def test_jobs_name_a_model_by_name_path_or_folder(folders: dict[str, str]) -> None:
    pool = pool_of(folders)
    assert pool.resolve("") == "sd"
    assert pool.resolve(folders["variant"]) == "variant"
    assert pool.resolve(" XL ") == "xl"
    assert pool.find("nope") is None
    with pytest.raises(ModelNotServed, match=r"'nope' is not served here.*sd, variant, xl"):
        pool.resolve("nope")


def test_sources_are_checked_without_loading(folders: dict[str, str], tmp_path: Path) -> None:
    pool_of(folders).check_sources()
    missing = pool_of({**folders, "gone": str(tmp_path / "gone")})
    with pytest.raises(ModelLoadError, match=r"image\.models\.gone\.path"):
        missing.check_sources()
    assert not missing.loads


def test_a_single_model_pool_is_named_by_its_folder(folders: dict[str, str]) -> None:
    pool = ImagePool.single(ImageModelOptions(model=folders["variant"], device="cpu"))
    assert pool.names == ("variant",) and pool.default == "variant"
    assert pool.resolve(folders["variant"]) == "variant"
