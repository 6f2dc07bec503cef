"""Errors shared by the image and text pipelines, the model-source checks behind them, and
how a model is named where others see it.

Importing this module is cheap (no torch, diffusers or transformers).
"""

from __future__ import annotations

import os
import re
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


def public_model_name(name: str) -> str:
    """The model's name for PNG parameters, embeds and story lines: a hub id as it is, a
    folder by its own name, never the host's path to it ("/home/me/models/sd15" -> "sd15").

    A name is a folder when it can only be a path or is an existing folder (what
    `resolve_model_source` loads). A hub cache snapshot (…/models--owner--name/snapshots/<rev>)
    is named by its repository, "owner/name". Naming a name again changes nothing.
    """
    path = Path(name).expanduser()
    if not name or not (_looks_like_path(name) or path.is_dir()):
        return name
    parts = [p for p in re.split(r"[/\\]+", name) if p not in ("", ".")]
    if len(parts) >= 3 and parts[-2] == "snapshots" and parts[-3].startswith("models--"):
        return parts[-3].removeprefix("models--").replace("--", "/")
    if not parts or parts[-1] in ("..", "~"):  # ".", "models/..", "~": the folder it means
        return path.resolve().name or "model"
    return parts[-1]


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
