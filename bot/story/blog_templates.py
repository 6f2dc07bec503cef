"""The blog's HTML templates and its one stylesheet (Jinja2, autoescaped).

Story text, titles and names come from chat members: autoescaping is on for every
template, and nothing here marks a value safe, so no line can inject markup. The pages use
no script, font or file from elsewhere: the site works offline, straight from the disk.
"""

from __future__ import annotations

import jinja2

STYLESHEET = "style.css"

CSS = """\
:root { color-scheme: light dark; --ink: #1d2b22; --muted: #5b6b60; --paper: #fbfaf6;
        --card: #ffffff; --accent: #2f6b45; }
@media (prefers-color-scheme: dark) {
  :root { --ink: #e8efe9; --muted: #9fb0a4; --paper: #15201a; --card: #1d2a22;
          --accent: #8fd1a6; }
}
*, *::before, *::after { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
body { margin: 0; background: var(--paper); color: var(--ink);
       font: 1.1rem/1.65 Georgia, "Iowan Old Style", "Times New Roman", serif;
       overflow-wrap: anywhere; }
a { color: var(--accent); }
img { max-width: 100%; height: auto; }
main { max-width: 44rem; margin: 0 auto; padding: 2rem 1rem 4rem; }
.site { color: var(--muted); font-size: .9rem; margin: 0 0 1.5rem; }
h1 { font-size: clamp(1.7rem, 6vw, 2.4rem); line-height: 1.15; margin: 0 0 .4rem; }
.meta, .by, footer, .note { color: var(--muted); }
.meta { font-style: italic; margin: 0 0 2rem; }
.posts { list-style: none; margin: 0; padding: 0; display: grid; gap: 1.5rem;
         grid-template-columns: repeat(auto-fill, minmax(min(100%, 18rem), 1fr)); }
.post { background: var(--card); border-radius: 8px; overflow: hidden;
        box-shadow: 0 1px 8px rgb(0 0 0 / .12); }
.post a { display: block; color: inherit; text-decoration: none; }
.post img { display: block; width: 100%; }
.post .text { padding: .75rem 1rem 1rem; }
.post h2 { font-size: 1.25rem; line-height: 1.25; margin: 0 0 .3rem; color: var(--accent); }
.post p { margin: 0; font-size: .9rem; color: var(--muted); }
.line { margin: 0 0 2.5rem; }
.line img { display: block; width: 100%; border-radius: 6px; margin-bottom: .9rem;
            box-shadow: 0 2px 14px rgb(0 0 0 / .18); }
.line p { margin: 0; white-space: pre-line; }
.line .by, .line .note { font-size: .85rem; margin-top: .35rem; }
footer { font-size: .85rem; border-top: 1px solid; padding-top: 1rem; }
"""

_HEAD = """\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="{{ generator }}">
<title>{% block title %}{% endblock %}</title>
<link rel="stylesheet" href="{{ up }}style.css">
<link rel="alternate" type="application/atom+xml" title="{{ site.title }}" \
href="{{ up }}feed.xml">
{% block head %}{% endblock %}
</head>
<body>
<main>
{% block main %}{% endblock %}
</main>
</body>
</html>
"""

_INDEX = """\
{% extends "base.html" %}
{% block title %}{{ site.title }}{% endblock %}
{% block head %}{% if site.base_url %}
<link rel="canonical" href="{{ site.base_url }}">
{% endif %}{% endblock %}
{% block main %}
<header>
<h1>{{ site.title }}</h1>
<p class="meta">{% if site.subtitle %}{{ site.subtitle }} · {% endif -%}
{{ posts | length }} illustrated {{ "story" if posts | length == 1 else "stories" }} ·
<a href="feed.xml">feed</a></p>
</header>
{% if posts %}
<ol class="posts">
{% for post in posts %}
<li class="post" id="story-{{ post.id }}"><a href="{{ post.href }}">
{% if post.thumb %}<img src="{{ post.thumb.path }}" width="{{ post.thumb.width }}" \
height="{{ post.thumb.height }}" alt="{{ post.thumb_alt }}"{% if loop.index > 4 %} \
loading="lazy"{% endif %} decoding="async">{% endif %}
<div class="text">
<h2>{{ post.title }}</h2>
<p><time datetime="{{ post.date_iso }}">{{ post.date_long }}</time> · \
{{ post.line_count }} line{{ "s" if post.line_count != 1 }}</p>
<p class="authors">by {{ post.authors | join(", ") }}</p>
</div>
</a></li>
{% endfor %}
</ol>
{% else %}
<p>No finished stories yet: they appear here once they end.</p>
{% endif %}
<footer>Written and illustrated together with {{ generator }}.</footer>
{% endblock %}
"""

_STORY = """\
{% extends "base.html" %}
{% block title %}{{ post.title }} · {{ site.title }}{% endblock %}
{% block head %}
<meta name="author" content="{{ post.authors | join(", ") }}">
<meta name="description" content="{{ post.summary }}">
{% if site.base_url %}<link rel="canonical" href="{{ post.url }}">
{% endif %}{% endblock %}
{% block main %}
<p class="site"><a href="../../index.html">← {{ site.title }}</a></p>
<article>
<header>
<h1>{{ post.title }}</h1>
<p class="meta"><time datetime="{{ post.date_iso }}">{{ post.date_long }}</time> ·
{{ post.subtitle }} By {{ post.authors | join(", ") }}.</p>
</header>
{% for line in post.lines %}
<section class="line {{ line.source }}" id="line-{{ line.number }}">
{% if line.picture %}<img src="{{ up }}{{ line.picture.path }}" \
width="{{ line.picture.width }}" height="{{ line.picture.height }}" alt="{{ line.alt }}"\
{% if loop.index > 2 %} loading="lazy"{% endif %} decoding="async">
{% endif %}<p>{{ line.text }}</p>
<p class="by">— {{ line.byline }}</p>
{% if line.note %}<p class="note">({{ line.note }})</p>
{% endif %}</section>
{% endfor %}
</article>
<footer>Written and illustrated together with {{ generator }}. Authors:
{{ post.authors | join(", ") }}.</footer>
{% endblock %}
"""

# The story inside a feed entry: readers show it without the site's stylesheet. `picture`
# makes a picture's address absolute when the site has a base URL.
_ENTRY = """\
{% for line in post.lines %}
{% if line.picture %}<p><img src="{{ picture(line.picture) }}" \
width="{{ line.picture.width }}" height="{{ line.picture.height }}" alt="{{ line.alt }}"></p>
{% endif %}<p>{{ line.text }}<br><small>— {{ line.byline }}</small></p>
{% endfor %}
"""

TEMPLATES = {"base.html": _HEAD, "index.html": _INDEX, "story.html": _STORY,
             "entry.html": _ENTRY}


def environment() -> jinja2.Environment:
    """Templates that escape every value; an undefined name is an error, not an empty
    string (a typo must not publish a page with a hole in it)."""
    return jinja2.Environment(loader=jinja2.DictLoader(TEMPLATES), autoescape=True,
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              trim_blocks=True, lstrip_blocks=True)
