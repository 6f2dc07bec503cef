"""The export: a self-contained HTML page and a Markdown post with its pictures."""

from __future__ import annotations

import base64
import io
import re
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from bot.story import Author, LineSource, Story, StoryLine, StoryState
from bot.story.export import build_export, export_for_upload, slug, write_export

CREATED = 1_764_240_000.0  # 2025-11-27


def story() -> Story:
    return Story(id=3, title="The <Sky> & *Sea*", style="watercolor", author=Author(1, "alice"),
                 state=StoryState.ENDED, created_at=CREATED, ended_at=CREATED + 60)


def lines(tmp_path: Path, size: int = 64) -> list[StoryLine]:
    made = []
    texts = [("The sky", LineSource.SEED, "alice", None),
             ("It turned <b>green</b> & *bright*.", LineSource.MODEL, "bob",
              "EleutherAI/gpt-neo-125M"),
             ("# Not a heading", LineSource.MEMBER, "bob", None)]
    for number, (text, source, name, model) in enumerate(texts, start=1):
        path = tmp_path / f"{number}.png"
        Image.effect_noise((size, size), 60 + number).convert("RGB").save(path)
        made.append(StoryLine(story_id=3, number=number, source=source, text=text,
                              author=Author(number, name), created_at=CREATED,
                              updated_at=CREATED, model=model, image_path=path))
    return made


def test_html_is_self_contained_and_escaped(tmp_path: Path) -> None:
    export = build_export(story(), lines(tmp_path))
    page = export.html.decode()
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>The &lt;Sky&gt; &amp; *Sea*</title>" in page
    assert "It turned &lt;b&gt;green&lt;/b&gt; &amp; *bright*." in page
    assert "<b>green" not in page
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(uris) == 3
    assert base64.b64decode(uris[0]) == (tmp_path / "1.png").read_bytes()
    assert "http" not in page  # nothing to fetch
    assert "gpt-neo-125M, asked by bob" in page
    assert '<time datetime="2025-11-27">27 November 2025</time>' in page


def test_markdown_has_front_matter_every_line_and_its_picture(tmp_path: Path) -> None:
    export = build_export(story(), lines(tmp_path))
    md = export.markdown.decode()
    assert md.startswith('---\ntitle: "The <Sky> & *Sea*"\ndate: 2025-11-27\n')
    assert 'authors: ["alice", "gpt-neo-125M", "bob"]' in md
    assert "# The \\<Sky\\> & \\*Sea\\*" in md
    for number in (1, 2, 3):
        assert f"](images/0{number}.png)" in md
    assert "It turned \\<b\\>green\\</b\\> & \\*bright\\*." in md
    assert "\n\\# Not a heading\n" in md
    assert "*— gpt-neo-125M, asked by bob*" in md
    assert [f.name for f in export.images] == ["images/01.png", "images/02.png",
                                                "images/03.png"]


def test_write_export_puts_the_pictures_next_to_the_markdown(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    export = build_export(story(), lines(tmp_path / "src"))
    written = write_export(export, tmp_path / "out")
    names = sorted(p.relative_to(tmp_path / "out").as_posix() for p in written)
    assert names == ["images/01.png", "images/02.png", "images/03.png", "the-sky-sea.html",
                     "the-sky-sea.md"]
    md = (tmp_path / "out" / "the-sky-sea.md").read_text()
    targets = re.findall(r"\]\((images/[^)]+)\)", md)
    assert targets == ["images/01.png", "images/02.png", "images/03.png"]
    for target in targets:
        assert (tmp_path / "out" / target).is_file()


def test_a_missing_picture_leaves_the_line_without_one(tmp_path: Path) -> None:
    made = lines(tmp_path)
    made[1].image_path.unlink()  # type: ignore[union-attr]
    export = build_export(story(), made)
    assert export.html.decode().count("data:image/png") == 2
    assert "images/02.png" not in export.markdown.decode()
    assert "It turned" in export.markdown.decode()


def test_upload_fits_the_limit_by_shrinking_pictures(tmp_path: Path) -> None:
    made = lines(tmp_path, size=512)
    files, shrunk = export_for_upload(story(), made, 10 * 1024 * 1024)
    assert [f.name for f in files] == ["the-sky-sea.html", "the-sky-sea.md",
                                       "the-sky-sea-markdown.zip"]
    assert not shrunk
    with zipfile.ZipFile(io.BytesIO(files[2].data)) as archive:
        assert sorted(archive.namelist()) == ["images/01.png", "images/02.png",
                                              "images/03.png", "the-sky-sea.md"]
    full = len(files[0].data)
    limit = full // 3
    files, shrunk = export_for_upload(story(), made, limit)
    assert shrunk and sum(len(f.data) for f in files) <= limit
    assert files[0].data.decode().count("data:image/jpeg") == 3
    files, shrunk = export_for_upload(story(), made, 6000)  # no room for any picture
    assert shrunk and "data:image" not in files[0].data.decode()
    assert "It turned" in files[0].data.decode()


@pytest.mark.parametrize(("title", "expected"), [
    ("The Sky!", "the-sky"), ("Ünïcödé   story", "unicode-story"), ("🌈", "story"),
])
def test_slug(title: str, expected: str) -> None:
    assert slug(title) == expected
