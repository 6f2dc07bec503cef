"""Errors shared by the image and text pipelines, and the model-source checks behind them.

Importing this module is cheap (no torch, diffusers or transformers).
"""

from __future__ import annotations

import os
from pathlib import Path


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says which one and how to get it."""

    def __init__(self, model: str, message: str) -> None:
        super().__init__(message)
        self.model = model


class BlockedTextError(RuntimeError):
    """Every generated story line contained a blocked term (after all attempts)."""

    def __init__(self, term: str, attempts: int) -> None:
        super().__init__(
            f"The story model kept writing a blocked term ({term!r}) in {attempts} "
            "attempt(s); no line was added. Try again, or edit the story so far."
        )
        self.term = term
        self.attempts = attempts


# What loaders raise for missing/unreachable/invalid models: huggingface_hub's errors derive
# from OSError (HTTP, offline, local cache misses) or ValueError (bad repo ids); transformers and
# diffusers add their own OSError/ValueError. EntryNotFoundError is a bare Exception.
def loader_errors() -> tuple[type[BaseException], ...]:
    """The exception types that mean "this model can't be loaded from here"."""
    from huggingface_hub.errors import EntryNotFoundError

    return (OSError, ValueError, EntryNotFoundError)


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _looks_like_path(name: str) -> bool:
    """True when `name` can only be a folder: hub ids are `name` or `owner/name`."""
    return (
        name.startswith(("/", ".", "~"))
        or "\\" in name
        or name.count("/") > 1
        or (len(name) > 1 and name[1] == ":")  # C:\…
    )


def resolve_model_source(name: str, *, kind: str, config_file: str, setting: str) -> str:
    """Return what to pass to `from_pretrained`: an existing folder, or a hub id.

    A name that is an existing folder (or can only be a path) is checked here, so a typo gets
    a clear message instead of the hub's "repo id must be in the form…". `kind` ("Image
    model", "Story model") and `setting` ("image.model") only shape the messages.
    """
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / config_file).is_file():
            what = "diffusers pipeline" if config_file == "model_index.json" else "model"
            raise ModelLoadError(
                name,
                f"{kind} folder '{name}' has no {config_file}: it is not a saved {what} "
                "(expected the layout `save_pretrained` writes, or a hub snapshot).",
            )
        return str(path)
    if path.exists() or _looks_like_path(name):
        raise ModelLoadError(
            name,
            f"{kind} folder '{name}' does not exist (or is not a folder). Point {setting} at "
            "a folder written by `save_pretrained`, or at a hub id such as owner/name.",
        )
    return name


def load_failure(name: str, *, kind: str, setting: str, cause: BaseException) -> ModelLoadError:
    """Turn a hub/loader exception into a ModelLoadError that says what to do."""
    if Path(name).expanduser().is_dir():
        return ModelLoadError(
            name,
            f"{kind} folder '{name}' could not be loaded (incomplete or incompatible files?). "
            f"Cause: {type(cause).__name__}: {_first_line(cause)}",
        )
    where = (
        "the hub can't be reached (HF_HUB_OFFLINE=1 or no network)"
        if _hub_offline()
        else "it could not be downloaded from the hub"
    )
    return ModelLoadError(
        name,
        f"{kind} '{name}' is not in the local cache and {where}. Download it once with "
        f"`hf download {name}` (or `huggingface-cli download {name}`), or point {setting} at "
        "a folder, or run `python -m bot tiny-models DIR` for a tiny offline model. "
        f"(Cause: {type(cause).__name__}: {_first_line(cause)})",
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else "no details"
