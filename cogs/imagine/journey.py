"""🎞 The journey in Discord: 🎞 on a result queues its picture's re-render (a result of
several asks which picture first, in a menu only the clicker sees), and the menu on a
journey keeps a step as a picture of its own: a job born finished (bot.images.lifecycle
`ImageJobs.keep`), recorded before it is posted, posted as any one-picture result.
"""

from __future__ import annotations

from typing import Any

import discord

from bot.images.lifecycle import ImageJobError, origin_of
from cogs.imagine.journey_buttons import pick_view
from cogs.imagine.presenter import ImaginePresenter
from cogs.imagine.status import describe


class JourneyPresenter:
    """The cog's `JourneyActions`, on the presenter that posts every result."""

    def __init__(self, presenter: ImaginePresenter) -> None:
        self.presenter = presenter
        self.images = presenter.images

    async def journey(self, interaction: discord.Interaction[Any], job_id: str,
                      index: int | None) -> None:
        """🎞 (index None) or a pick in its which-picture menu (index given)."""
        try:
            record = await self.images.usable(job_id)
            if index is None and len(record.images) > 1:
                self.images.journeyed(record, 0)  # refused for all of them, or for none
                await interaction.response.send_message(
                    "🎞️ The journey of which picture?", view=pick_view(record), ephemeral=True)
                return
            params = self.images.journeyed(record, index or 0)
        except ImageJobError as exc:
            await _ephemeral(interaction, exc.reason)
            return
        if index is None:  # on the result itself: its status replies to it, as for U or V
            await self.presenter.start_from_button(interaction, params)
            return
        # From the ephemeral menu: the job answers the result, private if that was.
        channel = interaction.channel
        reply_to = None
        if record.message_id is not None and isinstance(channel, discord.abc.Messageable) \
                and hasattr(channel, "get_partial_message"):
            reply_to = channel.get_partial_message(record.message_id)
        await self.presenter.start_from_button(interaction, params, reply_to=reply_to,
                                               private=origin_of(record.job).private)

    async def keep_step(self, interaction: discord.Interaction[Any], job_id: str,
                        index: int) -> None:
        """A step picked on a journey: recorded as a finished job, then posted once."""
        try:
            record = await self.images.usable(job_id)
            params = self.images.kept_step(record, index)
        except ImageJobError as exc:
            await _ephemeral(interaction, exc.reason)
            return
        message = interaction.message
        private = bool(message is not None and message.flags.ephemeral)
        job = self.presenter.new_job(interaction, params,
                                     parent_id=message.id if message else None,
                                     private=private)
        if origin_of(job).via_interaction:
            # Such results are answers to their own command's token; a step kept here has
            # none (its post would replace the journey), so it is refused, not lost.
            await _ephemeral(interaction, "A step can only be kept where the bot can post "
                             "(a server channel it is in).")
            return
        await interaction.response.defer()  # silent: the kept step is a reply to the journey
        try:
            kept = await self.images.keep(job, record, index)
        except ImageJobError as exc:
            await interaction.followup.send(exc.reason, ephemeral=True)
            return
        if private:
            self.presenter.private.remember(job.id, interaction)
        try:
            text, delivered = await self.presenter.post_finished(kept, describe(params))
        finally:
            self.presenter.private.forget(job.id)
        if not delivered:
            await interaction.followup.send(text, ephemeral=True)


async def _ephemeral(interaction: discord.Interaction[Any], text: str) -> None:
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=True)
    else:
        await interaction.response.send_message(text, ephemeral=True)
