"""Persistent buttons: the custom_id holds the job id, the state comes from SQLite, so they
keep working after a restart (discord.py DynamicItem)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Protocol

import discord

from bot.executor.jobs import ImageMode, ImageParams, JobState
from bot.prompts import StylePreset

if TYPE_CHECKING:
    from bot.db.jobs import JobRecord

JOB = r"(?P<job>[0-9a-f]{6,32})"
MAX_STYLE_OPTIONS = 25  # Discord's limit for a select menu


class ButtonActions(Protocol):
    async def reroll(self, interaction: discord.Interaction, job_id: str) -> None: ...
    async def derive(self, interaction: discord.Interaction, job_id: str, mode: ImageMode,
                     index: int) -> None: ...
    async def restyle(self, interaction: discord.Interaction, job_id: str, style: str) -> None: ...
    async def show_parameters(self, interaction: discord.Interaction, job_id: str) -> None: ...
    async def delete(self, interaction: discord.Interaction, job_id: str) -> None: ...
    async def cancel(self, interaction: discord.Interaction, job_id: str) -> None: ...


class ImagineButtons:
    """The item classes, bound to the actions they call (no global look-ups from items)."""

    def __init__(self, actions: ButtonActions) -> None:
        self.actions = actions
        self.classes = _item_classes(actions)

    def result_view(self, record: JobRecord, styles: tuple[StylePreset, ...]) -> discord.ui.View:
        job_id, params = record.job.id, record.job.params
        assert isinstance(params, ImageParams)
        c = self.classes
        view = discord.ui.View(timeout=None)
        count = len(record.images)
        if params.mode is not ImageMode.UPSCALE:
            view.add_item(c["reroll"](job_id, row=0))
        view.add_item(c["info"](job_id, row=0))
        view.add_item(c["delete"](job_id, row=0))
        if params.mode is not ImageMode.UPSCALE:
            for i in range(min(count, 4)):
                view.add_item(c["upscale"](job_id, i, row=1))
            for i in range(min(count, 4)):
                view.add_item(c["variation"](job_id, i, row=2))
            view.add_item(c["style"](job_id, styles, row=3))
        return view

    def cancel_view(self, job_id: str) -> discord.ui.View:
        view = discord.ui.View(timeout=None)
        view.add_item(self.classes["cancel"](job_id, row=0))
        return view

    def all(self) -> list[type[discord.ui.DynamicItem[Any]]]:
        return list(self.classes.values())


def _item_classes(actions: ButtonActions) -> dict[str, Any]:
    class Reroll(discord.ui.DynamicItem[discord.ui.Button[Any]], template=rf"gh:rr:{JOB}"):
        def __init__(self, job_id: str, row: int | None = None) -> None:
            super().__init__(discord.ui.Button(
                emoji="🔄", style=discord.ButtonStyle.secondary, custom_id=f"gh:rr:{job_id}",
                row=row))
            self.job_id = job_id

        @classmethod
        async def from_custom_id(cls, interaction: discord.Interaction,  # type: ignore[override]
                                 item: discord.ui.Button[Any], match: re.Match[str]) -> Reroll:
            return cls(match["job"])

        async def callback(self, interaction: discord.Interaction) -> None:  # type: ignore[override]
            await actions.reroll(interaction, self.job_id)

    def derived_class(mode: ImageMode, letter: str, tag: str) -> Any:
        class Derived(discord.ui.DynamicItem[discord.ui.Button[Any]],
                      template=rf"gh:{tag}:{JOB}:(?P<index>[0-3])"):
            def __init__(self, job_id: str, index: int, row: int | None = None) -> None:
                super().__init__(discord.ui.Button(
                    label=f"{letter}{index + 1}", style=discord.ButtonStyle.secondary,
                    custom_id=f"gh:{tag}:{job_id}:{index}", row=row))
                self.job_id, self.index = job_id, index

            @classmethod
            async def from_custom_id(cls, interaction: discord.Interaction,  # type: ignore[override]
                                     item: discord.ui.Button[Any], match: re.Match[str]) -> Any:
                return cls(match["job"], int(match["index"]))

            async def callback(self, interaction: discord.Interaction) -> None:  # type: ignore[override]
                await actions.derive(interaction, self.job_id, mode, self.index)

        Derived.__name__ = f"{mode.value.title()}Button"
        return Derived

    class Info(discord.ui.DynamicItem[discord.ui.Button[Any]], template=rf"gh:info:{JOB}"):
        def __init__(self, job_id: str, row: int | None = None) -> None:
            super().__init__(discord.ui.Button(
                emoji="ℹ️", style=discord.ButtonStyle.secondary, custom_id=f"gh:info:{job_id}",
                row=row))
            self.job_id = job_id

        @classmethod
        async def from_custom_id(cls, interaction: discord.Interaction,  # type: ignore[override]
                                 item: discord.ui.Button[Any], match: re.Match[str]) -> Info:
            return cls(match["job"])

        async def callback(self, interaction: discord.Interaction) -> None:  # type: ignore[override]
            await actions.show_parameters(interaction, self.job_id)

    class Delete(discord.ui.DynamicItem[discord.ui.Button[Any]], template=rf"gh:del:{JOB}"):
        def __init__(self, job_id: str, row: int | None = None) -> None:
            super().__init__(discord.ui.Button(
                emoji="🗑️", style=discord.ButtonStyle.secondary, custom_id=f"gh:del:{job_id}",
                row=row))
            self.job_id = job_id

        @classmethod
        async def from_custom_id(cls, interaction: discord.Interaction,  # type: ignore[override]
                                 item: discord.ui.Button[Any], match: re.Match[str]) -> Delete:
            return cls(match["job"])

        async def callback(self, interaction: discord.Interaction) -> None:  # type: ignore[override]
            await actions.delete(interaction, self.job_id)

    class Cancel(discord.ui.DynamicItem[discord.ui.Button[Any]], template=rf"gh:cancel:{JOB}"):
        def __init__(self, job_id: str, row: int | None = None) -> None:
            super().__init__(discord.ui.Button(
                emoji="✖️", label="Cancel", style=discord.ButtonStyle.danger,
                custom_id=f"gh:cancel:{job_id}", row=row))
            self.job_id = job_id

        @classmethod
        async def from_custom_id(cls, interaction: discord.Interaction,  # type: ignore[override]
                                 item: discord.ui.Button[Any], match: re.Match[str]) -> Cancel:
            return cls(match["job"])

        async def callback(self, interaction: discord.Interaction) -> None:  # type: ignore[override]
            await actions.cancel(interaction, self.job_id)

    class StyleMenu(discord.ui.DynamicItem[discord.ui.Select[Any]], template=rf"gh:style:{JOB}"):
        def __init__(self, job_id: str, styles: tuple[StylePreset, ...] = (),
                     row: int | None = None) -> None:
            options = [discord.SelectOption(label=s.name[:100], value=s.name[:100])
                       for s in styles[:MAX_STYLE_OPTIONS]]
            super().__init__(discord.ui.Select(
                placeholder="🎨 Same subject and seed, another style…",
                custom_id=f"gh:style:{job_id}", options=options or [
                    discord.SelectOption(label="painting")], row=row))
            self.job_id = job_id

        @classmethod
        async def from_custom_id(cls, interaction: discord.Interaction,  # type: ignore[override]
                                 item: discord.ui.Select[Any], match: re.Match[str]) -> StyleMenu:
            return cls(match["job"])

        async def callback(self, interaction: discord.Interaction) -> None:  # type: ignore[override]
            values = self.item.values  # filled from the interaction by discord.py
            await actions.restyle(interaction, self.job_id, str(values[0]) if values else "")

    return {
        "reroll": Reroll,
        "upscale": derived_class(ImageMode.UPSCALE, "U", "up"),
        "variation": derived_class(ImageMode.VARIATION, "V", "var"),
        "info": Info,
        "delete": Delete,
        "cancel": Cancel,
        "style": StyleMenu,
    }


def job_is_usable(record: JobRecord | None) -> str | None:
    """Why a finished job can't be used by a button, or None."""
    if record is None:
        return ("That picture's job is no longer stored (it was deleted), so this button "
                "can't do anything any more.")
    if record.state is not JobState.DONE or not record.images:
        return "That job has no finished pictures."
    return None
