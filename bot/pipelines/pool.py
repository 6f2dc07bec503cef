"""The image models one worker serves: an `ImageEngine` per configured model, loaded when a
job first needs it.

At most `max_loaded` models stay on the device, the least recently used leaving first. One
that leaves is parked in CPU RAM (`park_in_ram`: coming back is a copy to the device, not a
read from disk) or freed (every reference dropped, the allocator's cache emptied). On a
machine without a GPU the device is the RAM, so parking moves nothing, but the choice and
the order are the same.

Worker thread only, as the engines are (bot/executor/executor.py): loading, moving and
freeing all happen on the thread that runs the batches. Importing this module is cheap (no
torch or diffusers until a model loads).
"""

from __future__ import annotations

import gc
import logging
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .errors import public_model_name, resolve_model_source

if TYPE_CHECKING:
    from .diffusion import ImageEngine, ImageModelOptions

log = logging.getLogger(__name__)


class ModelNotServed(LookupError):
    """A job names a model this worker does not serve; the message lists the ones it does."""


class ImagePool:
    """One engine per model name; `engine(name)` gives it on the device, loading on demand."""

    def __init__(self, models: Mapping[str, ImageModelOptions], default: str, *,
                 max_loaded: int = 1, park_in_ram: bool = False) -> None:
        if default not in models:
            raise ValueError(f"the default model {default!r} is not among {list(models)}")
        self._options = dict(models)
        self.default = default
        self.max_loaded = max(1, max_loaded)
        self.park_in_ram = park_in_ram
        self._device: OrderedDict[str, ImageEngine] = OrderedDict()  # least recent first
        self._parked: dict[str, ImageEngine] = {}
        self._native: dict[str, int] = {}
        self.loads: Counter[str] = Counter()  # reads from disk, per model

    @classmethod
    def single(cls, options: ImageModelOptions) -> ImagePool:
        """A pool of one model, named as results name it (a folder by its own name)."""
        name = public_model_name(options.model)
        return cls({name: options}, name)

    # ----- names ------------------------------------------------------------------------------

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._options)

    def options(self, name: str = "") -> ImageModelOptions:
        return self._options[self.resolve(name)]

    def resolve(self, name: str) -> str:
        """The pool's name for what a job names: "" is the default; a model may also be
        named by its hub id or folder, or that path's last part (an implicit profile's
        name), case and spaces aside. ModelNotServed when none matches."""
        found = self.find(name)
        if found is None:
            raise ModelNotServed(f"model {name!r} is not served here; this worker has: "
                                 f"{', '.join(self._options)}.")
        return found

    def find(self, name: str) -> str | None:
        """`resolve`, or None (cheap and never raising: batch keys use it)."""
        if not name:
            return self.default
        if name in self._options:
            return name
        folded = _fold(name)
        for key, opts in self._options.items():
            if name == opts.model or folded in (_fold(key), _fold(_last_part(opts.model))):
                return key
        return None

    # ----- where each model is ----------------------------------------------------------------

    @property
    def on_device(self) -> tuple[str, ...]:
        """The models on the device, least recently used first."""
        return tuple(self._device)

    @property
    def parked(self) -> tuple[str, ...]:
        return tuple(self._parked)

    def is_on_device(self, name: str = "") -> bool:
        found = self.find(name)
        return found is not None and found in self._device

    def native_size(self, name: str = "") -> int:
        """A model's own side in pixels: remembered from its load (else it loads now)."""
        key = self.resolve(name)
        if key not in self._native:
            self._native[key] = self.engine(key).default_size
        return self._native[key]

    def check_sources(self) -> None:
        """Every model's folder exists and holds a pipeline (ModelLoadError if not), without
        loading any: a typo in a model that nobody picked yet is reported at start."""
        for key, opts in self._options.items():
            setting = "image.model" if key == self.default else f"image.models.{key}.path"
            resolve_model_source(opts.model, kind="Image model",
                                 config_file="model_index.json", setting=setting)

    # ----- the engines ------------------------------------------------------------------------

    def engine(self, name: str = "",
               on_loading: Callable[[str], None] | None = None) -> ImageEngine:
        """The model's engine on the device: as it is, back from RAM, or loaded from disk
        (the least recently used leave first, to make room). `on_loading(name)` is told
        before a model that is not on the device comes."""
        key = self.resolve(name)
        engine = self._device.get(key)
        if engine is not None:
            self._device.move_to_end(key)
            return engine
        if on_loading is not None:
            on_loading(key)
        # Room first: the newcomer must not share the device with the model it replaces.
        while len(self._device) >= self.max_loaded:
            self._evict(next(iter(self._device)))
        parked = self._parked.pop(key, None)
        if parked is not None:
            try:
                _to_device(parked)
            except BaseException:
                _to_ram(parked)
                self._parked[key] = parked
                raise
            log.info("image model %s is back on %s from RAM", key, parked.device)
            engine = parked
        else:
            engine = self._load(key)
        self._device[key] = engine
        return engine

    def _load(self, key: str) -> ImageEngine:
        from .diffusion import ImageEngine  # heavy import, first load only

        engine = ImageEngine(self._options[key])
        engine.load()
        self.loads[key] += 1
        self._native[key] = engine.default_size
        return engine

    def _evict(self, key: str) -> None:
        engine = self._device.pop(key)
        if self.park_in_ram:
            _to_ram(engine)
            self._parked[key] = engine
            log.info("image model %s parked in RAM", key)
            return
        del engine  # the pool held the last reference: the pipeline goes with it
        _free_memory()
        log.info("image model %s freed", key)


# ----- moving an engine's weights ---------------------------------------------------------------
# The engine keeps, besides its pipeline, img2img and inpaint pipelines made from it with
# `from_pipe` (the same modules: moving one moves them all) and maybe a dedicated inpainting
# model and an upscaler (modules of their own), and a preview VAE. All of them move.


def _pipelines(engine: ImageEngine) -> list[Any]:
    found = [engine.pipe, engine._img2img, engine._inpainter, engine._upscaler]
    return [p for p in found if p is not None]


def _offloaded(engine: ImageEngine) -> bool:
    # Model CPU offload keeps the weights in RAM between calls already (every diffusers
    # call ends by offloading them), and its hooks bring each model to the GPU when it
    # runs: moving it by hand would fight them.
    return engine.options.cpu_offload and engine.device.type == "cuda"


def _to_ram(engine: ImageEngine) -> None:
    if not _offloaded(engine):
        for pipe in _pipelines(engine):
            pipe.to("cpu", silence_dtype_warnings=True)  # float16 waits there; it never runs
    if engine._previewer is not None:
        engine._previewer.vae.to("cpu")
    # The device copies are gone already (moving replaced them): only the allocator's cache
    # is left to return. No gc.collect: it walks the whole heap (~0.35 s with SD 1.5 loaded).
    _empty_cache()


def _to_device(engine: ImageEngine) -> None:
    if not _offloaded(engine):
        for pipe in _pipelines(engine):
            pipe.to(engine.device)
    if engine._previewer is not None:
        engine._previewer.vae.to(engine.device)


def _free_memory() -> None:
    gc.collect()  # pipelines hold reference cycles (modules, hooks)
    _empty_cache()


def _empty_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _last_part(path: str) -> str:
    return path.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1]


def _fold(name: str) -> str:
    return "".join(name.split()).casefold()
