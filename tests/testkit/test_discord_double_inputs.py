"""What members hand a bot in the Discord double: files on slash-command options (served
by the double's CDN) and modals (opened by the bot, submitted as the member)."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands
from PIL import Image

from testkit.discord_double import DiscordDouble, errors, limits
from testkit.discord_double.seeding import SeededWorld, connect_client


def make_bot() -> commands.Bot:
    return commands.Bot(
        command_prefix=commands.when_mentioned,
        intents=discord.Intents.default(),
        guild_ready_timeout=0.1,
    )


def png_bytes(width: int = 8, height: int = 6) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (40, 160, 90)).save(buffer, format="PNG")
    return buffer.getvalue()


def png_header(width: int, height: int) -> bytes:
    """Just the signature and IHDR of a PNG claiming ``width`` x ``height`` pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    crc = zlib.crc32(b"IHDR" + ihdr)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", crc)


def add_measure(bot: commands.Bot) -> None:
    """/measure image: reads the file from the CDN and says what it got."""

    @bot.tree.command(name="measure", description="Measure a picture")
    async def measure(interaction: discord.Interaction, image: discord.Attachment) -> None:
        try:
            data = await image.read()
        except (discord.HTTPException, aiohttp.ClientError) as exc:
            got = type(exc).__name__
        else:
            got = f"read {len(data)}"
        await interaction.response.send_message(
            f"{got}; size {image.size}; {image.content_type}; {image.width}x{image.height}"
        )


async def measure(
    double: DiscordDouble, w: SeededWorld, image: Any
) -> tuple[dict[str, Any], str]:
    rec = await double.invoke_slash(w.guild.id, w.studio.id, w.alice.id, "measure",
                                    {"image": image})
    reply = await rec.wait_original()
    [option] = rec.payload["data"]["options"]
    assert option["type"] == 11
    return rec.payload["data"]["resolved"]["attachments"][option["value"]], reply.content


async def test_an_attachment_option_is_downloaded_from_the_double(
    discord_double: DiscordDouble, discord_world: SeededWorld
) -> None:
    w, png = discord_world, png_bytes(8, 6)
    bot = make_bot()
    add_measure(bot)
    async with connect_client(discord_double, bot):
        await bot.tree.sync()
        upload = discord_double.upload_attachment("fox.png", png)
        resolved, said = await measure(discord_double, w, upload)
        assert said == f"read {len(png)}; size {len(png)}; image/png; 8x6"
        assert resolved == {
            "id": str(upload.id),
            "filename": "fox.png",
            "size": len(png),
            "url": upload.url,
            "proxy_url": upload.url,
            "content_type": "image/png",
            "width": 8,
            "height": 6,
            "ephemeral": True,
        }
        assert upload.url == (
            f"{discord_double.cdn_base}/ephemeral-attachments/{w.studio.id}/{upload.id}/fox.png"
        )
        assert upload.downloads == 1
        # The (filename, bytes[, content_type]) shorthand uploads in place.
        _, said = await measure(discord_double, w, ("notes.txt", b"hello"))
        assert said == "read 5; size 5; text/plain; NonexNone"
    discord_double.assert_clean()


async def test_attachments_can_lie_and_their_downloads_can_fail(
    discord_double: DiscordDouble, discord_world: SeededWorld
) -> None:
    w, png = discord_world, png_bytes(8, 6)
    bot = make_bot()
    add_measure(bot)
    async with connect_client(discord_double, bot):
        await bot.tree.sync()
        # Text named .png: Discord types it by its name, and it has no dimensions.
        fake = discord_double.upload_attachment("cat.png", b"not a picture")
        assert (await measure(discord_double, w, fake))[1] == (
            "read 13; size 13; image/png; NonexNone"
        )
        # A PNG cut short still reports the size its header declares.
        cut = discord_double.upload_attachment("cut.png", png[:40])
        assert (await measure(discord_double, w, cut))[1] == "read 40; size 40; image/png; 8x6"
        # A huge PNG: dimensions from the header, a size the file does not have.
        huge = discord_double.upload_attachment(
            "huge.png", png_header(30000, 20000), size=60 * 1024 * 1024
        )
        assert (await measure(discord_double, w, huge))[1].endswith(
            f"size {60 * 1024 * 1024}; image/png; 30000x20000"
        )
        lied = discord_double.upload_attachment("x.bin", png, "text/plain", width=1, height=2)
        assert (await measure(discord_double, w, lied))[1].endswith("; text/plain; 1x2")
        short = discord_double.upload_attachment("short.png", png, served=png[:10])
        assert (await measure(discord_double, w, short))[1].startswith("read 10; size ")
        dropped = discord_double.upload_attachment("drop.png", png, cut_after=10)
        said = (await measure(discord_double, w, dropped))[1]
        assert said.startswith("ClientPayloadError;"), said
        gone = discord_double.upload_attachment("gone.png", png, cdn_status=404)
        assert (await measure(discord_double, w, gone))[1].startswith("NotFound;")
        assert gone.downloads == 1
    discord_double.assert_clean()


async def test_a_modal_opened_by_a_button_and_by_a_command_is_submitted(
    discord_double: DiscordDouble, discord_world: SeededWorld
) -> None:
    w = discord_world
    bot = make_bot()
    received: list[tuple[str, str, int | None]] = []

    class Rename(discord.ui.Modal, title="Rename the picture"):
        name: discord.ui.TextInput[Rename] = discord.ui.TextInput(
            label="Title", custom_id="title", min_length=2, max_length=40
        )
        notes: discord.ui.Label[Rename] = discord.ui.Label(
            text="Notes",
            description="Shown under the picture",
            component=discord.ui.TextInput(
                custom_id="notes",
                style=discord.TextStyle.paragraph,
                default="made in the studio",
                required=False,
            ),
        )

        async def on_submit(self, interaction: discord.Interaction) -> None:
            assert isinstance(self.notes.component, discord.ui.TextInput)
            notes = self.notes.component.value
            message_id = interaction.message.id if interaction.message else None
            received.append((self.name.value, notes, message_id))
            await interaction.response.send_message(f"Renamed to {self.name.value} ({notes})")

    class Card(discord.ui.View):
        def __init__(self) -> None:
            super().__init__(timeout=None)

        @discord.ui.button(label="Rename", custom_id="rename")
        async def rename(
            self, interaction: discord.Interaction, button: discord.ui.Button[Card]
        ) -> None:
            await interaction.response.send_modal(Rename(custom_id="rename-modal"))

    @bot.tree.command(name="rename", description="Rename a picture")
    async def rename(interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(Rename(custom_id="rename-modal"))

    async with connect_client(discord_double, bot):
        await bot.tree.sync()
        channel = bot.get_channel(w.studio.id)
        assert isinstance(channel, discord.TextChannel)
        card = await channel.send("a fox", view=Card())
        clicked = await discord_double.click_button(
            w.guild.id, w.studio.id, w.alice.id, card.id, "rename"
        )
        assert (await clicked.wait_ack()).type == 9
        modal = clicked.modal
        assert modal is not None
        assert (modal.custom_id, modal.title) == ("rename-modal", "Rename the picture")
        assert modal.custom_ids == ["title", "notes"] and modal.labels == ["Title", "Notes"]
        title, notes = modal.fields
        assert (title.style, title.required, title.min_length, title.max_length) == (1, True, 2, 40)
        assert not title.in_label and title.value is None
        assert notes.in_label and notes.description == "Shown under the picture"
        assert (notes.style, notes.required, notes.value) == (2, False, "made in the studio")
        assert modal.prefilled == {"notes": "made in the studio"}
        with pytest.raises(ValueError, match="only the user"):
            await discord_double.submit_modal(w.guild.id, w.studio.id, w.bob.id, clicked)
        with pytest.raises(ValueError, match="2-40 characters"):
            await discord_double.submit_modal(
                w.guild.id, w.studio.id, w.alice.id, clicked, {"title": "x" * 41}
            )
        with pytest.raises(ValueError, match="is required"):
            await discord_double.submit_modal(w.guild.id, w.studio.id, w.alice.id, clicked, {})
        submitted = await discord_double.submit_modal(
            w.guild.id, w.studio.id, w.alice.id, "rename-modal", {"title": "Night walk"},
            message_id=card.id,
        )
        answer = await submitted.wait_original()
        assert answer.content == "Renamed to Night walk (made in the studio)"
        assert submitted.type == 5 and submitted.opened_by is clicked
        assert clicked.submits == [submitted]
        assert submitted.payload["message"]["id"] == str(card.id)
        assert submitted.payload["data"] == {
            "custom_id": "rename-modal",
            "components": [
                {
                    "type": 1,
                    "id": 1,
                    "components": [
                        {"type": 4, "id": 2, "custom_id": "title", "value": "Night walk"}
                    ],
                },
                {
                    "type": 18,
                    "id": 3,
                    "component": {
                        "type": 4, "id": 4, "custom_id": "notes", "value": "made in the studio"
                    },
                },
            ],
        }
        assert answer.interaction_metadata is not None
        trigger = answer.interaction_metadata["triggering_interaction_metadata"]
        assert trigger["interacted_message_id"] == str(card.id)

        # From a slash command: no message; a cleared optional input submits "".
        commanded = await discord_double.invoke_slash(
            w.guild.id, w.studio.id, w.bob.id, "rename"
        )
        assert (await commanded.wait_ack()).type == 9
        by_command = await discord_double.submit_modal(
            w.guild.id, w.studio.id, w.bob.id, commanded, {"title": "Dawn", "notes": ""}
        )
        assert (await by_command.wait_original()).content == "Renamed to Dawn ()"
        assert "message" not in by_command.payload
    assert received == [("Night walk", "made in the studio", card.id), ("Dawn", "", None)]
    discord_double.assert_clean()


async def test_a_modal_discord_would_refuse_is_a_400(
    discord_double: DiscordDouble, discord_world: SeededWorld
) -> None:
    w = discord_world
    bot = make_bot()
    failures: list[BaseException] = []

    @bot.tree.command(name="ask", description="Ask something")
    async def ask(interaction: discord.Interaction, title: str, label: str) -> None:
        modal: discord.ui.Modal = discord.ui.Modal(title=title)
        modal.add_item(discord.ui.TextInput(label=label))
        await interaction.response.send_modal(modal)

    @bot.tree.error
    async def on_error(
        interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        failures.append(getattr(error, "original", error))

    async with connect_client(discord_double, bot):
        await bot.tree.sync()
        cases = [("t" * 46, "Answer", "title"), ("Fine", "l" * 46, "label")]
        recs = []
        for title, label, _ in cases:
            recs.append(await discord_double.invoke_slash(
                w.guild.id, w.studio.id, w.alice.id, "ask", {"title": title, "label": label}
            ))
            await discord_double.wait_until(
                lambda: len(failures) == len(recs), 3, "the command error"
            )
    assert all(rec.ack is None and rec.modal is None for rec in recs)
    for failure, (_, _, key) in zip(failures, cases, strict=True):
        assert isinstance(failure, discord.HTTPException)
        assert (failure.status, failure.code) == (400, 50035)
        assert "Must be 45 or fewer in length." in failure.text and key in failure.text
    first, second = discord_double.requests_matching("POST", r"/callback$")
    [error] = first.response["errors"]["data"]["title"]["_errors"]
    assert error == {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 45 or fewer in length."}
    text_input = second.response["errors"]["data"]["components"]["0"]["components"]["0"]
    assert text_input["label"]["_errors"][0]["code"] == "BASE_TYPE_MAX_LENGTH"
    # The OpenAPI check flags the same two bodies.
    flagged = {v.message.split(":")[0] for v in discord_double.spec_violations}
    assert flagged == {"data/title", "data/components/0/components/0/label"}, flagged


def text_input(**extra: Any) -> dict[str, Any]:
    return {"type": 4, "custom_id": "a", "style": 1, "label": "A", **extra}


def row(*children: dict[str, Any]) -> dict[str, Any]:
    return {"type": 1, "components": list(children)}


@pytest.mark.parametrize(
    ("components", "where"),
    [
        ([row(text_input())] * 6, "data.components"),
        ([], "data.components"),
        ([row(text_input(), text_input(custom_id="b"))], "data.components.0.components"),
        ([row(text_input(value="v" * 4001))], "data.components.0.components.0.value"),
        ([row(text_input(placeholder="p" * 101))], "data.components.0.components.0.placeholder"),
        ([row(text_input(min_length=5, max_length=4))],
         "data.components.0.components.0.min_length"),
        ([row(text_input(max_length=4001))], "data.components.0.components.0.max_length"),
        ([row(text_input(label=None))], "data.components.0.components.0.label"),
        ([row(text_input(style=3))], "data.components.0.components.0.style"),
        ([row(text_input(custom_id="c" * 101))], "data.components.0.components.0.custom_id"),
        ([row(text_input()), row(text_input())], "data.components.1.components.0.custom_id"),
        ([{"type": 18, "label": "L" * 46, "component": text_input(label=None)}],
         "data.components.0.label"),
        ([{"type": 18, "label": "L", "component": {"type": 2, "custom_id": "b"}}],
         "data.components.0.component.type"),
        ([{"type": 2, "custom_id": "b", "style": 1}], "data.components.0.type"),
    ],
)
def test_check_modal_answers_discords_form_errors(
    components: list[dict[str, Any]], where: str
) -> None:
    with pytest.raises(errors.ApiError) as refused:
        limits.check_modal({"custom_id": "m", "title": "T", "components": components})
    assert (refused.value.status, refused.value.code) == (400, 50035)
    node: Any = refused.value.errors
    for key in where.split("."):
        node = node[key]
    assert node["_errors"][0]["code"]


def test_check_modal_accepts_what_discord_py_sends() -> None:
    labelled = {"type": 18, "label": "Notes", "description": "d",
                "component": text_input(custom_id="n", label=None, style=2, value="x")}
    limits.check_modal({
        "custom_id": "m" * 100,
        "title": "t" * 45,
        "components": [row(text_input(min_length=0, max_length=4000, placeholder="p" * 100)),
                       labelled, {"type": 10, "content": "Read me"}],
    })
