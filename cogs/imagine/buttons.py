"""Persistent buttons of an image job. The custom_id holds the job id (and a picture's index),
the state comes from SQLite, so they keep working after a restart (discord.py DynamicItem).

Plain classes at module level, as in discord.py's `dynamic_counter.py` example: `JobButton`
parses `gh:<action>:<job>[:<index>]`, each subclass is one action. A click reaches what
the cog provided under `ACTIONS` (its presenter) through `interaction.client`; the cog's setup
registers the classes once.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Protocol, Self

import discord

from bot.client import PartKey
from bot.db.jobs import JobRecord
from bot.executor.jobs import ImageMode, ImageParams, ImagineOrigin
from bot.images.journey import JOURNEY_MODES
from bot.images.outpaint import Outpaint
from bot.prompts import StylePreset
from cogs.common import bot_of
from cogs.imagine.journey_buttons import JourneyButton, KeepStep, step_labels

JOB = r"(?P<job>[0-9a-f]{6,32})"
INDEX = r"(?P<index>[0-3])"  # a picture of a job (at most 4 get V/U buttons)
MAX_STYLE_OPTIONS = 25  # Discord's limit for a select menu


class ButtonActions(Protocol):
    """What a click does (the cog's presenter implements it)."""

    async def reroll(self, interaction: discord.Interaction[Any], job_id: str) -> None: ...
    async def derive(self, interaction: discord.Interaction[Any], job_id: str, mode: ImageMode,
                     index: int) -> None: ...
    async def restyle(self, interaction: discord.Interaction[Any], job_id: str,
                      style: str) -> None: ...
    async def outpaint(self, interaction: discord.Interaction[Any], job_id: str, index: int,
                       op: Outpaint) -> None: ...
    async def remix(self, interaction: discord.Interaction[Any], job_id: str) -> None: ...
    async def draft(self, interaction: discord.Interaction[Any], job_id: str) -> None: ...
    async def finalize(self, interaction: discord.Interaction[Any], job_id: str,
                       index: int) -> None: ...
    async def show_parameters(self, interaction: discord.Interaction[Any],
                              job_id: str) -> None: ...
    async def delete(self, interaction: discord.Interaction[Any], job_id: str) -> None: ...
    async def cancel(self, interaction: discord.Interaction[Any], job_id: str) -> None: ...
    async def star(self, interaction: discord.Interaction[Any], job_id: str) -> None: ...


ACTIONS: PartKey[ButtonActions] = PartKey("imagine button actions")


def actions_of(interaction: discord.Interaction[Any]) -> ButtonActions:
    return bot_of(interaction).part(ACTIONS)


class JobButton(discord.ui.DynamicItem[discord.ui.Button[Any]],
                template=rf"gh:(?P<action>[a-z]+):{JOB}(?::{INDEX})?"):
    """A button that names a job (and, for indexed actions, one of its pictures). Never
    registered itself (discord.py wants a template on every DynamicItem class, so it has a
    general one): each subclass gets its action's template and is registered."""

    action: ClassVar[str]
    indexed: ClassVar[bool] = False
    emoji: ClassVar[str | None] = None
    letter: ClassVar[str] = ""  # indexed buttons are labelled letter + picture number
    label: ClassVar[str | None] = None
    colour: ClassVar[discord.ButtonStyle] = discord.ButtonStyle.secondary

    def __init_subclass__(cls, *, action: str, indexed: bool = False) -> None:
        super().__init_subclass__(
            template=rf"gh:{action}:{JOB}" + (rf":{INDEX}" if indexed else ""))
        cls.action, cls.indexed = action, indexed

    def __init__(self, job_id: str, index: int = 0, *, row: int | None = None) -> None:
        custom_id = f"gh:{self.action}:{job_id}" + (f":{index}" if self.indexed else "")
        label = f"{self.letter}{index + 1}" if self.letter else self.label
        super().__init__(discord.ui.Button(emoji=self.emoji, label=label, style=self.colour,
                                           custom_id=custom_id), row=row)
        self.job_id, self.index = job_id, index

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction[Any],
                             item: discord.ui.Item[Any], match: re.Match[str], /) -> Self:
        return cls(match["job"], int(match.groupdict().get("index") or 0))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            await self.act(interaction, actions_of(interaction))
        except Exception as exc:
            await bot_of(interaction).report_interaction_error(interaction, exc)

    async def act(self, interaction: discord.Interaction[Any], actions: ButtonActions) -> None:
        raise NotImplementedError


class Reroll(JobButton, action="rr"):
    emoji = "🔄"

    async def act(self, interaction: discord.Interaction[Any], actions: ButtonActions) -> None:
        await actions.reroll(interaction, self.job_id)


class Upscale(JobButton, action="up", indexed=True):
    letter = "U"

    async def act(self, interaction: discord.Interaction[Any], actions: ButtonActions) -> None:
        await actions.derive(interaction, self.job_id, ImageMode.UPSCALE, self.index)


class Variation(JobButton, action="var", indexed=True):
    letter = "V"

    async def act(self, interaction: discord.Interaction[Any], actions: ButtonActions) -> None:
        await actions.derive(interaction, self.job_id, ImageMode.VARIATION, self.index)


class Draft(JobButton, action="draft"):
    """⚡ The same prompt and seeds as fast drafts (image.draft_model)."""

    emoji = "⚡"
    label = "Drafts"

    async def act(self, interaction: discord.Interaction[Any], actions: ButtonActions) -> None:
        await actions.draft(interaction, self.job_id)


class Finalize(JobButton, action="fin", indexed=True):
    """✨ A draft picture re-rendered by the full model from itself (its composition)."""

    emoji = "✨"
    letter = ""
    colour = discord.ButtonStyle.primary

    def __init__(self, job_id: str, index: int = 0, *, row: int | None = None) -> None:
        super().__init__(job_id, index, row=row)
        self.item.label = str(index + 1)

    async def act(self, interaction: discord.Interaction[Any], actions: ButtonActions) -> None:
        await actions.finalize(interaction, self.job_id, self.index)


class _Widen:
    """Zoom out or pan one picture (its index is in the custom_id): `op` says which."""

    op: ClassVar[Outpaint]
    job_id: str
    index: int

    async def act(self, interaction: discord.Interaction[Any], actions: ButtonActions) -> None:
        await actions.outpaint(interaction, self.job_id, self.index, self.op)


class ZoomOut15(_Widen, JobButton, action="zoom15", indexed=True):
    emoji, label, op = "🔍", "Zoom out 1.5×", Outpaint(zoom=1.5)


class ZoomOut2(_Widen, JobButton, action="zoom2", indexed=True):
    emoji, label, op = "🔍", "Zoom out 2×", Outpaint(zoom=2.0)


class PanLeft(_Widen, JobButton, action="panl", indexed=True):
    emoji, op = "⬅️", Outpaint(pan="left")


class PanRight(_Widen, JobButton, action="panr", indexed=True):
    emoji, op = "➡️", Outpaint(pan="right")


class PanUp(_Widen, JobButton, action="panu", indexed=True):
    emoji, op = "⬆️", Outpaint(pan="up")


class PanDown(_Widen, JobButton, action="pand", indexed=True):
    emoji, op = "⬇️", Outpaint(pan="down")


ZOOMS = (ZoomOut15, ZoomOut2)
PANS = (PanLeft, PanRight, PanUp, PanDown)


class Remix(JobButton, action="remix"):
    emoji = "🖌️"
    label = "Remix"

    async def act(self, interaction: discord.Interaction[Any], actions: ButtonActions) -> None:
        await actions.remix(interaction, self.job_id)


# The Remix form. Its submit is taken by the cog from the interaction itself (not by this
# object, which a restart forgets): the custom_id names the job, the rest is in SQLite.
REMIX_FORM = re.compile(rf"gh:remixed:{JOB}")
PROMPT_FIELD, NEGATIVE_FIELD, SEED_FIELD = "prompt", "negative", "seed"


class RemixForm(discord.ui.Modal):
    def __init__(self, job_id: str, prompt: str, negative: str, seed: int | None,
                 max_prompt_chars: int) -> None:
        super().__init__(title="🖌️ Remix", custom_id=f"gh:remixed:{job_id}", timeout=None)
        limit = min(4000, max_prompt_chars)
        self.add_item(discord.ui.TextInput(
            label="Prompt (subject | style)", custom_id=PROMPT_FIELD,
            style=discord.TextStyle.paragraph, default=prompt[:limit], max_length=limit))
        self.add_item(discord.ui.TextInput(
            label="Negative prompt", custom_id=NEGATIVE_FIELD, required=False,
            style=discord.TextStyle.paragraph, default=negative[:limit] or None,
            max_length=limit))
        self.add_item(discord.ui.TextInput(
            label="Seed (keep it for the same composition)", custom_id=SEED_FIELD,
            required=False, default=None if seed is None else str(seed), max_length=10,
            placeholder="empty: new seeds"))


def form_values(data: Any) -> dict[str, str]:
    """The text a member typed in a submitted form, by field custom_id (rows of text
    inputs, or Discord's newer labels that wrap one)."""
    values: dict[str, str] = {}
    for component in (data or {}).get("components", ()):
        inner = component.get("components") or [component.get("component") or {}]
        for field in inner:
            if field.get("custom_id") is not None:
                values[str(field["custom_id"])] = str(field.get("value") or "")
    return values


class Info(JobButton, action="info"):
    emoji = "ℹ️"

    async def act(self, interaction: discord.Interaction[Any], actions: ButtonActions) -> None:
        await actions.show_parameters(interaction, self.job_id)


class Delete(JobButton, action="del"):
    emoji = "🗑️"

    async def act(self, interaction: discord.Interaction[Any], actions: ButtonActions) -> None:
        await actions.delete(interaction, self.job_id)


class Star(JobButton, action="star"):
    """⭐ One star per member for the whole result: a press gives it, the next takes it back.
    The label is the count (none at 0); the click rebuilds it from SQLite (bot/db/stars.py)."""

    emoji = "⭐"

    def __init__(self, job_id: str, index: int = 0, *, row: int | None = None,
                 stars: int = 0) -> None:
        super().__init__(job_id, index, row=row)
        self.item.label = str(stars) if stars else None

    async def act(self, interaction: discord.Interaction[Any], actions: ButtonActions) -> None:
        await actions.star(interaction, self.job_id)


class Cancel(JobButton, action="cancel"):
    emoji = "✖️"
    label = "Cancel"
    colour = discord.ButtonStyle.danger

    async def act(self, interaction: discord.Interaction[Any], actions: ButtonActions) -> None:
        await actions.cancel(interaction, self.job_id)


class StyleMenu(discord.ui.DynamicItem[discord.ui.Select[Any]], template=rf"gh:style:{JOB}"):
    """Same subject and seed, another preset."""

    def __init__(self, job_id: str, styles: tuple[StylePreset, ...] = (), *,
                 row: int | None = None) -> None:
        # Built from a custom_id the menu has no options: Discord sends only the choice.
        options = [discord.SelectOption(label=s.name[:100], value=s.name[:100])
                   for s in styles[:MAX_STYLE_OPTIONS]]
        super().__init__(discord.ui.Select(
            placeholder="🎨 Same subject and seed, another style…",
            custom_id=f"gh:style:{job_id}",
            options=options or [discord.SelectOption(label="painting")]), row=row)
        self.job_id = job_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction[Any],
                             item: discord.ui.Item[Any], match: re.Match[str], /) -> Self:
        return cls(match["job"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        values = self.item.values  # filled from the interaction by discord.py
        try:
            await actions_of(interaction).restyle(interaction, self.job_id,
                                                  str(values[0]) if values else "")
        except Exception as exc:
            await bot_of(interaction).report_interaction_error(interaction, exc)


class PickMenu(discord.ui.DynamicItem[discord.ui.Select[Any]],
               template=rf"gh:(?P<action>pick[a-z]+):{JOB}"):
    """A style sweep's U or V: its pictures are picked by their style, not by a number."""

    action: ClassVar[str] = ""
    mode: ClassVar[ImageMode]
    placeholder: ClassVar[str] = ""

    def __init_subclass__(cls, *, action: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(template=rf"gh:{action}:{JOB}", **kwargs)
        cls.action = action

    def __init__(self, job_id: str, labels: tuple[str, ...] = (), *,
                 row: int | None = None) -> None:
        # Built from a custom_id the menu has no options: Discord sends only the choice.
        options = [discord.SelectOption(label=f"{i + 1}. {label}"[:100], value=str(i))
                   for i, label in enumerate(labels[:MAX_STYLE_OPTIONS])]
        super().__init__(discord.ui.Select(
            placeholder=self.placeholder, custom_id=f"gh:{self.action}:{job_id}",
            options=options or [discord.SelectOption(label="1", value="0")]), row=row)
        self.job_id = job_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction[Any],
                             item: discord.ui.Item[Any], match: re.Match[str], /) -> Self:
        return cls(match["job"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        values = self.item.values
        try:
            index = int(values[0]) if values else 0
            await actions_of(interaction).derive(interaction, self.job_id, self.mode, index)
        except Exception as exc:
            await bot_of(interaction).report_interaction_error(interaction, exc)


class UpscalePick(PickMenu, action="pickup"):
    mode = ImageMode.UPSCALE
    placeholder = "⬆️ Upscale the picture of a style…"


class VariationPick(PickMenu, action="pickvar"):
    mode = ImageMode.VARIATION
    placeholder = "🔀 Variations of the picture of a style…"


ITEMS: tuple[type[discord.ui.DynamicItem[Any]], ...] = (
    UpscalePick, VariationPick,
    Reroll, Remix, Upscale, Variation, Info, Delete, Cancel, StyleMenu, Draft, Finalize, Star,
    *ZOOMS, *PANS)


def result_view(record: JobRecord, styles: tuple[StylePreset, ...], *,
                drafts: bool = False, stars: int = 0) -> discord.ui.View:
    """🔄 🖌️ ℹ️ 🗑️ (and ⚡ Drafts when a draft model is set up), then U1-U4, V1-V4 and the
    style menu (an upscale has 🖌️ ℹ️ 🗑️); one picture also gets 🔍 Zoom out 1.5× and 2×
    (row 1) and ⬅️ ➡️ ⬆️ ⬇️ (row 2). Drafts get ✨1-✨4 (finalize) where U1-U4 would be.
    Every result but a private one gets ⭐ with its `stars` (row 4); one that a single
    render made also 🎞 Journey (row 4). A journey has ℹ️ 🗑️ and the keep-a-step menu."""
    job_id, params = record.job.id, record.job.params
    assert isinstance(params, ImageParams)
    view = discord.ui.View(timeout=None)
    count = min(len(record.images), 4)
    upscaled = params.mode is ImageMode.UPSCALE
    journey = params.mode is ImageMode.JOURNEY  # 🎞: ℹ️ 🗑️ and the menu that keeps a step
    if not upscaled and not journey:
        view.add_item(Reroll(job_id, row=0))
    if not journey:
        view.add_item(Remix(job_id, row=0))
    view.add_item(Info(job_id, row=0))
    view.add_item(Delete(job_id, row=0))
    origin = record.job.origin
    if not (isinstance(origin, ImagineOrigin) and origin.private):  # nobody else sees those
        view.add_item(Star(job_id, stars=stars, row=4))
    if journey:
        view.add_item(KeepStep(job_id, step_labels(record), row=1))
        return view
    if params.mode in JOURNEY_MODES:  # 🎞 beside ⭐ (several pictures: a menu asks which)
        view.add_item(JourneyButton(job_id, row=4))
    if params.draft and not upscaled and len(params.labels) <= 1:
        for i in range(count):
            view.add_item(Finalize(job_id, i, row=1))
        for i in range(count):
            view.add_item(Variation(job_id, i, row=2))
        return view
    if drafts and not upscaled:
        view.add_item(Draft(job_id, row=0))
    if not upscaled and len(params.labels) > 1:  # a style sweep: pick by style
        labels = tuple(image.label or f"style {i + 1}" for i, image in enumerate(record.images))
        view.add_item(UpscalePick(job_id, labels, row=1))
        view.add_item(VariationPick(job_id, labels, row=2))
        view.add_item(StyleMenu(job_id, styles, row=3))
    elif not upscaled:
        for i in range(count):
            view.add_item(Upscale(job_id, i, row=1))
        for i in range(count):
            view.add_item(Variation(job_id, i, row=2))
        view.add_item(StyleMenu(job_id, styles, row=3))
    if count == 1:  # one picture (an upscale's too): 🔍 beside U1, the pans beside V1
        for zoom in ZOOMS:
            view.add_item(zoom(job_id, 0, row=1))
        for pan in PANS:
            view.add_item(pan(job_id, 0, row=2))
    return view


def cancel_view(job_id: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(Cancel(job_id, row=0))
    return view
