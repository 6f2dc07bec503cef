"""Sampler (scheduler) names: our config names, diffusers classes, A1111 display names.

No diffusers import at module level: config validation imports this to check names, and
importing diffusers costs seconds.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class SchedulerSpec:
    """How one of our scheduler names maps onto diffusers."""

    a1111_name: str  # the name AUTOMATIC1111 shows, used in image metadata
    class_name: str  # a class exported by `diffusers`
    kwargs: Mapping[str, Any] = field(default_factory=dict)  # overrides on the model's config
    requires: tuple[str, ...] = ()  # extra importable packages the class needs

    def available(self) -> bool:
        """Whether the packages it needs are installed (checked without importing them)."""
        return all(importlib.util.find_spec(module) is not None for module in self.requires)


def _spec(a1111: str, cls: str, *, requires: tuple[str, ...] = (), **kwargs: Any) -> SchedulerSpec:
    return SchedulerSpec(a1111, cls, MappingProxyType(kwargs), requires)


SCHEDULERS: dict[str, SchedulerSpec] = {
    "euler": _spec("Euler", "EulerDiscreteScheduler"),
    "euler_a": _spec("Euler a", "EulerAncestralDiscreteScheduler"),
    # The model's config may already ask for Karras sigmas: say explicitly which we want.
    "dpmpp_2m": _spec(
        "DPM++ 2M",
        "DPMSolverMultistepScheduler",
        algorithm_type="dpmsolver++",
        solver_order=2,
        use_karras_sigmas=False,
    ),
    "dpmpp_2m_karras": _spec(
        "DPM++ 2M Karras",
        "DPMSolverMultistepScheduler",
        algorithm_type="dpmsolver++",
        solver_order=2,
        use_karras_sigmas=True,
    ),
    "ddim": _spec("DDIM", "DDIMScheduler"),
    "pndm": _spec("PLMS", "PNDMScheduler", skip_prk_steps=True),
    # diffusers' LMS integrates with scipy, which is not a dependency of this project.
    "lms": _spec("LMS", "LMSDiscreteScheduler", requires=("scipy",)),
    "unipc": _spec("UniPC", "UniPCMultistepScheduler"),
    # Heun is second order: it runs the UNet about twice per step.
    "heun": _spec("Heun", "HeunDiscreteScheduler"),
    # Only gives good images with LCM-distilled weights or an LCM LoRA.
    "lcm": _spec("LCM", "LCMScheduler"),
}


def scheduler_names() -> list[str]:
    """Our config names, in a stable order (for help texts and choices)."""
    return list(SCHEDULERS)


def _get(name: str) -> SchedulerSpec:
    try:
        return SCHEDULERS[name]
    except KeyError:
        raise ValueError(
            f"Unknown scheduler {name!r}; choose one of: {', '.join(SCHEDULERS)}."
        ) from None


def a1111_name(name: str) -> str:
    """The AUTOMATIC1111 display name for one of our scheduler names ("euler_a" → "Euler a")."""
    return _get(name).a1111_name


def make_scheduler(name: str, base_config: Mapping[str, Any]) -> Any:
    """Build scheduler `name` from a model's scheduler config (keeps betas, timestep spacing…)."""
    spec = _get(name)
    if not spec.available():
        raise ValueError(
            f"Scheduler {name!r} needs the package(s) {', '.join(spec.requires)}: install them "
            f"(pip install {' '.join(spec.requires)}) or choose another scheduler."
        )
    import diffusers  # lazy: see the module docstring

    cls = getattr(diffusers, spec.class_name)
    return cls.from_config(base_config, **dict(spec.kwargs))
