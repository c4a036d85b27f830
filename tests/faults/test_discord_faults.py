"""Discord answering with errors, one fault per test, through the real bot and the fake Discord.

What each fault must cost: nothing lost and nothing posted twice where Discord lets us retry (429) or
offers another path (413 → smaller, 10008 → a new message, 50027 → the channel, 50013 → the interaction);
and when no path is left, the requester is told privately, or at least the operator's log says so.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image

from cogs.imagine.delivery import DeliveryConfig, JobDelivery
from tests.e2e.conftest import Harness
from tests.e2e.test_delivery import WallClock
from tests.fakes.fake_discord import FakeDiscord, InteractionRecord, MessageRecord
from tests.fakes.images import noise_png

pytestmark = pytest.mark.e2e


def original(h: Harness, pushed: InteractionRecord) -> MessageRecord:
    message = h.discord.interaction(pushed.id).original
    assert message is not None
    return message


def job_id_of(h: Harness, pushed: InteractionRecord) -> str:
    found = re.search(r"job `(\w+)`", original(h, pushed).content)
    assert found is not None
    return found.group(1)


def delivery_of(h: Harness, job_id: str) -> JobDelivery:
    cog: Any = h.bot.get_cog("ImagineCog")  # loaded as an extension: a class of its own module copy
    delivery: JobDelivery = cog.deliveries[job_id]
    return delivery


async def start_held(h: Harness, prompts: str) -> InteractionRecord:
    """A job whose generations are all in flight, its progress message showing them."""
    h.stability.hold()
    pushed = await h.imagine(prompts)
    count = len(prompts.split(","))
    await h.stability.wait_requests(count)
    await h.discord.wait_for(
        lambda f: f.interaction(pushed.id).original.content.count("generating (started") == count,
        what="the progress message showing every prompt running",
    )
    return pushed


async def test_429_on_progress_edits_are_retried_with_the_same_update(
    harness_factory: Callable[..., Any],
) -> None:
    async with harness_factory(delivery=DeliveryConfig(min_edit_interval=0.05)) as h:
        h.discord.enable_edit_rate_limit(1, 0.3)  # far stricter than the bot's pace: 429s are certain
        pushed = await start_held(h, "a, b, c")
        h.stability.release()
        final = await h.finished(pushed)
        edits = h.discord.calls("PATCH /webhooks/*/@original")
    refused = [i for i, call in enumerate(edits) if call.status == 429]
    assert refused, "the fake's rate limit was never hit: the test proves nothing"
    for i in refused:
        # discord.py waits Retry-After and sends the very same edit again: no update is dropped.
        refused_payload = edits[i].payload
        retry = next(c for c in edits[i + 1 :] if c.payload != refused_payload or c.status == 200)
        assert (retry.payload, retry.status) == (refused_payload, 200)
    assert "**Done**: 3 of 3 images delivered" in final.content
    assert len(h.images(pushed)) == 3


async def test_a_429_on_an_upload_is_retried_and_the_image_posted_once(harness: Harness) -> None:
    rule = harness.discord.fail_next("POST /webhooks/*", status=429, retry_after=0.1)
    pushed = await harness.imagine("a cat")
    final = await harness.finished(pushed)
    assert len(rule.hits) == 1
    assert [c.status for c in harness.discord.calls("POST /webhooks/*")] == [429, 200]
    assert len(harness.images(pushed)) == 1
    assert "**Done**: 1 of 1 image delivered" in final.content


async def test_an_upload_refused_as_too_large_is_reencoded_and_sent_again(
    harness_factory: Callable[..., Any],
) -> None:
    big = noise_png(120_000)
    async with harness_factory(image=big) as h:
        h.discord.upload_limit = 150_000  # what the interaction says; Discord then refuses 120 KB anyway
        h.discord.fail_next("POST /webhooks/*", status=413, code=40005)
        pushed = await h.imagine("noise")
        final = await h.finished(pushed)
        (message,) = h.images(pushed)
        on_disk = [p.read_bytes() for p in h.services.settings.images_dir.rglob("*.png")]
    (attachment,) = message.attachments
    assert attachment.size <= 75_000, "sent again well under what was refused"
    assert attachment.filename.endswith((".webp", ".jpg"))
    with Image.open(io.BytesIO(attachment.data)) as image:
        image.verify()
    assert on_disk == [big], "the original stays as it was made"
    assert "**Done**: 1 of 1 image delivered" in final.content


async def test_a_deleted_progress_message_is_replaced_and_the_new_one_recorded(harness: Harness) -> None:
    pushed = await start_held(harness, "a, b")
    job_id = job_id_of(harness, pushed)
    delivery = delivery_of(harness, job_id)
    harness.discord.delete_message(original(harness, pushed))  # someone deletes it: edits get 10008
    harness.stability.release()
    await delivery.wait_delivered()

    def replacement(fake: FakeDiscord) -> MessageRecord | None:
        found = [m for m in fake.messages.values() if m.origin == "channel" and "delivered" in m.content]
        return found[0] if found else None

    await harness.discord.wait_for(replacement, what="a new progress message with the summary")
    new = replacement(harness.discord)
    assert new is not None and "**Done**: 2 of 2 images delivered" in new.content
    assert len(harness.images(pushed)) == 2
    job = await harness.services.jobs.get_job(job_id)
    assert job is not None and job.delivery.progress_message_id == new.id, "a restart edits the new one"


async def test_an_invalid_token_answer_moves_everything_to_the_channel(harness: Harness) -> None:
    pushed = await start_held(harness, "a, b")
    # Discord refuses the token (50027) on uploads, although edits would still pass: believe Discord.
    harness.discord.fail_next("POST /webhooks/*", status=401, code=50027, count=10)
    harness.stability.release()
    final = await harness.finished(pushed)
    images = harness.images(pushed)
    assert sorted(m.origin for m in images) == ["channel", "channel"]
    assert "**Done**: 2 of 2 images delivered" in final.content
    assert final.edits[-1].route.startswith("PATCH /channels/")
    webhook_calls = harness.discord.calls("* /webhooks/*")
    last_refusal = max(i for i, c in enumerate(webhook_calls) if c.status == 401)
    assert webhook_calls[last_refusal + 1 :] == [], "the token is never used again"
    assert 1 <= len([c for c in webhook_calls if c.status == 401]) <= 2, "uploads in flight learn it once"


async def test_missing_permissions_while_the_token_lives_fall_back_to_the_interaction(
    harness_factory: Callable[..., Any],
) -> None:
    clock = WallClock()
    async with harness_factory(delivery=DeliveryConfig(min_edit_interval=0.1, wall_clock=clock)) as h:
        pushed = await start_held(h, "a, b")
        clock.offset = 14.5 * 60  # past the bot's switch to the channel, before the token really expires
        h.discord.deny_channel_permissions(h.discord.channel_id)  # the channel answers 50013
        h.stability.release()
        final = await h.finished(pushed)
        images = h.images(pushed)
    assert [m.origin for m in images] == ["followup", "followup"]
    assert "**Done**: 2 of 2 images delivered" in final.content
    assert [c.status for c in h.discord.calls("* /channels/*/messages*")].count(403) >= 1


async def test_missing_permissions_after_the_token_expired_are_told_by_direct_message(
    harness: Harness,
) -> None:
    pushed = await start_held(harness, "a, b")
    job_id = job_id_of(harness, pushed)
    fake = harness.discord
    fake.expire_all_tokens()
    fake.deny_channel_permissions(fake.channel_id)
    harness.stability.release()
    dm = fake.dm_channel_for(fake.user_id)
    await fake.wait_for(lambda f: f.messages_in(dm), what="a direct message to the requester")
    (notice,) = fake.messages_in(dm)
    assert f"/imagine job `{job_id}`" in notice.content and "2 of 2 images made" in notice.content
    assert "Send Messages" in notice.content and notice.allowed_mentions == {"parse": []}
    assert harness.images(pushed) == []
    job = await harness.services.jobs.get_job(job_id)
    assert job is not None
    assert [g.posted_message_id for g in job.generations] == [None, None], "a restart tries them again"


async def test_when_no_path_is_left_the_operator_log_says_so(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    pushed = await start_held(harness, "a")
    job_id = job_id_of(harness, pushed)
    delivery = delivery_of(harness, job_id)
    fake = harness.discord
    dm = fake.dm_channel_for(fake.user_id)
    fake.fail_next(f"POST /channels/{dm}/messages", status=403, code=50007)  # the user refuses DMs
    fake.expire_all_tokens()
    fake.deny_channel_permissions(fake.channel_id)
    harness.stability.release()
    await delivery.wait_delivered()
    assert [c.status for c in fake.calls(f"POST /channels/{dm}/messages")] == [403]
    logged = f"job {job_id}: could not deliver to channel {fake.channel_id} nor tell user {fake.user_id}"
    assert any(logged in r.getMessage() for r in caplog.records)
    assert fake.messages_in(dm) == []
