"""Config loading: defaults, every bad value named with what is allowed, unknown keys."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings, settings_from_mapping
from bot.prompts import DEFAULT_STYLES

ROOT = Path(__file__).resolve().parents[2]


def problems_of(raw: dict) -> list[str]:  # type: ignore[type-arg]
    with pytest.raises(ConfigError) as info:
        settings_from_mapping(raw)
    return info.value.problems


def test_shipped_config_loads_and_matches_defaults() -> None:
    settings = load_settings(ROOT / "config.toml", env={"DISCORD_TOKEN": "secret"})
    defaults = settings_from_mapping({}, base_dir=ROOT, env={})
    assert settings.image == defaults.image
    assert settings.story == defaults.story
    assert settings.executor == defaults.executor
    assert settings.metrics == defaults.metrics
    assert settings.token == "secret"
    assert settings.storage.database == ROOT / "data/greenheart.sqlite3"
    assert [s.name for s in settings.image.styles][:3] == ["painting", "pencil drawing",
                                                          "watercolor"]


def test_bad_value_names_key_value_and_range() -> None:
    assert problems_of({"image": {"steps": 500}}) == ["image.steps = 500: must be 1-150"]


def test_all_problems_reported_at_once() -> None:
    problems = problems_of({
        "image": {"scheduler": "fastest", "width": 500, "attention_slicing": "yes"},
        "executor": {"per_user_limit": 0},
        "discord": {"gateway_url": "http://x", "guilds": ["abc"]},
    })
    text = "\n".join(problems)
    assert 'image.scheduler = "fastest": must be one of: euler, euler_a' in text
    assert "image.width = 500: must be a multiple of 8" in text
    assert 'image.attention_slicing = "yes": must be true or false' in text
    assert "executor.per_user_limit = 0: must be 1-1000" in text
    assert 'discord.gateway_url = "http://x": must start with ws:// or wss://' in text
    assert "discord.guilds" in text
    assert len(problems) == 6


def test_unknown_keys_and_sections_are_reported() -> None:
    problems = problems_of({"image": {"stepz": 20}, "imagee": {}})
    assert any("unknown section [imagee]" in p for p in problems)
    assert any(p.startswith("image.stepz: unknown key; known keys: model, scheduler")
               for p in problems)


def test_max_sweep_and_keep_days_defaults_and_ranges() -> None:
    defaults = settings_from_mapping({})
    assert defaults.image.max_sweep == 8 and defaults.storage.keep_days == 30
    assert settings_from_mapping({"storage": {"keep_days": 0}}).storage.keep_days == 0
    assert problems_of({"image": {"max_sweep": 26}, "storage": {"keep_days": -1}}) == [
        "image.max_sweep = 26: must be 1-25", "storage.keep_days = -1: must be 0-36500"]


def test_metrics_are_off_by_default_and_the_port_is_checked() -> None:
    defaults = settings_from_mapping({}).metrics
    assert (defaults.port, defaults.host) == (0, "127.0.0.1")
    on = settings_from_mapping({"metrics": {"port": 9464, "host": "0.0.0.0"}}).metrics
    assert (on.port, on.host) == (9464, "0.0.0.0")
    assert problems_of({"metrics": {"port": 70000, "host": " "}}) == [
        "metrics.port = 70000: must be 1-65535, or 0 for no endpoint",
        'metrics.host = " ": must not be empty']
    assert problems_of({"metrics": {"port": "9464", "path": "/m"}}) == [
        'metrics.port = "9464": must be an integer',
        "metrics.path: unknown key; known keys: port, host"]


def test_token_in_file_is_refused() -> None:
    problems = problems_of({"discord": {"token": "abc"}})
    assert problems == ["discord.token: secrets are not read from the file; set the "
                        "DISCORD_TOKEN environment variable"]


@pytest.mark.parametrize("value", [5, "token-abc", ["a"]])
def test_a_section_that_is_not_a_table_is_one_clear_problem(value: object) -> None:
    assert problems_of({"discord": value}) == ["discord must be a table ([discord])"]


def test_story_style_matches_like_the_style_option() -> None:
    """Whatever /story would accept as a style name, the config accepts too."""
    assert any(s.name == "pencil drawing" for s in DEFAULT_STYLES)
    settings = settings_from_mapping({"story": {"style": "Pencil-Drawing"}}, env={})
    assert settings.story.style == "Pencil-Drawing"


def test_cross_checks() -> None:
    problems = problems_of({"image": {"steps": 80, "max_steps": 60},
                            "story": {"style": "nope"}})
    assert any("image.steps = 80: must not exceed image.max_steps (60)" in p for p in problems)
    assert any('story.style = "nope": must be one of the image styles' in p for p in problems)


def test_custom_styles_replace_the_presets() -> None:
    settings = settings_from_mapping({
        "image": {"styles": {"ukiyo-e": {"phrase": "ukiyo-e woodblock print"},
                             "noir": {"phrase": "film noir", "negative": "color"}}},
        "story": {"style": "noir"},
    })
    assert [(s.name, s.negative) for s in settings.image.styles] == [("ukiyo-e", ""),
                                                                     ("noir", "color")]


def test_bad_style_table() -> None:
    problems = problems_of({"image": {"styles": {"x": {"negative": "y", "colour": 1}}}})
    assert "image.styles.x: unknown key(s) colour; known keys: phrase, negative" in problems
    assert "image.styles.x.phrase: must be a non-empty string" in problems


def test_relative_paths_follow_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "conf" / "bot.toml"
    config.parent.mkdir()
    config.write_text('[storage]\ndatabase = "db/x.sqlite3"\n', encoding="utf-8")
    settings = load_settings(config, env={})
    assert settings.storage.database == config.parent / "db/x.sqlite3"
    assert settings.storage.images == config.parent / "data/images"
    assert settings.token is None


def test_missing_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[image\nsteps = 3", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(broken)


def test_repr_and_str_never_show_the_token() -> None:
    token = "MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GaBcDe.secret-bot-token-value-0123456789"
    settings = settings_from_mapping({}, env={"DISCORD_TOKEN": token})
    assert settings.token == token
    for shown in (repr(settings), str(settings), f"{settings}", f"{settings!r}",
                  *(repr(getattr(settings, f.name)) for f in dataclasses.fields(settings)
                    if f.name != "token")):
        assert token not in shown
    # Every other field is still there to debug with.
    text = repr(settings)
    assert all(f"{f.name}=" in text for f in dataclasses.fields(settings) if f.name != "token")
    assert "model='stable-diffusion-v1-5/stable-diffusion-v1-5'" in text
    assert "source='<config>'" in text


def test_celery_mode_is_opt_in_and_its_keys_are_checked() -> None:
    executor = settings_from_mapping({}).executor
    assert executor.mode == "local" and executor.broker_url.startswith("redis://")
    with pytest.raises(ConfigError) as err:
        settings_from_mapping({"executor": {"mode": "remote", "broker_url": "amqp://x",
                                            "worker_timeout_s": 1}})
    text = str(err.value)
    assert 'executor.mode = "remote": must be one of: local, celery' in text
    assert "executor.broker_url" in text and "redis://" in text
    assert "executor.worker_timeout_s = 1" in text
    with pytest.raises(ConfigError, match="visibility_timeout_s = 100: must be longer than "
                                          r"executor.step_timeout_s \(300\)"):
        settings_from_mapping({"executor": {"visibility_timeout_s": 100}})
    ok = settings_from_mapping({"executor": {"mode": "celery",
                                             "broker_url": "rediss://:pw@host:6380/1"}})
    assert ok.executor.mode == "celery"


def test_several_models_and_loras(tmp_path: Path) -> None:
    (tmp_path / "loras").mkdir()
    (tmp_path / "loras" / "pixel.safetensors").write_bytes(b"x")
    (tmp_path / "config.toml").write_text('''
[image]
model = "sd15"
draft_model = "turbo"
[image.models.sd15]
path = "stable-diffusion-v1-5/stable-diffusion-v1-5"
description = "quick"
steps = 20
guidance = 6
[image.models.turbo]
path = "stabilityai/sd-turbo"
family = "turbo"
[image.loras.pixel]
path = "loras/pixel.safetensors"
triggers = ["pixel art"]
[executor]
batch_limit = "auto"
''')
    s = load_settings(tmp_path / "config.toml")
    assert [m.name for m in s.image.profiles()] == ["sd15", "turbo"]
    assert s.image.default_profile.steps == 20 and s.image.default_profile.guidance == 6.0
    assert s.image.draft_profile is not None and s.image.draft_profile.family == "turbo"
    pixel = s.image.lora("Pixel")
    assert pixel is not None and pixel.weight == 0.8 and pixel.triggers == ("pixel art",)
    assert pixel.path == str(tmp_path / "loras" / "pixel.safetensors"), "beside the file"
    assert s.executor.batch_limit == 0  # auto


def test_a_plain_model_path_is_one_implicit_model() -> None:
    s = settings_from_mapping({"image": {"model": "models/image", "draft_model": "a/sd-turbo"}})
    assert [(m.name, m.path, m.implicit) for m in s.image.profiles()] == [
        ("image", "models/image", True), ("sd-turbo", "a/sd-turbo", True)]
    assert s.image.profile("").name == "image" and s.image.profile("image").path == \
        "models/image"


def test_model_and_lora_problems_are_all_reported() -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_mapping({"image": {
            "model": "sdxl", "draft_model": "fast",
            "models": {"sd15": {"path": "a/b", "family": "flux", "steps": 500, "speed": 1},
                       "SD 15": {"path": "a/c", "lora": "nope"},
                       "nopath": {"steps": 4}},
            "loras": {"x": {"path": "x.safetensors", "weight": "strong"}}},
            "executor": {"batch_limit": "lots"}})
    text = str(info.value)
    for expected in ('image.models.sd15.family = "flux": must be one of: sd, sdxl, turbo, '
                     'lcm (or left out: detected)', "image.models.sd15.steps = 500: must be 1-150",
                     "image.models.sd15.speed: unknown key",
                     "image.models.nopath.path: missing",
                     'image.loras.x.weight = "strong": must be a number',
                     'executor.batch_limit = "lots": must be an integer'):
        assert expected in text, expected
    with pytest.raises(ConfigError) as info:
        settings_from_mapping({"image": {
            "model": "sdxl", "draft_model": "fast",
            "models": {"sd15": {"path": "a/b"}, "SD 15": {"path": "a/c", "lora": "nope"}}}})
    text = str(info.value)
    for expected in ("image.models.SD 15: the same name as image.models.sd15",
                     'image.models.SD 15.lora = "nope": no [image.loras.nope] section',
                     'image.model = "sdxl": no [image.models.sdxl] section; use one of: '
                     "sd15, SD 15",
                     'image.draft_model = "fast": no [image.models.fast] section'):
        assert expected in text, expected


def test_blog_settings_default_and_check_the_base_url() -> None:
    shipped = load_settings(ROOT / "config.toml", env={})
    assert shipped.blog == settings_from_mapping({}, base_dir=ROOT, env={}).blog
    assert shipped.blog.dir == ROOT / "data/blog" and shipped.blog.base_url == ""
    assert problems_of({"blog": {"base_url": "tales.example"}}) == [
        'blog.base_url = "tales.example": must start with http:// or https://, or be ""']
