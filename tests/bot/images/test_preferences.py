"""effective_options: a typed option wins, then the member's default, then the server's,
then the model's and config's (left as None); server limits on the final values; stored
defaults that are no longer valid are skipped with a note, never an error."""

from __future__ import annotations

import pytest

from bot.config import ImageSettings, ModelProfile
from bot.db.preferences import GuildLimits, GuildPreferences, ImagePreferences
from bot.images.models import ModelCatalog
from bot.images.preferences import EffectiveRequest, effective_options
from bot.images.requests import ImageOptions, OptionError, build_image_params

SETTINGS = ImageSettings(model="fast", models=(
    ModelProfile(name="fast", path="org/fast", steps=8),
    ModelProfile(name="fine", path="org/fine"),
))
CATALOG = ModelCatalog.offline(SETTINGS, 512)
NOBODY = ImagePreferences()
NO_GUILD = GuildPreferences()


def merge(options: ImageOptions, member: ImagePreferences = NOBODY,
          guild: GuildPreferences = NO_GUILD, private: bool | None = None) -> EffectiveRequest:
    return effective_options(options, member, guild, settings=SETTINGS, catalog=CATALOG,
                             private=private)


def test_nothing_set_leaves_the_options_as_typed() -> None:
    options = ImageOptions(prompt="a fox", steps=5)
    got = merge(options)
    assert got == EffectiveRequest(options, private=False)


def test_typed_then_member_then_server() -> None:
    member = ImagePreferences(style="watercolor", count=2, private=True)
    guild = GuildPreferences(ImagePreferences(style="fantasy", count=1, aspect="16:9",
                                              negative="fog", model="fine"))
    got = merge(ImageOptions(prompt="a fox"), member, guild)
    assert got.options == ImageOptions(prompt="a fox", style="watercolor", count=2,
                                       aspect="16:9", negative="fog", model="fine")
    assert got.private is True
    assert got.notes == ()
    typed = merge(ImageOptions(prompt="a fox", style="cyberpunk", count=3, aspect="1:1"),
                  member, guild, private=False)
    assert (typed.options.style, typed.options.count, typed.options.aspect) == \
        ("cyberpunk", 3, "1:1")
    assert typed.private is False


def test_a_style_written_in_the_prompt_is_not_replaced_by_a_default() -> None:
    member = ImagePreferences(style="watercolor")
    assert merge(ImageOptions(prompt="a fox | fantasy"), member).options.style is None
    params = build_image_params(merge(ImageOptions(prompt="a fox | fantasy"), member).options,
                                SETTINGS, catalog=CATALOG)
    assert params.style == "fantasy"


def test_defaults_no_longer_valid_are_skipped_with_a_note() -> None:
    member = ImagePreferences(style="vaporwave", model="gone", aspect="4:3", steps=999)
    guild = GuildPreferences(ImagePreferences(style="fantasy"))
    got = merge(ImageOptions(prompt="a fox"), member, guild)
    # The server's style is the next layer; the rest falls back to the model's defaults.
    assert got.options == ImageOptions(prompt="a fox", style="fantasy")
    assert len(got.notes) == 4
    assert "Your default style 'vaporwave' is no longer offered, so it was left out." \
        in got.notes
    assert any("model 'gone' is no longer offered" in n for n in got.notes)
    assert any("steps 999 is out of range for the model fast (1-60)" in n for n in got.notes)
    # And /imagine goes ahead with what is left.
    build_image_params(got.options, SETTINGS, catalog=CATALOG)


def test_a_typed_option_over_a_server_limit_is_refused_with_the_limit() -> None:
    guild = GuildPreferences(limits=GuildLimits(max_steps=30, max_count=2))
    with pytest.raises(OptionError) as info:
        merge(ImageOptions(prompt="a fox", steps=40), guild=guild)
    assert str(info.value) == "steps = 40 is over this server's limit of 30; choose 1-30."
    with pytest.raises(OptionError) as info:
        merge(ImageOptions(prompt="a fox", count=3), guild=guild)
    assert str(info.value) == "count = 3 is over this server's limit of 2; choose 1-2."
    assert merge(ImageOptions(prompt="a fox", steps=30, count=2), guild=guild).notes == ()


def test_defaults_over_a_server_limit_are_lowered_to_it() -> None:
    guild = GuildPreferences(limits=GuildLimits(max_steps=6, max_count=1))
    got = merge(ImageOptions(prompt="a fox"), ImagePreferences(steps=7), guild)
    # steps from the member's default; count from the config (4): both lowered.
    assert (got.options.steps, got.options.count) == (6, 1)
    assert got.notes == ("steps lowered from 7 to 6, this server's limit.",
                         "count lowered from 4 to 1, this server's limit.")
    # The model's own default (fast: 8 steps) counts too.
    assert merge(ImageOptions(prompt="a fox"), guild=guild).options.steps == 6


def test_private_follows_the_servers_permission() -> None:
    closed = GuildPreferences(ImagePreferences(private=True),
                              GuildLimits(allow_private=False))
    with pytest.raises(OptionError, match="private results are turned off in this server"):
        merge(ImageOptions(prompt="a fox"), guild=closed, private=True)
    # A member's private default is never turned public silently.
    with pytest.raises(OptionError, match="add private:False"):
        merge(ImageOptions(prompt="a fox"), ImagePreferences(private=True), closed)
    public = merge(ImageOptions(prompt="a fox"), ImagePreferences(private=True), closed,
                   private=False)
    assert public.private is False
    got = merge(ImageOptions(prompt="a fox"), guild=closed)
    assert got.private is False and "turned off here" in got.notes[0]
    assert merge(ImageOptions(prompt="a fox"),
                 guild=GuildPreferences(ImagePreferences(private=True))).private is True
