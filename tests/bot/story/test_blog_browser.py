"""The blog in a real browser: Debian's headless Chromium, driven by Playwright.

On a phone-sized screen the index and the story pages must show every picture and never
scroll sideways, whatever the stories hold (a very long word, a very wide picture).
scripts/test installs chromium when it is missing; only where there is none at all is this
skipped. One browser for the module: launching it is most of the time this takes.
"""

from __future__ import annotations

import os
import shutil
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, ViewportSize, async_playwright

from bot.db.connection import open_database
from bot.story.blog import Site, publish_blog
from bot.story.repository import StoryRepository
from testkit.blog import BOB, GUILD, Line, make_story

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which(
    "chromium-browser")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (scripts/test "
                       "installs Debian's as root: apt-get install chromium)"),
    pytest.mark.asyncio(loop_scope="module"),  # the browser lives on the module's loop
]

PHONE: ViewportSize = {"width": 375, "height": 667}
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
LONG_WORD = "Rumpelstiltskinesque" * 15  # 300 letters, no place to break
WAIT_MS = 30_000  # generous for a loaded machine; a passing run takes a fraction

# Every picture loaded and shown at its own proportions (width/height set, height auto);
# nothing wider than the screen.
MEASURE = """() => {
  const width = document.documentElement.clientWidth;
  return {
    width,
    scrollWidth: document.documentElement.scrollWidth,
    images: [...document.images].map(img => {
      const box = img.getBoundingClientRect();
      return {src: img.getAttribute("src"), complete: img.complete,
              natural: [img.naturalWidth, img.naturalHeight], shown: [box.width, box.height],
              right: box.right, attrs: [img.getAttribute("width"), img.getAttribute("height")]};
    }),
    wider: [...document.querySelectorAll("body *")]
      .filter(e => e.getBoundingClientRect().right > width + 0.5).map(e => e.tagName),
  };
}"""
LOAD_ALL = """async () => {
  for (const img of document.images) {  // lazy pictures load once they come near
    img.scrollIntoView();
    await new Promise(done => requestAnimationFrame(() => done()));
  }
  window.scrollTo(0, 0);
}"""
ALL_LOADED = "[...document.images].every(img => img.complete && img.naturalWidth > 0)"


async def _build(tmp: Path) -> Path:
    db = await open_database(tmp / "bot.sqlite3")
    try:
        repo = StoryRepository(db)
        await make_story(repo, tmp / "png", f"A tale of {LONG_WORD}", [
            Line(f"It began with {LONG_WORD}."), Line("And then?", BOB, by_model=True)],
            ended_at=1_700_000_000.0)
        await make_story(repo, tmp / "png", "The wide sea", [
            Line("The sea was wide.", size=(2400, 240)), Line("Wider still.", BOB,
                                                             size=(1600, 100)),
            Line("A boat.", size=(64, 96)), Line("A gull.", size=(512, 512)),
            Line("The end, without a picture.", size=None)], ended_at=1_700_100_000.0)
        await publish_blog(repo, tmp / "site", Site("Tales", scope=f"guild/{GUILD}"), GUILD)
    finally:
        await db.close()
    return tmp / "site"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return await _build(tmp_path_factory.mktemp("blog"))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        await chromium.close()


async def look(browser: Browser, path: Path, viewport: ViewportSize) -> dict[str, Any]:
    page = await browser.new_page(viewport=viewport)
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.on("pageerror", lambda error: failed.append(str(error)))
    try:
        await page.goto(path.as_uri(), wait_until="load")
        await page.evaluate(LOAD_ALL)
        await page.wait_for_function(ALL_LOADED, timeout=WAIT_MS)
        measured: dict[str, Any] = await page.evaluate(MEASURE)
    finally:
        await page.close()
    assert not failed, f"{path.name}: failed to load {failed}"
    return measured


def assert_holds_up(measured: dict[str, Any], pictures: int) -> None:
    images = measured["images"]
    assert len(images) == pictures
    for img in images:
        assert img["complete"] and img["natural"][0] > 0, img
        assert [str(n) for n in img["natural"]] == img["attrs"], img  # no layout shift
        (nw, nh), (w, h) = img["natural"], img["shown"]
        assert w > 0 and abs(w / h - nw / nh) < 0.05, img  # not stretched
        assert img["right"] <= measured["width"] + 0.5, img
    assert measured["scrollWidth"] <= measured["width"], measured["wider"]
    assert not measured["wider"]


def story_page(site: Path, prefix: str) -> Path:
    return next((site / "stories").glob(f"{prefix}-*/index.html"))


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
async def test_the_index_shows_every_thumbnail_and_fits(browser: Browser, site: Path,
                                                        viewport: ViewportSize) -> None:
    measured = await look(browser, site / "index.html", viewport)
    assert_holds_up(measured, pictures=2)
    assert measured["width"] == viewport["width"]


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
async def test_story_pages_show_every_picture_and_fit(browser: Browser, site: Path,
                                                      viewport: ViewportSize) -> None:
    long_word = await look(browser, story_page(site, "1"), viewport)
    assert_holds_up(long_word, pictures=2)
    wide = await look(browser, story_page(site, "2"), viewport)  # wide pictures, lazy ones
    assert_holds_up(wide, pictures=4)
    first = wide["images"][0]  # 1600 px wide: shrunk to the column
    assert first["shown"][0] < min(viewport["width"], first["natural"][0])


async def test_the_feed_parses_with_an_entry_per_story(site: Path) -> None:
    atom = "{http://www.w3.org/2005/Atom}"
    feed = ET.parse(site / "feed.xml").getroot()
    titles = [e.findtext(f"{atom}title") for e in feed.findall(f"{atom}entry")]
    assert titles == ["The wide sea", f"A tale of {LONG_WORD}"]
