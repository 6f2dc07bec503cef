"""What a finished image job looks like in Discord: grid file, embed, text."""

from __future__ import annotations

import re
from dataclasses import dataclass

import discord

from bot.db.jobs import JobRecord
from bot.executor.jobs import ImageMode, ImageParams, ImageResult, Job
from bot.images.files import grid_file
from bot.images.journey import journey_webp, step_of
from bot.images.outpaint import Outpaint

EMBED_COLOUR = discord.Colour.from_rgb(67, 181, 129)  # green, for the heart
MODE_TITLES = {ImageMode.TXT2IMG: "", ImageMode.VARIATION: "Variations of ",
               ImageMode.UPSCALE: "Upscaled ", ImageMode.JOURNEY: "🎞️ The journey of "}


@dataclass(frozen=True)
class ResultFile:
    data: bytes
    filename: str


def result_file(job: Job, result: ImageResult, *, upload_limit: int, spoiler: bool) -> ResultFile:
    """The grid (or the single image) as one upload under the channel's size limit; a 🎞
    journey's frames as an animated WebP."""
    if isinstance(job.params, ImageParams) and job.params.mode is ImageMode.JOURNEY:
        data, extension = journey_webp([g.image for g in result.images], upload_limit), "webp"
    else:
        data, extension = grid_file(job, result, upload_limit)
    name = f"greenheart-{job.id}.{extension}"
    return ResultFile(data, f"SPOILER_{name}" if spoiler else name)


# Discord takes at most 10 files per message: the grid and nine pictures, then ten a message.
FILES_PER_MESSAGE = 10


def is_sweep(job: Job) -> bool:
    """An "all styles" sweep: one picture per preset, each with its style's label."""
    params = job.params
    return isinstance(params, ImageParams) and bool(params.labels) and len(params.labels) > 1


def sweep_files(record: JobRecord, upload_limit: int) -> list[list[ResultFile]]:
    """Each preset's own picture (with its own PNG info, as stored), in messages: the
    first holds nine beside the grid, the next ten each. A file over the channel's upload
    limit is left out (the grid still shows it)."""
    files = []
    for index, image in enumerate(record.images):
        data = image.path.read_bytes()
        if len(data) > upload_limit:
            continue
        label = image.label or f"style {index + 1}"
        files.append(ResultFile(data, f"{index + 1}-{_file_word(label)}.png"))
    first = FILES_PER_MESSAGE - 1
    groups = [files[:first]]
    groups += [files[i:i + FILES_PER_MESSAGE] for i in range(first, len(files),
                                                             FILES_PER_MESSAGE)]
    return [g for g in groups if g]


def _file_word(label: str) -> str:
    word = re.sub(r"[^a-z0-9]+", "-", label.casefold()).strip("-")
    return word[:40] or "style"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def kept_step(record: JobRecord) -> str:
    """The step ("step N/M") a 🎞 kept step's one picture shows; "" for any other result."""
    params = record.job.params
    if not isinstance(params, ImageParams) or params.mode is ImageMode.JOURNEY \
            or len(record.images) != 1:
        return ""
    return record.images[0].label if step_of(record.images[0].label) else ""


def result_content(job: Job, step: str = "") -> str:
    """The result's text; `step`: a kept step's ("step N/M", see `kept_step`)."""
    params = job.params
    assert isinstance(params, ImageParams)
    title = MODE_TITLES.get(params.mode, "")
    if step:
        title = f"🎞️ {step[0].upper()}{step[1:]} of "
    if params.mode is ImageMode.OUTPAINT:
        title = f"{Outpaint.of(params).done}: "
    elif params.mode is ImageMode.IMG2IMG and params.source_job:
        title = "✨ Finalized "
    elif params.draft and params.mode is ImageMode.TXT2IMG:
        title = "⚡ Drafts of "
    index = f" (image {params.source_index + 1})" if params.mode is not ImageMode.TXT2IMG else ""
    note = ""
    if params.mode is ImageMode.JOURNEY:
        note = "\n-# Each frame is what the model expected the picture to become at that step."
    if params.draft and params.mode is ImageMode.TXT2IMG:
        note = "\n✨ Press ✨ and a number to finalize that draft with the full model."
    if params.styles_left_out:  # a capped "all styles" sweep (image.max_sweep)
        shown, more = len(params.labels), params.styles_left_out
        other = "the other one" if more == 1 else f"the other {more}"
        note = (f"\n🎨 The first {shown} of {shown + more} styles: one sweep makes at most "
                f"{shown} pictures. For {other}, use the style menu or /imagine's style "
                "option.")
    return _clip(f"{title}**{params.subject}**{index} — <@{job.user_id}>", 2000 - len(note)) \
        + note


def result_embed(job: Job, result: ImageResult, filename: str, seconds: float) -> discord.Embed:
    params = job.params
    assert isinstance(params, ImageParams)
    embed = discord.Embed(description=_clip(params.prompt, 1000), colour=EMBED_COLOUR)
    seeds = sorted({g.seed for g in result.images})
    seed_text = ", ".join(str(s) for s in seeds[:4]) + (" …" if len(seeds) > 4 else "")
    width, height = result.images[0].image.size
    if is_sweep(job):  # which picture is which, beside the labels drawn into the grid
        styles = " · ".join(f"**{i + 1}** {label}" for i, label in enumerate(params.labels))
        embed.add_field(name="Styles", value=_clip(styles, 1024), inline=False)
    else:
        embed.add_field(name="Style", value=_clip(params.style or "none", 100))
    embed.add_field(name="Seed" if len(seeds) == 1 else "Seeds", value=seed_text)
    embed.add_field(name="Steps", value=str(params.steps))
    embed.add_field(name="Guidance", value=f"{params.guidance:g}")
    embed.add_field(name="Size", value=f"{width}×{height}")
    embed.add_field(name="Time", value=f"{seconds:.1f} s")
    if params.loras:
        embed.add_field(name="LoRAs", value=_clip(", ".join(
            f"{name} {weight:g}" for name, weight in params.loras), 300), inline=False)
    if params.negative:
        embed.add_field(name="Negative", value=_clip(params.negative, 300), inline=False)
    embed.set_footer(text=_clip(f"{result.model} · {result.sampler} · job {job.id}", 200))
    embed.set_image(url=f"attachment://{filename}")
    return embed
