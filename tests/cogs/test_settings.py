"""/settings end to end against the Discord double: the ephemeral panel, each pick stored at
once and re-rendered, the next /imagine using the defaults and a typed option overriding
them; a server's limits set by a moderator (Manage Server), refused to others; private
results (status and result ephemeral, nothing in the channel, their buttons working)."""

from __future__ import annotations

from typing import Any

from bot.db.preferences import GuildLimits, ImagePreferences, PreferenceRepository
from bot.executor.jobs import ImageParams
from testkit.discord_double import Perm
from testkit.discord_double.models import Message
from testkit.harness import BotHarness
from testkit.imagine import ACK_DEADLINE_S, imagine, job_id_of


def text_of(message: Message) -> str:
    """What a Components V2 message says (its Text Displays)."""
    return "\n".join(str(c.get("content", "")) for c in message.all_components()
                     if c.get("type") == 10)


def picked(message: Message, custom_id: str) -> str | None:
    menu = message.component(custom_id)
    assert menu is not None, f"no {custom_id} in {message.custom_ids}"
    return next((o["value"] for o in menu["options"] if o.get("default")), None)


async def open_settings(h: BotHarness, user: Any = None, **options: Any) -> tuple[Any, Message]:
    rec = await h.slash("settings", user=user, **options)
    ack = await rec.wait_ack(ACK_DEADLINE_S)
    assert ack.type == 4
    panel = rec.original_message()
    assert panel is not None
    return rec, panel


async def pick(h: BotHarness, panel: Message, custom_id: str, value: str,
               user: Any = None) -> Any:
    user = user or h.world.alice
    rec = await h.double.select(h.guild_id, panel.channel_id, int(user.id), panel.id,
                                custom_id, [value])
    assert (await rec.wait_ack(ACK_DEADLINE_S)).type == 7, "the panel itself is updated"
    return rec


async def press(h: BotHarness, panel: Message, custom_id: str, user: Any = None) -> Any:
    user = user or h.world.alice
    rec = await h.double.click_button(h.guild_id, panel.channel_id, int(user.id), panel.id,
                                      custom_id)
    await rec.wait_ack(ACK_DEADLINE_S)
    return rec


async def params_of(h: BotHarness, result: Message) -> ImageParams:
    record = await h.services.jobs.get(job_id_of(result))
    assert record is not None and isinstance(record.job.params, ImageParams)
    return record.job.params


async def test_settings_apply_to_the_next_imagine_and_a_typed_option_wins(
        bot_harness: BotHarness) -> None:
    h = bot_harness
    _, panel = await open_settings(h)
    assert panel.ephemeral
    assert "Your /imagine defaults" in text_of(panel)
    assert picked(panel, "gh:set:me:style") == "-"
    assert "gh:set:me:model" not in panel.custom_ids  # one model: nothing to pick

    await pick(h, panel, "gh:set:me:style", "watercolor")
    await pick(h, panel, "gh:set:me:count", "2")
    assert picked(panel, "gh:set:me:style") == "watercolor"
    assert picked(panel, "gh:set:me:count") == "2"
    assert "**Style** watercolor" in text_of(panel) and "**Count** 2" in text_of(panel)
    stored = await PreferenceRepository(h.services.db).member(int(h.world.alice.id))
    assert stored == ImagePreferences(style="watercolor", count=2)

    _, result = await imagine(h, prompt="a lighthouse", seed=5)
    params = await params_of(h, result)
    assert (params.style, params.count) == ("watercolor", 2)
    # Another member has their own (none).
    _, theirs = await imagine(h, user=h.world.bob, prompt="a lighthouse", seed=5)
    assert (await params_of(h, theirs)).count == h.settings.image.count

    _, typed = await imagine(h, prompt="a lighthouse", style="fantasy", count=1, seed=5)
    params = await params_of(h, typed)
    assert (params.style, params.count) == ("fantasy", 1)


async def test_negative_prompt_form_private_toggle_and_reset(bot_harness: BotHarness) -> None:
    h = bot_harness
    _, panel = await open_settings(h)
    opened = await press(h, panel, "gh:set:me:negative")
    assert opened.modal is not None
    submitted = await h.double.submit_modal(h.guild_id, panel.channel_id,
                                            int(h.world.alice.id), opened,
                                            {"negative": "  fog, rain "}, message_id=panel.id)
    assert (await submitted.wait_ack(ACK_DEADLINE_S)).type == 7
    assert "**Negative prompt** fog, rain" in text_of(panel)
    await press(h, panel, "gh:set:me:private")
    assert "**Private** on" in text_of(panel)
    repo = PreferenceRepository(h.services.db)
    assert await repo.member(int(h.world.alice.id)) == ImagePreferences(negative="fog, rain",
                                                                       private=True)
    await press(h, panel, "gh:set:me:reset")
    assert await repo.member(int(h.world.alice.id)) == ImagePreferences()
    assert "**Private** off" in text_of(panel)


async def test_the_panel_keeps_working_after_a_restart(bot_harness: BotHarness) -> None:
    h = bot_harness
    _, panel = await open_settings(h)
    await h.restart()  # the panel is still on the member's screen
    await pick(h, panel, "gh:set:me:aspect", "16:9")
    assert picked(panel, "gh:set:me:aspect") == "16:9"


async def test_server_limits_by_a_moderator_refuse_an_over_limit_imagine(
        bot_harness: BotHarness) -> None:
    h = bot_harness
    refused = await h.slash("settings", scope="server")
    await refused.wait_ack(ACK_DEADLINE_S)
    answer = refused.original_message()
    assert answer is not None and answer.ephemeral
    assert "Only members with the Manage Server permission" in answer.content
    assert answer.custom_ids == []

    role = h.double.add_role(h.guild_id, "Admins", Perm.MANAGE_GUILD)
    h.double.world.guilds[h.guild_id].members[int(h.world.mod.id)].role_ids.append(role.id)
    _, panel = await open_settings(h, user=h.world.mod, scope="server")
    assert "This server's /imagine defaults and limits" in text_of(panel)
    await pick(h, panel, "gh:set:server:max_steps", "10", user=h.world.mod)
    await pick(h, panel, "gh:set:server:aspect", "2:3", user=h.world.mod)
    guild = await PreferenceRepository(h.services.db).guild(h.guild_id)
    assert guild.limits == GuildLimits(max_steps=10)
    assert guild.defaults.aspect == "2:3"

    rec = await h.slash("imagine", prompt="a lighthouse", steps=15)
    await rec.wait_ack(ACK_DEADLINE_S)
    message = rec.original_message()
    assert message is not None and message.ephemeral
    assert message.content == ("⚠️ steps = 15 is over this server's limit of 10; "
                               "choose 1-10.")
    _, result = await imagine(h, prompt="a lighthouse", steps=10)
    params = await params_of(h, result)
    assert params.steps == 10 and params.height > params.width  # the server's 2:3


async def test_a_member_who_lost_manage_server_is_refused_at_the_next_click(
        bot_harness: BotHarness) -> None:
    h = bot_harness
    role = h.double.add_role(h.guild_id, "Admins", Perm.MANAGE_GUILD)
    member = h.double.world.guilds[h.guild_id].members[int(h.world.mod.id)]
    member.role_ids.append(role.id)
    _, panel = await open_settings(h, user=h.world.mod, scope="server")
    member.role_ids.remove(role.id)
    rec = await h.double.select(h.guild_id, panel.channel_id, int(h.world.mod.id), panel.id,
                                "gh:set:server:max_count", ["1"])
    assert (await rec.wait_ack(ACK_DEADLINE_S)).type == 4
    assert "Manage Server" in rec.original_message().content
    assert (await PreferenceRepository(h.services.db).guild(h.guild_id)).limits.max_count \
        is None
