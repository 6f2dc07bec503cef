"""LoRAs on a loaded diffusers pipeline: each loaded once (`load_lora_weights`), then switched
per batch with peft adapters, so a batch gets exactly its LoRAs and nothing leaks into the
next; and AUTOMATIC1111's short hash of a LoRA file for the "Lora hashes:" infotext.

Importing this module is cheap (torch, diffusers and the hub are imported when used).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.pipelines.errors import ModelLoadError, loader_errors

__all__ = ["LoraAdapters", "LoraLoadError", "LoraSource", "adapter_name", "lora_file",
           "lora_short_hash"]

log = logging.getLogger(__name__)

DEFAULT_WEIGHT_NAME = "pytorch_lora_weights.safetensors"  # what diffusers' scripts write
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".ckpt")


@dataclass(frozen=True)
class LoraSource:
    name: str  # the [image.loras.NAME] name, used (made valid) as the adapter name
    path: str  # a .safetensors file, a folder, or a hub id
    weight_name: str = ""  # the file inside a folder / hub repo that holds several


class LoraLoadError(ModelLoadError):
    """A LoRA could not be loaded; the message names image.loras.NAME and what is wrong."""

    def __init__(self, lora: str, message: str) -> None:
        super().__init__(lora, f"image.loras.{lora}: {message}")
        self.lora = lora


def adapter_name(name: str) -> str:
    """The peft adapter name for a LoRA name: letters, digits and _ only (peft keeps adapters
    in module dicts, where a '.' would nest), plus a hash of the name itself, so that "a.b"
    and "a_b" stay apart and no adapter name is a prefix of another's (diffusers matches
    adapter names by substring when it cleans up a failed load)."""
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
    return f"{re.sub(r'[^0-9A-Za-z_]', '_', name)}_{digest}"


class LoraAdapters:
    """The LoRAs loaded into one pipeline, switched per batch (worker thread only).

    Pipelines made with `from_pipe` share the UNet and text encoder, and adapters live in
    those modules: one LoraAdapters serves them all.
    """

    def __init__(self, pipe: Any) -> None:
        self._pipe = pipe
        self._sources: dict[str, LoraSource] = {}  # adapter name -> source, in load order
        self._files: dict[str, Path] = {}  # adapter name -> the weights file loaded
        self._active: tuple[tuple[str, float], ...] = ()  # (adapter name, weight)

    @property
    def loaded(self) -> tuple[str, ...]:
        """The names (LoraSource.name) of the LoRAs loaded, in load order."""
        return tuple(source.name for source in self._sources.values())

    def use(self, loras: Sequence[tuple[LoraSource, float]]) -> None:
        """Exactly these active at these weights (loading new ones first); [] = none.

        A LoRA that fails to load raises LoraLoadError and leaves the pipe as it was.
        """
        wanted: dict[str, float] = {}  # a LoRA named twice: the last weight wins
        for source, _ in loras:
            self._ensure_loaded(source)
        for source, weight in loras:
            wanted[adapter_name(source.name)] = float(weight)
        self._apply(tuple(wanted.items()))

    def short_hash(self, name: str) -> str:
        """AUTOMATIC1111's short hash of a loaded LoRA's file; "" when not loaded or
        unreadable."""
        file = self._files.get(adapter_name(name))
        try:
            return lora_short_hash(file) if file is not None else ""
        except OSError:
            return ""

    # -- internals ---------------------------------------------------------------------------

    def _apply(self, active: tuple[tuple[str, float], ...]) -> None:
        if not self._sources:
            return  # never had a LoRA: nothing to switch
        if active:
            names = [name for name, _ in active]
            self._pipe.set_adapters(names, adapter_weights=[w for _, w in active])
            self._pipe.enable_lora()
        else:
            # peft layers with adapters disabled run the base layer alone: exactly the
            # pipe that never had a LoRA.
            self._pipe.disable_lora()
        self._active = active

    def _ensure_loaded(self, source: LoraSource) -> None:
        name = adapter_name(source.name)
        known = self._sources.get(name)
        if known == source:
            return
        if known is not None:  # same name, another file (a changed config): replace it
            self._delete(name)
            self._apply(tuple(a for a in self._active if a[0] != name))
        file = lora_file(source)
        _unfuse_projections(self._pipe)
        try:
            self._pipe.load_lora_weights(str(file), adapter_name=name)
            if not any(name in names for names in self._pipe.get_list_adapters().values()):
                raise LoraLoadError(source.name, f"{file} holds no weights for this model's "
                                    "UNet or text encoder (a LoRA for another base model?)")
        except BaseException as exc:
            # diffusers loads the UNet part, then the text encoder's: undo either.
            self._delete(name)
            self._apply(self._active)
            if isinstance(exc, LoraLoadError) or not isinstance(exc, Exception) or _oom(exc):
                raise  # ours, an interrupt, or out of memory (the executor backs off)
            raise LoraLoadError(
                source.name,
                f"{file} could not be loaded into this {type(self._pipe).__name__} (not a "
                "LoRA, or one for another base model such as SDXL vs SD 1.5?). "
                f"Cause: {type(exc).__name__}: {_first_line(exc)}",
            ) from exc
        self._sources[name] = source
        self._files[name] = file
        log.info("LoRA %s loaded from %s", source.name, file)

    def _delete(self, name: str) -> None:
        self._sources.pop(name, None)
        self._files.pop(name, None)
        if any(name in names for names in self._pipe.get_list_adapters().values()):
            self._pipe.delete_adapters(name)


def _unfuse_projections(pipe: Any) -> None:
    """LoRAs wrap to_q/to_k/to_v; fused attention (tune_for_gpu) reads to_qkv instead and
    would skip them. Back to the separate projections (the same result, up to rounding)."""
    unet = getattr(pipe, "unet", None)
    if unet is not None and getattr(unet, "original_attn_processors", None) is not None:
        unet.unfuse_qkv_projections()
        unet.original_attn_processors = None
        log.info("attention projections unfused: LoRAs need them separate")


def _oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.OutOfMemoryError)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else "no details"


# ---------------------------------------------------------------------------------------------
# Where the weights are


def lora_file(source: LoraSource) -> Path:
    """The weights file a LoraSource names: the file itself, the one file in a folder (or
    its weight_name), or the hub repo's, through the hub cache (offline: the cache only).
    Raises LoraLoadError saying what is missing."""
    path = Path(source.path).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        return _file_in_folder(source, path, source.path)
    if path.exists() or _looks_local(source.path):
        raise LoraLoadError(
            source.name, f"the file {source.path} does not exist (a relative path is read "
            "from the config file's folder).")
    return _file_from_hub(source)


def _looks_local(path: str) -> bool:
    """True when `path` can only be a file or folder here: hub ids are `name`/`owner/name`."""
    return (path.lower().endswith(_WEIGHT_SUFFIXES) or path.startswith(("/", ".", "~"))
            or "\\" in path or path.count("/") > 1 or (len(path) > 1 and path[1] == ":"))


def _file_in_folder(source: LoraSource, folder: Path, shown: str) -> Path:
    if source.weight_name:
        file = folder / source.weight_name
        if not file.is_file():
            raise LoraLoadError(source.name, f"{shown} has no file {source.weight_name} "
                                "(weight_name).")
        return file
    if (folder / DEFAULT_WEIGHT_NAME).is_file():
        return folder / DEFAULT_WEIGHT_NAME
    found = sorted(p.name for p in folder.glob("*.safetensors") if p.is_file())
    if len(found) == 1:
        return folder / found[0]
    if not found:
        raise LoraLoadError(source.name, f"{shown} holds no .safetensors file.")
    raise LoraLoadError(source.name, f"{shown} holds several .safetensors files "
                        f"({', '.join(found)}); set weight_name to the one to load.")


def _file_from_hub(source: LoraSource) -> Path:
    from huggingface_hub import hf_hub_download, snapshot_download

    try:
        if source.weight_name:
            return Path(hf_hub_download(source.path, source.weight_name))
        # Only the .safetensors files: a LoRA repo may also hold samples and pickles.
        folder = Path(snapshot_download(source.path, allow_patterns=["*.safetensors"]))
    except loader_errors() as exc:
        raise LoraLoadError(
            source.name,
            f"'{source.path}' is not a file or folder here, and as a hub id it is not in the "
            f"local cache and {_hub_unreachable()}. Download it once with `hf download "
            f"{source.path}`, or point path at a .safetensors file. "
            f"(Cause: {type(exc).__name__}: {_first_line(exc)})",
        ) from exc
    return _file_in_folder(source, folder, f"the hub repo {source.path}")


def _hub_unreachable() -> str:
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "the hub can't be reached (HF_HUB_OFFLINE=1)"
    return "it could not be downloaded from the hub"


# ---------------------------------------------------------------------------------------------
# AUTOMATIC1111's short hash

_HASHES: dict[tuple[str, int, int], str] = {}  # (path, mtime_ns, size) -> short hash


def lora_short_hash(path: str | Path) -> str:
    """AUTOMATIC1111's short hash of a LoRA file, as "Lora hashes:" shows it: the first 12 hex
    digits of a sha256. For .safetensors it is kohya's "addnet" hash, of the bytes after the
    JSON header (so editing the metadata keeps it; Civitai's AutoV3); for other files, of the
    whole file. Cached by (path, modification time, size). Raises OSError when unreadable."""
    file = Path(path).expanduser().resolve()
    stat = file.stat()
    key = (str(file), stat.st_mtime_ns, stat.st_size)
    cached = _HASHES.get(key)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    with file.open("rb") as f:
        if file.suffix.lower() == ".safetensors":
            header = int.from_bytes(f.read(8), "little")  # u64 length of the JSON header
            f.seek(8 + header)
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    short = digest.hexdigest()[:12]
    _HASHES[key] = short
    return short
