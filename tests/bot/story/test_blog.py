"""The blog: what the site holds, escaping, WebP pictures, the Atom feed, republishing."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from bot.db.connection import open_database
from bot.story.blog import FLAGGED, Published, Site, publish_blog
from bot.story.blog_images import MAX_SIDE, THUMB_SIDE
from bot.story.repository import StoryRepository
from testkit.blog import BOB, GUILD, Line, make_story

A = "{http://www.w3.org/2005/Atom}"
SITE = Site("Our tales", scope=f"guild/{GUILD}")


@pytest.fixture
async def repo(tmp_path: Path) -> AsyncIterator[StoryRepository]:
    db = await open_database(tmp_path / "bot.sqlite3")
    yield StoryRepository(db)
    await db.close()


class Page(HTMLParser):
    """A page's images (their attributes) and its text."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.images: list[dict[str, str]] = []
        self.links: list[str] = []
        self.text: list[str] = []
        self.feed(path.read_text(encoding="utf-8"))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "img":
            self.images.append(values)
        if tag == "a":
            self.links.append(values["href"])

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    @property
    def all_text(self) -> str:
        return " ".join(" ".join(self.text).split())


async def two_stories(repo: StoryRepository, tmp: Path) -> None:
    await make_story(repo, tmp / "png", "The old lighthouse", [
        Line("The lamp went out."), Line("A gull laughed.", BOB, by_model=True)],
        ended_at=1_700_000_000.0)
    await make_story(repo, tmp / "png", "Green sky", [
        Line("The sky turned green."), Line("Nobody minded.", BOB, size=(320, 80)),
        Line("Then it rained mint.", size=None)], ended_at=1_700_100_000.0, author=BOB)


async def publish(repo: StoryRepository, root: Path, site: Site = SITE) -> Published:
    return await publish_blog(repo, root, site, GUILD)


def story_pages(root: Path) -> dict[str, Path]:
    return {p.parent.name: p for p in (root / "stories").glob("*/index.html")}


async def test_the_index_lists_only_finished_stories_newest_first(
        repo: StoryRepository, tmp_path: Path) -> None:
    await two_stories(repo, tmp_path)
    await make_story(repo, tmp_path / "png", "Still being told", [Line("Once")], ended_at=None)
    await make_story(repo, tmp_path / "png", "Another server's", [Line("Elsewhere")],
                     guild_id=GUILD + 1)
    root = tmp_path / "site"
    published = await publish(repo, root)

    assert published.stories == 2 and published.index == (root / "index.html").resolve()
    index = Page(root / "index.html")
    text = index.all_text
    assert text.index("Green sky") < text.index("The old lighthouse")  # ended last: first
    assert "Still being told" not in text and "Another server's" not in text
    assert "Green sky 16 November 2023 · 3 lines by bob, alice" in text  # date, count, authors
    assert "14 November 2023 · 2 lines by alice, gpt-neo-125M, bob" in text  # models too
    assert sorted(story_pages(root)) == ["1-the-old-lighthouse", "2-green-sky"]
    assert index.links[:2] == ["feed.xml", "stories/2-green-sky/index.html"]
    # Each story's first picture, as a small WebP, sized to avoid layout shift.
    thumbs = index.images
    assert len(thumbs) == 2 and thumbs[0]["src"].startswith("images/2/")
    assert all(re.fullmatch(r"images/[12]/001-[0-9a-f]{12}-thumb\.webp", t["src"])
               for t in thumbs)
    for thumb in thumbs:
        with Image.open(root / thumb["src"]) as img:
            assert img.format == "WEBP"
            assert (str(img.width), str(img.height)) == (thumb["width"], thumb["height"])
        assert thumb["alt"].startswith("Line 1: ")
    assert 'name="viewport"' in (root / "index.html").read_text()


async def test_a_story_page_has_every_line_picture_and_author(
        repo: StoryRepository, tmp_path: Path) -> None:
    await two_stories(repo, tmp_path)
    root = tmp_path / "site"
    await publish(repo, root)
    page = Page(story_pages(root)["2-green-sky"])
    text = page.all_text
    for line in ("The sky turned green. — alice", "Nobody minded. — bob",
                 "Then it rained mint. — alice"):
        assert line in text
    # Two of the three lines have pictures; the third has none (and no broken <img>).
    assert [i["alt"] for i in page.images] == ["Line 1: The sky turned green.",
                                               "Line 2: Nobody minded."]
    for image in page.images:
        assert image["src"].startswith("../../images/2/")
        with Image.open(root / "stories" / "2-green-sky" / image["src"]) as img:
            assert (str(img.width), str(img.height)) == (image["width"], image["height"])
    lighthouse = Page(story_pages(root)["1-the-old-lighthouse"]).all_text
    assert "A gull laughed. — gpt-neo-125M, asked by bob" in lighthouse
    assert "../../index.html" in Page(story_pages(root)["1-the-old-lighthouse"]).links


async def test_html_in_stories_is_shown_as_text_never_as_markup(
        repo: StoryRepository, tmp_path: Path) -> None:
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)> & "quotes"'
    author = BOB.__class__(7, "<b>mallory</b>")
    await make_story(repo, tmp_path / "png", "<i>Title</i> & co", [
        Line(evil), Line("fine", author)])
    root = tmp_path / "site"
    await publish(repo, root)
    files = [root / "index.html", *story_pages(root).values(), root / "feed.xml"]
    for path in files:
        raw = path.read_text()
        assert "<script>" not in raw and "<img src=x" not in raw and "<b>mallory" not in raw
        assert "<i>Title" not in raw
    page = story_pages(root)["1-i-title-i-co"]
    assert evil in Page(page).all_text  # shown exactly as written
    assert "— <b>mallory</b>" in Page(page).all_text
    entry = ET.parse(root / "feed.xml").getroot().find(f"{A}entry")
    assert entry is not None
    assert entry.findtext(f"{A}title") == "<i>Title</i> & co"
    content = entry.findtext(f"{A}content") or ""
    assert "&lt;script&gt;" in content and "<script>" not in content  # escaped HTML inside


async def test_pictures_are_webp_files_that_decode(repo: StoryRepository,
                                                   tmp_path: Path) -> None:
    await make_story(repo, tmp_path / "png", "Wide", [Line("Wide", size=(2400, 300)),
                                                      Line("Small", size=(64, 64))])
    root = tmp_path / "site"
    await publish(repo, root)
    files = sorted((root / "images" / "1").iterdir())
    assert [f.suffix for f in files] == [".webp"] * 3  # two pictures and one thumbnail
    sizes = {}
    for file in files:
        with Image.open(file) as img:
            img.load()  # decodes the whole picture, not only its header
            assert img.format == "WEBP"
            sizes[file.name] = img.size
    assert (MAX_SIDE, 200) in sizes.values()  # shrunk to the longest side, ratio kept
    assert (64, 64) in sizes.values()
    thumbs = [size for name, size in sizes.items() if name.endswith("-thumb.webp")]
    assert thumbs == [(THUMB_SIDE, 60)]  # the index's, of the first picture only


async def test_the_feed_is_atom_with_one_entry_per_story_and_stable_ids(
        repo: StoryRepository, tmp_path: Path) -> None:
    await two_stories(repo, tmp_path)
    root = tmp_path / "site"
    await publish(repo, root)
    feed = ET.parse(root / "feed.xml").getroot()
    assert feed.tag == f"{A}feed"
    assert feed.findtext(f"{A}title") == "Our tales"
    assert (feed.findtext(f"{A}id") or "").startswith("urn:uuid:")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", feed.findtext(f"{A}updated") or "")
    entries = feed.findall(f"{A}entry")
    assert [e.findtext(f"{A}title") for e in entries] == ["Green sky", "The old lighthouse"]
    for entry in entries:
        for tag in ("id", "title", "updated", "published", "summary", "content"):
            assert entry.findtext(f"{A}{tag}"), tag
        assert entry.findall(f"{A}author/{A}name")
        link = entry.find(f"{A}link")
        assert link is not None and link.get("rel") == "alternate"
        assert (root / link.get("href", "") / "index.html").is_file()  # relative: no base URL
    assert entries[0].findtext(f"{A}summary") == "The sky turned green."
    assert [n.text for n in entries[0].findall(f"{A}author/{A}name")] == ["bob", "alice"]
    ids = [e.findtext(f"{A}id") for e in entries]
    before = (root / "feed.xml").read_bytes()

    # Published again: the same bytes. Published under a base URL: absolute links, same ids.
    await publish(repo, root)
    assert (root / "feed.xml").read_bytes() == before
    await publish(repo, root, Site("Our tales", "https://tales.example/g/", scope=SITE.scope))
    moved = ET.parse(root / "feed.xml").getroot()
    assert [e.findtext(f"{A}id") for e in moved.findall(f"{A}entry")] == ids
    assert moved.findtext(f"{A}id") == feed.findtext(f"{A}id")
    first = moved.find(f"{A}entry/{A}link")
    assert first is not None and first.get("href") == "https://tales.example/g/stories/2-green-sky/"
    content = moved.findtext(f"{A}entry/{A}content") or ""
    assert 'src="https://tales.example/g/images/2/001-' in content
    # Another blog (another server) has ids of its own.
    await publish(repo, tmp_path / "other", Site("Our tales", scope="guild/1"))
    other = ET.parse(tmp_path / "other" / "feed.xml").getroot()
    assert not {e.findtext(f"{A}id") for e in other.findall(f"{A}entry")} & set(ids)


async def test_republishing_removes_deleted_stories_and_keeps_the_rest(
        repo: StoryRepository, tmp_path: Path) -> None:
    await two_stories(repo, tmp_path)
    root = tmp_path / "site"
    (root / "stories").mkdir(parents=True)
    (root / "README.txt").write_text("mine")  # not the blog's: left alone
    (root / "stories" / "notes").mkdir()
    await publish(repo, root)
    kept = story_pages(root)["1-the-old-lighthouse"]
    kept_mtime = kept.stat().st_mtime_ns
    pictures = {p: p.stat().st_mtime_ns for p in (root / "images" / "1").iterdir()}

    await repo.delete(2)
    published = await publish(repo, root)
    assert (published.stories, published.removed) == (1, 1)
    assert sorted(story_pages(root)) == ["1-the-old-lighthouse"]
    assert not (root / "images" / "2").exists()
    assert "Green sky" not in Page(root / "index.html").all_text
    assert len(ET.parse(root / "feed.xml").getroot().findall(f"{A}entry")) == 1
    assert (root / "README.txt").read_text() == "mine" and (root / "stories" / "notes").is_dir()
    # Unchanged files are not rewritten, pictures not converted again.
    assert kept.stat().st_mtime_ns == kept_mtime
    assert {p: p.stat().st_mtime_ns for p in (root / "images" / "1").iterdir()} == pictures
    assert not [p for p in root.rglob("*.tmp")]


async def test_published_pictures_outlive_the_bots_pngs_and_follow_redraws(
        repo: StoryRepository, tmp_path: Path) -> None:
    await make_story(repo, tmp_path / "png", "Kept", [Line("One"), Line("Two")])
    root = tmp_path / "site"
    await publish(repo, root)
    first = Page(story_pages(root)["1-kept"]).images
    for png in (tmp_path / "png").iterdir():
        png.unlink()  # the retention sweep removed the bot's copies
    await publish(repo, root)
    assert Page(story_pages(root)["1-kept"]).images == first
    assert all((root / "stories" / "1-kept" / i["src"]).is_file() for i in first)

    redrawn = tmp_path / "png" / "redrawn.png"
    Image.new("RGB", (50, 40), "purple").save(redrawn)
    await repo.set_image(1, 2, redrawn)
    await publish(repo, root)
    now = Page(story_pages(root)["1-kept"]).images
    assert now[0] == first[0] and now[1]["src"] != first[1]["src"]
    assert (now[1]["width"], now[1]["height"]) == ("50", "40")
    assert not (root / "stories" / "1-kept" / first[1]["src"]).exists()  # the old one went


async def test_a_story_keeps_its_address_and_flagged_pictures_stay_off(
        repo: StoryRepository, tmp_path: Path) -> None:
    await make_story(repo, tmp_path / "png", "First title", [
        Line("Fine"), Line("Flagged", nsfw=True)])
    root = tmp_path / "site"
    await publish(repo, root)
    await repo.db.execute("UPDATE stories SET title = 'A new title' WHERE id = 1")
    await publish(repo, root)
    assert sorted(story_pages(root)) == ["1-first-title"]  # links to it still work
    page = Page(story_pages(root)["1-first-title"])
    assert "A new title" in page.all_text
    assert len(page.images) == 1 and f"({FLAGGED})" in page.all_text


async def test_an_empty_blog_says_so(repo: StoryRepository, tmp_path: Path) -> None:
    await make_story(repo, tmp_path / "png", "Open", [Line("Once")], ended_at=None)
    published = await publish(repo, tmp_path / "site")
    assert published.stories == 0
    assert "No finished stories yet" in Page(tmp_path / "site" / "index.html").all_text
    feed = ET.parse(tmp_path / "site" / "feed.xml").getroot()
    assert feed.findall(f"{A}entry") == [] and feed.findtext(f"{A}updated")
