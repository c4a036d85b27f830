"""/imagine end to end through the real discord.py client, a fake Discord and a fake Stability API."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.e2e.conftest import Harness
from tests.fakes.fake_discord import CallbackType

pytestmark = pytest.mark.e2e


async def test_quoted_prompts_each_get_an_image_and_a_summary(harness: Harness) -> None:
    pushed = await harness.imagine('a red fox, "a castle, at dusk", robotic dog')
    final = await harness.finished(pushed)

    record = harness.discord.interaction(pushed.id)
    assert record.callback_type == CallbackType.DEFERRED_CHANNEL_MESSAGE
    assert record.ack_latency is not None and record.ack_latency < 3
    assert sorted(r.prompt for r in harness.stability.requests) == [
        "a castle, at dusk",
        "a red fox",
        "robotic dog",
    ]
    images = harness.images(pushed)
    assert len(images) == 3
    for message in images:
        (attachment,) = message.attachments
        with Image.open(io.BytesIO(attachment.data)) as image:
            image.verify()
        assert message.allowed_mentions == {"parse": []}
    captions = sorted(m.content.splitlines()[0] for m in images)
    assert captions == ["**a castle, at dusk**", "**a red fox**", "**robotic dog**"]
    assert "**Done**: 3 of 3 images delivered" in final.content
    assert final.allowed_mentions == {"parse": []}


async def test_generations_overlap_and_progress_shows_each_state(harness: Harness) -> None:
    harness.stability.hold()  # every request waits until released: all three must be in flight together
    pushed = await harness.imagine("one, two, three")
    await harness.stability.wait_requests(3)
    assert harness.stability.in_flight == 3

    def shows_generating(fake: object) -> bool:
        original = harness.discord.interaction(pushed.id).original
        return original is not None and original.content.count("generating (started <t:") == 3

    await harness.discord.wait_for(shows_generating, what="three prompts shown as generating")
    harness.stability.release()
    final = await harness.finished(pushed)
    assert harness.stability.max_in_flight == 3
    lines = final.content.splitlines()
    assert [line.split(" — ")[1].split(" in ")[0] for line in lines[1:4]] == ["done"] * 3
    assert len(harness.images(pushed)) == 3


async def test_failures_are_reported_with_their_reason(harness: Harness) -> None:
    from tests.fakes.stability import Filtered, Status

    harness.stability.on_prompt("forbidden", Status(403, {"name": "content_moderation", "errors": ["no"]}))
    harness.stability.on_prompt("blurry", Filtered())
    harness.stability.on_prompt("weird", Status(400, {"name": "bad_request", "errors": ["seed: too odd"]}))
    pushed = await harness.imagine("fine, forbidden thing, blurry, weird")
    final = await harness.finished(pushed)
    text = final.content
    assert "❌ 2. forbidden thing — failed: blocked by content moderation" in text
    assert "❌ 3. blurry — failed: output filtered (the image came back blurred)" in text
    assert "❌ 4. weird — failed: rejected by the image API: seed: too odd" in text
    assert "**Done, with failures**: 1 of 4 images delivered, 3 failed" in text
    assert len(harness.images(pushed)) == 1, "a filtered image is never posted"


async def test_mentions_in_prompts_ping_nobody(harness: Harness) -> None:
    pushed = await harness.imagine("@everyone look, <@123456> **bold** @here")
    final = await harness.finished(pushed)
    messages = [final, *harness.images(pushed)]
    assert len(messages) == 3
    for message in messages:
        assert message.allowed_mentions == {"parse": []}
        for edit in message.edits:
            assert edit.payload.get("allowed_mentions", {"parse": []}) == {"parse": []}
    assert r"\*\*bold\*\*" in final.content


@pytest.mark.parametrize(
    ("prompts", "options", "says"),
    [
        ('"a castle, at dusk', {}, "never closed"),
        (",,,", {}, "No prompt given"),
        ("a, b, c, d, e, f, g, h, i, j, k", {}, "the limit is 10"),
        ("a cat", {"aspect_ratio": "7:3"}, "Unknown aspect ratio"),
        ("a cat", {"model": "dall-e-3"}, "Unknown model"),
    ],
)
async def test_bad_input_gets_a_private_answer_and_costs_nothing(
    harness: Harness, prompts: str, options: dict[str, object], says: str
) -> None:
    pushed = await harness.imagine(prompts, **options)
    await harness.discord.wait_for(lambda f: f.interaction(pushed.id).original is not None)
    reply = harness.discord.interaction(pushed.id).original
    assert reply is not None and reply.ephemeral
    assert says in reply.content
    assert harness.stability.requests == []
    assert harness.discord.interaction(pushed.id).callback_type == CallbackType.CHANNEL_MESSAGE


async def test_missing_permissions_get_a_clear_answer(harness: Harness) -> None:
    from tests.fakes.fake_discord import READ_ONLY_PERMISSIONS

    pushed = await harness.discord.push_slash_command(
        "imagine", {"prompts": "a cat"}, app_permissions=READ_ONLY_PERMISSIONS
    )
    await harness.discord.wait_for(lambda f: f.interaction(pushed.id).original is not None)
    reply = harness.discord.interaction(pushed.id).original
    assert reply is not None and reply.ephemeral
    assert "**Send Messages**, **Attach Files**, **Embed Links** permissions" in reply.content
    assert harness.stability.requests == []
