"""Story buttons' custom_ids: what they name, and that older threads' buttons still parse."""

from __future__ import annotations

from bot.story import Author, LineSource, Story, StoryLine, StoryState
from cogs.story.buttons import Continue, Redraw, Rewrite, line_view

STORY = Story(id=12, title="Sky", style=None, author=Author(1, "alice"),
              state=StoryState.OPEN, created_at=0.0)


def test_continue_names_its_line_and_old_ones_still_match() -> None:
    line = StoryLine(story_id=12, number=3, source=LineSource.MODEL, text="x",
                     author=Author(2, "bob"), created_at=0.0, updated_at=0.0)
    view = line_view(STORY, line, latest=True)
    assert view is not None
    ids = [item.custom_id for item in view.children]  # type: ignore[attr-defined]
    assert ids == ["gh:story:cont:12:3", "gh:story:rewrite:12:3", "gh:story:redraw:12:3"]
    template = Continue.__discord_ui_compiled_template__
    new, old = template.fullmatch("gh:story:cont:12:3"), template.fullmatch("gh:story:cont:12")
    assert new is not None and new["line"] == "3"
    assert old is not None and old["line"] is None  # a thread's button from before lines
    assert Rewrite.__discord_ui_compiled_template__.fullmatch("gh:story:rewrite:12") is None
    assert Redraw.__discord_ui_compiled_template__.fullmatch("gh:story:redraw:12:1")


def test_older_lines_offer_rewind_within_one_row_and_choices_name_what_they_showed() -> None:
    from bot.story.models import Candidate, Choice
    from cogs.story.branch_view import RewindConfirm
    from cogs.story.choice_view import Keep, choice_view

    line = StoryLine(story_id=12, number=2, source=LineSource.MODEL, text="x",
                     author=Author(2, "bob"), created_at=0.0, updated_at=0.0)
    older = line_view(STORY, line, latest=False)
    assert older is not None
    assert [i.custom_id for i in older.children] == [  # type: ignore[attr-defined]
        "gh:story:redraw:12:2", "gh:story:rewind:12:2"]
    assert len(line_view(STORY, line, latest=True).children) <= 5  # type: ignore[union-attr]
    choice = Choice(story_id=12, branch=1, number=3, shown=1, asked_by=Author(2, "bob"),
                    message_id=None, created_at=0.0,
                    candidates=(Candidate(0, "a", "j", None), Candidate(1, "b", "j", None)))
    ids = [i.custom_id for i in choice_view(choice).children]  # type: ignore[attr-defined]
    assert ids == ["gh:choice:prev:12:3:1", "gh:choice:next:12:3:1", "gh:choice:keep:12:3:1",
                   "gh:choice:more:12:3:1"]
    assert Keep.__discord_ui_compiled_template__.fullmatch("gh:choice:keep:12:3:1")
    assert RewindConfirm.__discord_ui_compiled_template__.fullmatch("gh:rewind:12:2:1")
