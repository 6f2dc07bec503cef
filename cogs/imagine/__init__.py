"""/imagine: prompt to pictures, with live status and buttons that survive restarts."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.executor.executor import JobHandle
from bot.image_requests import (
    ALL_STYLES,
    ASPECTS,
    MAX_COUNT,
    MAX_SEED,
    ImageOptions,
    OptionError,
    build_image_params,
)
from bot.prompts import PromptError, suggest_styles
from cogs.imagine.actions import ORIGIN_KIND, ImagineActions, safety_refusal

if TYPE_CHECKING:
    from bot.client import GreenheartBot

log = logging.getLogger(__name__)


class ImagineCog(commands.Cog, name="Imagine"):
    def __init__(self, bot: GreenheartBot, actions: ImagineActions) -> None:
        self.bot = bot
        self.services = bot.services
        self.actions = actions

    async def cog_load(self) -> None:
        # Jobs restored from the last run continue in their old status messages.
        mine = [h for h in self.services.restored if h.job.origin.get("kind") == ORIGIN_KIND]
        if mine:
            asyncio.create_task(self._resume(mine))  # noqa: RUF006 - kept by the tasks it starts

    async def cog_unload(self) -> None:
        await self.actions.close()

    async def _resume(self, handles: list[JobHandle]) -> None:
        await self.bot.wait_until_ready()
        for handle in handles:
            await self.actions.resume(handle)

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
    )
    @app_commands.choices(aspect=[app_commands.Choice(name=a, value=a) for a in ASPECTS])
    @app_commands.guild_only()
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
    ) -> None:
        settings = self.services.settings.image
        try:
            params = build_image_params(
                ImageOptions(prompt=prompt, style=style, negative=negative, seed=seed,
                             steps=steps, guidance=guidance, aspect=aspect, count=count),
                settings,
                self.services.native_size,
            )
        except (OptionError, PromptError) as exc:
            await interaction.response.send_message(f"⚠️ {exc}", ephemeral=True)
            return
        refusal = safety_refusal(self.services, f"{params.prompt}\n{params.subject}",
                                 interaction.channel)
        if refusal:
            await interaction.response.send_message(f"⚠️ {refusal}", ephemeral=True)
            return
        channel = interaction.channel
        assert channel is not None
        job = self.actions.new_job(interaction.user, params, channel, interaction)  # type: ignore[arg-type]
        await self.actions.start_from_command(interaction, job)

    @imagine.autocomplete("style")
    async def style_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        styles = self.services.settings.image.styles
        names = suggest_styles(styles, current, limit=24)
        if ALL_STYLES.startswith(current.strip().casefold()):
            names.append(ALL_STYLES)
        return [app_commands.Choice(name=n, value=n) for n in names[:25]]


async def setup(bot: GreenheartBot) -> None:
    actions = ImagineActions(bot, bot.services)
    bot.add_dynamic_items(*actions.buttons.all())
    await bot.add_cog(ImagineCog(bot, actions))
