"""result_view's ⭐: on row 4 of every result (drafts and upscales too) with the count as its
label, never on a private result; and its custom_id parses back to the job."""

from __future__ import annotations

import re
from pathlib import Path

import discord
import pytest

from bot.db.jobs import JobRecord, StoredImage
from bot.executor.jobs import ImageMode, ImageParams, ImagineOrigin, Job, JobState
from cogs.imagine.buttons import Star, result_view


def record(*, count: int = 2, private: bool = False, **params: object) -> JobRecord:
    values: dict[str, object] = dict(prompt="a fox", negative="", subject="a fox", style=None,
                                     seeds=tuple(range(count)), steps=4, guidance=7.0,
                                     width=8, height=8)
    values.update(params)
    job = Job(user_id=1, params=ImageParams(**values),  # type: ignore[arg-type]
              origin=ImagineOrigin(guild_id=1, channel_id=2, private=private))
    return JobRecord(job=job, state=JobState.DELIVERED, reason=None, model="tiny",
                     sampler="Euler a", timings={}, result_text=None,
                     images=tuple(StoredImage(i, i, Path(f"{i}.png"), False, "")
                                  for i in range(count)),
                     channel_id=2, message_id=3, created_at=0.0, started_at=0.0,
                     finished_at=0.0)


def stars_of(view: discord.ui.View) -> list[Star]:
    return [item for item in view.children if isinstance(item, Star)]


@pytest.mark.parametrize("kind", [
    {}, {"count": 1}, {"draft": True}, {"count": 1, "mode": ImageMode.UPSCALE}])
def test_every_result_has_one_star_on_row_4_with_its_count(kind: dict[str, object]) -> None:
    rec = record(**kind)  # type: ignore[arg-type]
    [star] = stars_of(result_view(rec, (), stars=3))
    assert star.item.custom_id == f"gh:star:{rec.job.id}"
    assert star.row == 4 and str(star.item.emoji) == "⭐" and star.item.label == "3"
    [none_yet] = stars_of(result_view(rec, ()))
    assert none_yet.item.label is None


def test_a_private_result_has_no_star() -> None:
    assert stars_of(result_view(record(private=True), (), stars=2)) == []


def test_the_custom_id_names_the_job() -> None:
    job_id = "0123456789abcdef"
    match = re.fullmatch(Star.__discord_ui_compiled_template__, f"gh:star:{job_id}")
    assert match is not None and match["job"] == job_id
    assert re.fullmatch(Star.__discord_ui_compiled_template__, f"gh:rr:{job_id}") is None
