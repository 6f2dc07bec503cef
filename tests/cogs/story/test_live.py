"""A line appears while the model writes it: its "writing…" message is edited with the text
so far (checked again against the blocked terms), then becomes the choice; a rewritten
line's writing message goes once the line is in."""

from __future__ import annotations

from testkit.discord_double import Message
from testkit.live_runner import PARTS, LiveTextRunner
from testkit.story import StoryBot, button


def edits_of(h: StoryBot, message: Message) -> list[str]:
    return [str(r.json.get("content")) for r in h.double.requests_matching(
        "PATCH", rf"^/channels/{message.channel_id}/messages/{message.id}$")
        if r.json is not None and "content" in r.json]


async def test_a_line_is_shown_while_it_is_written(story_bot: StoryBot) -> None:
    h = story_bot
    h.runner = LiveTextRunner(h.runner)
    alice, bob = h.world.alice.id, h.world.bob.id
    async with h.running():
        await h.slash(alice, h.world.studio.id, "start", seed="The sky")
        thread = await h.story_thread()
        first = await h.line(thread, 1)
        await h.idle()
        await h.click(bob, first, button(first, "gh:story:cont:"))
        writing = await h.double.wait_for_message(
            lambda m: m.channel_id == thread and m.content.startswith("✍️ **2.**"), 30)
        choice = await h.choice(thread, 2)
        await h.idle()
        assert choice.id == writing.id  # the writing message became the choice

        contents = edits_of(h, writing)
        live = [c for c in contents if c.startswith("✍️ **2.** ")]
        # Growing text, in the order written, before the candidates replaced it.
        assert live[0] == "✍️ **2.** The wind ✍️"
        assert "✍️ **2.** The wind rose ✍️" in live
        assert contents.index(live[-1]) < len(contents) - 1
        assert contents[-1].startswith("🪄 **2.** candidate")
        # Text with a blocked term is never shown, even if a worker sent it.
        assert not [c for c in contents if "forbidden" in c]
        assert "forbidden" in " ".join(PARTS)  # the runner did send it

        # A rewrite: its writing message is its own, and goes once the line is edited.
        await h.click(alice, choice, button(choice, "gh:choice:keep:"))
        second = await h.line(thread, 2)
        await h.idle()
        edits = second.edits
        await h.click(alice, second, button(second, "gh:story:rewrite:"))
        rewriting = await h.double.wait_for_message(
            lambda m: m.channel_id == thread and m.content.startswith("✍️ **2.**")
            and m.id != writing.id, 30)
        await h.line(thread, 2, edited_after=edits)
        await h.idle()
        assert any("The wind rose" in c for c in edits_of(h, rewriting))
        assert rewriting.deleted
    h.double.assert_clean()
