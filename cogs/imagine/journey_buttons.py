"""🎞 The journey's persistent items: the button on a result, the menu of which picture (a
result of several), and the menu on a journey that keeps a step. Like every result item,
they hold only a job id; the state comes from SQLite when clicked. A click reaches the
cog's journey actions (cogs/imagine/journey.py) through `interaction.client`.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Protocol, Self

import discord

from bot.client import PartKey
from bot.db.jobs import JobRecord
from bot.images.journey import step_of
from cogs.common import bot_of

JOB = r"(?P<job>[0-9a-f]{6,32})"
MAX_OPTIONS = 25  # Discord's limit for a select menu; a journey has at most 25 frames


class JourneyActions(Protocol):
    async def journey(self, interaction: discord.Interaction[Any], job_id: str,
                      index: int | None) -> None: ...
    async def keep_step(self, interaction: discord.Interaction[Any], job_id: str,
                        index: int) -> None: ...


JOURNEY_ACTIONS: PartKey[JourneyActions] = PartKey("imagine journey actions")


def _actions(interaction: discord.Interaction[Any]) -> JourneyActions:
    return bot_of(interaction).part(JOURNEY_ACTIONS)


class JourneyButton(discord.ui.DynamicItem[discord.ui.Button[Any]],
                    template=rf"gh:jny:{JOB}"):
    """🎞 On a result: one picture's journey at once; of several, a menu asks which."""

    def __init__(self, job_id: str, *, row: int | None = None) -> None:
        super().__init__(discord.ui.Button(emoji="🎞️", label="Journey",
                                           style=discord.ButtonStyle.secondary,
                                           custom_id=f"gh:jny:{job_id}"), row=row)
        self.job_id = job_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction[Any],
                             item: discord.ui.Item[Any], match: re.Match[str], /) -> Self:
        return cls(match["job"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            await _actions(interaction).journey(interaction, self.job_id, None)
        except Exception as exc:
            await bot_of(interaction).report_interaction_error(interaction, exc)


class _Menu(discord.ui.DynamicItem[discord.ui.Select[Any]], template=rf"gh:jmenu:{JOB}"):
    """A menu whose options are a job's pictures by index; `chosen` says what a pick does.
    Never registered itself (discord.py wants a template on every DynamicItem class)."""

    action: ClassVar[str]
    placeholder: ClassVar[str]

    def __init_subclass__(cls, *, action: str) -> None:
        super().__init_subclass__(template=rf"gh:{action}:{JOB}")
        cls.action = action

    def __init__(self, job_id: str, labels: tuple[str, ...] = (), *,
                 row: int | None = None) -> None:
        # Built from a custom_id the menu has no options: Discord sends only the choice.
        options = [discord.SelectOption(label=label[:100], value=str(i))
                   for i, label in enumerate(labels[:MAX_OPTIONS])]
        super().__init__(discord.ui.Select(
            placeholder=self.placeholder, custom_id=f"gh:{self.action}:{job_id}",
            options=options or [discord.SelectOption(label="1", value="0")]), row=row)
        self.job_id = job_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction[Any],
                             item: discord.ui.Item[Any], match: re.Match[str], /) -> Self:
        return cls(match["job"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        values = self.item.values  # filled from the interaction by discord.py
        try:
            await self.chosen(interaction, _actions(interaction), int(values[0]) if values
                              else 0)
        except Exception as exc:
            await bot_of(interaction).report_interaction_error(interaction, exc)

    async def chosen(self, interaction: discord.Interaction[Any], actions: JourneyActions,
                     index: int) -> None:
        raise NotImplementedError


class JourneyPick(_Menu, action="jnypick"):
    """Which picture of a result of several gets its journey (sent only to the clicker)."""

    placeholder = "🎞️ The journey of picture…"

    async def chosen(self, interaction: discord.Interaction[Any], actions: JourneyActions,
                     index: int) -> None:
        await actions.journey(interaction, self.job_id, index)


class KeepStep(_Menu, action="keep"):
    """On a journey: keep one step as a picture of its own."""

    placeholder = "📌 Keep a step as a picture…"

    async def chosen(self, interaction: discord.Interaction[Any], actions: JourneyActions,
                     index: int) -> None:
        await actions.keep_step(interaction, self.job_id, index)


JOURNEY_ITEMS: tuple[type[discord.ui.DynamicItem[Any]], ...] = (JourneyButton, JourneyPick,
                                                                KeepStep)


def picture_labels(record: JobRecord) -> tuple[str, ...]:
    """How the which-picture menu names a result's pictures: by number (and style)."""
    return tuple(f"Picture {i + 1}" + (f" · {image.label}" if image.label else "")
                 for i, image in enumerate(record.images))


def step_labels(record: JobRecord) -> tuple[str, ...]:
    """How the keep menu names a journey's frames: "Step N of M", the last "(the picture)"."""
    labels = []
    for image in record.images:
        found = step_of(image.label)
        step, total = found if found else (0, 0)
        last = " (the finished picture)" if found and step == total else ""
        labels.append(f"Step {step} of {total}{last}" if found else image.label or "Step")
    return tuple(labels)


def pick_view(record: JobRecord) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(JourneyPick(record.job.id, picture_labels(record), row=0))
    return view
