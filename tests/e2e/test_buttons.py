"""The buttons under a job's messages: Cancel, Retry failed, Re-roll, Re-roll this one, Delete."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import API_KEY, Harness
from tests.e2e.test_settings import bot_on
from tests.fakes.fake_discord import FakeDiscord, InteractionRecord, MessageRecord
from tests.fakes.stability import FakeStability, Status

pytestmark = pytest.mark.e2e


def custom_ids(message: MessageRecord) -> list[str]:
    return [c["custom_id"] for row in message.components for c in row.get("components", [])]


async def press(h: Harness, custom_id: str, message: MessageRecord, **kw: Any) -> InteractionRecord:
    return await h.discord.push_component(custom_id, message.id, **kw)


async def new_summary(h: Harness, pushed: InteractionRecord) -> MessageRecord:
    return await h.finished(pushed)


async def private_reply(h: Harness, pushed: InteractionRecord) -> str:
    await h.discord.wait_for(lambda f: f.interaction(pushed.id).original is not None)
    reply = h.discord.interaction(pushed.id).original
    assert reply is not None and reply.ephemeral
    return reply.content


async def test_cancel_stops_the_job(harness: Harness) -> None:
    harness.stability.hold()
    pushed = await harness.imagine("one, two")
    await harness.discord.wait_for(
        lambda f: "imagine:cancel:" in str(f.interaction(pushed.id).original.components)
    )
    progress = harness.discord.interaction(pushed.id).original
    assert progress is not None
    (cancel,) = custom_ids(progress)
    await press(harness, cancel, progress)
    final = await harness.finished(pushed)
    assert "**Cancelled**: 0 of 2 images delivered, 2 cancelled" in final.content
    assert harness.images(pushed) == []
    assert [c.split(":")[1] for c in custom_ids(final)] == ["reroll"], "a finished job offers Re-roll only"


async def test_retry_failed_reruns_only_the_failed_prompts_with_their_seeds(harness: Harness) -> None:
    harness.stability.on_prompt("flaky", Status(503), times=3)  # fails the first job's every attempt
    pushed = await harness.imagine("fine, flaky thing", seed=500)
    final = await harness.finished(pushed)
    assert "1 failed" in final.content
    retry = next(c for c in custom_ids(final) if c.startswith("imagine:retry:"))
    before = len(harness.stability.requests)
    again = await press(harness, retry, final)
    retried = await harness.finished(again)
    assert "**Done**: 1 of 1 image delivered" in retried.content
    (request,) = harness.stability.requests[before:]
    assert (request.prompt, request.form["seed"]) == ("flaky thing", "501")


async def test_reroll_makes_every_prompt_again_with_new_seeds(harness: Harness) -> None:
    pushed = await harness.imagine("a, b", seed=42)
    final = await harness.finished(pushed)
    reroll = next(c for c in custom_ids(final) if c.startswith("imagine:reroll:"))
    again = await press(harness, reroll, final)
    await harness.finished(again)
    first, second = harness.stability.requests[:2], harness.stability.requests[2:]
    assert sorted(r.prompt for r in second) == ["a", "b"]
    assert {r.form["seed"] for r in first} == {"42", "43"}
    assert not {r.form["seed"] for r in second} & {"42", "43"}


async def test_image_buttons_reroll_one_and_delete(harness: Harness) -> None:
    pushed = await harness.imagine("keep me, roll me")
    await harness.finished(pushed)
    images = {m.content.splitlines()[0]: m for m in harness.images(pushed)}
    roll_me = images["**roll me**"]
    reroll_one, delete = custom_ids(roll_me)
    assert reroll_one.startswith("imagine:reroll1:") and delete.startswith("imagine:delete:")
    again = await press(harness, reroll_one, roll_me)
    rerolled = await harness.finished(again)
    assert "1 of 1 image delivered" in rerolled.content
    assert harness.stability.requests[-1].prompt == "roll me"

    await press(harness, delete, roll_me)
    await harness.discord.wait_for(lambda f: f.message(roll_me.id).deleted, what="the image deleted")
    assert not images["**keep me**"].deleted


async def test_someone_else_may_not_press_the_buttons(harness: Harness) -> None:
    pushed = await harness.imagine("mine")
    final = await harness.finished(pushed)
    (image,) = harness.images(pushed)
    stranger = harness.discord.add_user("stranger")
    for message, custom_id in [(final, custom_ids(final)[0]), *((image, c) for c in custom_ids(image))]:
        pressed = await press(harness, custom_id, message, user_id=stranger.id)
        assert await private_reply(harness, pressed) == "Only the requester can do that."
    assert not image.deleted
    assert len(harness.stability.requests) == 1, "nothing was generated for the stranger"


async def test_buttons_work_after_a_restart(tmp_path: Path) -> None:
    async with FakeStability(api_key=API_KEY) as stability, FakeDiscord() as fake:
        async with bot_on(fake, stability, tmp_path / "data") as first:
            pushed = await first.imagine("before the restart")
            final = await first.finished(pushed)
        async with bot_on(fake, stability, tmp_path / "data") as second:
            reroll = next(c for c in custom_ids(final) if c.startswith("imagine:reroll:"))
            again = await press(second, reroll, final)
            rerolled = await second.finished(again)
    assert "1 of 1 image delivered" in rerolled.content
    assert [r.prompt for r in stability.requests] == ["before the restart"] * 2


async def test_a_server_manager_may_cancel_and_delete_but_not_spend(harness: Harness) -> None:
    from tests.e2e.test_settings import MANAGER

    harness.stability.hold()
    pushed = await harness.imagine("someone's job, second")
    await harness.discord.wait_for(
        lambda f: "imagine:cancel:" in str(f.interaction(pushed.id).original.components)
    )
    progress = harness.discord.interaction(pushed.id).original
    assert progress is not None
    manager = harness.discord.add_user("moderator")
    await press(harness, custom_ids(progress)[0], progress, user_id=manager.id, member_permissions=MANAGER)
    harness.stability.release()
    final = await harness.finished(pushed)
    assert "**Cancelled**" in final.content
    reroll = await press(harness, custom_ids(final)[0], final, user_id=manager.id, member_permissions=MANAGER)
    assert await private_reply(harness, reroll) == "Only the requester can do that."
