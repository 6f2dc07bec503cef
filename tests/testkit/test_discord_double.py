"""The Discord double, exercised by the real discord.py client over HTTP and websocket."""

from __future__ import annotations

import asyncio
import io
import os
import re

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands
from PIL import Image

from testkit.discord_double import (
    SHARED_SPEC_FILE,
    SPEC_ENV,
    DiscordDouble,
    MessageFlag,
    Overwrite,
    Perm,
    errors,
)
from testkit.discord_double.seeding import MakeDouble, SeededWorld, connect_client, seeded_world


def make_bot(*, message_content: bool = False) -> commands.Bot:
    intents = discord.Intents.default()
    intents.message_content = message_content
    return commands.Bot(
        command_prefix=commands.when_mentioned, intents=intents, guild_ready_timeout=0.1
    )


def record_messages(bot: commands.Bot) -> list[str]:
    seen: list[str] = []

    async def on_message(message: discord.Message) -> None:
        seen.append(message.content)

    bot.add_listener(on_message)
    return seen


def png_bytes(width: int = 8, height: int = 6) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (40, 160, 90)).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_client_connects_caches_guild_and_heartbeats(make_discord_double: MakeDouble) -> None:
    double = await make_discord_double(heartbeat_interval_ms=150)
    world = seeded_world(double)
    bot = make_bot()
    async with connect_client(double, bot):
        guild = bot.get_guild(world.guild.id)
        assert guild is not None and guild.name == "Greenheart Test"
        studio = guild.get_channel(world.studio.id)
        nsfw_art = guild.get_channel(world.nsfw_art.id)
        assert isinstance(studio, discord.TextChannel) and not studio.is_nsfw()
        assert isinstance(nsfw_art, discord.TextChannel) and nsfw_art.is_nsfw()
        assert studio.permissions_for(guild.me).attach_files
        assert not studio.permissions_for(guild.me).manage_messages
        assert bot.application_id == double.application_id
        await double.wait_for_heartbeats(4, timeout=3)
        assert bot.latency < 1.0  # finite: heartbeats were acknowledged
    assert double.heartbeat_gaps() and double.late_heartbeats() == [], double.heartbeat_gaps()
    assert double.gateway.connections[0].compression == "zlib-stream"
    assert double.gateway.identify_count == 1
    double.assert_clean()


async def test_tree_sync_is_recorded_and_keeps_command_ids(
    discord_double: DiscordDouble, discord_world: SeededWorld
) -> None:
    bot = make_bot()

    @bot.tree.command(name="imagine", description="Make a picture")
    async def imagine(interaction: discord.Interaction, prompt: str) -> None:
        await interaction.response.send_message(prompt)

    async with connect_client(discord_double, bot):
        first = await bot.tree.sync()
        second = await bot.tree.sync()
        guild_synced = await bot.tree.sync(guild=discord.Object(discord_world.guild.id))
    assert [c.id for c in first] == [c.id for c in second]
    assert guild_synced == []
    assert discord_double.sync_count == 3
    assert [s.guild_id for s in discord_double.command_syncs] == [
        None,
        None,
        discord_world.guild.id,
    ]
    assert len(discord_double.requests_matching("PUT", r"^/applications/\d+/commands$")) == 2
    assert [c["name"] for c in discord_double.commands()] == ["imagine"]
    discord_double.assert_clean()


async def test_deferred_slash_command_first_followup_fills_the_original(
    discord_double: DiscordDouble, discord_world: SeededWorld
) -> None:
    bot = make_bot()
    sent: list[int] = []

    @bot.tree.command(name="imagine", description="Make a picture")
    async def imagine(
        interaction: discord.Interaction, prompt: str, count: app_commands.Range[int, 1, 4] = 1
    ) -> None:
        await interaction.response.defer(thinking=True)
        message = await interaction.followup.send(f"{prompt} x{count}", wait=True)
        sent.append(message.id)

    w = discord_world
    async with connect_client(discord_double, bot):
        await bot.tree.sync()
        rec = await discord_double.invoke_slash(
            w.guild.id, w.studio.id, w.alice.id, "imagine", {"prompt": "a fox", "count": 2}
        )
        ack = await rec.wait_ack()
        assert ack.type == 5 and ack.latency < 1.5  # the double itself refuses after 3 s
        original = await rec.wait_original()
        assert original.content == "a fox x2" and not original.loading and not original.ephemeral
        assert rec.followup_ids == [original.id] == sent
        assert original.interaction_metadata is not None
        assert original.interaction_metadata["user"]["id"] == str(w.alice.id)
        with pytest.raises(ValueError, match="bounds"):
            await discord_double.invoke_slash(
                w.guild.id, w.studio.id, w.alice.id, "imagine", {"prompt": "x", "count": 9}
            )
        with pytest.raises(LookupError, match="not registered"):
            await discord_double.invoke_slash(w.guild.id, w.studio.id, w.alice.id, "nope")
    payload = rec.payload
    assert payload["attachment_size_limit"] == 10 * 1024 * 1024
    assert payload["member"]["permissions"] and payload["app_permissions"]
    discord_double.assert_clean()


async def test_double_ack_is_40060_and_expired_token_is_50027(
    discord_double: DiscordDouble, discord_world: SeededWorld
) -> None:
    bot = make_bot()

    @bot.tree.command(name="ping", description="Ping")
    async def ping(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("pong")

    w = discord_world
    async with connect_client(discord_double, bot):
        await bot.tree.sync()
        rec = await discord_double.invoke_slash(w.guild.id, w.studio.id, w.bob.id, "ping")
        assert (await rec.wait_ack()).type == 4
        api, app = discord_double.api_base, discord_double.application_id
        async with aiohttp.ClientSession() as session:
            url = f"{api}/interactions/{rec.id}/{rec.token}/callback?with_response=true"
            async with session.post(url, json={"type": 4, "data": {"content": "again"}}) as resp:
                assert resp.status == 400
                assert resp.headers["Content-Type"] == "application/json"
                assert (await resp.json())["code"] == 40060
            original = f"{api}/webhooks/{app}/{rec.token}/messages/@original"
            async with session.patch(original, json={"content": "edited"}) as resp:
                assert resp.status == 200
            discord_double.token_lifetime = 0.0
            async with session.patch(original, json={"content": "too late"}) as resp:
                assert resp.status == 401
                assert (await resp.json())["code"] == 50027
    message = rec.original_message()
    assert message is not None and message.content == "edited"


async def test_ack_after_the_deadline_is_unknown_interaction(
    make_discord_double: MakeDouble,
) -> None:
    double = await make_discord_double(ack_deadline=0.2)
    w = seeded_world(double)
    bot = make_bot()
    failures: list[app_commands.AppCommandError] = []

    @bot.tree.command(name="slow", description="Answers too late")
    async def slow(interaction: discord.Interaction) -> None:
        await asyncio.sleep(0.3)
        await interaction.response.send_message("finally")

    @bot.tree.error
    async def on_error(
        interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        failures.append(error)

    async with connect_client(double, bot):
        await bot.tree.sync()
        rec = await double.invoke_slash(w.guild.id, w.studio.id, w.alice.id, "slow")
        await double.wait_until(lambda: failures, 3, "the command error")
    cause = getattr(failures[0], "original", failures[0])
    assert isinstance(cause, discord.NotFound) and cause.code == 10062
    assert rec.ack is None
    [callback] = rec.requests()
    assert callback.status == 404


async def test_429_is_retried_by_discord_py(
    discord_double: DiscordDouble, discord_world: SeededWorld
) -> None:
    bot = make_bot()
    rule = discord_double.inject_429("POST", r"^/channels/\d+/messages$", times=1, retry_after=0.05)
    async with connect_client(discord_double, bot):
        channel = bot.get_channel(discord_world.studio.id)
        assert isinstance(channel, discord.TextChannel)
        message = await channel.send("hello")
    attempts = discord_double.requests_matching("POST", r"^/channels/\d+/messages$")
    assert [r.status for r in attempts] == [429, 200]
    assert attempts[1].at - attempts[0].at >= 0.05
    assert rule.hits == 1
    assert discord_double.world.messages[message.id].content == "hello"
    discord_double.assert_clean()


async def test_multipart_png_is_stored_with_its_bytes(
    discord_double: DiscordDouble, discord_world: SeededWorld
) -> None:
    bot = make_bot()
    png = png_bytes()
    async with connect_client(discord_double, bot):
        channel = bot.get_channel(discord_world.studio.id)
        assert isinstance(channel, discord.TextChannel)
        embed = discord.Embed(title="A fox").set_image(url="attachment://fox.png")
        message = await channel.send(
            "rendered",
            file=discord.File(io.BytesIO(png), "fox.png"),
            embed=embed,
            allowed_mentions=discord.AllowedMentions.none(),
        )
        assert await message.attachments[0].read() == png  # served back by the double
    stored = discord_double.world.messages[message.id]
    [attachment] = stored.attachments
    assert (attachment.filename, attachment.data, attachment.content_type) == (
        "fox.png",
        png,
        "image/png",
    )
    assert (attachment.width, attachment.height) == (8, 6)
    assert stored.embeds[0]["image"]["url"] == attachment.url
    [request] = discord_double.requests_matching("POST", r"^/channels/\d+/messages$")
    assert (
        request.multipart
        and request.files[0].filename == "fox.png"
        and request.files[0].data == png
    )
    assert request.json["attachments"][0]["filename"] == "fox.png"
    discord_double.assert_clean()


async def test_button_click_reaches_a_dynamic_item(
    discord_double: DiscordDouble, discord_world: SeededWorld
) -> None:
    clicks: list[tuple[int, int]] = []

    class Upscale(
        discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=r"upscale:(?P<job>\d+)"
    ):
        def __init__(self, job: int) -> None:
            super().__init__(discord.ui.Button(label="Upscale", custom_id=f"upscale:{job}"))
            self.job = job

        @classmethod
        async def from_custom_id(
            cls,
            interaction: discord.Interaction,
            item: discord.ui.Item[discord.ui.View],
            match: re.Match[str],
        ) -> Upscale:
            return cls(int(match["job"]))

        async def callback(self, interaction: discord.Interaction) -> None:
            clicks.append((self.job, interaction.user.id))
            await interaction.response.edit_message(content=f"upscaling job {self.job}", view=None)

    bot = make_bot()
    bot.add_dynamic_items(Upscale)
    w = discord_world
    async with connect_client(discord_double, bot):
        channel = bot.get_channel(w.studio.id)
        assert isinstance(channel, discord.TextChannel)
        view = discord.ui.View(timeout=None).add_item(Upscale(42))
        message = await channel.send("done", view=view)
        stored = discord_double.world.messages[message.id]
        assert stored.custom_ids == ["upscale:42"]
        rec = await discord_double.click_button(
            w.guild.id, w.studio.id, w.bob.id, message.id, "upscale:42"
        )
        assert (await rec.wait_ack()).type == 7
    assert clicks == [(42, w.bob.id)]
    assert stored.content == "upscaling job 42" and stored.components == []
    with pytest.raises(ValueError, match="no button"):
        await discord_double.click_button(
            w.guild.id, w.studio.id, w.bob.id, message.id, "upscale:42"
        )
    discord_double.assert_clean()


async def test_autocomplete_select_and_modal(
    discord_double: DiscordDouble, discord_world: SeededWorld
) -> None:
    bot = make_bot()
    titles: list[str] = []

    class TitleModal(discord.ui.Modal, title="Name it"):
        name: discord.ui.TextInput[TitleModal] = discord.ui.TextInput(
            label="Title", custom_id="title", max_length=40
        )

        async def on_submit(self, interaction: discord.Interaction) -> None:
            titles.append(self.name.value)
            await interaction.response.send_message(f"Saved {self.name.value}", ephemeral=True)

    class StylePicker(discord.ui.View):
        @discord.ui.select(
            custom_id="style-pick",
            options=[
                discord.SelectOption(label="Ink", value="ink"),
                discord.SelectOption(label="Oil", value="oil"),
            ],
        )
        async def pick(
            self, interaction: discord.Interaction, select: discord.ui.Select[StylePicker]
        ) -> None:
            await interaction.response.send_modal(TitleModal())

    @bot.tree.command(name="style", description="Pick a style")
    async def style(interaction: discord.Interaction, name: str) -> None:
        await interaction.response.send_message(f"style {name}", view=StylePicker())

    @style.autocomplete("name")
    async def complete(
        interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return [
            app_commands.Choice(name=s, value=s)
            for s in ("ink", "inkwash", "oil")
            if s.startswith(current)
        ]

    w = discord_world
    async with connect_client(discord_double, bot):
        await bot.tree.sync()
        choices = await discord_double.autocomplete(
            w.guild.id, w.studio.id, w.alice.id, "style", {"name": "in"}, focused="name"
        )
        assert [c["value"] for c in choices] == ["ink", "inkwash"]
        rec = await discord_double.invoke_slash(
            w.guild.id, w.studio.id, w.alice.id, "style", {"name": "ink"}
        )
        shown = await rec.wait_original()
        picked = await discord_double.select(
            w.guild.id, w.studio.id, w.alice.id, shown.id, "style-pick", ["oil"]
        )
        assert (await picked.wait_ack()).type == 9
        submitted = await discord_double.submit_modal(picked, {"title": "Night walk"})
        answer = await submitted.wait_original()
    assert titles == ["Night walk"]
    assert answer.content == "Saved Night walk" and answer.ephemeral
    discord_double.assert_clean()


async def test_gateway_resume_replays_missed_events(
    discord_double: DiscordDouble, discord_world: SeededWorld
) -> None:
    bot = make_bot(message_content=True)

    async def identify_at_once(shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py sleeps 5 s before every non-initial IDENTIFY; not in a test."""

    bot.before_identify_hook = identify_at_once  # type: ignore[method-assign]
    seen = record_messages(bot)
    w = discord_world
    async with connect_client(discord_double, bot):
        await discord_double.drop_connection(4000)
        # Sent while the bot is away: delivered when it RESUMEs.
        await discord_double.user_message(w.studio.id, w.alice.id, "while you were away")
        await discord_double.wait_until_resumed(1)
        await discord_double.request_reconnect()
        await discord_double.wait_until_resumed(2)
        await discord_double.user_message(w.studio.id, w.alice.id, "welcome back")
        await discord_double.wait_until(lambda: len(seen) >= 2, 3, "two messages")
        await discord_double.invalidate_session(resumable=False)
        await discord_double.wait_until_identified(2)
    assert seen == ["while you were away", "welcome back"]
    discord_double.assert_clean()


async def test_message_content_needs_the_intent_or_a_mention(
    discord_double: DiscordDouble, discord_world: SeededWorld
) -> None:
    bot = make_bot(message_content=False)
    seen = record_messages(bot)
    w = discord_world
    async with connect_client(discord_double, bot):
        await discord_double.user_message(w.studio.id, w.alice.id, "a secret")
        await discord_double.user_message(w.studio.id, w.alice.id, f"<@{w.bot.id}> hello")
        await discord_double.wait_until(lambda: len(seen) >= 2, 3, "two messages")
    assert seen == ["", f"<@{w.bot.id}> hello"]


async def test_threads_and_discord_errors_reach_discord_py(
    discord_double: DiscordDouble, discord_world: SeededWorld
) -> None:
    w = discord_world
    hidden = discord_double.add_text_channel(
        w.guild.id, "staff", overwrites=[Overwrite(w.bot.id, 1, deny=Perm.VIEW_CHANNEL)]
    )
    bot = make_bot(message_content=True)
    async with connect_client(discord_double, bot):
        channel = bot.get_channel(w.studio.id)
        assert isinstance(channel, discord.TextChannel)
        assert bot.get_channel(hidden.id) is not None
        starter = await channel.send("a story begins")
        thread = await starter.create_thread(name="The fox's tale")
        assert thread.id == starter.id  # Discord: a thread from a message shares its id
        await discord_double.wait_until(lambda: bot.get_channel(thread.id), 3, "THREAD_CREATE")
        await thread.join()  # already a member as its owner; still a valid call
        await discord_double.user_message(thread.id, w.alice.id, "and then?")
        async with thread.typing():
            await thread.send("then the fox slept")
        edited = await thread.edit(archived=True, locked=True)
        assert edited.archived and edited.locked
        # discord.py drops archived threads from its cache on THREAD_UPDATE.
        await discord_double.wait_until(
            lambda: bot.get_channel(thread.id) is None, 3, "THREAD_UPDATE"
        )
        with pytest.raises(PermissionError):
            await discord_double.user_message(thread.id, w.alice.id, "more!")
        with pytest.raises(discord.HTTPException) as too_long:
            await channel.send("x" * 2001)
        assert too_long.value.code == 50035
        with pytest.raises(discord.HTTPException) as too_big:
            big = discord.File(io.BytesIO(b"\0" * (10 * 1024 * 1024 + 1)), "big.bin")
            await channel.send(file=big)
        assert too_big.value.status == 413 and too_big.value.code == 40005
        late = discord_double.add_text_channel(w.guild.id, "late-channel")
        await discord_double.announce(late)
        await discord_double.wait_until(lambda: bot.get_channel(late.id), 3, "CHANNEL_CREATE")
        with pytest.raises(discord.Forbidden) as forbidden:
            await bot.get_partial_messageable(hidden.id).send("hi")
        assert forbidden.value.code == 50001
        plain = await channel.create_thread(
            name="Open studio", type=discord.ChannelType.public_thread
        )
    stored = discord_double.world.channels[thread.id]
    assert stored.archived and stored.locked and stored.message_count == 2
    assert [m.content for m in discord_double.channel_messages(thread.id)] == [
        "and then?",
        "then the fox slept",
    ]
    notice = discord_double.channel_messages(w.studio.id)[-1]
    assert notice.type == 18 and notice.content == plain.name  # THREAD_CREATED system message
    assert not discord_double.world.messages[starter.id].flags & MessageFlag.EPHEMERAL
    assert discord_double.world.messages[starter.id].thread_id == thread.id
    discord_double.assert_clean()


async def test_unknown_routes_are_recorded_and_the_spec_flags_bad_bodies(
    monkeypatch: pytest.MonkeyPatch, make_discord_double: MakeDouble
) -> None:
    if not SHARED_SPEC_FILE.exists() and not os.environ.get(SPEC_ENV):
        pytest.skip("Discord's OpenAPI spec is not on this machine")
    monkeypatch.setenv(SPEC_ENV, os.environ.get(SPEC_ENV) or str(SHARED_SPEC_FILE))
    double = await make_discord_double()
    w = seeded_world(double)
    assert double.spec is not None
    headers = {"Authorization": f"Bot {double.token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.get(f"{double.api_base}/no/such/route") as resp:
            assert resp.status == 404
            assert resp.headers["Content-Type"] == "application/json"
            assert await resp.json() == {"message": "404: Not Found", "code": 0}
        bad = {"content": 5, "embeds": "not a list"}
        async with session.post(
            f"{double.api_base}/channels/{w.studio.id}/messages", json=bad
        ) as resp:
            assert resp.status in (200, 400)
        # discord.py's integer attachment ids are tolerated (Discord accepts them).
        form = aiohttp.FormData(quote_fields=False)
        form.add_field(
            "payload_json", '{"content": "ok", "attachments": [{"id": 0, "filename": "a.png"}]}'
        )
        form.add_field(
            "files[0]", png_bytes(), filename="a.png", content_type="application/octet-stream"
        )
        async with session.post(
            f"{double.api_base}/channels/{w.studio.id}/messages", data=form
        ) as resp:
            assert resp.status == 200
    assert [r.path for r in double.unknown_requests] == ["/no/such/route"]
    flagged = [v for v in double.spec_violations if v.location == "body"]
    assert len(flagged) == 1 and flagged[0].template == "/channels/{channel_id}/messages"
    with pytest.raises(AssertionError, match="unknown route"):
        double.assert_clean()


async def test_members_are_chunked_with_the_members_intent(discord_double: DiscordDouble) -> None:
    bot = commands.Bot(command_prefix="!", intents=discord.Intents.all(), guild_ready_timeout=0.1)
    async with connect_client(discord_double, bot):
        guild = bot.get_guild(seeded_world(discord_double).guild.id)
        assert guild is not None and guild.chunked
        assert {m.name for m in guild.members} >= {"alice", "bob", "mod"}
        mod = guild.get_member(discord_double.user_named("mod").id)
        assert mod is not None and mod.guild_permissions.manage_messages


async def test_disallowed_privileged_intents_close_with_4014(
    make_discord_double: MakeDouble,
) -> None:
    double = await make_discord_double(privileged_intents=0)
    with pytest.raises(discord.PrivilegedIntentsRequired):
        async with connect_client(double, make_bot(message_content=True)):
            pass
    assert double.gateway.connections[0].close_code == 4014


async def test_message_lifecycle_and_mentions(
    discord_double: DiscordDouble, discord_world: SeededWorld
) -> None:
    w = discord_world
    bot = make_bot()

    @bot.tree.command(name="echo", description="Echo text")
    async def echo(interaction: discord.Interaction, text: str) -> None:
        await interaction.response.send_message(
            text, allowed_mentions=discord.AllowedMentions.none()
        )
        shown = await interaction.original_response()
        await interaction.edit_original_response(content=shown.content + "!")
        await interaction.followup.send("only you see this", ephemeral=True)
        await interaction.delete_original_response()

    async with connect_client(discord_double, bot):
        await bot.tree.sync()
        asked = await discord_double.user_message(w.studio.id, w.alice.id, f"hi <@{w.bob.id}>")
        assert asked.mention_user_ids == [w.bob.id]  # a user's mention pings by default
        channel = bot.get_channel(w.studio.id)
        assert isinstance(channel, discord.TextChannel)
        reply = await channel.send(
            f"<@{w.bob.id}> look",
            reference=channel.get_partial_message(asked.id),
            allowed_mentions=discord.AllowedMentions.none(),
        )
        stored = discord_double.world.messages[reply.id]
        assert stored.type == 19 and stored.mention_user_ids == []  # nobody pinged
        await reply.edit(content="edited")
        assert (await channel.fetch_message(reply.id)).content == "edited"
        history = [m.id async for m in channel.history(limit=10)]
        assert history == [reply.id, asked.id]  # newest first
        await reply.delete()
        assert stored.deleted

        rec = await discord_double.invoke_slash(
            w.guild.id, w.studio.id, w.alice.id, "echo", {"text": f"<@{w.bob.id}>"}
        )
        [private] = await rec.wait_followups(1)
        await discord_double.wait_until(lambda: rec.original_message() is None, 3, "the delete")
    assert private.ephemeral and private.content == "only you see this"
    original = discord_double.world.messages[rec.original_message_id or 0]
    assert (
        original.deleted
        and original.content == f"<@{w.bob.id}>!"
        and original.mention_user_ids == []
    )
    events = [event for event, _ in discord_double.gateway.dispatched]
    assert events.count("MESSAGE_DELETE") == 2 and "MESSAGE_UPDATE" in events
    discord_double.assert_clean()


async def test_enforced_nonce_returns_the_earlier_message(
    discord_double: DiscordDouble, discord_world: SeededWorld
) -> None:
    async with connect_client(discord_double, make_bot()) as bot:
        channel = bot.get_channel(discord_world.studio.id)
        assert isinstance(channel, discord.TextChannel)
        first = await channel.send("result", nonce="gh:job:1")
        again = await channel.send("result", nonce="gh:job:1")
        other = await channel.send("result", nonce="gh:job:2")
    assert again.id == first.id and other.id != first.id
    assert [m.content for m in discord_double.channel_messages(discord_world.studio.id)] == [
        "result", "result"]
    discord_double.assert_clean()


async def test_a_502_after_the_create_is_retried_into_the_same_message(
    discord_double: DiscordDouble, discord_world: SeededWorld
) -> None:
    discord_double.fail_next("POST", r"/channels/\d+/messages$", errors.ApiError(
        502, 0, "Bad Gateway"), after=True)
    async with connect_client(discord_double, make_bot()) as bot:
        channel = bot.get_channel(discord_world.studio.id)
        assert isinstance(channel, discord.TextChannel)
        # discord.py retries a 502 with the same body: the nonce makes that safe.
        sent = await channel.send("lost answer", nonce="n-1")
    posts = discord_double.requests_matching("POST", r"/channels/\d+/messages$")
    assert [r.status for r in posts] == [502, 200]
    created = discord_double.channel_messages(discord_world.studio.id)
    assert [m.id for m in created] == [sent.id]


@pytest.mark.parametrize("after", [False, True])
async def test_a_dropped_connection_before_or_after_the_create(
    discord_double: DiscordDouble, discord_world: SeededWorld, after: bool
) -> None:
    discord_double.reset_next("POST", r"/channels/\d+/messages$", after=after)
    async with connect_client(discord_double, make_bot()) as bot:
        channel = bot.get_channel(discord_world.studio.id)
        assert isinstance(channel, discord.TextChannel)
        with pytest.raises((aiohttp.ClientError, OSError)):
            await channel.send("maybe", nonce="n-2")
        assert len(discord_double.channel_messages(discord_world.studio.id)) == int(after)
        await channel.send("maybe", nonce="n-2")
        assert len(discord_double.channel_messages(discord_world.studio.id)) == 1
    discord_double.assert_clean()


async def test_direct_messages_open_once_and_respect_closed_dms(
    discord_double: DiscordDouble, discord_world: SeededWorld
) -> None:
    w = discord_world
    async with connect_client(discord_double, make_bot()) as bot:
        alice = await bot.fetch_user(w.alice.id)
        sent = await alice.send("hello by DM")
        assert isinstance(sent.channel, discord.DMChannel)
        assert sent.guild is None
        again = await alice.send("and again")
        assert again.channel.id == sent.channel.id  # one DM channel per user
        assert [m.content for m in discord_double.dm_messages(w.alice.id)] == [
            "hello by DM", "and again"]
        assert discord_double.dm_messages(w.bob.id) == []

        w.bob.accepts_dms = False
        bob = await bot.fetch_user(w.bob.id)
        with pytest.raises(discord.Forbidden) as info:
            await bob.send("hello?")
        assert info.value.code == 50007
    discord_double.assert_clean()
