"""Several models against the double: /imagine model:, ⚡ drafts and ✨ finalize, the model
and LoRAs kept by the buttons of a result."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import build_runner
from bot.config import Settings
from bot.executor.jobs import ImageMode, ImageParams
from bot.images.pnginfo import GenerationParameters, read_png_parameters
from bot.pipelines.runner import ModelRunner
from bot.pipelines.tiny import TinyModelPaths
from testkit.discord_double import DiscordDouble
from testkit.discord_double.models import Message
from testkit.discord_double.seeding import SeededWorld
from testkit.harness import BotHarness, harness_settings
from testkit.imagine import click_for_result, imagine, job_id_of


@pytest.fixture
async def drafting(tiny_models: TinyModelPaths, tmp_path: Path, discord_double: DiscordDouble,
                   discord_world: SeededWorld) -> AsyncIterator[BotHarness]:
    """The tiny model twice: as the full model, and as a turbo-family draft model."""
    tiny = str(tiny_models.image)
    settings = harness_settings(tiny_models, tmp_path, discord_double, image={
        "model": "full", "draft_model": "fast",
        "models": {"full": {"path": tiny, "description": "the careful one", "steps": 4},
                   "fast": {"path": tiny, "family": "turbo"}}})
    harness = BotHarness(discord_double, discord_world, settings)
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()


@pytest.fixture
async def two_models(tiny_models: TinyModelPaths, tiny_lora: Path, tmp_path: Path,
                     discord_double: DiscordDouble,
                     discord_world: SeededWorld) -> AsyncIterator[BotHarness]:
    """Two different tiny SD models (one on the device at a time) and a LoRA."""
    from bot.pipelines.tiny import build_tiny_sd_variant

    variant = build_tiny_sd_variant(tiny_models.image.parent / "variant")
    settings = harness_settings(tiny_models, tmp_path, discord_double, image={
        "model": "first", "max_loaded": 1,
        "models": {"first": {"path": str(tiny_models.image)},
                   "second": {"path": str(variant), "description": "the other one"}},
        "loras": {"tiny": {"path": str(tiny_lora), "weight": 0.7, "triggers": ["tinystyle"]}}})
    harness = BotHarness(discord_double, discord_world, settings, runner_factory=slow_loads)
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()


def slow_loads(settings: Settings) -> ModelRunner:
    """The real runner, its disk loads held for a second: a real model takes that long and
    more, and the status edits (every 0.5 s here) must get to show it."""
    runner = build_runner(settings)
    load = runner.pool._load

    def slow(key: str) -> Any:
        time.sleep(1.2)
        return load(key)

    runner.pool._load = slow  # type: ignore[method-assign]
    return runner


def info_of(message: Message, index: int = 0) -> GenerationParameters:
    info = read_png_parameters(message.attachments[index].data)
    assert info is not None
    return info


async def params_of(h: BotHarness, message: Message) -> ImageParams:
    record = await h.services.jobs.get(job_id_of(message))
    assert record is not None and isinstance(record.job.params, ImageParams)
    return record.job.params


async def test_a_draft_is_finalized_by_the_full_model_from_the_draft(
        drafting: BotHarness) -> None:
    h = drafting
    _, drafts = await imagine(h, prompt="a fox in the snow", count=2, seed=11, draft=True)
    assert drafts.content.startswith("⚡ Drafts of")
    job = job_id_of(drafts)
    assert {f"gh:fin:{job}:0", f"gh:fin:{job}:1"} <= set(drafts.custom_ids)
    assert not any(c.startswith("gh:up:") for c in drafts.custom_ids), "✨ instead of U"
    draft = await params_of(h, drafts)
    assert (draft.model, draft.steps, draft.guidance, draft.final_model) == ("fast", 1, 0.0,
                                                                            "full")
    assert info_of(drafts).steps == 1

    final = await click_for_result(h, drafts, f"gh:fin:{job}:1")
    assert final.content.startswith("✨ Finalized")
    done = await params_of(h, final)
    record = await h.services.jobs.get(job)
    assert record is not None
    assert (done.model, done.mode, done.seeds, done.steps) == ("full", ImageMode.IMG2IMG,
                                                              (12,), 4)
    assert done.source_path == str(record.images[1].path), "it starts from draft 2"
    info = info_of(final)
    assert info.seed == 12 and info.extra.get("Denoising strength") == "0.55"


async def test_drafts_of_a_result_keep_its_seeds_and_come_back_to_its_model(
        drafting: BotHarness) -> None:
    h = drafting
    _, parent = await imagine(h, prompt="a lighthouse", count=2, seed=5)
    job = job_id_of(parent)
    assert f"gh:draft:{job}" in parent.custom_ids
    drafts = await click_for_result(h, parent, f"gh:draft:{job}")
    p = await params_of(h, drafts)
    assert (p.model, p.seeds, p.draft, p.final_model) == ("fast", (5, 6), True, "full")
    assert f"gh:draft:{job_id_of(drafts)}" not in drafts.custom_ids


async def test_a_refused_model_or_family_value_says_what_is_allowed(
        drafting: BotHarness) -> None:
    h = drafting
    rec = await h.slash("imagine", prompt="a fox", model="fast", steps=12)
    ack = await rec.wait_ack(3.0)
    assert "out of range for the model fast (a turbo model); choose 1-4" in ack.body["data"][
        "content"]
    rec = await h.slash("imagine", prompt="a fox", model="nope")
    ack = await rec.wait_ack(3.0)
    assert "choose one of: full, fast" in ack.body["data"]["content"]


async def test_a_switch_between_two_models_shows_the_load_and_records_each(
        two_models: BotHarness) -> None:
    h = two_models
    _, first = await imagine(h, prompt="a fox", count=1, seed=3)
    rec, second = await imagine(h, prompt="a fox", count=1, seed=3, model="second")
    assert (await params_of(h, first)).model == "first"
    assert (await params_of(h, second)).model == "second"
    assert info_of(first).model == "image" and info_of(second).model == "variant"
    assert first.attachments[0].data != second.attachments[0].data
    # The second job's status said the model was loading before its first step.
    edits = [r for r in h.double.requests_matching(
        "PATCH", rf"/webhooks/.*/{rec.token}/messages/@original")]
    texts = [(r.json or {}).get("content", "") for r in edits]
    assert any("Loading model second" in t for t in texts), texts
    # 🔄 on it stays on its model (loading it back from disk: max_loaded = 1).
    again = await click_for_result(h, second, f"gh:rr:{job_id_of(second)}")
    assert (await params_of(h, again)).model == "second"
    assert h.services.runner.pool.on_device == ("second",)


async def test_loras_by_option_and_inline_reach_the_picture_and_its_png_info(
        two_models: BotHarness) -> None:
    h = two_models
    _, plain = await imagine(h, prompt="a fox", count=1, seed=5)
    _, by_option = await imagine(h, prompt="a fox", count=1, seed=5, lora="tiny")
    _, inline = await imagine(h, prompt="a fox <lora:tiny:0.7>", count=1, seed=5)
    assert (await params_of(h, by_option)).loras == (("tiny", 0.7),)
    assert (await params_of(h, inline)).loras == (("tiny", 0.7),)
    info = info_of(inline)
    assert [(lo.name, lo.weight) for lo in info.loras] == [("tiny", 0.7)]
    assert len(info.loras[0].hash) == 12 and "tinystyle" in info.prompt
    assert by_option.attachments[0].data == inline.attachments[0].data
    assert plain.attachments[0].data != inline.attachments[0].data
    # The next job without a LoRA is clean again: the same picture as the first.
    _, after = await imagine(h, prompt="a fox", count=1, seed=5)
    assert after.attachments[0].data == plain.attachments[0].data
