"""An image job's life without Discord: from a member's request to a queued job, from a
finished job to its stored record, and from a stored record to the jobs its buttons make
(re-roll, another style, variations, upscales, zoom out and pan).

`/imagine` and its buttons share these rules and their messages; the cog only presents
(status message, result post, buttons). The order of a job's life (see `JobState`):
`request` (bot.images.requests) → `new_job` → `submit` (queued) → executor events (running)
→ `stored_record` (rendered: its files are written) → `mark_delivered` (its result message
is stored), or `mark_undeliverable`. At start, `undelivered` lists what is still owed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from PIL import Image as PILImage

from bot.config import Settings
from bot.db.jobs import JobRecord, JobRepository
from bot.db.retention import expired_job
from bot.executor.executor import Executor
from bot.executor.handle import JobHandle
from bot.executor.jobs import (
    GeneratedImage,
    ImageMode,
    ImageParams,
    ImageResult,
    ImagineOrigin,
    Job,
)
from bot.images.inputs import InputPicture, img2img_params, input_path, save_input
from bot.images.journey import JOURNEY_MODES, journey_params, kept_params
from bot.images.models import ModelCatalog
from bot.images.outpaint import Outpaint, OutpaintError
from bot.images.pnginfo import (
    GenerationParameters,
    format_parameters,
    parameters_text,
    parse_parameters,
    read_png_parameters,
)
from bot.images.requests import (
    MAX_REPEAT,
    MAX_SEED,
    ImageOptions,
    OptionError,
    build_image_params,
    derived,
    drafted,
    finalized,
    outpainted,
    random_seed,
    remix_prompt,
    remixed,
    rerolled,
    restyled,
)
from bot.pipelines.errors import public_model_name
from bot.prompts import find_blocked_term, find_style
from bot.prompts.permutations import expand_permutations


class ImageJobError(Exception):
    """A job can't be made or used; `reason` is meant for the member who asked."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def is_image_job(job: Job) -> bool:
    return isinstance(job.origin, ImagineOrigin)


class ImageJobs:
    def __init__(self, settings: Settings, executor: Executor, jobs: JobRepository,
                 native_size: int,
                 story_waiting: Callable[[int], int] = lambda user_id: 0,
                 catalog: ModelCatalog | None = None) -> None:
        self.settings = settings
        self.executor = executor
        self.jobs = jobs
        # The models members may pick, each with its family's defaults and own size.
        self.catalog = catalog or ModelCatalog.offline(settings.image, native_size)
        self.native_size = native_size
        # A member's story operations waiting for their turn (not in the executor yet):
        # they count towards the same per-person limit as pictures.
        self.story_waiting = story_waiting

    @property
    def native_size(self) -> int:
        """The default image model's own side in pixels."""
        return self.catalog.default.native_size

    @native_size.setter
    def native_size(self, size: int) -> None:
        self.catalog.set_native_size(self.catalog.default.name, size)

    @property
    def drafts(self) -> bool:
        """Whether ⚡ drafts are offered (image.draft_model is set)."""
        return self.catalog.draft is not None

    # ----- from a request to a queued job ---------------------------------------------------

    def request(self, options: ImageOptions) -> ImageParams:
        """Validated parameters; raises OptionError or PromptError (messages for members)."""
        return build_image_params(options, self.settings.image, self.native_size,
                                  self.catalog)

    def requests(self, options: ImageOptions, repeat: int = 1) -> list[ImageParams]:
        """One job's parameters per prompt its {a, b} groups make, `repeat` times over.
        The prompts of one round share a seed (so they differ only by the words); each
        round has new seeds. Raises OptionError or PromptError (messages for members)."""
        cap = self.settings.image.max_permutations
        if not 1 <= repeat <= MAX_REPEAT:
            raise OptionError(f"repeat = {repeat} is out of range; choose 1-{MAX_REPEAT}.")
        prompts = expand_permutations(options.prompt, cap).prompts
        if len(prompts) * repeat > cap:
            raise OptionError(
                f"repeat = {repeat} with {len(prompts)} prompt(s) would make "
                f"{len(prompts) * repeat} jobs; at most {cap} are allowed at once "
                "(image.max_permutations).")
        first = self.request(replace(options, prompt=prompts[0]))
        out: list[ImageParams] = []
        for round_ in range(repeat):
            if round_ == 0:
                seed = first.seeds[0]
            elif options.seed is not None:  # reproducible: the next seeds in line
                seed = (options.seed + round_ * first.count) % (MAX_SEED + 1)
            else:
                seed = random_seed()
            out.extend(self.request(replace(options, prompt=prompt, seed=seed))
                       for prompt in prompts)
        return out

    def from_picture(self, job: Job, picture: InputPicture, strength: float | None) -> Job:
        """The job made img2img from the member's picture: saved as its source file (so
        it survives a restart, and travels to a remote worker), at the picture's size."""
        p = job.params
        assert isinstance(p, ImageParams)
        path = save_input(picture, self.jobs.images_dir, job.id)
        strength = self.settings.image.img2img_strength if strength is None else strength
        job.params = img2img_params(p, picture, path, strength)
        return job

    def forget_inputs(self, jobs: list[Job]) -> None:
        """The saved pictures of jobs that were never queued (a limit refused them)."""
        for job in jobs:
            input_path(self.jobs.images_dir, job.id).unlink(missing_ok=True)

    def room_for(self, user_id: int) -> int:
        """How many more jobs the member may queue now (stories' waiting work counted)."""
        return self.executor.room_for(user_id, self.story_waiting(user_id))

    def refusal(self, params: ImageParams, *, nsfw_allowed: bool) -> str | None:
        """Why these pictures may not be made here (blocked or NSFW terms), or None."""
        safety = self.settings.safety
        text = f"{params.prompt}\n{params.subject}"
        term = find_blocked_term(text, safety.blocked_terms)
        if term:
            return f"Your prompt contains a blocked term ({term!r}); nothing was queued."
        term = find_blocked_term(text, safety.nsfw_terms)
        if term and not nsfw_allowed:
            return (f"{term!r} is only allowed in channels marked NSFW; nothing was queued. "
                    "Try again in an NSFW channel.")
        return None

    @staticmethod
    def new_job(user_id: int, user_name: str, params: ImageParams,
                origin: ImagineOrigin) -> Job:
        return Job(user_id=user_id, user_name=user_name, params=params, origin=origin)

    async def submit(self, job: Job) -> JobHandle:
        """Queue the job; raises Refused (with a reason for the member) at a limit."""
        return await self.executor.submit(job,
                                          waiting_elsewhere=self.story_waiting(job.user_id))

    def cancel(self, job_id: str, by_user: int | None = None, *,
               reason: str | None = None) -> bool:
        return self.executor.cancel(job_id, by_user=by_user, reason=reason)

    def finish_estimate_s(self, *jobs: Job) -> float | None:
        """Seconds until `jobs` would be finished if queued now (None: no speed known)."""
        return self.executor.finish_estimate_s(*jobs)

    def unfinished(self, job_id: str) -> Job | None:
        """The queued or running job (its owner comes from memory), or None."""
        return self.executor.job(job_id)

    def remember_status(self, job: Job, message_id: int) -> None:
        """Note the job's status message, so a restart edits the same one."""
        job.origin = replace(origin_of(job), status_message_id=message_id)
        # After the write that inserts the job's row, which is still queued.
        self.executor.store_after(self.jobs.update_origin(job))

    def restored(self, handles: list[JobHandle]) -> list[JobHandle]:
        """The image jobs among those a restart brought back."""
        return [h for h in handles if is_image_job(h.job)]

    # ----- from a finished job to its record ------------------------------------------------

    @staticmethod
    async def stored_record(handle: JobHandle) -> JobRecord | None:
        """The job as the store recorded its end: rendered with its files, or failed with
        the reason they could not be written; None if the store could not write at all."""
        stored = await handle.stored()
        return stored if isinstance(stored, JobRecord) else None

    @staticmethod
    async def stored_result(record: JobRecord) -> ImageResult:
        """The pictures of a rendered job, read back from its files: what is posted, the
        same right after the render as after a restart."""
        return await asyncio.to_thread(_load_result, record)

    async def mark_delivered(self, job_id: str, channel_id: int, message_id: int) -> bool:
        return await self.jobs.mark_delivered(job_id, channel_id, message_id)

    async def mark_undeliverable(self, job_id: str, reason: str) -> bool:
        return await self.jobs.mark_undeliverable(job_id, reason)

    async def undelivered(self) -> list[JobRecord]:
        """Rendered /imagine jobs whose result was never posted (a stop or a crash came
        between the render and the post, or the post kept failing)."""
        return [r for r in await self.jobs.undelivered() if is_image_job(r.job)]

    # ----- from a stored record to the jobs its buttons make --------------------------------

    async def usable(self, job_id: str) -> JobRecord:
        """The finished job a button names; raises ImageJobError saying why it can't be used."""
        record = await self.jobs.get(job_id)
        if record is None:
            expired = await expired_job(self.jobs.db, job_id)
            if expired is not None:  # swept by retention (storage.keep_days), not by 🗑
                days = "1 day" if expired.keep_days == 1 else f"{expired.keep_days} days"
                raise ImageJobError(f"That picture is older than {days} and has expired, so "
                                    "this button can't do anything any more.")
            raise ImageJobError("That picture's job is no longer stored (it was deleted), so "
                                "this button can't do anything any more.")
        if not record.state.has_result or not record.images:
            raise ImageJobError("That job has no finished pictures.")
        return record

    @staticmethod
    def rerolled(record: JobRecord) -> ImageParams:
        """Same settings, new seeds."""
        return rerolled(_image_params(record))

    def derived(self, record: JobRecord, mode: ImageMode, index: int) -> ImageParams:
        """Variations (V) or an upscale (U) of picture `index` of a finished job."""
        if index >= len(record.images):
            raise ImageJobError(f"That job has only {len(record.images)} picture(s).")
        settings = self.settings.image
        strength = settings.variation_strength if mode is ImageMode.VARIATION \
            else settings.upscale_strength
        return derived(_image_params(record), mode, index, record.job.id,
                       str(record.images[index].path), strength)

    async def outpainted(self, record: JobRecord, index: int, op: Outpaint) -> ImageParams:
        """Picture `index` of a finished single-picture job, zoomed out or panned (🔍 ⬅️ ➡️
        ⬆️ ⬇️); raises ImageJobError saying why it can't be (e.g. over image.max_side)."""
        if len(record.images) != 1:
            raise ImageJobError("Zoom out and pan work on a single picture: press its U "
                                "button first, then zoom out or pan the result.")
        if index >= len(record.images):
            raise ImageJobError(f"That job has only {len(record.images)} picture(s).")
        path = record.images[index].path
        size = await asyncio.to_thread(_picture_size, path)
        if size is None:
            raise ImageJobError("That picture's file is gone (it was deleted), so this "
                                "button can't do anything any more.")
        try:
            return outpainted(_image_params(record), index, record.job.id, str(path), size,
                              op, self.settings.image.max_side)
        except OutpaintError as exc:
            raise ImageJobError(str(exc)) from exc

    def remix_form(self, record: JobRecord) -> tuple[str, str, int | None]:
        """What the Remix form is filled in with: prompt, negative prompt, seed."""
        params = _image_params(record)
        return remix_prompt(params), params.negative, params.seeds[0] if params.seeds else None

    def remixed(self, record: JobRecord, prompt: str, negative: str,
                seed: int | None) -> ImageParams:
        """A finished job with the member's edits (🖌 Remix). A remix of a variation keeps
        its source picture and strength; of an upscale, a zoom or a pan, it starts from that
        picture at the variation strength. Raises ImageJobError or PromptError."""
        params = _image_params(record)
        source: tuple[str, str, float] | None = None
        if params.mode in (ImageMode.VARIATION, ImageMode.IMG2IMG) and params.source_path:
            source = (params.source_job or record.job.id, params.source_path, params.strength)
        elif params.mode is not ImageMode.TXT2IMG:
            source = (record.job.id, str(record.images[0].path),
                      self.settings.image.variation_strength)
        if source is not None and not Path(source[1]).exists():
            raise ImageJobError("The picture this remix starts from is gone (it was "
                                "deleted), so it can't be remixed any more.")
        return remixed(params, prompt, negative, seed, self.settings.image, source)

    def drafted(self, record: JobRecord) -> ImageParams:
        """⚡ on a result: the same prompt and seeds as fast drafts."""
        params = _image_params(record)
        if params.draft:
            raise ImageJobError("These are drafts already: ✨ finalize the one you like.")
        try:
            return drafted(params, self.settings.image, self.catalog)
        except OptionError as exc:
            raise ImageJobError(str(exc)) from exc

    def finalized(self, record: JobRecord, index: int) -> ImageParams:
        """✨ on a draft: picture `index` re-rendered by the full model from itself."""
        params = _image_params(record)
        if not params.draft:
            raise ImageJobError("Only drafts are finalized; this picture is final already.")
        if index >= len(record.images):
            raise ImageJobError(f"That job has only {len(record.images)} picture(s).")
        path = record.images[index].path
        if not path.exists():
            raise ImageJobError("That draft's file is gone (it was deleted), so it can't be "
                                "finalized any more.")
        try:
            return finalized(params, index, record.job.id, str(path), self.settings.image,
                             self.catalog)
        except OptionError as exc:
            raise ImageJobError(str(exc)) from exc

    def journeyed(self, record: JobRecord, index: int) -> ImageParams:
        """🎞 Picture `index` of a finished job, rendered again as it was, frame by frame."""
        params = _image_params(record)
        if params.mode not in JOURNEY_MODES:
            raise ImageJobError("🎞 shows one render forming. This picture was made in two "
                                "stages (a resize or a new canvas, then a refine), so press "
                                "🎞 on the picture it came from.")
        if index >= len(record.images):
            raise ImageJobError(f"That job has only {len(record.images)} picture(s).")
        if params.mode is not ImageMode.TXT2IMG and not (
                params.source_path and Path(params.source_path).exists()):
            raise ImageJobError("The picture this one was made from is gone (it was deleted), "
                                "so it can't be rendered again.")
        return journey_params(params, index, record.job.id)

    def kept_step(self, record: JobRecord, index: int) -> ImageParams:
        """The params of step `index` of a 🎞 journey kept as a picture of its own."""
        params = _image_params(record)
        if params.mode is not ImageMode.JOURNEY:
            raise ImageJobError("Only the steps of a 🎞 journey can be kept.")
        if not 0 <= index < len(record.images):
            raise ImageJobError(f"That journey has only {len(record.images)} step(s).")
        return kept_params(params)

    async def keep(self, job: Job, journey: JobRecord, index: int) -> JobRecord:
        """Record `job` as born finished with frame `index` of `journey` as its picture
        (written before it is posted; owed a post from then on, as a rendered job is)."""
        frame = journey.images[index]
        try:
            record = await self.jobs.job_born_finished(
                job, frame.path, seed=frame.seed, label=frame.label, nsfw=frame.nsfw,
                model=journey.model, sampler=journey.sampler)
        except FileNotFoundError as exc:
            raise ImageJobError("That step's picture is gone (it was deleted).") from exc
        except OSError as exc:
            raise ImageJobError(f"The step could not be saved ({exc.strerror or exc}).") from exc
        if record is None or not record.state.has_result:
            raise ImageJobError("The step could not be saved; try again.")
        return record

    def restyled(self, record: JobRecord, style: str) -> ImageParams:
        """Same subject and seed in another preset (the style menu)."""
        preset = find_style(self.settings.image.styles, style)
        if preset is None:
            raise ImageJobError(f"The style {style!r} is no longer offered.")
        return restyled(_image_params(record), preset, self.settings.image)

    async def parameter_texts(self, record: JobRecord) -> list[str]:
        """Each picture's parameters as AUTOMATIC1111 writes them, read from its PNG (so
        what ℹ️ shows is what the file carries); pictures whose file is gone are left out."""
        texts = []
        for image in record.images:
            params = await asyncio.to_thread(_read_parameters, image.path)
            if params is not None:
                texts.append(format_parameters(params))
        return texts

    async def owner(self, job_id: str) -> int | None:
        """Who asked for the job; for an expired one too, so they may still 🗑 its post."""
        record = await self.jobs.get(job_id)
        if record is not None:
            return record.job.user_id
        expired = await expired_job(self.jobs.db, job_id)
        return expired.user_id if expired else None

    async def delete(self, job_id: str) -> None:
        """Forget a job and remove its files (🗑)."""
        await self.jobs.delete(job_id)


def origin_of(job: Job) -> ImagineOrigin:
    assert isinstance(job.origin, ImagineOrigin), f"job {job.id} is not an /imagine job"
    return job.origin


def _image_params(record: JobRecord) -> ImageParams:
    params = record.job.params
    if not isinstance(params, ImageParams):
        raise ImageJobError("That job is not a picture.")
    return params


def _load_result(record: JobRecord) -> ImageResult:
    pictures = []
    hashes: tuple[tuple[str, str], ...] = ()
    for stored in record.images:
        with PILImage.open(stored.path) as image:
            if not hashes:  # the LoRA hashes were computed where the render ran
                hashes = _lora_hashes(image)
            pictures.append(GeneratedImage(image.convert("RGB"), stored.seed, stored.nsfw,
                                           stored.label))
    # public_model_name: jobs stored before results stopped naming a folder by its full path.
    return ImageResult(tuple(pictures), dict(record.timings),
                       public_model_name(record.model or ""), record.sampler or "",
                       lora_hashes=hashes)


def _lora_hashes(image: PILImage.Image) -> tuple[tuple[str, str], ...]:
    text = parameters_text(image)
    try:
        info = parse_parameters(text) if text else None
    except ValueError:
        return ()
    return tuple((lo.name, lo.hash) for lo in (info.loras if info else ()) if lo.hash)


def _picture_size(path: Path) -> tuple[int, int] | None:
    try:
        with PILImage.open(path) as image:
            return image.size
    except (OSError, PILImage.UnidentifiedImageError):
        return None


def _read_parameters(path: Path) -> GenerationParameters | None:
    try:
        with open(path, "rb") as f:
            return read_png_parameters(f.read())
    except OSError:
        return None
