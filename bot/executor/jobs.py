"""What the executor runs (jobs) and what it reports back (events)."""

from __future__ import annotations

import dataclasses
import secrets
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from PIL.Image import Image


class JobKind(StrEnum):
    IMAGE = "image"
    TEXT = "text"
    DESCRIBE = "describe"  # prompt suggestions for a member's picture (/describe)


class ImageMode(StrEnum):
    TXT2IMG = "txt2img"
    VARIATION = "variation"  # img2img from a stored image at moderate strength
    UPSCALE = "upscale"  # 2x plus a refine pass
    IMG2IMG = "img2img"  # from a member's own picture (/imagine image:) at their strength
    OUTPAINT = "outpaint"  # zoom out or pan: a stored image on a larger canvas, border inpainted
    # 🎞 a stored picture re-rendered with its own settings (img2img from its source when
    # `strength` > 0), keeping the predicted final image of some steps: one picture per frame
    JOURNEY = "journey"


class JobState(StrEnum):
    """A job's life, stored in SQLite at every step (see `NEXT_STATES`):

    accepted (its row is written; the in-process executor queues what it accepts, so the row
    starts as queued) → queued → running → rendered (its files are written) → delivered (its
    result message exists and its id is stored); or failed / cancelled. A clean stop puts a
    running job back to queued. "Rendered" is not "delivered": a result whose post failed,
    or was cut off by a stop, is still owed to its member.
    """

    QUEUED = "queued"
    RUNNING = "running"
    RENDERED = "rendered"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """Nothing more will run for it (a rendered job may still be owed a post)."""
        return self not in (JobState.QUEUED, JobState.RUNNING)

    @property
    def has_result(self) -> bool:
        return self in (JobState.RENDERED, JobState.DELIVERED)

    def may_become(self, other: JobState) -> bool:
        return other in NEXT_STATES[self]


NEXT_STATES: dict[JobState, frozenset[JobState]] = {
    # Queued → rendered too: "running" is a store write of its own, which may have failed.
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.RENDERED, JobState.FAILED,
                                JobState.CANCELLED}),
    JobState.RUNNING: frozenset({JobState.QUEUED, JobState.RENDERED, JobState.FAILED,
                                 JobState.CANCELLED}),
    JobState.RENDERED: frozenset({JobState.DELIVERED, JobState.FAILED}),
    JobState.DELIVERED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}


@dataclass(frozen=True)
class ImageParams:
    """Everything needed to (re)produce an image job; stored as JSON."""

    prompt: str  # final positive prompt, style phrase included
    negative: str
    subject: str
    style: str | None
    seeds: tuple[int, ...]
    steps: int
    guidance: float
    width: int
    height: int
    mode: ImageMode = ImageMode.TXT2IMG
    strength: float = 0.0
    source_job: str | None = None  # variation/upscale: the job whose image is the input
    source_index: int = 0
    source_path: str | None = None  # that image's file
    labels: tuple[str, ...] = ()  # per-image captions (the "all styles" gallery)
    prompts: tuple[str, ...] = ()  # per-image prompts when they differ (all styles)
    negatives: tuple[str, ...] = ()
    styles_left_out: int = 0  # presets an "all styles" sweep left out (image.max_sweep)
    # Outpaint (zoom out or pan; width × height is the new canvas): the zoom-out factor, or
    # 0 for a pan; the pan's direction (left, right, up, down), or "" for a zoom; and the
    # width in pixels of the soft seam where the original meets what was painted.
    zoom_out: float = 0.0
    pan: str = ""
    mask_blur: int = 0
    # The model's name (an [image.models.NAME], or the implicit name of image.model); ""
    # = the default model (jobs stored before there were several).
    model: str = ""
    # LoRAs as (name, weight), in the order given; jobs batch only with the same ones.
    loras: tuple[tuple[str, float], ...] = ()
    # A ⚡ draft: rendered with the draft model; ✨ Finalize re-renders a picture of it from
    # that picture with `final_model` (a name; "" = the default model).
    draft: bool = False
    final_model: str = ""

    @property
    def count(self) -> int:
        return len(self.seeds)

    def prompt_for(self, index: int) -> str:
        return self.prompts[index] if self.prompts else self.prompt

    def negative_for(self, index: int) -> str:
        return self.negatives[index] if self.negatives else self.negative

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImageParams:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("seeds", "labels", "prompts", "negatives"):
            values[key] = tuple(values.get(key, ()))
        values["loras"] = tuple((str(n), float(w)) for n, w in values.get("loras", ()))
        values["mode"] = ImageMode(values.get("mode", ImageMode.TXT2IMG))
        return cls(**values)


@dataclass(frozen=True)
class TextParams:
    """A story continuation request: the model writes the line after `lines`."""

    seed_line: str
    lines: tuple[str, ...]
    rng_seed: int
    max_chars: int = 1500
    # How many different candidate lines to write in one batched generate call (Continue ▶
    # offers a choice); 1 = a single line, as before. TextResult.candidates holds them.
    candidates: int = 1
    # Names the story (and branch) whose context this continues, so that the worker may
    # reuse the model's key/value cache of the part it has already read; "" = no cache.
    cache_key: str = ""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TextParams:
        return cls(seed_line=data["seed_line"], lines=tuple(data.get("lines", ())),
                   rng_seed=int(data["rng_seed"]), max_chars=int(data.get("max_chars", 1500)),
                   candidates=int(data.get("candidates", 1)),
                   cache_key=str(data.get("cache_key", "")))


@dataclass(frozen=True)
class DescribeParams:
    """/describe: `count` prompt suggestions for a member's picture, saved at `source_path`
    (removed with the job, as /imagine image:'s). The result is a TextResult holding one
    suggestion per line (captions are cleaned to one line each)."""

    source_path: str
    count: int
    max_new_tokens: int
    seed: int

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DescribeParams:
        return cls(source_path=str(data["source_path"]), count=int(data["count"]),
                   max_new_tokens=int(data["max_new_tokens"]), seed=int(data["seed"]))


Params = ImageParams | TextParams | DescribeParams


def params_from_json(kind: JobKind, data: dict[str, Any]) -> Params:
    """A stored or sent job's params, by its kind."""
    if kind is JobKind.IMAGE:
        return ImageParams.from_json(data)
    if kind is JobKind.DESCRIBE:
        return DescribeParams.from_json(data)
    return TextParams.from_json(data)


# ----- where a job came from and where its result goes -----------------------------------


@dataclass(frozen=True)
class ImagineOrigin:
    """An /imagine or a result button's job: Discord ids, no Discord objects."""

    KIND: ClassVar[str] = "imagine"

    guild_id: int | None
    channel_id: int | None
    nsfw: bool = False  # the channel shows NSFW pictures unblurred
    upload_limit: int = 10 * 1024 * 1024  # bytes one upload may have there
    parent_message_id: int | None = None  # the result a button was pressed on
    status_message_id: int | None = None  # the message that shows the job's progress
    # Status and result only the member sees (ephemeral, through the interaction's token);
    # without a live token (a restart, a long wait) the result goes to them by DM.
    private: bool = False
    # Asked where the bot cannot post (a DM, a group DM, a server that only the member
    # installed the app to): status and result go only through the interaction's token
    # (kept in SQLite until it expires), never with the bot token and never by DM.
    via_interaction: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.KIND, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class StoryOrigin:
    """One step (the text, or the picture) of a story operation on line `line`."""

    KIND: ClassVar[str] = "story"

    story_id: int
    op: str  # seed, continue, add, rewrite, redraw or settle
    line: int
    step: str  # "text" or "image"
    guild_id: int | None = None
    channel_id: int | None = None  # the story's thread

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.KIND, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class DescribeOrigin:
    """A /describe job: where its suggestions go (its status message becomes them)."""

    KIND: ClassVar[str] = "describe"

    guild_id: int | None
    channel_id: int | None
    status_message_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.KIND, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class TelephoneOrigin:
    """One job of an AI telephone game (/telephone): the picture of round `round` (step
    "image"), or the description of round `round - 1`'s picture that becomes round
    `round`'s text (step "describe"). Its own kind, so /imagine and /describe never pick
    it up after a restart."""

    KIND: ClassVar[str] = "telephone"

    game_id: int
    round: int
    step: str  # "image" or "describe"
    guild_id: int | None = None
    channel_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.KIND, **dataclasses.asdict(self)}


Origin = ImagineOrigin | StoryOrigin | DescribeOrigin | TelephoneOrigin


def origin_from_json(data: dict[str, Any]) -> Origin | None:
    """The origin a job row stored; None for jobs from the CLI (no kind)."""
    types: dict[str, type[ImagineOrigin] | type[StoryOrigin] | type[DescribeOrigin]
                | type[TelephoneOrigin]] = {
        ImagineOrigin.KIND: ImagineOrigin, StoryOrigin.KIND: StoryOrigin,
        DescribeOrigin.KIND: DescribeOrigin, TelephoneOrigin.KIND: TelephoneOrigin}
    cls = types.get(str(data.get("kind")))
    if cls is None:
        return None
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})


def new_job_id() -> str:
    # Short enough for Discord custom_ids (<= 100 chars with a prefix), unguessable enough.
    return secrets.token_hex(6)


@dataclass
class Job:
    user_id: int
    params: Params
    id: str = field(default_factory=new_job_id)
    # Where it was asked for and where its result goes; None for the CLI's jobs.
    origin: Origin | None = None
    attempts: int = 0  # how many times it has started running
    created_at: float = field(default_factory=time.time)
    user_name: str = ""

    @property
    def kind(self) -> JobKind:
        if isinstance(self.params, ImageParams):
            return JobKind.IMAGE
        return JobKind.DESCRIBE if isinstance(self.params, DescribeParams) else JobKind.TEXT

    @property
    def work_units(self) -> int:
        """Rough cost, used for ETAs: denoising steps times images, or one for text and
        descriptions."""
        if isinstance(self.params, ImageParams):
            return max(1, self.params.steps * self.params.count)
        return 1


@dataclass(frozen=True)
class GeneratedImage:
    image: Image
    seed: int
    nsfw: bool = False
    label: str = ""


@dataclass(frozen=True)
class ImageResult:
    images: tuple[GeneratedImage, ...]
    timings: dict[str, float]
    model: str
    sampler: str  # AUTOMATIC1111's name for the scheduler, for PNG metadata
    worker: str = ""  # who rendered it: "local", or a remote worker's name
    # (name, AUTOMATIC1111 short hash) of each LoRA used, hashed where the file is.
    lora_hashes: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class TextResult:
    text: str  # the line (the first candidate when there are several)
    timings: dict[str, float]
    model: str
    worker: str = ""  # who wrote it: "local", or a remote worker's name
    candidates: tuple[str, ...] = ()  # every candidate line, when TextParams.candidates > 1


JobResult = ImageResult | TextResult


# ----- events, in the order a job meets them -----------------------------------------------


@dataclass(frozen=True)
class Queued:
    position: int  # 1 = next to run
    eta_s: float | None  # seconds until it starts, when there is enough history to guess
    # Why it cannot start at all for now, for the member (e.g. no GPU worker is up).
    note: str | None = None


@dataclass(frozen=True)
class Started:
    batch_size: int = 1


@dataclass(frozen=True)
class Progress:
    step: int
    total: int
    preview: Image | None = None
    # What the run is doing before its first step, for the member (e.g. "loading model X");
    # sent as step 0 of 0.
    note: str | None = None
    # A story line as written so far (live writing), already checked against the blocked
    # terms on the worker; None for pictures.
    text: str | None = None


@dataclass(frozen=True)
class Done:
    result: JobResult


@dataclass(frozen=True)
class Failed:
    reason: str


@dataclass(frozen=True)
class Cancelled:
    by_user: int | None = None
    reason: str | None = None  # why, when the bot cancelled it (stored; default "cancelled")


JobEvent = Queued | Started | Progress | Done | Failed | Cancelled
FINAL_EVENTS = (Done, Failed, Cancelled)
