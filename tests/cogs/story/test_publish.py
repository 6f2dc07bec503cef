"""/story publish end to end: the real bot on the tiny models, against the Discord double."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

from PIL import Image

from testkit.discord_double.models import Perm
from testkit.story import StoryBot


class Images(HTMLParser):
    def __init__(self, path: Path) -> None:
        super().__init__()
        self.sources: list[str] = []
        self.feed(path.read_text())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.sources.append(dict(attrs)["src"] or "")


async def test_a_moderator_publishes_the_servers_finished_stories(story_bot: StoryBot,
                                                                  tmp_path: Path) -> None:
    h = story_bot
    blog = tmp_path / "blog"
    h.sections["blog"] = {"dir": str(blog), "base_url": "https://tales.example/blogs",
                          "title": "Our tales"}
    alice, mod, studio = h.world.alice.id, h.world.mod.id, h.world.studio.id
    guild = h.world.guild.id
    async with h.running():
        await h.slash(alice, studio, "start", seed="A <b>quiet</b> lake", title="The lake")
        thread = await h.story_thread()
        await h.line(thread, 1)
        await h.slash(alice, thread, "add", text="A heron waited.")
        await h.line(thread, 2)
        await h.slash(alice, studio, "start", seed="Still going", title="Open one")
        await h.line(await h.story_thread(), 1)
        end = await h.slash(alice, thread, "end")
        await h.answer(end, "closed")

        # The story's author is no moderator: the whole server's blog is not theirs to post.
        refused = await h.slash(alice, studio, "publish")
        text = await h.answer(refused, "moderator")
        assert "Manage Server" in text and "every finished story" in text
        assert not blog.exists()
        # The Moderator role has Manage Messages and Threads, not Manage Server.
        assert "Manage Server" in await h.answer(await h.slash(mod, studio, "publish"),
                                                 "Manage Server")

        admins = h.double.add_role(guild, "Admins", Perm.MANAGE_GUILD)
        h.double.world.guilds[guild].members[int(mod)].role_ids.append(admins.id)
        published = await h.slash(mod, thread, "publish")
        answer = await h.answer(published, "Published")
        original = published.original_message()
        assert original is not None and original.ephemeral

    root = (blog / str(guild)).resolve()
    assert answer.startswith("📚 Published 1 finished story to ")
    assert f"`{root / 'index.html'}`" in answer
    assert f"🔗 https://tales.example/blogs/{guild}/" in answer
    (page,) = (root / "stories").glob("*/index.html")
    assert page.parent.name.endswith("-the-lake")
    html = page.read_text()
    assert "A &lt;b&gt;quiet&lt;/b&gt; lake" in html and "A heron waited." in html
    assert "Open one" not in (root / "index.html").read_text()  # still open: not published
    sources = Images(page).sources
    assert len(sources) == 2  # both lines' pictures, as WebP made from the posted PNGs
    for src in sources:
        with Image.open(page.parent / src) as img:
            img.load()
            assert img.format == "WEBP" and img.size == (64, 64)
    feed = ET.parse(root / "feed.xml").getroot()
    link = feed.find("{http://www.w3.org/2005/Atom}entry/{http://www.w3.org/2005/Atom}link")
    assert link is not None
    assert link.get("href") == (f"https://tales.example/blogs/{guild}/stories/"
                                f"{page.parent.name}/")
    h.double.assert_clean()
