"""A server's finished stories as a static blog: `/story publish` and `python -m bot blog`.

    ROOT/index.html                    the stories, the last to end first, with thumbnails
    ROOT/stories/<id>-<slug>/index.html  one page per story: every line, picture and author
    ROOT/images/<id>/NNN-<hash>.webp   its pictures (and -thumb.webp for the index)
    ROOT/style.css, ROOT/feed.xml      the one stylesheet; the Atom feed

Only ended stories are published; open ones wait until they end. Publishing again is
incremental and safe while the site is being read: each file is written beside itself and
renamed over the old one (`bot.story.atomic`), pictures are converted only the first time,
pages come after their pictures and the index after its pages. A story's folder keeps the
name it was first published under, so its links never break; a story deleted from the
database loses its page and pictures, and nothing else under ROOT is touched. Pictures the
safety checker flagged are left out: the blog is public.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2

from bot.config import BlogSettings
from bot.story.atomic import is_temporary, write_atomic
from bot.story.blog_images import WebPicture, publish_picture
from bot.story.blog_templates import CSS, STYLESHEET, environment
from bot.story.export import GENERATOR, authors, slug
from bot.story.export import _alt as alt_text  # one wording for pictures everywhere
from bot.story.export import _subtitle as subtitle_of
from bot.story.feed import FeedEntry, render_feed
from bot.story.models import Story, StoryLine
from bot.story.repository import StoryRepository

STORIES, IMAGES = "stories", "images"
_STORY_DIR = re.compile(r"^(\d+)(?:-|$)")
FLAGGED = "picture left out: flagged by the safety checker"
_locks: dict[Path, threading.Lock] = {}  # one publish at a time per site in this process
_locks_guard = threading.Lock()


@dataclass(frozen=True)
class Site:
    title: str
    base_url: str = ""  # where ROOT is served, "" = unknown: relative links only
    subtitle: str = ""
    scope: str = "all"  # names the feed's ids: each blog's are its own

    def url(self, rel: str) -> str:
        """`rel` (relative to ROOT) as the feed links it: absolute under the base URL."""
        return f"{self.base_url.rstrip('/')}/{rel}" if self.base_url else rel


@dataclass(frozen=True)
class Post:
    """A finished story and its lines, as read from SQLite."""

    story: Story
    lines: tuple[StoryLine, ...]


@dataclass(frozen=True)
class Published:
    root: Path
    stories: int
    removed: int  # stories taken off the blog (deleted from the database)
    url: str  # the index: absolute under the base URL, else its path

    @property
    def index(self) -> Path:
        return self.root / "index.html"


@dataclass(frozen=True)
class _LineView:
    number: int
    source: str
    text: str
    byline: str
    alt: str
    picture: WebPicture | None
    note: str


@dataclass(frozen=True)
class _PostView:
    id: int
    folder: str
    title: str
    date_iso: str
    date_long: str
    published: float
    updated: float
    authors: tuple[str, ...]
    subtitle: str
    summary: str
    lines: tuple[_LineView, ...]
    thumb: WebPicture | None
    thumb_alt: str
    href: str  # from the index
    url: str  # for the feed and canonical links

    @property
    def line_count(self) -> int:
        return len(self.lines)


def guild_site(settings: BlogSettings, guild_id: int, guild_name: str = "") -> tuple[Path, Site]:
    """Where `/story publish` writes a server's blog, and how it is linked."""
    base = f"{settings.base_url.rstrip('/')}/{guild_id}/" if settings.base_url else ""
    return settings.dir / str(guild_id), Site(settings.title, base, guild_name,
                                              f"guild/{guild_id}")


async def load_posts(stories: StoryRepository, guild_id: int | None) -> list[Post]:
    """The finished stories of a guild (None: of every guild), the last to end first."""
    return [Post(story, tuple(await stories.lines(story.id)))
            for story in await stories.ended_stories(guild_id)]


async def publish_blog(stories: StoryRepository, root: Path, site: Site,
                       guild_id: int | None) -> Published:
    """Read the stories here, write the site on a worker thread (pictures are converted
    there, never on the event loop)."""
    posts = await load_posts(stories, guild_id)
    return await asyncio.to_thread(write_blog, root, site, posts)


def write_blog(root: Path, site: Site, posts: Sequence[Post], *,
               now: float | None = None) -> Published:
    """Write (or bring up to date) the site of `posts` under `root`."""
    root = root.resolve()
    with _lock(root):
        posts = [p for p in posts if not p.story.open]
        folders = _existing_folders(root)
        views = [_view(root, site, post, folders.get(post.story.id)) for post in posts]
        views.sort(key=lambda v: (v.published, v.id), reverse=True)
        env = environment()
        common = {"site": site, "generator": GENERATOR}
        for view in views:
            page = env.get_template("story.html").render(post=view, up="../../", **common)
            write_atomic(root / STORIES / view.folder / "index.html", page.encode())
        write_atomic(root / STYLESHEET, CSS.encode())
        index = env.get_template("index.html").render(posts=views, up="", **common)
        write_atomic(root / "index.html", index.encode())
        entries = [_entry(env, site, view) for view in views]
        write_atomic(root / "feed.xml", render_feed(
            scope=site.scope, title=site.title, site_link=site.url("") or "index.html",
            self_link=site.url("feed.xml"), entries=entries, generator=GENERATOR,
            now=time.time() if now is None else now))
        removed = _prune(root, views, folders)
    return Published(root, len(views), removed, site.url("") or str(root / "index.html"))


# ----- one story --------------------------------------------------------------------------


def _view(root: Path, site: Site, post: Post, folder: str | None) -> _PostView:
    story, lines = post.story, post.lines
    folder = folder or f"{story.id}-{slug(story.title, 50)}"
    views, thumb, thumb_alt = [], None, ""
    for line in lines:
        picture, note = None, ""
        if line.image_path is not None and line.image_nsfw:
            note = FLAGGED
        elif line.image_path is not None:
            files = publish_picture(root, f"{IMAGES}/{story.id}", line.image_path,
                                    line.number, thumb=thumb is None)
            if files is not None:
                picture = files[0]
                if thumb is None:
                    thumb, thumb_alt = files[1], alt_text(line)
        views.append(_LineView(line.number, line.source.value, line.text, line.byline(),
                               alt_text(line), picture, note))
    ended = story.ended_at or story.created_at
    day = dt.datetime.fromtimestamp(ended, dt.UTC).date()
    first = " ".join(lines[0].text.split()) if lines else ""
    return _PostView(
        id=story.id, folder=folder, title=story.title, date_iso=day.isoformat(),
        date_long=f"{day.day} {day:%B %Y}", published=ended,
        updated=max([ended, *(line.updated_at for line in lines)]),
        authors=tuple(authors(story, lines)), subtitle=subtitle_of(story, lines),
        summary=first[:300], lines=tuple(views), thumb=thumb, thumb_alt=thumb_alt,
        href=f"{STORIES}/{folder}/index.html", url=site.url(f"{STORIES}/{folder}/"))


def _entry(env: jinja2.Environment, site: Site, view: _PostView) -> FeedEntry:
    content = env.get_template("entry.html").render(post=view,
                                                     picture=lambda p: site.url(p.path))
    return FeedEntry(key=str(view.id), title=view.title, link=view.url,
                     published=view.published, updated=view.updated, authors=view.authors,
                     summary=view.summary, content_html=content)


# ----- the folders ------------------------------------------------------------------------


def _existing_folders(root: Path) -> dict[int, str]:
    """The folder each story was published under before (the first, if there are more)."""
    found: dict[int, str] = {}
    for name in sorted(_names(root / STORIES)):
        match = _STORY_DIR.match(name)
        if match and (root / STORIES / name).is_dir():
            found.setdefault(int(match.group(1)), name)
    return found


def _prune(root: Path, views: Sequence[_PostView], before: dict[int, str]) -> int:
    """Take away what no published story uses any more: pages and pictures of deleted
    stories, superseded pictures (redrawn lines), temporary files a crash left behind."""
    keep_folders = {v.folder for v in views}
    ids = {v.id for v in views}
    removed = len([i for i in before if i not in ids])
    for name in _names(root / STORIES):
        path = root / STORIES / name
        if _STORY_DIR.match(name) and name not in keep_folders and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
    used = {line.picture.path for v in views for line in v.lines if line.picture}
    used |= {v.thumb.path for v in views if v.thumb}
    for name in _names(root / IMAGES):
        folder = root / IMAGES / name
        if not (name.isdigit() and folder.is_dir()):
            continue
        if int(name) not in ids:
            shutil.rmtree(folder, ignore_errors=True)
            continue
        for file in _names(folder):
            if f"{IMAGES}/{name}/{file}" not in used:
                (folder / file).unlink(missing_ok=True)
    for name in _names(root):
        if is_temporary(name):
            (root / name).unlink(missing_ok=True)
    return removed


def _names(folder: Path) -> list[str]:
    try:
        return [p.name for p in folder.iterdir()]
    except OSError:
        return []


def _lock(root: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(root, threading.Lock())
