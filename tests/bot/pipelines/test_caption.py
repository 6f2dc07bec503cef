"""The captioner on a tiny random BLIP loaded with from_pretrained: n different, cleaned,
reproducible suggestions; blocked ones left out; clear load errors; a /describe job run by
the real runner under the executor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot.app import build_runner
from bot.config import settings_from_mapping
from bot.executor.executor import Executor, ExecutorLimits
from bot.executor.jobs import DescribeParams, Done, Failed, Job, TextResult
from bot.pipelines.caption import Captioner, CaptionModelOptions, clean_suggestion
from bot.pipelines.errors import ModelLoadError
from bot.pipelines.tiny import TinyModelPaths


@pytest.fixture(scope="module")
def captioner(tiny_blip: Path) -> Captioner:
    model = Captioner(CaptionModelOptions(model=str(tiny_blip), device="cpu"))
    model.load()
    return model


def picture(colour: tuple[int, int, int] = (200, 30, 60)) -> Image.Image:
    return Image.new("RGB", (96, 64), colour)


def test_n_different_clean_suggestions(captioner: Captioner) -> None:
    for n in (1, 3, 5):
        found = captioner.suggest(picture(), n, max_new_tokens=12, seed=7)
        assert len(found) == n
        assert len({s.casefold() for s in found}) == n, found
        for text in found:
            assert text == text.strip() and "\n" not in text and "  " not in text
            assert text[0].isupper(), text
    # The first is the model's own caption; the next start like prompts.
    three = captioner.suggest(picture(), 3, max_new_tokens=12, seed=7)
    assert three[1].startswith("A painting of ") and three[2].startswith("A photograph of ")


def test_the_same_seed_gives_the_same_suggestions(captioner: Captioner) -> None:
    first = captioner.suggest(picture(), 3, max_new_tokens=12, seed=7)
    other = captioner.suggest(picture(), 3, max_new_tokens=12, seed=8)
    assert captioner.suggest(picture(), 3, max_new_tokens=12, seed=7) == first
    assert other[1:] != first[1:], "sampled suggestions follow the seed"


def test_blocked_suggestions_are_left_out_and_others_fill_in(captioner: Captioner) -> None:
    free = captioner.suggest(picture(), 3, max_new_tokens=12, seed=7)
    word = free[0].split()[-1].casefold()  # a word of the beam caption

    def blocked(text: str) -> str | None:
        return word if word in text.casefold().split() else None

    found = captioner.suggest(picture(), 3, max_new_tokens=12, seed=7, is_blocked=blocked)
    assert found and all(blocked(text) is None for text in found)
    assert free[0] not in found


class Parrot(Captioner):
    """The real captioner's selection, on a model that says the same thing every time."""

    def __init__(self, says: list[str]) -> None:
        super().__init__(CaptionModelOptions(model="parrot"))
        self.model = object()
        self.processor = lambda **kwargs: self  # pixels: anything with .to()
        self.says = says
        self.calls = 0

    def to(self, *args: Any) -> dict[str, Any]:
        return {}

    def _caption(self, pixels: Any, k: int, *, max_new_tokens: int, seed: int) -> str:
        self.calls += 1
        return self.says[k % len(self.says)]


def test_a_model_that_repeats_itself_gives_fewer() -> None:
    parrot = Parrot(["a cat on a sofa", "A cat on a sofa .", "arafed  ", "a dog"])
    assert parrot.suggest(picture(), 3, max_new_tokens=12, seed=1) == [
        "A cat on a sofa", "A dog"]
    assert parrot.calls == 7, "a bounded number of tries, then what it has"


def test_should_stop_ends_the_search() -> None:
    parrot = Parrot(["one", "two", "three"])
    assert parrot.suggest(picture(), 3, max_new_tokens=12, seed=1,
                          should_stop=lambda: parrot.calls >= 1) == ["One"]


@pytest.mark.parametrize(("raw", "clean"), [
    ("a cat sitting on a couch .", "A cat sitting on a couch."),
    ("arafed woman in a red dress , standing", "Woman in a red dress, standing"),
    ("  a   painting of\n a fox -", "A painting of a fox"),
    (" , . ! ", ""),
    ("", ""),
])
def test_cleaning(raw: str, clean: str) -> None:
    assert clean_suggestion(raw) == clean


def test_a_missing_model_folder_names_the_setting(tmp_path: Path) -> None:
    missing = Captioner(CaptionModelOptions(model=str(tmp_path / "no-blip"), device="cpu"))
    with pytest.raises(ModelLoadError, match=r"describe\.model") as caught:
        missing.load()
    assert "does not exist" in str(caught.value)


def test_a_model_not_in_the_cache_names_the_setting() -> None:
    offline = Captioner(CaptionModelOptions(model="nobody/no-such-blip", device="cpu"))
    with pytest.raises(ModelLoadError, match=r"describe\.model"):
        offline.load()


# ----- a /describe job under the executor ----------------------------------------------------


def describe_job(path: Path, seed: int = 3) -> Job:
    return Job(user_id=1, params=DescribeParams(source_path=str(path), count=3,
                                                max_new_tokens=10, seed=seed))


async def run_jobs(tiny: TinyModelPaths, blip: str, jobs: list[Job],
                   blocked: tuple[str, ...] = ()) -> list[object]:
    settings = settings_from_mapping({
        "image": {"model": str(tiny.image)}, "story": {"model": str(tiny.story)},
        "describe": {"model": blip}, "safety": {"blocked_terms": list(blocked)}})
    async with Executor(build_runner(settings), ExecutorLimits(per_user_limit=10)) as ex:
        handles = [await ex.submit(job) for job in jobs]
        return [await h.wait() for h in handles]


async def test_the_runner_describes_a_picture(tiny_models: TinyModelPaths, tiny_blip: Path,
                                              tmp_path: Path) -> None:
    path = tmp_path / "mine.png"
    picture((10, 120, 200)).save(path)
    [end, gone] = await run_jobs(tiny_models, str(tiny_blip),
                                 [describe_job(path), describe_job(tmp_path / "gone.png")])
    assert isinstance(end, Done) and isinstance(end.result, TextResult)
    lines = end.result.text.splitlines()
    assert len(lines) == 3 and len(set(lines)) == 3
    assert end.result.model == tiny_blip.name, "a folder is named by its name"
    assert isinstance(gone, Failed) and "gone" in gone.reason


async def test_a_job_fails_with_the_setting_to_fix_when_the_model_is_missing(
        tiny_models: TinyModelPaths, tmp_path: Path) -> None:
    path = tmp_path / "mine.png"
    picture().save(path)
    [end] = await run_jobs(tiny_models, str(tmp_path / "no-blip"), [describe_job(path)])
    assert isinstance(end, Failed) and "describe.model" in end.reason


async def test_a_job_whose_every_suggestion_is_blocked_fails_saying_so(
        tiny_models: TinyModelPaths, tiny_blip: Path, tmp_path: Path) -> None:
    path = tmp_path / "mine.png"
    picture().save(path)
    # Every caption of the tiny vocabulary has one of its commonest words in it.
    blocked = ("a", "the", "of", "in", "on", "an", "and", "with")
    [end] = await run_jobs(tiny_models, str(tiny_blip), [describe_job(path)], blocked)
    assert isinstance(end, Failed), end
    assert "nothing it may suggest" in end.reason


def test_a_half_precision_model_takes_the_picture_in_its_dtype(tiny_blip: Path) -> None:
    half = Captioner(CaptionModelOptions(model=str(tiny_blip), device="cpu", dtype="bfloat16"))
    half.load()
    found = half.suggest(picture(), 3, max_new_tokens=8, seed=2)
    assert len(found) == 3 and str(half.dtype) == "torch.bfloat16"
