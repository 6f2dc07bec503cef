"""The blog's Atom 1.0 feed (RFC 4287), built with ElementTree, so it is always well-formed
XML whatever the stories say.

Ids are urn:uuid URNs made from the feed's scope and the story id: they never change, even
when the site moves to another base URL, so a feed reader never shows a story twice. Links
are absolute under the site's base URL, or relative to the feed itself when there is none
(readers resolve them against the feed's address).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

ATOM = "http://www.w3.org/2005/Atom"
NAMESPACE = uuid.UUID("6f1d1c5e-57a4-4c6b-9a43-6b0f8e1f5d2a")  # Greenheart's, fixed forever
MAX_ENTRIES = 50  # the newest; older stories stay on the site


@dataclass(frozen=True)
class FeedEntry:
    key: str  # stable within the scope: the story id
    title: str
    link: str  # absolute, or relative to the feed
    published: float
    updated: float
    authors: tuple[str, ...]
    summary: str
    content_html: str  # the story as HTML (escaped again by the XML writer)


def entry_id(scope: str, key: str) -> str:
    return f"urn:uuid:{uuid.uuid5(NAMESPACE, f'story/{scope}/{key}')}"


def feed_id(scope: str) -> str:
    return f"urn:uuid:{uuid.uuid5(NAMESPACE, f'blog/{scope}')}"


def render_feed(*, scope: str, title: str, site_link: str, self_link: str,
                entries: Sequence[FeedEntry], generator: str, now: float) -> bytes:
    """The feed of `entries` (newest first). `updated` is the newest entry's, so an
    unchanged blog republishes a byte-identical feed; `now` only for a blog with none."""
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed")
    _text(feed, "id", feed_id(scope))
    _text(feed, "title", title)
    newest = max((e.updated for e in entries), default=now)
    _text(feed, "updated", _stamp(newest))
    _link(feed, site_link, "alternate", "text/html")
    _link(feed, self_link, "self", "application/atom+xml")
    author = ET.SubElement(feed, f"{{{ATOM}}}author")  # for entries that name nobody
    _text(author, "name", title)
    _text(feed, "generator", generator)
    for item in entries[:MAX_ENTRIES]:
        entry = ET.SubElement(feed, f"{{{ATOM}}}entry")
        _text(entry, "id", entry_id(scope, item.key))
        _text(entry, "title", item.title)
        _link(entry, item.link, "alternate", "text/html")
        _text(entry, "published", _stamp(item.published))
        _text(entry, "updated", _stamp(item.updated))
        for name in item.authors:
            _text(ET.SubElement(entry, f"{{{ATOM}}}author"), "name", name)
        _text(entry, "summary", item.summary)
        _text(entry, "content", item.content_html).set("type", "html")
    ET.indent(feed)
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True) + b"\n"


def _text(parent: ET.Element, tag: str, text: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ATOM}}}{tag}")
    element.text = _xml_safe(text)
    return element


def _link(parent: ET.Element, href: str, rel: str, kind: str) -> None:
    ET.SubElement(parent, f"{{{ATOM}}}link", href=href, rel=rel, type=kind)


def _stamp(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(int(timestamp), dt.UTC).isoformat().replace("+00:00", "Z")


_NOT_XML = re.compile(r"[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_safe(text: str) -> str:
    """XML 1.0 cannot hold most control characters, even escaped: drop them."""
    return _NOT_XML.sub("", text)
