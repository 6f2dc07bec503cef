"""/imagine: prompt to pictures, with live status and buttons that survive restarts.

The path of one /imagine, top to bottom: this command validates the request
(bot.images.requests via ImageJobs.request) and makes the job → the presenter queues it
(bot.images.lifecycle → bot.executor) and follows its events in the status message →
the result is posted with its buttons (buttons.py, result_message.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from bot.client import GreenheartBot
from bot.db.jobs import JobRecord
from bot.db.preferences import PreferenceRepository
from bot.executor.handle import JobHandle
from bot.images.inputs import InputPicture, InputPictureError, check_upload, read_picture
from bot.images.models import suggest_loras
from bot.images.preferences import effective_options
from bot.images.requests import (
    ALL_STYLES,
    ASPECTS,
    MAX_COUNT,
    MAX_REPEAT,
    MAX_SEED,
    ImageOptions,
    OptionError,
)
from bot.prompts import PromptError, suggest_styles
from cogs.common import is_nsfw
from cogs.imagine.buttons import ACTIONS, ITEMS, REMIX_FORM, form_values
from cogs.imagine.journey import JourneyPresenter
from cogs.imagine.journey_buttons import JOURNEY_ACTIONS, JOURNEY_ITEMS
from cogs.imagine.presenter import ImaginePresenter

log = logging.getLogger(__name__)


class ImagineCog(commands.Cog, name="Imagine"):
    def __init__(self, bot: GreenheartBot, presenter: ImaginePresenter) -> None:
        self.bot = bot
        self.images = bot.services.images
        self.presenter = presenter
        self.preferences = PreferenceRepository(bot.services.db)  # /settings defaults

    async def cog_load(self) -> None:
        # Jobs restored from the last run continue in their old status messages, and results
        # rendered but never posted (a stop or crash came between) are posted now.
        await self.presenter.answers.tokens.drop_expired()  # left behind by a crash
        mine = self.images.restored(self.bot.services.restored)
        owed = await self.images.undelivered()
        if mine or owed:
            asyncio.create_task(self._resume(mine, owed))  # noqa: RUF006 - kept by what it starts

    async def cog_unload(self) -> None:
        await self.presenter.close()

    async def _resume(self, handles: list[JobHandle], owed: list[JobRecord]) -> None:
        await self.bot.wait_until_ready()
        for record in owed:
            self.presenter.deliver_owed(record)
        for handle in handles:
            await self.presenter.resume(handle)

    @app_commands.command(name="imagine", description="Paint a prompt: subject | style")
    @app_commands.describe(
        prompt='What to paint, e.g. "Oregon 💚 | watercolor"',
        style="A style preset, or 'all styles' for one picture in each",
        negative="What to keep out of the picture",
        seed=f"Seed for a repeatable result (0-{MAX_SEED})",
        steps="Denoising steps (more: slower, finer)",
        guidance="How closely to follow the prompt (0-30)",
        aspect="Shape of the picture",
        count=f"How many pictures (1-{MAX_COUNT})",
        repeat=f"Queue it this many times, with new seeds (1-{MAX_REPEAT})",
        image="Start from your own picture (img2img)",
        strength="With image: how far to move from it (0.05 keeps it, 1 ignores it)",
        model="Which model paints it",
        lora="Add a LoRA (more inline: <lora:NAME:0.8>)",
        lora_weight="With lora: how strongly it applies (default: the LoRA's own)",
        draft="⚡ A fast draft first; ✨ finalize the one you like",
        private="Only you see the status and the result (default: your /settings)",
    )
    @app_commands.choices(aspect=[app_commands.Choice(name=a, value=a) for a in ASPECTS])
    # Also installable to a member's own account: then it works in DMs and group DMs,
    # answering through the interaction alone (cogs/imagine/via_interaction.py).
    @app_commands.allowed_installs(guilds=True, users=True)
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    async def imagine(
        self,
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, 6000],
        style: str | None = None,
        negative: str | None = None,
        seed: app_commands.Range[int, 0, MAX_SEED] | None = None,
        steps: app_commands.Range[int, 1, 150] | None = None,
        guidance: app_commands.Range[float, 0.0, 30.0] | None = None,
        aspect: str | None = None,
        count: app_commands.Range[int, 1, MAX_COUNT] | None = None,
        repeat: app_commands.Range[int, 1, MAX_REPEAT] = 1,
        image: discord.Attachment | None = None,
        strength: app_commands.Range[float, 0.05, 1.0] | None = None,
        model: str | None = None,
        lora: str | None = None,
        lora_weight: app_commands.Range[float, -4.0, 4.0] | None = None,
        draft: bool = False,
        private: bool | None = None,
    ) -> None:
        # {a, b} groups in the prompt, and repeat, make one job each.
        try:
            if strength is not None and image is None:
                raise OptionError("strength only applies with image: attach a picture, or "
                                  "leave strength out.")
            if lora_weight is not None and not lora:
                raise OptionError("lora_weight only applies with lora: pick a LoRA, or "
                                  "leave lora_weight out.")
            # What was typed wins; then the member's /settings, then the server's.
            chosen = effective_options(ImageOptions(
                prompt=prompt, style=style, negative=negative, seed=seed, steps=steps,
                guidance=guidance, aspect=aspect, count=count, model=model,
                loras=((lora, lora_weight),) if lora else (), draft=draft),
                await self.preferences.member(interaction.user.id),
                await self.preferences.guild(interaction.guild_id or 0),
                settings=self.images.settings.image, catalog=self.images.catalog,
                private=private)
            requests = self.images.requests(chosen.options, repeat=repeat)
            if image is not None:
                check_upload(image.filename, image.size, image.content_type,
                             self.images.settings.image)
        except (OptionError, PromptError, InputPictureError) as exc:
            await interaction.response.send_message(f"⚠️ {exc}", ephemeral=True)
            return
        for params in requests:
            refusal = self.images.refusal(params, nsfw_allowed=is_nsfw(interaction.channel))
            if refusal:
                await interaction.response.send_message(f"⚠️ {refusal}", ephemeral=True)
                return
        jobs = [self.presenter.new_job(interaction, params, private=chosen.private)
                for params in requests]
        if image is not None:
            # Fetching may take longer than Discord's 3 s to answer: acknowledge first.
            await interaction.response.defer(thinking=True, ephemeral=chosen.private)
            try:
                picture = await self._picture_of(image)
                jobs = [self.images.from_picture(job, picture, strength) for job in jobs]
            except InputPictureError as exc:
                await self.presenter.refuse_deferred(interaction, f"⚠️ {exc}")
                return
        if len(jobs) == 1:
            await self.presenter.start_from_command(interaction, jobs[0])
        else:
            await self.presenter.start_many_from_command(interaction, jobs)
        if chosen.notes and interaction.response.is_done():  # defaults skipped or lowered
            with contextlib.suppress(discord.HTTPException):
                await interaction.followup.send("\n".join(f"-# {n}" for n in chosen.notes),
                                                ephemeral=True)

    async def _picture_of(self, attachment: discord.Attachment) -> InputPicture:
        try:
            data = await attachment.read()
        except (discord.HTTPException, aiohttp.ClientError, TimeoutError) as exc:
            raise InputPictureError(f"image: {attachment.filename} could not be fetched from "
                                    f"Discord ({exc}); try attaching it again.") from None
        settings = self.images.settings.image
        return await asyncio.to_thread(read_picture, data, attachment.filename, settings,
                                       self.images.native_size)

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """A submitted Remix form: taken from the interaction itself, so a form opened
        before a restart still works (the job is named in its custom_id)."""
        if interaction.type is not discord.InteractionType.modal_submit:
            return
        data: Any = interaction.data or {}
        match = REMIX_FORM.fullmatch(str(data.get("custom_id", "")))
        if match is None:
            return
        try:
            await self.presenter.remix_submitted(interaction, match["job"], form_values(data))
        except Exception as exc:
            await self.bot.report_interaction_error(interaction, exc)

    @imagine.autocomplete("model")
    async def model_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=info.label, value=info.name[:100])
                for info in self.images.catalog.suggest(current)]

    @imagine.autocomplete("lora")
    async def lora_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=label, value=name)
                for name, label in suggest_loras(self.bot.services.settings.image, current)]

    @imagine.autocomplete("style")
    async def style_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        styles = self.bot.services.settings.image.styles
        names = suggest_styles(styles, current, limit=24)
        if ALL_STYLES.startswith(current.strip().casefold()):
            names.append(ALL_STYLES)
        return [app_commands.Choice(name=n, value=n) for n in names[:25]]


async def setup(bot: GreenheartBot) -> None:
    presenter = ImaginePresenter(bot, bot.services)
    bot.provide(ACTIONS, presenter)
    bot.provide(JOURNEY_ACTIONS, JourneyPresenter(presenter))  # 🎞
    bot.add_dynamic_items(*ITEMS, *JOURNEY_ITEMS)
    await bot.add_cog(ImagineCog(bot, presenter))
