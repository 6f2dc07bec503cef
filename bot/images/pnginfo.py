"""AUTOMATIC1111's `parameters` text: writing and reading it, and PNG files that carry it
(Pillow only), so A1111, Civitai and friends read our pictures' settings."""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from PIL import Image, PngImagePlugin, UnidentifiedImageError

__all__ = [
    "GenerationParameters",
    "LoraUse",
    "encode_png",
    "encode_png_text",
    "format_parameters",
    "parameters_text",
    "parse_parameters",
    "read_png_parameters",
]

PARAMETERS_KEY = "parameters"  # the PNG text keyword AUTOMATIC1111 writes and reads


@dataclass(frozen=True)
class LoraUse:
    """One LoRA a picture used, as A1111 records it: a `<lora:NAME:WEIGHT>` tag in the prompt
    and NAME's short hash in "Lora hashes" (bot.pipelines.lora.lora_short_hash)."""

    name: str
    weight: float
    hash: str = ""  # "" = unknown: the tag is written, the hash is not


@dataclass(frozen=True)
class GenerationParameters:
    prompt: str
    negative: str
    steps: int
    sampler: str  # A1111 sampler name, e.g. "Euler a"
    cfg_scale: float
    seed: int
    width: int
    height: int
    model: str
    # Further "Key: value" pairs in order, e.g. {"Denoising strength": "0.55"}.
    extra: Mapping[str, str] = field(default_factory=dict, hash=False)
    # The LoRAs used, in order: written as tags after the prompt, their hashes as "Lora
    # hashes" (so "Lora hashes" in `extra` only when no LoRA here has a hash).
    loras: tuple[LoraUse, ...] = ()

    def __post_init__(self) -> None:
        # Read-only copies so the frozen dataclass really is immutable.
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))
        object.__setattr__(self, "loras", tuple(self.loras))


# A1111's own regexes (modules/infotext_utils.py), so what it parses, we parse.
_RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_RE_SIZE = re.compile(r"^(\d+)x(\d+)$")
_RE_KEY = re.compile(r"\w[\w \-/]+")
_CORE_KEYS = frozenset({"Steps", "Sampler", "CFG scale", "Seed", "Size", "Model"})
_LORA_HASHES = "Lora hashes"
# A1111's extra-network tag, with the spaces before it (`<lora:NAME>` means weight 1).
_LORA_TAG = re.compile(r"[ \t]*<lora:([^<>:\n]*[^<>:\s][^<>:\n]*)"
                       r"(?::([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?))?>")
_HASH_NAME = str.maketrans("", "", ":,")  # what A1111 removes from names in "Lora hashes"
_NEGATIVE_PREFIX = "Negative prompt:"
# A prompt line that itself starts with "Negative prompt:" would be read back (by A1111 and by
# us) as the start of the negative. Such a line is written with one backslash before it:
# A1111 strips each line and tests `startswith("Negative prompt:")`, so "\Negative prompt: …"
# stays prompt text there (a visible backslash, nothing lost; stripping removes any space we
# could add, and an invisible character would hide in the user's prompt), and our parser
# drops the one backslash again. A line that already starts with backslashes before the
# marker gets one more, so the escape is undone exactly. Lines without the marker at their
# start — every ordinary prompt — are written as they are. The same goes for the negative's
# lines after its first (A1111 strips the marker from those too); the first follows the
# marker on its own line and is never escaped.
_MARKER_LINE = re.compile(r"\\*" + re.escape(_NEGATIVE_PREFIX))
_ESCAPED_MARKER_LINE = re.compile(r"\\+" + re.escape(_NEGATIVE_PREFIX))


def _quote(value: str) -> str:
    """A1111's `quote`: JSON-quote values that would break the comma-separated line.

    Also quotes a value that starts with '"', which A1111 leaves bare and then mangles.
    """
    if any(c in value for c in ",:\n") or value.startswith('"'):
        return json.dumps(value, ensure_ascii=False)
    return value


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        try:
            loaded = json.loads(value)
        except ValueError:
            return value
        return loaded if isinstance(loaded, str) else value
    return value


def _format_number(value: float) -> str:
    """7.0 -> "7", 7.5 -> "7.5" (what A1111 infotexts show for sliders)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def format_parameters(p: GenerationParameters) -> str:
    """AUTOMATIC1111's infotext: prompt, "Negative prompt: …" (if any), then the settings."""
    fields: dict[str, str] = {
        "Steps": str(p.steps),
        "Sampler": p.sampler,
        "CFG scale": _format_number(p.cfg_scale),
        "Seed": str(p.seed),
        "Size": f"{p.width}x{p.height}",
    }
    if p.model:
        fields["Model"] = p.model
    hashes = _lora_hashes(p)
    if hashes:
        if _LORA_HASHES in p.extra:
            raise ValueError("Lora hashes comes from the LoRAs' hashes; not also in extra")
        fields[_LORA_HASHES] = hashes
    for key, value in p.extra.items():
        if key in _CORE_KEYS or not _RE_KEY.fullmatch(key):
            raise ValueError(f"extra key {key!r} can't be written to infotext")
        fields[key] = str(value)
    settings = ", ".join(f"{k}: {_quote(v)}" for k, v in fields.items())
    negative = f"\n{_NEGATIVE_PREFIX} {_escape(p.negative, first=False)}" if p.negative else ""
    return f"{_escape(_with_lora_tags(p))}{negative}\n{settings}".strip()


def _with_lora_tags(p: GenerationParameters) -> str:
    """The prompt with a `<lora:NAME:WEIGHT>` tag per LoRA after it, as A1111 writes them."""
    tags = []
    for lora in p.loras:
        name = lora.name
        if not name or name != name.strip() or any(c in name for c in "<>:\n"):
            raise ValueError(f"LoRA name {name!r} can't be written as a <lora:…> tag")
        if not math.isfinite(lora.weight):
            raise ValueError(f"LoRA {name!r} weight {lora.weight!r} can't be written")
        tags.append(f"<lora:{name}:{_format_weight(lora.weight)}>")
    return " ".join([p.prompt, *tags] if p.prompt else tags)


def _format_weight(weight: float) -> str:
    """Like the other numbers, but never in exponent form (0.00001, not 1e-05)."""
    text = _format_number(weight)
    return f"{weight:.12f}".rstrip("0").rstrip(".") if "e" in text else text


def _lora_hashes(p: GenerationParameters) -> str:
    """A1111's "Lora hashes" value: "name: hash, …" (names without ':' and ',')."""
    return ", ".join(f"{lo.name.translate(_HASH_NAME)}: {lo.hash}" for lo in p.loras if lo.hash)


def _read_loras(prompt: str, fields: dict[str, str]) -> tuple[str, tuple[LoraUse, ...]]:
    """The prompt without its LoRA tags, and the LoRAs with their hashes. "Lora hashes" is
    taken out of `fields` only when every entry belongs to a tag; else it stays as it is."""
    found = [(m.group(1).strip(), float(m.group(2) or 1)) for m in _LORA_TAG.finditer(prompt)]
    if not found:
        return prompt, ()
    hashes = _parse_hashes(fields.get(_LORA_HASHES, ""))
    names = {name.translate(_HASH_NAME) for name, _ in found}
    if hashes is None or not hashes.keys() <= names:
        hashes = {}
    else:
        fields.pop(_LORA_HASHES, None)
    loras = tuple(LoraUse(name, weight, hashes.get(name.translate(_HASH_NAME), ""))
                  for name, weight in found)
    return _LORA_TAG.sub("", prompt).strip(), loras


def _parse_hashes(value: str) -> dict[str, str] | None:
    """ "a: 0123456789ab, b: …" as {name: hash}; None when it isn't that."""
    out: dict[str, str] = {}
    for entry in filter(None, (e.strip() for e in value.split(","))):
        name, colon, short = (part.strip() for part in entry.rpartition(":"))
        if not colon or not name or not short:
            return None
        out[name] = short
    return out


def _escape(text: str, *, first: bool = True) -> str:
    """One more backslash before "Negative prompt:" at the start of a line (see _MARKER_LINE);
    `first=False` leaves the first line alone."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        body = line.lstrip()
        if (i or first) and _MARKER_LINE.match(body):
            lines[i] = f"{line[: len(line) - len(body)]}\\{body}"
    return "\n".join(lines)


def _split_prompts(lines: Sequence[str]) -> tuple[str, str]:
    """A1111's rule: lines are stripped; everything from the first line that starts with
    "Negative prompt:" on is negative, and that marker is cut from every line that starts
    with it. Then our escape is undone: one backslash less before a line's marker (not on
    the negative's first line, which follows the marker and is written as it is)."""
    prompt: list[str] = []
    negative: list[str] = []
    in_negative = False
    for raw in lines:
        line = raw.strip()
        if line.startswith(_NEGATIVE_PREFIX):
            in_negative = True
            negative.append(line[len(_NEGATIVE_PREFIX) :].strip())
            continue
        if _ESCAPED_MARKER_LINE.match(line):
            line = line[1:]
        (negative if in_negative else prompt).append(line)
    return "\n".join(prompt), "\n".join(negative)


def _required(fields: Mapping[str, str], key: str) -> str:
    if key not in fields:
        raise ValueError(f"infotext has no {key!r} field")
    return fields[key]


def parse_parameters(text: str) -> GenerationParameters:
    """Parse A1111 infotext. Raises ValueError when it isn't one (no settings line,
    or Steps/Sampler/CFG scale/Seed/Size missing or malformed)."""
    *lines, last = text.replace("\r\n", "\n").strip().split("\n")
    pairs = _RE_PARAM.findall(last)
    if len(pairs) < 3:  # same test A1111 uses to tell the settings line from the prompt
        raise ValueError("infotext has no settings line")
    prompt, negative = _split_prompts(lines)
    fields = {key: _unquote(value) for key, value in pairs}
    prompt, loras = _read_loras(prompt, fields)
    size = _RE_SIZE.match(_required(fields, "Size"))
    if size is None:
        raise ValueError(f"infotext Size {fields['Size']!r} is not WIDTHxHEIGHT")
    return GenerationParameters(
        prompt=prompt,
        negative=negative,
        steps=int(_required(fields, "Steps")),
        sampler=_required(fields, "Sampler"),
        cfg_scale=float(_required(fields, "CFG scale")),
        seed=int(_required(fields, "Seed")),
        width=int(size.group(1)),
        height=int(size.group(2)),
        model=fields.get("Model", ""),
        extra={k: v for k, v in fields.items() if k not in _CORE_KEYS},
        loras=loras,
    )


# --------------------------------------------------------------------------- PNG I/O


def _png_ready(image: Image.Image) -> Image.Image:
    if image.mode in ("1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"):
        return image
    return image.convert("RGBA" if "A" in image.getbands() else "RGB")


def encode_png_text(image: Image.Image, text: str | None, *, optimize: bool = False) -> bytes:
    info = PngImagePlugin.PngInfo()
    if text is not None:
        # Like A1111: tEXt when Latin-1 suffices, else (emoji, CJK...) UTF-8 iTXt.
        info.add_text(PARAMETERS_KEY, text)
    buffer = io.BytesIO()
    _png_ready(image).save(buffer, format="PNG", pnginfo=info, optimize=optimize)
    return buffer.getvalue()


def encode_png(image: Image.Image, params: GenerationParameters | None) -> bytes:
    """PNG bytes with a `parameters` text chunk that A1111, Civitai etc. can read."""
    return encode_png_text(image, format_parameters(params) if params is not None else None)


def parameters_text(image: Image.Image) -> str | None:
    value = image.info.get(PARAMETERS_KEY)
    if value is None and isinstance(image, PngImagePlugin.PngImageFile):
        value = image.text.get(PARAMETERS_KEY)  # chunks after IDAT; loads the image
    return str(value) if value is not None else None


def read_png_parameters(data: bytes) -> GenerationParameters | None:
    """Parameters from PNG bytes; None if absent, unparseable, or not an image at all."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            text = parameters_text(image)
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    if text is None:
        return None
    try:
        return parse_parameters(text)
    except ValueError:
        return None
