"""The fake Stability server behaves like the real API, and its scripted faults look right from a client."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDictProxy

from tests.fakes.images import (
    image_size,
    jpeg_bytes,
    noise_png,
    png_bytes,
    sniff_format,
    webp_bytes,
)
from tests.fakes.stability import (
    PRICES,
    BadBody,
    Drop,
    FakeStability,
    Filtered,
    Hang,
    Slow,
    Status,
)

KEY = "sk-test"
AUTH = {"authorization": f"Bearer {KEY}"}
REPO_ROOT = Path(__file__).resolve().parents[1]
V1_PATH = "/v1/generation/stable-diffusion-xl-1024-v1-0/text-to-image"


@pytest.fixture
async def fake() -> AsyncIterator[FakeStability]:
    async with FakeStability(api_key=KEY) as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as client:
        yield client


def form(**fields: Any) -> aiohttp.FormData:
    return aiohttp.FormData({k: str(v) for k, v in fields.items()}, default_to_multipart=True)


async def generate(
    session: aiohttp.ClientSession,
    fake: FakeStability,
    route: str = "core",
    accept: str = "image/*",
    headers: dict[str, str] | None = None,
    client_timeout: float | None = None,
    **fields: Any,
) -> tuple[int, CIMultiDictProxy[str], bytes]:
    fields.setdefault("prompt", "a lighthouse at dusk")
    async with session.post(
        fake.url(f"/v2beta/stable-image/generate/{route}"),
        data=form(**fields),
        headers={**AUTH, "accept": accept, **(headers or {})},
        timeout=aiohttp.ClientTimeout(total=client_timeout),
    ) as resp:
        return resp.status, resp.headers, await resp.read()


async def v1(
    session: aiohttp.ClientSession, fake: FakeStability, path: str = V1_PATH, **body: Any
) -> tuple[int, dict[str, Any]]:
    payload = {"text_prompts": [{"text": "a red fox", "weight": 1}], "width": 1024, "height": 1024, **body}
    async with session.post(
        fake.url(path), json=payload, headers={**AUTH, "accept": "application/json"}
    ) as resp:
        return resp.status, await resp.json()


# --------------------------------------------------------------------------- success


async def test_image_mode_returns_raw_png_with_headers(
    fake: FakeStability, session: aiohttp.ClientSession
) -> None:
    status, headers, body = await generate(session, fake, seed=1234, aspect_ratio="16:9")
    assert status == 200
    assert headers["content-type"] == "image/png"
    assert headers["finish-reason"] == "SUCCESS"
    assert headers["seed"] == "1234"
    assert body == png_bytes()
    [rec] = fake.requests
    assert rec.path == "/v2beta/stable-image/generate/core"
    assert rec.form == {"prompt": "a lighthouse at dusk", "seed": "1234", "aspect_ratio": "16:9"}
    assert rec.headers["authorization"] == f"Bearer {KEY}" and rec.api_key == KEY
    assert rec.redacted_headers()["authorization"] == "Bearer <redacted>"
    assert (rec.status, rec.content_type_sent, rec.outcome) == (200, "image/png", "answered")
    assert rec.model == "core"
    assert rec.answered_at is not None and rec.answered_at >= rec.received_at


async def test_json_mode_returns_base64_and_a_random_seed(
    fake: FakeStability, session: aiohttp.ClientSession
) -> None:
    status, headers, body = await generate(session, fake, route="ultra", accept="application/json", seed=0)
    assert status == 200
    assert headers["content-type"] == "application/json"
    payload = json.loads(body)
    assert set(payload) == {"image", "finish_reason", "seed"}
    assert base64.b64decode(payload["image"]) == png_bytes()
    assert payload["finish_reason"] == "SUCCESS"
    assert isinstance(payload["seed"], int) and 0 < payload["seed"] <= 4_294_967_294


@pytest.mark.parametrize(
    ("fmt", "expected"), [("jpeg", "image/jpeg"), ("webp", "image/webp"), ("png", "image/png")]
)
async def test_output_format_sets_content_type_and_bytes(
    fake: FakeStability, session: aiohttp.ClientSession, fmt: str, expected: str
) -> None:
    status, headers, body = await generate(
        session, fake, route="sd3", model="sd3.5-medium", output_format=fmt
    )
    assert status == 200
    assert headers["content-type"] == expected
    assert sniff_format(body) == fmt


async def test_custom_image_is_shared_not_reencoded(session: aiohttp.ClientSession) -> None:
    image = noise_png(200_000)
    async with FakeStability(api_key=KEY, image=image) as server:
        bodies = await asyncio.gather(*(generate(session, server) for _ in range(5)))
    assert all(body == image for _, _, body in bodies)
    assert server._image_cache[("png", False)] is image


async def test_latency_delays_the_answer(session: aiohttp.ClientSession) -> None:
    async with FakeStability(api_key=KEY, latency=0.05) as server:
        server.queue(Slow(0.1))
        await generate(session, server)
        await generate(session, server)
    first, second = server.requests
    assert first.answered_at is not None and first.answered_at - first.received_at >= 0.1
    assert second.answered_at is not None and second.answered_at - second.received_at >= 0.05


async def test_filtered_returns_blurred_image_with_finish_reason(
    fake: FakeStability, session: aiohttp.ClientSession
) -> None:
    fake.queue(Filtered())
    status, headers, body = await generate(session, fake)
    assert status == 200
    assert headers["finish-reason"] == "CONTENT_FILTERED"
    assert body != png_bytes() and image_size(body) == image_size(png_bytes())
    fake.queue(Filtered())
    _, _, body = await generate(session, fake, accept="application/json")
    assert json.loads(body)["finish_reason"] == "CONTENT_FILTERED"


# --------------------------------------------------------------------------- validation and auth


@pytest.mark.parametrize(
    ("route", "fields", "field"),
    [
        ("core", {"prompt": ""}, "prompt"),
        ("core", {"prompt": "x" * 10_001}, "prompt"),
        ("core", {"negative_prompt": "x" * 10_001}, "negative_prompt"),
        ("core", {"aspect_ratio": "4:3"}, "aspect_ratio"),
        ("core", {"seed": "4294967295"}, "seed"),
        ("core", {"seed": "-1"}, "seed"),
        ("core", {"seed": "lucky"}, "seed"),
        ("ultra", {"output_format": "gif"}, "output_format"),
        ("core", {"style_preset": "watercolor"}, "style_preset"),
        ("sd3", {"model": "sd3-large"}, "model"),
    ],
)
async def test_invalid_fields_get_400_with_errors(
    fake: FakeStability, session: aiohttp.ClientSession, route: str, fields: dict[str, Any], field: str
) -> None:
    status, headers, body = await generate(session, fake, route=route, **fields)
    assert status == 400
    assert headers["content-type"] == "application/json"
    payload = json.loads(body)
    assert payload["name"] == "bad_request"
    assert len(payload["id"]) == 32 and int(payload["id"], 16) >= 0
    assert [e.split(":")[0] for e in payload["errors"]] == [field]
    assert fake.spent == 0


async def test_missing_prompt_and_wrong_body_type(
    fake: FakeStability, session: aiohttp.ClientSession
) -> None:
    url = fake.url("/v2beta/stable-image/generate/core")
    async with session.post(url, data=form(seed=1), headers=AUTH) as resp:
        assert resp.status == 400
        assert (await resp.json())["errors"] == ["prompt: is required"]
    for kwargs in ({"data": {"prompt": "urlencoded"}}, {"json": {"prompt": "json"}}):
        async with session.post(url, headers=AUTH, **kwargs) as resp:  # type: ignore[arg-type]
            assert resp.status == 400
            assert (await resp.json())["errors"][0].startswith("content-type:")


async def test_unsupported_accept_is_rejected(fake: FakeStability, session: aiohttp.ClientSession) -> None:
    status, _, body = await generate(session, fake, accept="text/plain")
    assert status == 400
    assert json.loads(body)["errors"][0].startswith("accept:")
    status, headers, _ = await generate(session, fake, accept="*/*")  # aiohttp's default
    assert (status, headers["content-type"]) == (200, "image/png")


@pytest.mark.parametrize("authorization", [None, "Bearer sk-wrong", "sk-test", "Basic sk-test"])
async def test_bad_or_missing_key_is_401(
    fake: FakeStability, session: aiohttp.ClientSession, authorization: str | None
) -> None:
    headers = {"authorization": authorization} if authorization else {}
    async with session.post(
        fake.url("/v2beta/stable-image/generate/core"), data=form(prompt="p"), headers=headers
    ) as resp:
        assert resp.status == 401
        payload = await resp.json()
    assert payload["name"] == "unauthorized" and payload["errors"] and payload["id"]
    async with session.get(fake.url("/v1/user/balance"), headers=headers) as resp:
        assert resp.status == 401
        assert set(await resp.json()) == {"id", "name", "message"}


# --------------------------------------------------------------------------- scripting


async def test_queue_is_fifo_then_normal(fake: FakeStability, session: aiohttp.ClientSession) -> None:
    fake.queue(
        Status(500),
        Status(403),
        Status(429, headers={"Retry-After": "3"}),
        Status(502),
        BadBody("text/html", "<html>oops</html>"),
        BadBody("image/png", b"not a png", headers={"finish-reason": "SUCCESS"}),
        BadBody("image/png", b""),
    )
    results = [await generate(session, fake) for _ in range(8)]
    statuses = [status for status, _, _ in results]
    assert statuses == [500, 403, 429, 502, 200, 200, 200, 200]
    assert json.loads(results[0][2])["name"] == "internal_error"
    moderation = json.loads(results[1][2])
    assert moderation["name"] == "content_moderation" and moderation["errors"]
    assert results[2][1]["retry-after"] == "3"
    assert results[3][1]["content-type"] == "text/html" and b"502 Bad Gateway" in results[3][2]
    assert results[4][1]["content-type"] == "text/html" and results[4][2] == b"<html>oops</html>"
    assert results[5][2] == b"not a png" and results[6][2] == b""
    assert results[7][2] == png_bytes()
    assert fake.spent == PRICES["core"]  # only the real success was charged


async def test_on_prompt_matches_concurrent_requests_and_beats_queue(
    fake: FakeStability, session: aiohttp.ClientSession
) -> None:
    fake.on_prompt("forbidden", Status(403, body={"name": "content_moderation", "errors": ["blocked"]}))
    fake.on_prompt("flaky", Status(500), times=1)
    fake.queue(Status(503))
    prompts = ["ok one", "a forbidden thing", "flaky", "another forbidden", "ok two"]
    results = await asyncio.gather(*(generate(session, fake, prompt=p) for p in prompts))
    by_prompt = {p: status for p, (status, _, _) in zip(prompts, results, strict=True)}
    assert by_prompt["a forbidden thing"] == by_prompt["another forbidden"] == 403
    assert by_prompt["flaky"] == 500
    # The queued 503 goes to whichever plain request came first.
    assert sorted([by_prompt["ok one"], by_prompt["ok two"]]) == [200, 503]
    status, _, _ = await generate(session, fake, prompt="flaky")  # times=1 is used up
    assert status == 200


async def test_invalid_request_does_not_consume_the_queue(
    fake: FakeStability, session: aiohttp.ClientSession
) -> None:
    fake.queue(Status(500))
    assert (await generate(session, fake, aspect_ratio="7:3"))[0] == 400
    assert (await generate(session, fake))[0] == 500


async def test_drop_mid_body_is_a_payload_error(fake: FakeStability, session: aiohttp.ClientSession) -> None:
    fake.queue(Drop(after_bytes=50))
    with pytest.raises(aiohttp.ClientPayloadError):
        await generate(session, fake)
    fake.queue(Drop(after_bytes=0))
    with pytest.raises(aiohttp.ClientPayloadError):
        await generate(session, fake, accept="application/json")
    await fake.wait_finished(2)
    assert [(r.status, r.outcome) for r in fake.requests] == [(200, "dropped"), (200, "dropped")]
    assert (await generate(session, fake))[0] == 200  # the fake itself is fine afterwards


async def test_drop_before_headers_is_server_disconnected(
    fake: FakeStability, session: aiohttp.ClientSession
) -> None:
    fake.queue(Drop(after_bytes=None))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await generate(session, fake)


async def test_hang_is_cut_by_client_timeout(fake: FakeStability, session: aiohttp.ClientSession) -> None:
    fake.queue(Hang())
    with pytest.raises(TimeoutError):
        await generate(session, fake, client_timeout=0.2)
    await fake.wait_finished(1)
    assert fake.requests[0].outcome == "hung" and fake.requests[0].status is None
    assert fake.in_flight == 0


async def test_shutdown_is_prompt_with_hung_held_and_slow_requests(session: aiohttp.ClientSession) -> None:
    server = FakeStability(api_key=KEY)
    await server.start()
    server.on_prompt("hang", Hang())
    server.on_prompt("slow", Slow(60))
    tasks = [asyncio.create_task(generate(session, server, prompt=p)) for p in ("hang", "slow")]
    await server.wait_requests(2)
    server.hold()
    tasks.append(asyncio.create_task(generate(session, server, prompt="held")))
    await server.wait_requests(3)
    started = time.monotonic()
    await server.close()
    assert time.monotonic() - started < 1.0
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, aiohttp.ServerDisconnectedError) for r in results), results
    assert {r.outcome for r in server.requests} == {"hung", "aborted"}


async def test_hold_keeps_all_requests_in_flight_until_release(
    fake: FakeStability, session: aiohttp.ClientSession
) -> None:
    fake.hold()
    accepts = ["image/*", "application/json"]
    tasks = [
        asyncio.create_task(generate(session, fake, prompt=f"image {i}", accept=accepts[i % 2]))
        for i in range(200)
    ]
    await fake.wait_requests(200)
    assert fake.in_flight == fake.max_in_flight == 200
    assert all(r.outcome == "pending" for r in fake.requests)
    fake.release()
    results = await asyncio.gather(*tasks)
    assert [status for status, _, _ in results] == [200] * 200
    assert all(base64.b64decode(json.loads(body)["image"]) == png_bytes() for _, _, body in results[1::2])
    await fake.wait_finished(200)
    assert {(r.outcome, r.status) for r in fake.requests} == {("answered", 200)}
    assert fake.in_flight == 0 and fake.max_in_flight == 200
    assert fake.count("/generate/core") == 200 and fake.count("/v1/") == 0


# --------------------------------------------------------------------------- rate limit


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_rate_limit_counts_at_receipt_and_blocks_the_key(session: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    async with FakeStability(api_key=KEY, rate_limit=(5, 1.0), block_seconds=60, clock=clock) as server:
        server.hold()  # the first five are still in flight when the sixth arrives: it still counts
        held = [asyncio.create_task(generate(session, server)) for _ in range(5)]
        await server.wait_requests(5)
        status, headers, body = await generate(session, server)
        assert status == 429
        assert "retry-after" not in headers
        payload = json.loads(body)
        assert payload["name"] == "rate_limit_exceeded" and "timed out for 60 seconds" in payload["errors"][0]
        server.release()
        assert [s for s, _, _ in await asyncio.gather(*held)] == [200] * 5
        clock.now += 30  # the window has passed, but the key is blocked for 60 s
        assert (await generate(session, server))[0] == 429
        async with session.get(server.url("/v1/user/balance"), headers=AUTH) as resp:
            assert resp.status == 429
        clock.now += 31
        assert (await generate(session, server))[0] == 200


async def test_rate_limit_sliding_window_and_retry_after_flag(session: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    async with FakeStability(
        api_key=KEY, rate_limit=(3, 1.0), block_seconds=10, retry_after=True, clock=clock
    ) as server:
        for _ in range(3):
            assert (await generate(session, server))[0] == 200
            clock.now += 0.4  # requests at t=0, 0.4, 0.8
        # t=1.2: the first one left the window, so this is the 3rd in the last second
        assert (await generate(session, server))[0] == 200
        status, headers, _ = await generate(session, server)
        assert status == 429 and headers["retry-after"] == "10"
        clock.now += 4
        status, headers, _ = await generate(session, server)
        assert status == 429 and headers["retry-after"] == "6"


# --------------------------------------------------------------------------- v1 and balance


async def test_v1_text_to_image(fake: FakeStability, session: aiohttp.ClientSession) -> None:
    status, payload = await v1(session, fake, width=1216, height=832, seed=7, samples=2, style_preset="anime")
    assert status == 200
    assert [a["seed"] for a in payload["artifacts"]] == [7, 8]
    assert all(a["finishReason"] == "SUCCESS" for a in payload["artifacts"])
    assert base64.b64decode(payload["artifacts"][0]["base64"]) == png_bytes()
    assert fake.requests[0].json["width"] == 1216 and fake.requests[0].prompt == "a red fox"
    assert fake.spent == pytest.approx(2 * PRICES["stable-diffusion-xl-1024-v1-0"])


async def test_v1_accept_png_returns_raw_bytes(fake: FakeStability, session: aiohttp.ClientSession) -> None:
    payload = {"text_prompts": [{"text": "a red fox"}], "seed": 3}
    async with session.post(fake.url(V1_PATH), json=payload, headers={**AUTH, "accept": "image/png"}) as resp:
        assert resp.status == 200 and resp.headers["content-type"] == "image/png"
        assert resp.headers["seed"] == "3" and resp.headers["finish-reason"] == "SUCCESS"
        assert await resp.read() == png_bytes()


async def test_v1_errors(fake: FakeStability, session: aiohttp.ClientSession) -> None:
    status, payload = await v1(session, fake, width=512, height=512)
    assert status == 400
    assert set(payload) == {"id", "name", "message"}
    assert payload["name"] == "invalid_sdxl_v1_dimensions"
    status, payload = await v1(session, fake, path="/v1/generation/stable-diffusion-v1-6/text-to-image")
    assert (status, payload["name"]) == (404, "not_found")
    status, payload = await v1(session, fake, text_prompts=[])
    assert status == 400 and "message" in payload
    fake.queue(Status(500))
    status, payload = await v1(session, fake)
    assert status == 500 and set(payload) == {"id", "name", "message"}


async def test_balance_decrements_and_runs_out(session: aiohttp.ClientSession) -> None:
    async def balance(server: FakeStability) -> float:
        async with session.get(server.url("/v1/user/balance"), headers=AUTH) as resp:
            assert resp.status == 200 and resp.headers["content-type"] == "application/json"
            credits = (await resp.json())["credits"]
            assert isinstance(credits, float)
            return credits

    async with FakeStability(api_key=KEY, credits=10.0) as server:
        assert await balance(server) == 10.0
        assert (await generate(session, server))[0] == 200
        assert await balance(server) == 7.0
        status, _, body = await generate(session, server, route="ultra")
        assert status == 402 and json.loads(body)["name"] == "payment_required"
        assert (await generate(session, server, route="sd3", model="sd3.5-flash"))[0] == 200
        server.queue(Status(500))
        assert (await generate(session, server))[0] == 500  # failures are free
        assert await balance(server) == 4.5 and server.credits == 4.5
    async with FakeStability(api_key=KEY) as unlimited:
        before = await balance(unlimited)
        for _ in range(3):
            assert (await generate(session, unlimited, route="ultra"))[0] == 200
        assert await balance(unlimited) == before - 3 * PRICES["ultra"]
        assert unlimited.credits is None


async def test_request_over_10_mib_is_413(fake: FakeStability, session: aiohttp.ClientSession) -> None:
    data = aiohttp.FormData({"prompt": "big"}, default_to_multipart=True)
    blob = io.BytesIO(b"\0" * (10 * 1024 * 1024 + 1))
    data.add_field("image", blob, filename="init.png", content_type="image/png")
    async with session.post(fake.url("/v2beta/stable-image/generate/core"), data=data, headers=AUTH) as resp:
        assert resp.status == 413
        assert (await resp.json())["name"] == "payload_too_large"


async def test_unknown_route_is_json_404(fake: FakeStability, session: aiohttp.ClientSession) -> None:
    async with session.post(
        fake.url("/v2beta/stable-image/generate/turbo"), data=form(prompt="p"), headers=AUTH
    ) as r:
        assert r.status == 404 and (await r.json())["name"] == "not_found"
    assert fake.requests[0].path == "/v2beta/stable-image/generate/turbo"


# --------------------------------------------------------------------------- standalone and images


async def test_standalone_mode_prints_listening_and_exits_on_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.stability",
        "--port",
        "0",
        "--image-bytes",
        "100000",
        "--rate-limit",
        "150/10",
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()  # type: ignore[union-attr]
        assert line.startswith("LISTENING http://127.0.0.1:")
        base_url = line.split()[1]
        async with aiohttp.ClientSession() as client:
            async with client.post(
                base_url + "/v2beta/stable-image/generate/core", data=form(prompt="p"), headers=AUTH
            ) as resp:
                assert resp.status == 200
                assert len(await resp.read()) == len(noise_png(100_000))
            async with client.get(base_url + "/_fake/stats") as resp:
                stats = await resp.json()
        assert stats["requests"] == 1 and stats["statuses"] == {"200": 1}
    finally:
        if proc.returncode is None:
            proc.terminate()
        _, stderr = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 0, stderr.decode()
    assert b"1 requests" in stderr


def test_image_helpers_are_deterministic_and_valid() -> None:
    assert png_bytes(32, 16, seed=3) == png_bytes(32, 16, seed=3)
    assert png_bytes(seed=1) != png_bytes(seed=2)
    assert image_size(png_bytes(32, 16)) == (32, 16)
    assert sniff_format(jpeg_bytes()) == "jpeg" and sniff_format(webp_bytes()) == "webp"
    noise = noise_png()
    assert noise is noise_png()  # cached
    assert abs(len(noise) - 1_500_000) < 30_000
    assert sniff_format(noise) == "png" and image_size(noise)[0] > 500
