"""The image models members may pick, with what each one defaults to and allows.

Built once at start from the config (`[image.models.NAME]`, or the single `image.model`)
and the models' own config files (read, not loaded: bot.pipelines.families), so a request
is checked against its model's family on the event loop's side before it is queued.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.config import ImageSettings, LoraProfile, ModelProfile
from bot.pipelines.families import (
    FAMILY_RULES,
    FamilyRules,
    ModelFacts,
    default_native_size,
    detect_family,
    read_model_facts,
)


class UnknownModel(ValueError):
    """A model name nobody configured; the message lists the ones there are."""


@dataclass(frozen=True)
class ModelInfo:
    """One pickable model: its config section with the family's defaults filled in."""

    profile: ModelProfile
    family: str
    native_size: int  # its own side in pixels

    @property
    def name(self) -> str:
        return self.profile.name

    @property
    def rules(self) -> FamilyRules:
        return FAMILY_RULES[self.family]

    def default_steps(self, settings: ImageSettings) -> int:
        if self.profile.steps is not None:
            return self.profile.steps
        return self.rules.steps if self.rules.steps is not None else settings.steps

    def default_guidance(self, settings: ImageSettings) -> float:
        if self.profile.guidance is not None:
            return self.profile.guidance
        return self.rules.guidance if self.rules.guidance is not None else settings.guidance

    def negative_prompt(self, settings: ImageSettings) -> str:
        if self.profile.negative_prompt is not None:
            return self.profile.negative_prompt
        return settings.negative_prompt

    def scheduler(self, settings: ImageSettings) -> str:
        return self.rules.scheduler or self.profile.scheduler or settings.scheduler

    def steps_range(self, settings: ImageSettings) -> tuple[int, int]:
        low, high = self.rules.steps_range or (1, settings.max_steps)
        return low, min(high, settings.max_steps)

    def guidance_range(self) -> tuple[float, float]:
        return self.rules.guidance_range or (0.0, 30.0)

    @property
    def label(self) -> str:
        """For autocomplete: the name and what it is."""
        about = self.profile.description or self.rules.label
        return f"{self.name} — {about}"[:100]


class ModelCatalog:
    def __init__(self, settings: ImageSettings, infos: list[ModelInfo]) -> None:
        self.settings = settings
        self._infos = infos

    @classmethod
    def read(cls, settings: ImageSettings,
             native_of: dict[str, int] | None = None) -> ModelCatalog:
        """Reads each model's config files (blocking: call it in a thread). `native_of`
        overrides a model's native side by name (what a loaded pipeline reported)."""
        infos = []
        for profile in settings.profiles():
            facts = read_model_facts(profile.path)
            lora = settings.lora(profile.lora) if profile.lora else None
            family = detect_family(facts, profile.path, profile.family,
                                   (lora.path,) if lora else ())
            native = (native_of or {}).get(profile.name) or default_native_size(family, facts)
            infos.append(ModelInfo(profile, family, native))
        return cls(settings, infos)

    @classmethod
    def offline(cls, settings: ImageSettings, native: int) -> ModelCatalog:
        """Without reading files: every model as its section declares (tests, celery bots
        without the model files use `read`, which falls back the same way)."""
        infos = []
        for profile in settings.profiles():
            lora = settings.lora(profile.lora) if profile.lora else None
            family = detect_family(ModelFacts(), profile.path, profile.family,
                                   (lora.path,) if lora else ())
            infos.append(ModelInfo(profile, family, native))
        return cls(settings, infos)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._infos)

    @property
    def default(self) -> ModelInfo:
        return self.get("")

    @property
    def draft(self) -> ModelInfo | None:
        return self.get(self.settings.draft_model) if self.settings.draft_model else None

    def get(self, name: str | None) -> ModelInfo:
        """The model a job names ("" or None: the default); UnknownModel if none."""
        wanted = name or self.settings.model
        key = _fold(wanted)
        for info in self._infos:
            if wanted in (info.name, info.profile.path) or _fold(info.name) == key:
                return info
        names = ", ".join(i.name for i in self._infos)
        raise UnknownModel(f"model {wanted!r} is not offered here; choose one of: {names}.")

    def set_native_size(self, name: str, size: int) -> None:
        """What the loaded pipeline (or a remote worker) reports as its own side."""
        self._infos = [ModelInfo(i.profile, i.family, size) if i.name == name else i
                       for i in self._infos]

    def suggest(self, current: str, limit: int = 25) -> list[ModelInfo]:
        """Models whose name or description contains what was typed, names first."""
        text = current.strip().casefold()
        named = [i for i in self._infos if text in i.name.casefold()]
        described = [i for i in self._infos if i not in named
                     and text in i.profile.description.casefold()]
        return (named + described)[:limit]


def _fold(name: str) -> str:
    return "".join(name.split()).casefold()


def suggest_loras(settings: ImageSettings, current: str,
                  limit: int = 25) -> list[tuple[str, str]]:
    """(name, label) of the LoRAs whose name, description or trigger words contain what
    was typed, names first; the label says what each is and its default weight."""
    text = current.strip().casefold()

    def label(lo: LoraProfile) -> str:
        about = lo.description or (", ".join(lo.triggers) if lo.triggers else "LoRA")
        return f"{lo.name} — {about} (weight {lo.weight:g})"[:100]

    named = [lo for lo in settings.loras if text in lo.name.casefold()]
    other = [lo for lo in settings.loras if lo not in named and (
        text in lo.description.casefold() or any(text in t.casefold() for t in lo.triggers))]
    return [(lo.name[:100], label(lo)) for lo in (named + other)[:limit]]
