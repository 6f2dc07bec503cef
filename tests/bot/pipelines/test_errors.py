"""How a model is named where others see it: a hub id as it is, a folder by its own name."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.pipelines.errors import public_model_name


@pytest.mark.parametrize("hub_id", [
    "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "stabilityai/sdxl-turbo",
    "EleutherAI/gpt-neo-125M",
    "gpt2",
    "",
])
def test_hub_ids_stay_as_they_are(hub_id: str, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no folder of that name here
    assert public_model_name(hub_id) == hub_id


@pytest.mark.parametrize("name, expected", [
    ("/home/rowan/models/image", "image"),
    ("/home/rowan/models/image/", "image"),
    ("~/models/sd15-dreamy", "sd15-dreamy"),
    ("./models/image", "image"),
    ("../shared/models/story", "story"),
    ("/srv/a/b/c/tiny.v2", "tiny.v2"),
    ("C:\\Users\\rowan\\models\\sdxl", "sdxl"),
    ("D:/models/sdxl", "sdxl"),
    # A hub snapshot folder is named by its repository, not by the revision hash.
    ("/home/rowan/.cache/huggingface/hub/models--stabilityai--sdxl-turbo/snapshots/"
     "71153311d3dbb46851df1931d3ca6e939de83304", "stabilityai/sdxl-turbo"),
])
def test_paths_become_their_folder_name(name: str, expected: str) -> None:
    assert public_model_name(name) == expected  # whether or not the folder exists


def test_an_existing_relative_folder_is_a_folder(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "models" / "image").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert public_model_name("models/image") == "image"  # from_pretrained loads the folder
    assert public_model_name(str(tmp_path / "models" / "image")) == "image"
    assert public_model_name(".") == tmp_path.name  # the folder's own name, no parents
    assert public_model_name("models/..") == tmp_path.name


def test_naming_twice_changes_nothing() -> None:
    for name in ("/home/rowan/models/image", "owner/model", "image"):
        once = public_model_name(name)
        assert public_model_name(once) == once
