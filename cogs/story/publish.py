"""/story publish: a moderator regenerates the server's blog (`bot/story/blog.py`).

The blog holds every finished story of the server, so publishing it is a moderator's
decision (Manage Server), not a story author's: `/story end` and `/story export` are for
one's own story. The work (pictures converted, files written) runs on a worker thread.
"""

from __future__ import annotations

import logging

import discord

from bot.services import Services
from bot.story.blog import Published, guild_site, publish_blog
from cogs.story.thread import NO_PINGS

log = logging.getLogger(__name__)

REFUSED = ("⚠️ Publishing the blog is a moderator action: it puts every finished story of "
           "this server on the web. Only members with the Manage Server permission can use "
           "`/story publish`; ask one of them.")


class StoryPublisher:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def publish(self, interaction: discord.Interaction) -> None:
        permissions = getattr(interaction, "permissions", None)
        if interaction.guild_id is None or not (permissions and permissions.manage_guild):
            await interaction.response.send_message(REFUSED, ephemeral=True,
                                                    allowed_mentions=NO_PINGS)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        name = interaction.guild.name if interaction.guild else ""
        root, site = guild_site(self.services.settings.blog, interaction.guild_id, name)
        try:
            published = await publish_blog(self.services.stories, root, site,
                                           interaction.guild_id)
        except OSError as exc:
            log.exception("publishing the blog of guild %s failed", interaction.guild_id)
            text = (f"⚠️ The blog could not be written to `{root}` "
                    f"({exc.strerror or exc}). Check `blog.dir` and its permissions.")
        except Exception:  # never leave the moderator looking at "thinking…"
            log.exception("publishing the blog of guild %s failed", interaction.guild_id)
            text = "⚠️ Something went wrong on my side while publishing; please try again."
        else:
            text = published_text(published, has_url=bool(site.base_url))
        await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_PINGS)


def published_text(published: Published, *, has_url: bool) -> str:
    count = published.stories
    if count:
        text = f"📚 Published {count} finished {'story' if count == 1 else 'stories'}"
    else:
        text = "📚 No story has ended yet, so the blog is empty for now"
    text += f" to `{published.index}`."
    if published.removed:
        text += (f" {published.removed} deleted "
                 f"{'story was' if published.removed == 1 else 'stories were'} taken off.")
    if has_url:
        text += f"\n🔗 {published.url}"
    return text
