"""Typed, frozen settings loaded from config.toml, with secrets from the environment.

Every problem in the file is collected and reported at once, each naming the key, the value
and what is allowed, so a user fixes their config in one pass instead of one error per start.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from bot.pipelines.schedulers import scheduler_names
from bot.prompts import DEFAULT_STYLES, StylePreset, find_style

DEFAULT_CONFIG_PATH = Path("config.toml")
Check = Callable[[Any], str | None]


class ConfigError(ValueError):
    """Raised with every problem found in a configuration file."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        listed = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source} has {len(problems)} problem(s):\n{listed}")


def _between(low: float, high: float) -> Check:
    def check(value: Any) -> str | None:
        return None if low <= value <= high else f"must be {low:g}-{high:g}"

    return check


def _one_of(*choices: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in choices else f"must be one of: {', '.join(choices)}"

    return check


def _multiple_of_8(low: int, high: int, *, zero_means: str = "") -> Check:
    def check(value: Any) -> str | None:
        if zero_means and value == 0:
            return None
        if not low <= value <= high:
            extra = f", or 0 for {zero_means}" if zero_means else ""
            return f"must be {low}-{high}{extra}"
        return None if value % 8 == 0 else "must be a multiple of 8"

    return check


def _not_blank(value: Any) -> str | None:
    return None if str(value).strip() else "must not be empty"


def _url(*schemes: str) -> Check:
    def check(value: Any) -> str | None:
        ok = any(value.startswith(f"{s}://") for s in schemes)
        return None if ok else f"must start with {' or '.join(s + '://' for s in schemes)}"

    return check


def _optional_url(value: Any) -> str | None:
    ok = not value or value.startswith(("http://", "https://"))
    return None if ok else 'must start with http:// or https://, or be ""'


def _scheduler(value: Any) -> str | None:
    names = scheduler_names()
    return None if value in names else f"must be one of: {', '.join(names)}"


def _ids(value: Any) -> str | None:
    ok = all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    return None if ok else "must be a list of Discord ids (positive integers)"


def _terms(value: Any) -> str | None:
    ok = all(isinstance(v, str) and v.strip() for v in value)
    return None if ok else "must be a list of non-empty strings"


def _port(value: Any) -> str | None:
    return None if 0 <= value <= 65535 else "must be 1-65535, or 0 for no endpoint"


AUTO_BATCH_MAX = 16


def _batch_limit(value: Any) -> str | None:
    return None if 0 <= value <= 64 else 'must be 1-64, or "auto"'


def setting(default: Any, check: Check | None = None, doc: str = "") -> Any:
    """A field with a default and an optional check returning a reason when the value is bad."""
    if isinstance(default, list | tuple):
        frozen = tuple(default)
        return field(default_factory=lambda: frozen, metadata={"check": check, "doc": doc})
    return field(default=default, metadata={"check": check, "doc": doc})


@dataclass(frozen=True)
class DiscordSettings:
    api_base: str = setting("https://discord.com/api/v10", _url("http", "https"))
    gateway_url: str = setting("wss://gateway.discord.gg", _url("ws", "wss"))
    guilds: tuple[int, ...] = setting((), _ids)
    channels: tuple[int, ...] = setting((), _ids)
    sync_commands: bool = setting(True)
    message_content: bool = setting(False)
    status_edit_interval: float = setting(1.5, _between(0.5, 30))
    # How long a result whose post keeps failing (Discord or the network down) is retried.
    delivery_retry_s: float = setting(3600.0, _between(0, 86400))
    # How long Discord keeps an interaction's token (15 minutes; the tests shorten it), and
    # how long before its end a job answered only through it (DMs, group DMs) is given up
    # with a message while the token can still carry one.
    interaction_token_s: float = setting(900.0, _between(1, 900))
    token_margin_s: float = setting(60.0, _between(0.1, 300))


FAMILIES = ("sd", "sdxl", "turbo", "lcm")


@dataclass(frozen=True)
class ModelProfile:
    """One `[image.models.NAME]` section: a checkpoint members can pick by name, with its own
    defaults (None / "" / 0 = the `[image]` value, or the model family's)."""

    name: str
    path: str  # a hub id or a folder written by save_pretrained
    description: str = ""
    # "" = detected from the pipeline class and scheduler config (bot.pipelines.families).
    family: str = ""
    steps: int | None = None
    guidance: float | None = None
    width: int = 0  # 0 = the model's own size
    height: int = 0
    scheduler: str = ""
    negative_prompt: str | None = None
    # An [image.loras.NAME] always applied with this model (e.g. an LCM-LoRA on SD 1.5).
    lora: str = ""
    implicit: bool = False  # made from a plain `image.model` hub id or folder


@dataclass(frozen=True)
class LoraProfile:
    """One `[image.loras.NAME]` section: a LoRA members can add by name."""

    name: str
    path: str  # a .safetensors file, a folder, or a hub id
    weight: float = 0.8
    triggers: tuple[str, ...] = ()  # words added to the prompt when it is used
    description: str = ""
    weight_name: str = ""  # the file inside a hub repo or folder holding several


@dataclass(frozen=True)
class ImageSettings:
    # A name of an [image.models.NAME] section, or (one model, as before) a hub id or folder.
    model: str = setting("stable-diffusion-v1-5/stable-diffusion-v1-5", _not_blank)
    scheduler: str = setting("euler_a", _scheduler)
    steps: int = setting(25, _between(1, 150))
    max_steps: int = setting(60, _between(1, 150))
    guidance: float = setting(7.0, _between(0, 30))
    # 0 = the model's own size (512 for SD 1.5, 768 for SD 2, 1024 for SDXL).
    width: int = setting(0, _multiple_of_8(64, 2048, zero_means="the model's own size"))
    height: int = setting(0, _multiple_of_8(64, 2048, zero_means="the model's own size"))
    max_side: int = setting(1024, _multiple_of_8(64, 2048))
    count: int = setting(4, _between(1, 4))
    negative_prompt: str = setting("lowres, blurry, watermark, text, deformed")
    max_prompt_chars: int = setting(1000, _between(10, 6000))
    device: str = setting("auto", _one_of("auto", "cuda", "mps", "cpu"))
    dtype: str = setting("auto", _one_of("auto", "float16", "bfloat16", "float32"))
    attention_slicing: bool = setting(False)
    vae_tiling: bool = setting(False)
    cpu_offload: bool = setting(False)
    safety_checker: bool = setting(False)
    upscaler: str = setting("")
    inpaint_model: str = setting("")  # zoom out / pan; empty = inpaint on image.model
    preview_vae: str = setting("")
    compile: bool = setting(False)
    preview_every: int = setting(2, _between(0, 150))
    variation_strength: float = setting(0.55, _between(0.05, 1))
    upscale_strength: float = setting(0.3, _between(0.05, 1))
    # Most pictures one "all styles" sweep renders: the first max_sweep presets.
    max_sweep: int = setting(8, _between(1, 25))
    # Most jobs one /imagine makes from {a, b} permutations (times its repeat option).
    max_permutations: int = setting(12, _between(1, 100))
    # /imagine image: a member's own picture: how far the result may move from it, and
    # the largest upload taken (bytes, and pixels: a small file can hold a huge picture).
    img2img_strength: float = setting(0.6, _between(0.05, 1.0))
    max_input_mb: int = setting(10, _between(1, 100))
    max_input_megapixels: float = setting(16.0, _between(0.1, 100))
    styles: tuple[StylePreset, ...] = setting(DEFAULT_STYLES)
    # Several checkpoints ([image.models.NAME]) and LoRAs ([image.loras.NAME]).
    models: tuple[ModelProfile, ...] = setting(())
    loras: tuple[LoraProfile, ...] = setting(())
    # Models kept on the device at once (most recently used); more are loaded on demand.
    max_loaded: int = setting(1, _between(1, 16))
    # A model pushed off the device waits in CPU RAM: switching back is a copy, not a read.
    park_in_ram: bool = setting(False)
    # ⚡ drafts: a fast model (a models name, or a hub id / folder); "" = no drafts.
    draft_model: str = setting("")
    # ✨ Finalize: how far the full model may move from the draft (img2img strength).
    finalize_strength: float = setting(0.55, _between(0.05, 1.0))
    max_loras: int = setting(3, _between(1, 8))  # LoRAs one picture may use

    def profiles(self) -> tuple[ModelProfile, ...]:
        """Every model members may pick: the configured ones, then (when `model` or
        `draft_model` is a hub id or folder rather than a name) an implicit profile each."""
        out = list(self.models)
        names = {m.name for m in out}
        for path in (self.model, self.draft_model):
            if path and path not in names and not any(m.path == path for m in out):
                name = implicit_model_name(path)
                out.append(ModelProfile(name=path if name in names else name, path=path,
                                        implicit=True))
                names.update((name, path))
        return tuple(out)

    def profile(self, name: str | None) -> ModelProfile:
        """The model a job names ("" or None: the default, image.model). KeyError if none."""
        wanted = name or self.model
        for profile in self.profiles():
            if wanted in (profile.name, profile.path):
                return profile
        raise KeyError(wanted)

    @property
    def default_profile(self) -> ModelProfile:
        return self.profile(self.model)

    @property
    def draft_profile(self) -> ModelProfile | None:
        return self.profile(self.draft_model) if self.draft_model else None

    def lora(self, name: str) -> LoraProfile | None:
        """A configured LoRA by name (case and spaces ignored), or None."""
        key = _fold(name)
        return next((lo for lo in self.loras if _fold(lo.name) == key), None)


def implicit_model_name(path: str) -> str:
    """The name members see for a model given as a hub id or folder: its last part."""
    return path.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1] or path


def _fold(name: str) -> str:
    return "".join(name.split()).casefold()


@dataclass(frozen=True)
class DescribeSettings:
    # The captioning model /describe (and the AI telephone) use: BLIP through transformers.
    model: str = setting("Salesforce/blip-image-captioning-large", _not_blank)
    suggestions: int = setting(3, _between(1, 5))
    max_new_tokens: int = setting(40, _between(5, 200))


@dataclass(frozen=True)
class StorySettings:
    model: str = setting("EleutherAI/gpt-neo-125M", _not_blank)
    max_new_tokens: int = setting(60, _between(8, 400))
    temperature: float = setting(0.9, _between(0.05, 2))
    top_p: float = setting(0.95, _between(0.05, 1))
    top_k: int = setting(50, _between(0, 1000))
    repetition_penalty: float = setting(1.2, _between(1, 3))
    context_tokens: int = setting(1024, _between(64, 8192))
    attempts: int = setting(3, _between(1, 10))
    style: str = setting("painting")
    steps: int = setting(0, _between(0, 150))
    max_lines: int = setting(200, _between(2, 1000))
    # Continue ▶ offers this many candidate lines, written in one batched call; 1 = none.
    candidates: int = setting(3, _between(1, 5))
    # "completion": the model continues the text (GPT-Neo); "chat": an instruct model is
    # asked through its chat template; "auto": chat when the tokenizer has a template.
    prompt_style: str = setting("auto", _one_of("auto", "completion", "chat"))
    # Megabytes of the stories' prompt key/value caches a worker keeps between lines
    # (least recently used dropped first); 0 = read every prompt whole.
    cache_mb: int = setting(256, _between(0, 65536))


@dataclass(frozen=True)
class ExecutorSettings:
    queue_limit: int = setting(100, _between(1, 10000))
    per_user_limit: int = setting(3, _between(1, 1000))
    # Images rendered together in one GPU call; 0 ("auto" in the file) sizes each model's
    # batch from free device memory and the peak measured per image, up to AUTO_BATCH_MAX.
    batch_limit: int = setting(0, _batch_limit)
    # On SIGTERM/SIGINT the running batch may finish for this long, then it is interrupted
    # and queued again for the next start.
    stop_grace_s: float = setting(30.0, _between(0, 3600))
    # A batch with no denoising step (or line) for this long is given up as hung.
    step_timeout_s: float = setting(300.0, _between(5, 86400))
    # "local": the GPU worker runs in the bot's process. "celery": batches go to remote GPU
    # workers (`python -m bot worker`) through a Redis broker; the bot keeps the queue.
    mode: str = setting("local", _one_of("local", "celery"))
    broker_url: str = setting("redis://localhost:6379/0", _url("redis", "rediss"))
    # A remote worker whose heartbeat is silent this long is lost: its batch is sent again.
    worker_timeout_s: float = setting(15.0, _between(3, 600))
    # The broker hands a task nobody acknowledged to another worker after this long: it
    # must be longer than any batch runs (Redis's own default is one hour).
    visibility_timeout_s: float = setting(43200.0, _between(60, 604800))


@dataclass(frozen=True)
class StorageSettings:
    database: Path = setting(Path("data/greenheart.sqlite3"))
    images: Path = setting(Path("data/images"))
    # Days a finished job's pictures and row are kept (bot/db/retention.py); 0 = forever.
    keep_days: int = setting(30, _between(0, 36500))


@dataclass(frozen=True)
class SafetySettings:
    blocked_terms: tuple[str, ...] = setting((), _terms)
    nsfw_terms: tuple[str, ...] = setting((), _terms)


@dataclass(frozen=True)
class MetricsSettings:
    # The Prometheus endpoint (http://host:port/metrics); 0 = none. The default host only
    # answers this machine: metrics name models and workers.
    port: int = setting(0, _port)
    host: str = setting("127.0.0.1", _not_blank)


@dataclass(frozen=True)
class BlogSettings:
    # `/story publish` writes a server's blog into dir/<server id>/ (bot/story/blog.py).
    dir: Path = setting(Path("data/blog"))
    # The URL blog.dir is served at; "" = none: pages link relatively and the feed's
    # links are relative too (its ids are urn:uuid either way, so they never change).
    base_url: str = setting("", _optional_url)
    title: str = setting("Greenheart stories", _not_blank)


@dataclass(frozen=True)
class Settings:
    discord: DiscordSettings = field(default_factory=DiscordSettings)
    image: ImageSettings = field(default_factory=ImageSettings)
    story: StorySettings = field(default_factory=StorySettings)
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    safety: SafetySettings = field(default_factory=SafetySettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    describe: DescribeSettings = field(default_factory=DescribeSettings)
    blog: BlogSettings = field(default_factory=BlogSettings)
    # Kept out of repr/str: settings end up in logs and tracebacks; the token must not.
    token: str | None = field(default=None, repr=False)
    source: str = "<defaults>"


_SECTIONS: dict[str, type] = {
    "discord": DiscordSettings,
    "image": ImageSettings,
    "story": StorySettings,
    "executor": ExecutorSettings,
    "storage": StorageSettings,
    "safety": SafetySettings,
    "metrics": MetricsSettings,
    "describe": DescribeSettings,
    "blog": BlogSettings,
}


def load_settings(
    path: Path | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Load `path` (default config.toml; missing default file means built-in defaults)."""
    env = os.environ if env is None else env
    explicit = path is not None
    path = path or DEFAULT_CONFIG_PATH
    if not path.exists():
        if explicit:
            raise ConfigError(str(path), [f"file not found: {path}"])
        return Settings(token=env.get("DISCORD_TOKEN") or None)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), [f"not valid TOML: {exc}"]) from exc
    return settings_from_mapping(raw, base_dir=path.parent, source=str(path), env=env)


def settings_from_mapping(
    raw: Mapping[str, Any],
    *,
    base_dir: Path = Path("."),
    source: str = "<config>",
    env: Mapping[str, str] | None = None,
) -> Settings:
    env = os.environ if env is None else env
    problems: list[str] = []
    sections: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in _SECTIONS:
            problems.append(f"unknown section [{name}]; known: {', '.join(_SECTIONS)}")
        elif not isinstance(value, dict):
            problems.append(f"{name} must be a table ([{name}])")
    for name, cls in _SECTIONS.items():
        table = raw.get(name, {})
        sections[name] = _build_section(name, cls, table if isinstance(table, dict) else {},
                                        base_dir, problems)
    if not problems:
        problems.extend(_cross_checks(sections))
    if problems:
        raise ConfigError(source, problems)
    return Settings(**sections, token=env.get("DISCORD_TOKEN") or None, source=source)


def _build_section(
    name: str, cls: type, table: dict[str, Any], base_dir: Path, problems: list[str]
) -> Any:
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key == "token" and name == "discord":
            problems.append("discord.token: secrets are not read from the file; "
                            "set the DISCORD_TOKEN environment variable")
            continue
        if key not in fields:
            problems.append(f"{name}.{key}: unknown key; known keys: {', '.join(fields)}")
            continue
        if key == "styles":
            styles = _parse_styles(value, problems)
            if styles is not None:
                values[key] = styles
            continue
        if key == "models" and name == "image":
            values[key] = _parse_models(value, base_dir, problems)
            continue
        if key == "loras" and name == "image":
            values[key] = _parse_loras(value, base_dir, problems)
            continue
        if key == "batch_limit" and value == "auto":
            values[key] = 0
            continue
        converted = _convert(f"{name}.{key}", value, hints[key], base_dir, problems)
        if converted is _INVALID:
            continue
        check = fields[key].metadata.get("check")
        reason = check(converted) if check else None
        if reason:
            problems.append(f"{name}.{key} = {_show(value)}: {reason}")
            continue
        values[key] = converted
    for key, f in fields.items():
        if key not in values and f.type in ("Path", Path):
            default = f.default if f.default is not dataclasses.MISSING else None
            if isinstance(default, Path) and not default.is_absolute():
                values[key] = base_dir / default
    return cls(**values)


_INVALID = object()


def _convert(key: str, value: Any, hint: Any, base_dir: Path, problems: list[str]) -> Any:
    def bad(expected: str) -> object:
        problems.append(f"{key} = {_show(value)}: must be {expected}")
        return _INVALID

    if hint is bool:
        return value if isinstance(value, bool) else bad("true or false")
    if hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return value if ok else bad("an integer")
    if hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return float(value) if ok else bad("a number")
    if hint is str:
        return value if isinstance(value, str) else bad("a string")
    if hint is Path:
        if not isinstance(value, str) or not value.strip():
            return bad("a file path (string)")
        p = Path(value).expanduser()
        return p if p.is_absolute() else base_dir / p
    # tuple[...] of ids or terms: the field's check validates the items.
    return tuple(value) if isinstance(value, list) else bad("a list")


def _parse_styles(value: Any, problems: list[str]) -> tuple[StylePreset, ...] | None:
    if not isinstance(value, dict) or not value:
        problems.append("image.styles: must be a table of presets, e.g. "
                        '[image.styles.watercolor] phrase = "watercolor painting"')
        return None
    presets: list[StylePreset] = []
    for name, spec in value.items():
        where = f"image.styles.{_show(name) if ' ' in name else name}"
        if not isinstance(spec, dict):
            problems.append(f"{where}: must be a table with 'phrase' and optional 'negative'")
            continue
        unknown = set(spec) - {"phrase", "negative"}
        if unknown:
            problems.append(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
                            "known keys: phrase, negative")
        phrase, negative = spec.get("phrase"), spec.get("negative", "")
        if not isinstance(phrase, str) or not phrase.strip():
            problems.append(f"{where}.phrase: must be a non-empty string")
            continue
        if not isinstance(negative, str):
            problems.append(f"{where}.negative = {_show(negative)}: must be a string")
            continue
        if not name.strip() or len(name) > 100:
            problems.append(f"{where}: a style name must be 1-100 characters")
            continue
        presets.append(StylePreset(name=name.strip(), phrase=phrase.strip(),
                                   negative=negative.strip()))
    return tuple(presets)


_MODEL_KEYS: dict[str, tuple[type | tuple[type, ...], Check | None]] = {
    "path": (str, _not_blank),
    "description": (str, None),
    "family": (str, lambda v: None if v in ("", *FAMILIES) else
               f"must be one of: {', '.join(FAMILIES)} (or left out: detected)"),
    "steps": (int, _between(1, 150)),
    "guidance": ((int, float), _between(0, 30)),
    "width": (int, _multiple_of_8(64, 2048, zero_means="the model's own size")),
    "height": (int, _multiple_of_8(64, 2048, zero_means="the model's own size")),
    "scheduler": (str, lambda v: None if not v else _scheduler(v)),
    "negative_prompt": (str, None),
    "lora": (str, None),
}
_LORA_KEYS: dict[str, tuple[type | tuple[type, ...], Check | None]] = {
    "path": (str, _not_blank),
    "weight": ((int, float), _between(-4, 4)),
    "triggers": (list, _terms),
    "description": (str, None),
    "weight_name": (str, None),
}


def _parse_table(section: str, value: Any, keys: dict[str, Any], example: str,
                 problems: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """The named sub-tables of image.models / image.loras, each key checked."""
    if not isinstance(value, dict) or not value:
        problems.append(f"{section}: must be a table of named sections, e.g. {example}")
        return []
    out = []
    for name, spec in value.items():
        plain = name.replace("-", "").replace("_", "").isalnum()
        where = f"{section}.{name if plain else _show(name)}"
        if not isinstance(spec, dict):
            problems.append(f"{where}: must be a table with keys {', '.join(keys)}")
            continue
        if not name.strip() or len(name) > 100:
            problems.append(f"{where}: a name must be 1-100 characters")
            continue
        ok = True
        values: dict[str, Any] = {}
        for key, raw in spec.items():
            if key not in keys:
                problems.append(f"{where}.{key}: unknown key; known keys: {', '.join(keys)}")
                ok = False
                continue
            kind, check = keys[key]
            if not isinstance(raw, kind) or isinstance(raw, bool):
                expected = {str: "a string", int: "an integer", list: "a list"}.get(
                    kind, "a number") if isinstance(kind, type) else "a number"
                problems.append(f"{where}.{key} = {_show(raw)}: must be {expected}")
                ok = False
                continue
            reason = check(raw) if check else None
            if reason:
                problems.append(f"{where}.{key} = {_show(raw)}: {reason}")
                ok = False
                continue
            values[key] = tuple(raw) if isinstance(raw, list) else raw
        if "path" not in values and "path" not in spec:
            problems.append(f"{where}.path: missing; a hub id or a folder (or file)")
            ok = False
        if ok:
            out.append((name.strip(), values))
    return out


def _parse_models(value: Any, base_dir: Path, problems: list[str]) -> tuple[ModelProfile, ...]:
    parsed = _parse_table("image.models", value, _MODEL_KEYS,
                          '[image.models.sd15] path = "stable-diffusion-v1-5/stable-diffusion-'
                          'v1-5"', problems)
    out = []
    for name, values in parsed:
        values["path"] = _local_or_hub(values["path"], base_dir)
        if "guidance" in values:
            values["guidance"] = float(values["guidance"])
        out.append(ModelProfile(name=name, **values))
    return tuple(out)


def _parse_loras(value: Any, base_dir: Path, problems: list[str]) -> tuple[LoraProfile, ...]:
    parsed = _parse_table("image.loras", value, _LORA_KEYS,
                          '[image.loras.pixel] path = "loras/pixel-art.safetensors"', problems)
    out = []
    for name, values in parsed:
        values["path"] = _local_or_hub(values["path"], base_dir)
        if "weight" in values:
            values["weight"] = float(values["weight"])
        out.append(LoraProfile(name=name, **values))
    return tuple(out)


def _local_or_hub(path: str, base_dir: Path) -> str:
    """A path relative to the config file when it names something there; else as written
    (a hub id such as "org/name", or a path the loader reports as missing)."""
    p = Path(path).expanduser()
    if not p.is_absolute() and (base_dir / p).exists():
        return str(base_dir / p)
    return str(p) if p.is_absolute() or path.startswith(("~", ".")) else path


def _cross_checks(sections: dict[str, Any]) -> list[str]:
    image: ImageSettings = sections["image"]
    problems = []
    if image.steps > image.max_steps:
        problems.append(f"image.steps = {image.steps}: must not exceed image.max_steps "
                        f"({image.max_steps})")
    for key in ("width", "height"):
        if getattr(image, key) > image.max_side:
            problems.append(f"image.{key} = {getattr(image, key)}: must not exceed "
                            f"image.max_side ({image.max_side})")
    story: StorySettings = sections["story"]
    # The same match /story uses at run time (case, spaces, '-' and '_' ignored).
    if story.style and find_style(image.styles, story.style) is None:
        problems.append(f"story.style = {_show(story.style)}: must be one of the image styles "
                        f"({', '.join(s.name for s in image.styles)}) or empty")
    executor: ExecutorSettings = sections["executor"]
    if executor.visibility_timeout_s <= executor.step_timeout_s:
        problems.append(f"executor.visibility_timeout_s = {executor.visibility_timeout_s:g}: "
                        "must be longer than executor.step_timeout_s "
                        f"({executor.step_timeout_s:g}), or a slow batch is run twice")
    problems.extend(_model_checks(image))
    if story.steps > image.max_steps:
        problems.append(f"story.steps = {story.steps}: must not exceed image.max_steps "
                        f"({image.max_steps})")
    return problems


def _model_checks(image: ImageSettings) -> list[str]:
    problems = []
    seen: dict[str, str] = {}
    for m in image.models:
        key = _fold(m.name)
        if key in seen:
            problems.append(f"image.models.{m.name}: the same name as image.models."
                            f"{seen[key]} (names are matched ignoring case and spaces)")
        seen[key] = m.name
        if m.steps is not None and m.steps > image.max_steps:
            problems.append(f"image.models.{m.name}.steps = {m.steps}: must not exceed "
                            f"image.max_steps ({image.max_steps})")
        for side in ("width", "height"):
            if getattr(m, side) > image.max_side:
                problems.append(f"image.models.{m.name}.{side} = {getattr(m, side)}: must not "
                                f"exceed image.max_side ({image.max_side})")
    seen_loras: dict[str, str] = {}
    for lo in image.loras:
        key = _fold(lo.name)
        if key in seen_loras:
            problems.append(f"image.loras.{lo.name}: the same name as image.loras."
                            f"{seen_loras[key]} (names are matched ignoring case and spaces)")
        seen_loras[key] = lo.name
    for m in image.models:
        if m.lora and image.lora(m.lora) is None:
            problems.append(f"image.models.{m.name}.lora = {_show(m.lora)}: no "
                            f"[image.loras.{m.lora}] section")
    names = ", ".join(m.name for m in image.models)
    for key in ("model", "draft_model"):
        value = getattr(image, key)
        looks_like_name = value and "/" not in value and "\\" not in value
        if image.models and looks_like_name and not any(
                value in (m.name, m.path) for m in image.models):
            problems.append(f"image.{key} = {_show(value)}: no [image.models.{value}] section; "
                            f"use one of: {names}, or a hub id (org/name) or a folder")
    return problems


def _show(value: Any) -> str:
    """A value as it would be written in TOML, for messages."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)
