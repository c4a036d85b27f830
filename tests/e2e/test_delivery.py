"""Getting images and progress to Discord when limits and failures get in the way."""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image

from cogs.imagine.delivery import DeliveryConfig
from tests.e2e.conftest import Harness
from tests.fakes.images import noise_png

pytestmark = pytest.mark.e2e


async def test_images_over_the_upload_limit_are_reencoded_and_the_original_kept(
    harness_factory: Callable[..., Any],
) -> None:
    big = noise_png(400_000)
    async with harness_factory(image=big) as h:
        h.discord.upload_limit = 150_000
        pushed = await h.imagine("noise one, noise two")
        final = await h.finished(pushed)
        images = h.images(pushed)
        assert len(images) == 2
        for message in images:
            (attachment,) = message.attachments
            assert len(attachment.data) <= 150_000
            assert attachment.filename.endswith((".webp", ".jpg"))
            with Image.open(io.BytesIO(attachment.data)) as image:
                image.verify()
        on_disk = sorted(h.services.settings.images_dir.rglob("*.png"))
        assert [p.read_bytes() == big for p in on_disk] == [True, True]
        assert "2 of 2 images delivered" in final.content


async def test_an_upload_refused_as_too_large_is_sent_smaller(harness_factory: Callable[..., Any]) -> None:
    async with harness_factory(image=noise_png(300_000)) as h:
        h.discord.fail_next("POST /webhooks/*", status=413, code=40005)
        pushed = await h.imagine("a cat")
        final = await h.finished(pushed)
        (message,) = h.images(pushed)
        assert len(message.attachments[0].data) <= 150_000, "well under the file that was refused"
        assert "1 of 1 image delivered" in final.content


async def test_many_prompts_finishing_together_never_draw_a_429(harness_factory: Callable[..., Any]) -> None:
    async with harness_factory(delivery=DeliveryConfig(min_edit_interval=1.5)) as h:
        h.discord.enable_edit_rate_limit(5, 5.0)
        h.stability.hold()
        pushed = await h.imagine(", ".join(f"prompt {i}" for i in range(10)))
        await h.stability.wait_requests(10)
        h.stability.release()
        final = await h.finished(pushed)
        assert h.discord.rate_limited_count == 0
        assert len(h.images(pushed)) == 10
        times = [e.at for e in final.edits]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(gap >= 1.4 for gap in gaps), gaps
        assert len(final.edits) <= 4


async def test_a_deleted_progress_message_is_replaced(harness: Harness) -> None:
    harness.stability.hold()
    pushed = await harness.imagine("a, b")
    await harness.discord.wait_for(
        lambda f: f.interaction(pushed.id).original.content.startswith("**Imagining")
    )
    harness.discord.fail_next("PATCH /webhooks/*/@original", status=404, code=10008, count=10)
    harness.stability.release()

    def replaced(fake: Any) -> bool:
        return any(m.origin == "channel" and "delivered" in m.content for m in fake.messages.values())

    await harness.discord.wait_for(replaced, what="a new progress message in the channel")
    assert len(harness.images(pushed)) == 2


class WallClock:
    """Discord's 15-minute token, without waiting 15 minutes."""

    def __init__(self) -> None:
        import time

        self.offset = 0.0
        self._time = time.time

    def __call__(self) -> float:
        return self._time() + self.offset


async def test_long_jobs_move_to_the_channel_before_the_token_expires(
    harness_factory: Callable[..., Any],
) -> None:
    clock = WallClock()
    async with harness_factory(delivery=DeliveryConfig(min_edit_interval=0.1, wall_clock=clock)) as h:
        h.stability.hold()
        pushed = await h.imagine("slow one, slow two")
        await h.discord.wait_for(lambda f: "generating" in f.interaction(pushed.id).original.content)
        webhook_calls = len(h.discord.calls("* /webhooks/*"))
        clock.offset = 14.5 * 60  # past the bot's switch-over point, before Discord's own expiry
        h.discord.expire_all_tokens()
        h.stability.release()
        final = await h.finished(pushed)
        assert len(h.discord.calls("* /webhooks/*")) == webhook_calls, "no call spent on a dying token"
        images = h.images(pushed)
        assert [m.origin for m in images] == ["channel", "channel"]
        assert "2 of 2 images delivered" in final.content
        assert final.edits[-1].route.startswith("PATCH /channels/")


async def test_an_expired_token_falls_back_to_the_channel(harness: Harness) -> None:
    harness.stability.hold()
    pushed = await harness.imagine("a, b, c")
    await harness.discord.wait_for(lambda f: "generating" in f.interaction(pushed.id).original.content)
    harness.discord.expire_all_tokens()  # Discord ends the token early; the bot only learns it by a 401
    harness.stability.release()
    final = await harness.finished(pushed)
    assert len(harness.images(pushed)) == 3
    assert "3 of 3 images delivered" in final.content
    rejected = [c for c in harness.discord.calls("* /webhooks/*") if c.status == 401]
    # Uploads already in flight may each learn it once; after that the token is never used again.
    assert 1 <= len(rejected) <= 4
