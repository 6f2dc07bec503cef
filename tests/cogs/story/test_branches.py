"""⏪ Rewind moves the later lines to a branch (pictures kept), /story branches switches
between branches, and the export shows the story as told and its other endings."""

from __future__ import annotations

from testkit.discord_double import Message
from testkit.story import WAIT_S, StoryBot, button


def numbered(h: StoryBot, thread: int, number: int) -> list[Message]:
    return [m for m in h.thread_messages(thread) if m.content.startswith(f"**{number}.** ")]


def text_of(message: Message) -> str:
    return message.content.split("\n")[0].split(" ", 1)[1]


async def test_rewind_switch_and_export_both_branches(story_bot: StoryBot) -> None:
    h = story_bot
    alice, bob = h.world.alice.id, h.world.bob.id
    async with h.running() as bot:
        await h.slash(alice, h.world.studio.id, "start", seed="The sky", title="Sky")
        thread = await h.story_thread()
        latest = await h.line(thread, 1)
        for number in (2, 3, 4):
            latest = await h.continue_line(bob, latest, number)
        await h.idle()
        old = {n: numbered(h, thread, n)[0] for n in (2, 3, 4)}
        assert "gh:story:rewind:" not in " ".join(old[4].custom_ids)  # the latest has none

        # ⏪ on line 2 asks first, only the presser sees it; then rewinds.
        ask = await h.click(alice, old[2], button(old[2], "gh:story:rewind:"))
        assert "move to a branch" in await h.answer(ask, "Rewind")
        confirm = await ask.wait_original(lambda m: bool(m.custom_ids), WAIT_S)
        assert confirm.ephemeral
        done = await h.click(alice, confirm, button(confirm, "gh:rewind:"))
        await done.wait_original(lambda m: "Rewound to line 2" in m.content, WAIT_S)
        note = await h.double.wait_for_message(
            lambda m: m.channel_id == thread and m.content.startswith("⏪ alice rewound"),
            WAIT_S)
        assert "branch #1" in note.content and "2 later lines" in note.content
        await h.double.wait_until(lambda: not old[4].custom_ids or None, WAIT_S,
                                  "the old latest line losing its buttons")
        line2 = await h.line(thread, 2)
        assert any(c.startswith("gh:story:cont:") for c in line2.custom_ids)
        # A button of a line the story no longer tells says so.
        stale = await h.click(bob, old[3], button(old[3], "gh:story:redraw:"))
        assert "/story branches" in await h.answer(stale, "not part of the story")

        # The story goes on from line 2: a new line 3, in a message of its own.
        new3 = await h.continue_line(alice, line2, 3)
        assert new3.id != old[3].id
        await h.idle()
        story = await bot.services.stories.by_thread(thread)
        assert story is not None and story.branch == 2
        told = await bot.services.stories.lines(story.id)
        assert [line.number for line in told] == [1, 2, 3]
        assert told[2].text == text_of(new3) and told[2].branch == 2
        # The moved lines keep their pictures.
        moved = await bot.services.stories.lines(story.id, 1)
        assert [line.number for line in moved] == [1, 2, 3, 4]
        assert all(line.image_path is not None and line.image_path.exists() for line in moved)

        # /story branches lists both; switching back links the branch's latest lines.
        listing = await h.slash(bob, thread, "branches")
        text = await h.answer(listing, "branches:")
        assert "**#1** · the beginning · 4 lines" in text
        assert "**#2** · from line 2 · 3 lines" in text and "told now" in text
        menu = await listing.wait_original(lambda m: bool(m.custom_ids), WAIT_S)
        pick = await h.double.select(h.world.guild.id, thread, bob, menu.id,
                                     f"gh:branches:{story.id}", ["1"])
        await pick.wait_original(lambda m: "Branch #1 is told now" in m.content, WAIT_S)
        switched = await h.double.wait_for_message(
            lambda m: m.channel_id == thread and m.content.startswith("🔀 bob switched"),
            WAIT_S)
        assert f"/{old[4].id}" in switched.content and f"/{old[3].id}" in switched.content
        await h.double.wait_until(
            lambda: any(c.startswith("gh:story:cont:") for c in old[4].custom_ids) or None,
            WAIT_S, "branch #1's latest line getting Continue ▶ back")
        assert not any(c.startswith("gh:story:cont:") for c in new3.custom_ids)

        # The export: the story as told (branch #1), then the other ending (branch #2).
        export = await h.slash(alice, thread, "export")
        await h.answer(export, "so far")
        posted = await h.double.wait_for_message(
            lambda m: m.channel_id == thread and m.content.startswith("📖 **Sky**, so far"),
            WAIT_S)
    page = posted.attachments[0].data.decode()
    markdown = posted.attachments[1].data.decode()
    assert "Other endings" in page and "## Other endings" in markdown
    assert "Branch #2, after line 2" in page and 'id="branch-2-line-3"' in page
    assert (page.index('id="line-4"') < page.index("Other endings")
            < page.index('id="branch-2-line-3"'))
    assert page.count('src="data:image/png;base64,') == 5  # four told, one other ending
    assert markdown.count("](images/") == 5 and "](images/b2-03.png)" in markdown
    h.double.assert_clean()
