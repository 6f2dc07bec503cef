"""A finished story as a blog post: one self-contained HTML page and a Markdown file.

The HTML embeds its pictures (data URIs), so it is one file to share or publish. The
Markdown has YAML front matter (title, date, authors) for static site generators and
refers to its pictures as `images/NN.png` next to it; `markdown_zip()` bundles both.
For Discord uploads, `export_for_upload` re-encodes the pictures smaller until the files fit.
A story that was rewound has other endings (`BranchExport`, from `other_endings`): both
documents show them after the story, each from where it leaves the story as told.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import re
import unicodedata
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from bot.story.models import Story, StoryLine, model_label

GENERATOR = "Greenheart"


@dataclass(frozen=True)
class ExportFile:
    name: str  # relative path, e.g. "the-sky.html" or "images/01.png"
    data: bytes


@dataclass(frozen=True)
class Encoding:
    """How pictures are written: None keeps the stored PNG as it is."""

    jpeg_quality: int | None = None
    max_side: int | None = None

    @property
    def suffix(self) -> str:
        return ".png" if self.jpeg_quality is None else ".jpg"

    @property
    def mime(self) -> str:
        return "image/png" if self.jpeg_quality is None else "image/jpeg"


ORIGINAL = Encoding()
# Tried in order when the files must fit an upload limit.
SMALLER = (ORIGINAL, Encoding(90), Encoding(82, 768), Encoding(75, 512), Encoding(65, 320),
           Encoding(55, 192))


@dataclass(frozen=True)
class StoryExport:
    basename: str  # file names without suffix, from the title
    html: bytes
    markdown: bytes
    images: tuple[ExportFile, ...]

    @property
    def html_file(self) -> ExportFile:
        return ExportFile(f"{self.basename}.html", self.html)

    @property
    def markdown_file(self) -> ExportFile:
        return ExportFile(f"{self.basename}.md", self.markdown)

    def markdown_zip(self) -> ExportFile:
        """The Markdown file and its images/ folder, ready to drop into a blog."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(self.markdown_file.name, self.markdown)
            for image in self.images:
                archive.writestr(image.name, image.data)
        return ExportFile(f"{self.basename}-markdown.zip", buffer.getvalue())


@dataclass(frozen=True)
class _Picture:
    name: str
    data: bytes
    mime: str


@dataclass(frozen=True)
class BranchExport:
    """Another ending of the story: a branch it is not told in, from where it leaves the
    story as told (after line `after`)."""

    id: int
    after: int
    lines: tuple[StoryLine, ...]


def other_endings(told: Sequence[StoryLine],
                  branches: Mapping[int, Sequence[StoryLine]]) -> list[BranchExport]:
    """Each branch's lines after the ones it shares with the story as told (`told`), by
    branch id; branches with nothing of their own are left out."""
    told_rows = [(line.branch, line.number) for line in told]
    endings = []
    for branch_id, lines in sorted(branches.items()):
        shared = 0
        while (shared < min(len(lines), len(told_rows))
               and (lines[shared].branch, lines[shared].number) == told_rows[shared]):
            shared += 1
        if shared < len(lines):
            endings.append(BranchExport(branch_id, shared, tuple(lines[shared:])))
    return endings


def build_export(story: Story, lines: Sequence[StoryLine], *,
                 encoding: Encoding = ORIGINAL,
                 branches: Sequence[BranchExport] = ()) -> StoryExport:
    """Both documents for `story` (and its other endings, `branches`); reads the pictures
    from disk (call it off the loop)."""
    width = max(2, len(str(max([len(lines), *(b.lines[-1].number for b in branches)]))))
    pictures: dict[int, _Picture] = {}
    for line in lines:
        data = _read_picture(line.image_path, encoding)
        if data is not None:
            pictures[line.number] = _Picture(
                f"images/{line.number:0{width}d}{encoding.suffix}", data, encoding.mime)
    others: dict[tuple[int, int], _Picture] = {}
    for branch in branches:
        for line in branch.lines:
            data = _read_picture(line.image_path, encoding)
            if data is not None:
                others[branch.id, line.number] = _Picture(
                    f"images/b{branch.id}-{line.number:0{width}d}{encoding.suffix}", data,
                    encoding.mime)
    return StoryExport(
        basename=slug(story.title),
        html=render_html(story, lines, pictures, branches, others).encode(),
        markdown=render_markdown(story, lines, pictures, branches, others).encode(),
        images=tuple(ExportFile(p.name, p.data)
                     for p in [*pictures.values(), *others.values()]),
    )


def write_export(export: StoryExport, out_dir: Path) -> list[Path]:
    """Write the HTML, the Markdown and images/ under `out_dir`; returns the paths."""
    written = []
    for file in (export.html_file, export.markdown_file, *export.images):
        path = out_dir / file.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(file.data)
        written.append(path)
    return written


def export_for_upload(story: Story, lines: Sequence[StoryLine], limit: int,
                      branches: Sequence[BranchExport] = ()) -> tuple[list[ExportFile], bool]:
    """Files for one message whose sizes add up to at most `limit` bytes: the HTML and the
    Markdown, plus the Markdown zip with its pictures when there is room. The pictures are
    re-encoded smaller only if the page does not fit; also says whether that was needed."""
    for encoding in SMALLER:
        export = build_export(story, lines, encoding=encoding, branches=branches)
        files = [export.html_file, export.markdown_file]
        size = sum(len(f.data) for f in files)
        if size > limit:
            continue
        bundle = export.markdown_zip()
        if size + len(bundle.data) <= limit:
            files.append(bundle)
        return files, encoding is not ORIGINAL
    bare = build_export(story, [_without_picture(line) for line in lines],
                        branches=[replace(b, lines=tuple(map(_without_picture, b.lines)))
                                  for b in branches])
    files = [bare.html_file, bare.markdown_file]
    return (files if sum(len(f.data) for f in files) <= limit else []), True


# ----- the documents ------------------------------------------------------------------------


def authors(story: Story, lines: Sequence[StoryLine]) -> list[str]:
    """Everyone who wrote or asked for a line, in order of first appearance; models too."""
    names: list[str] = [story.author.name] if story.author.name else []
    for line in lines:
        for name in (model_label(line.model) if line.by_model else None, line.author.name):
            if name and name not in names:
                names.append(name)
    return names


def render_markdown(story: Story, lines: Sequence[StoryLine],
                    pictures: dict[int, _Picture], branches: Sequence[BranchExport] = (),
                    branch_pictures: Mapping[tuple[int, int], _Picture] | None = None) -> str:
    day = _date(story.created_at)
    front = [
        "---",
        f"title: {json.dumps(story.title, ensure_ascii=False)}",
        f"date: {day.isoformat()}",
        f"authors: {json.dumps(authors(story, lines), ensure_ascii=False)}",
        f"tags: {json.dumps(['story', 'illustrated'])}",
        f"generator: {GENERATOR}",
        "---",
        "",
        f"# {_md(story.title)}",
        "",
        f"*{_md(_subtitle(story, lines))}*",
        "",
    ]
    body: list[str] = []
    for line in lines:
        picture = pictures.get(line.number)
        if picture is not None:
            alt = _md(_alt(line))
            body += [f"![{alt}]({picture.name})", ""]
        body += [_md(line.text), "", f"*— {_md(line.byline())}*", ""]
    if branches:
        body += ["## Other endings", ""]
    for branch in branches:
        body += [f"### Branch #{branch.id}, after line {branch.after}", ""]
        for line in branch.lines:
            picture = (branch_pictures or {}).get((branch.id, line.number))
            if picture is not None:
                body += [f"![{_md(_alt(line))}]({picture.name})", ""]
            body += [f"{line.number}\\. {_md(line.text)}", "",
                     f"*— {_md(line.byline())}*", ""]
    return "\n".join(front + body).rstrip() + "\n"


def _html_line(line: StoryLine, picture: _Picture | None, anchor: str) -> str:
    e = html.escape
    figure = ""
    if picture is not None:
        uri = f"data:{picture.mime};base64,{base64.b64encode(picture.data).decode()}"
        figure = f'<img src="{uri}" alt="{e(_alt(line))}" loading="lazy">'
    return (f'<section class="line {line.source.value}" id="{anchor}">'
            f"{figure}<p>{e(line.text)}</p>"
            f'<p class="by">— {e(line.byline())}</p></section>')


def render_html(story: Story, lines: Sequence[StoryLine],
                pictures: dict[int, _Picture], branches: Sequence[BranchExport] = (),
                branch_pictures: Mapping[tuple[int, int], _Picture] | None = None) -> str:
    e = html.escape
    day = _date(story.created_at)
    sections = [_html_line(line, pictures.get(line.number), f"line-{line.number}")
                for line in lines]
    if branches:
        sections.append('<section class="branches"><h2>Other endings</h2>')
        for branch in branches:
            sections.append(f'<article class="branch" id="branch-{branch.id}">'
                            f"<h3>Branch #{branch.id}, after line {branch.after}</h3>")
            sections += [_html_line(line, (branch_pictures or {}).get((branch.id, line.number)),
                                    f"branch-{branch.id}-line-{line.number}")
                         for line in branch.lines]
            sections.append("</article>")
        sections.append("</section>")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="{GENERATOR}">
<meta name="author" content="{e(', '.join(authors(story, lines)))}">
<title>{e(story.title)}</title>
<style>
  :root {{ color-scheme: light dark; --ink: #1d2b22; --muted: #5b6b60; --paper: #fbfaf6; }}
  @media (prefers-color-scheme: dark) {{
    :root {{ --ink: #e8efe9; --muted: #9fb0a4; --paper: #15201a; }}
  }}
  body {{ margin: 0; background: var(--paper); color: var(--ink);
         font: 1.15rem/1.65 Georgia, "Iowan Old Style", "Times New Roman", serif; }}
  main {{ max-width: 40rem; margin: 0 auto; padding: 3rem 1.25rem 4rem; }}
  h1 {{ font-size: 2.4rem; line-height: 1.15; margin: 0 0 .4rem; }}
  .meta {{ color: var(--muted); font-style: italic; margin: 0 0 2.5rem; }}
  .line {{ margin: 0 0 2.75rem; }}
  .line img {{ display: block; width: 100%; height: auto; border-radius: 6px;
              box-shadow: 0 2px 14px rgb(0 0 0 / .18); margin-bottom: 1rem; }}
  .line p {{ margin: 0; }}
  .line .by {{ color: var(--muted); font-size: .85rem; margin-top: .35rem; }}
  footer {{ color: var(--muted); font-size: .85rem; border-top: 1px solid; padding-top: 1rem; }}
</style>
</head>
<body>
<main>
<article>
<header>
<h1>{e(story.title)}</h1>
<p class="meta"><time datetime="{day.isoformat()}">{e(_long_date(day))}</time> ·
{e(_subtitle(story, lines))}</p>
</header>
{chr(10).join(sections)}
</article>
<footer>Written and illustrated together with {GENERATOR}. Authors:
{e(', '.join(authors(story, lines)))}.</footer>
</main>
</body>
</html>
"""


# ----- small helpers ----------------------------------------------------------------------


def slug(title: str, limit: int = 60) -> str:
    """A file-name-safe form of a title: "The Sky!" -> "the-sky"."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", ascii_title.lower())
    text = "-".join(words)[:limit].strip("-")
    return text or "story"


def _subtitle(story: Story, lines: Sequence[StoryLine]) -> str:
    count = len(lines)
    style = f" in the style “{story.style}”" if story.style else ""
    models = sorted({model_label(line.model) for line in lines if line.by_model})
    written = f", written with {', '.join(models)}" if models else ""
    return f"An illustrated story of {count} line{'s' * (count != 1)}{style}{written}."


def _alt(line: StoryLine) -> str:
    text = " ".join(line.text.split())
    return f"Line {line.number}: {text[:200]}{'…' if len(text) > 200 else ''}"


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|~])")


def _md(text: str) -> str:
    """Text that Markdown shows as written (no emphasis, links or headings by accident)."""
    escaped = _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))
    return re.sub(r"^([-+=]|\d+(?=[.)]))", r"\\\1", escaped)


def _date(timestamp: float) -> dt.date:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).date()


def _long_date(day: dt.date) -> str:
    return f"{day.day} {day:%B %Y}"


def _read_picture(path: Path | None, encoding: Encoding) -> bytes | None:
    if path is None:
        return None
    try:
        data = path.read_bytes()
    except OSError:
        return None  # deleted meanwhile: the line is exported without its picture
    if encoding.jpeg_quality is None:
        return data
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        picture = img.convert("RGB")
    if encoding.max_side and max(picture.size) > encoding.max_side:
        picture.thumbnail((encoding.max_side, encoding.max_side))
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=encoding.jpeg_quality, optimize=True)
    return out.getvalue()


def _without_picture(line: StoryLine) -> StoryLine:
    return replace(line, image_path=None)


__all__ = [
    "BranchExport",
    "ExportFile",
    "StoryExport",
    "authors",
    "build_export",
    "export_for_upload",
    "other_endings",
    "slug",
    "write_export",
]
