"""A game in the story export's terms: the prompt is the seed, the caption model's rounds
are model lines, the members' are theirs; the page and Markdown carry every round."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from bot.story.models import Author, LineSource
from bot.telephone.export import as_story, export_files
from bot.telephone.models import Game, GameState, Mode, Round

ALICE, BOB = Author(1, "alice"), Author(2, "bob")


def test_a_game_exports_like_a_story(tmp_path: Path) -> None:
    picture = tmp_path / "1.png"
    Image.new("RGB", (32, 32), (10, 120, 60)).save(picture)
    game = Game(id=3, guild_id=1, channel_id=2, started_by=ALICE, mode=Mode.AI, rounds=3,
                state=GameState.ENDED, nsfw=False, upload_limit=2**20, created_at=0.0)
    played = [Round(game_id=3, number=1, text="a <fox> & a hen", author=ALICE,
                    created_at=0.0, image_path=picture),
              Round(game_id=3, number=2, text="a painting of a bird", author=ALICE,
                    created_at=0.0, model="org/tiny-blip", image_path=picture),
              Round(game_id=3, number=3, text="a bird, *flying*", author=BOB, created_at=0.0)]
    story, lines = as_story(game, played)
    assert story.title == "Telephone: a <fox> & a hen"
    assert [line.source for line in lines] == [LineSource.SEED, LineSource.MODEL,
                                               LineSource.MEMBER]
    assert lines[1].byline() == "tiny-blip, asked by alice"
    files, shrunk = export_files(game, played, 2**20)
    names = [f.name for f in files]
    assert names == ["telephone-a-fox-a-hen.html", "telephone-a-fox-a-hen.md",
                     "telephone-a-fox-a-hen-markdown.zip"] and not shrunk
    page, markdown = files[0].data.decode(), files[1].data.decode()
    assert "a &lt;fox&gt; &amp; a hen" in page and page.count("<img ") == 2
    assert r"a bird, \*flying\*" in markdown and "— bob" in markdown
