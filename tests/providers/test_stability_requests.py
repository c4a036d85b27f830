"""What StabilityClient sends, and what it makes of a successful answer, checked against the fake API."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.engine.errors import FailureReason
from bot.engine.options import ASPECT_RATIOS
from bot.providers.errors import BadRequest, ContentFiltered, ServerError
from bot.providers.stability import SDXL_SIZES, V1_ENGINE, StabilityClient, sdxl_size
from tests.fakes import images
from tests.fakes.stability import FakeStability, Filtered, Succeed
from tests.providers.conftest import KEY, MakeClient, generation

V2 = "/v2beta/stable-image/generate"
V1_PATH = f"/v1/generation/{V1_ENGINE}/text-to-image"
JSON = "application/json"


@pytest.mark.parametrize(
    ("model", "path", "model_field"),
    [
        ("core", f"{V2}/core", None),
        ("ultra", f"{V2}/ultra", None),
        ("sd3.5-large", f"{V2}/sd3", "sd3.5-large"),
        ("sd3.5-large-turbo", f"{V2}/sd3", "sd3.5-large-turbo"),
        ("sd3.5-medium", f"{V2}/sd3", "sd3.5-medium"),
        ("sd3.5-flash", f"{V2}/sd3", "sd3.5-flash"),
    ],
)
async def test_each_v2_model_posts_a_multipart_form_to_its_route(
    fake: FakeStability,
    make_client: MakeClient,
    tmp_path: Path,
    model: str,
    path: str,
    model_field: str | None,
) -> None:
    await make_client().generate(generation(model=model, aspect_ratio="16:9"), tmp_path / "out.png")

    [sent] = fake.requests
    assert (sent.method, sent.path) == ("POST", path)
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["accept"] == "image/*"
    assert sent.headers["content-type"].startswith("multipart/form-data")
    expected = {
        "prompt": "a lighthouse at dawn",
        "aspect_ratio": "16:9",
        "seed": "1234",
        "output_format": "png",
    }
    if model_field is not None:
        expected["model"] = model_field
    assert sent.form == expected  # no negative_prompt / style_preset when unset


async def test_negative_prompt_and_style_are_sent_when_set(
    fake: FakeStability, make_client: MakeClient, tmp_path: Path
) -> None:
    request = generation(negative_prompt="fog", style="anime")
    await make_client().generate(request, tmp_path / "out.png")

    [sent] = fake.requests
    assert sent.form is not None
    assert (sent.form["negative_prompt"], sent.form["style_preset"]) == ("fog", "anime")


async def test_v1_engine_posts_the_legacy_json_body(
    fake: FakeStability, make_client: MakeClient, tmp_path: Path
) -> None:
    request = generation(model=V1_ENGINE, aspect_ratio="16:9", negative_prompt="fog", style="anime", seed=77)
    image = await make_client().generate(request, tmp_path / "out.png")

    [sent] = fake.requests
    assert (sent.method, sent.path, sent.headers["accept"]) == ("POST", V1_PATH, JSON)
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json == {
        "text_prompts": [{"text": "a lighthouse at dawn", "weight": 1}, {"text": "fog", "weight": -1}],
        "width": 1344,
        "height": 768,
        "cfg_scale": 7,
        "steps": 30,
        "seed": 77,
        "samples": 1,
        "style_preset": "anime",
    }
    assert (image.seed, image.format) == (77, "png")
    assert (tmp_path / "out.png").read_bytes() == images.png_bytes()


async def test_v1_body_leaves_out_unset_negative_prompt_and_style(
    fake: FakeStability, make_client: MakeClient, tmp_path: Path
) -> None:
    await make_client().generate(generation(model=V1_ENGINE), tmp_path / "out.png")

    [sent] = fake.requests
    assert sent.json["text_prompts"] == [{"text": "a lighthouse at dawn", "weight": 1}]
    assert "style_preset" not in sent.json


@pytest.mark.parametrize(
    ("ratio", "size"),
    [
        ("1:1", (1024, 1024)),
        ("16:9", (1344, 768)),
        ("21:9", (1536, 640)),
        ("3:2", (1216, 832)),
        ("2:3", (896, 1152)),  # 768x1344 is exactly as close on a log scale: the less elongated wins
        ("5:4", (1152, 896)),
        ("4:5", (896, 1152)),
        ("9:16", (768, 1344)),
        ("9:21", (640, 1536)),
    ],
)
def test_sdxl_size_is_the_allowed_size_closest_in_ratio(ratio: str, size: tuple[int, int]) -> None:
    assert sdxl_size(ratio) == size
    assert size in SDXL_SIZES


def test_every_aspect_ratio_has_an_sdxl_size() -> None:
    assert {ratio: sdxl_size(ratio) in SDXL_SIZES for ratio in ASPECT_RATIOS} == dict.fromkeys(
        ASPECT_RATIOS, True
    )


@pytest.mark.parametrize("accept", ["image/*", JSON])
@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
async def test_the_image_is_written_to_dest_in_either_accept_mode(
    fake: FakeStability, make_client: MakeClient, tmp_path: Path, accept: str, fmt: images.ImageFormat
) -> None:
    served = images.image_bytes(fmt, 32, 24, seed=5)
    fake.queue(Succeed(image=served))
    dest = tmp_path / "job" / "scratch.part"  # a missing folder is created

    image = await make_client(accept=accept).generate(generation(seed=99), dest)

    assert fake.requests[0].headers["accept"] == accept
    assert dest.read_bytes() == served
    assert (image.seed, image.format) == (99, fmt)


async def test_a_large_image_streams_to_disk_intact(
    fake: FakeStability, make_client: MakeClient, tmp_path: Path
) -> None:
    served = images.noise_png(1_500_000)
    fake.queue(Succeed(image=served))

    await make_client().generate(generation(), tmp_path / "big.png")

    assert (tmp_path / "big.png").read_bytes() == served


@pytest.mark.parametrize(("accept", "model"), [("image/*", "core"), (JSON, "core"), (JSON, V1_ENGINE)])
async def test_the_seed_comes_from_the_answer(
    make_client: MakeClient, tmp_path: Path, accept: str, model: str
) -> None:
    # Seed 0 asks the API to pick one: only the answer (header or JSON field) can tell which.
    image = await make_client(accept=accept).generate(generation(seed=0, model=model), tmp_path / "out.png")

    assert image.seed != 0


@pytest.mark.parametrize(
    ("accept", "model"), [("image/*", "core"), (JSON, "sd3.5-medium"), (JSON, V1_ENGINE)]
)
async def test_content_filtered_raises_and_leaves_no_file(
    fake: FakeStability, make_client: MakeClient, tmp_path: Path, accept: str, model: str
) -> None:
    fake.queue(Filtered())
    dest = tmp_path / "out.png"

    with pytest.raises(ContentFiltered) as caught:
        await make_client(accept=accept).generate(generation(model=model), dest)

    assert caught.value.reason is FailureReason.FILTERED
    assert not dest.exists()


async def test_a_finish_reason_other_than_success_is_a_server_error(
    fake: FakeStability, make_client: MakeClient, tmp_path: Path
) -> None:
    fake.queue(Succeed(finish_reason="ERROR"))

    with pytest.raises(ServerError):
        await make_client().generate(generation(), tmp_path / "out.png")

    assert not (tmp_path / "out.png").exists()


async def test_an_unknown_model_is_refused_without_a_request(
    fake: FakeStability, make_client: MakeClient, tmp_path: Path
) -> None:
    with pytest.raises(BadRequest):
        await make_client().generate(generation(model="dall-e"), tmp_path / "out.png")

    assert fake.requests == []


def test_accept_must_be_image_or_json(make_client: MakeClient) -> None:
    with pytest.raises(ValueError, match="accept"):
        make_client(accept="text/html")


async def test_balance_reads_the_credits_left(make_client: MakeClient, tmp_path: Path) -> None:
    async with FakeStability(api_key=KEY, credits=50) as fake:
        client = make_client(base_url=fake.base_url)
        before = await client.balance()
        await client.generate(generation(model="core"), tmp_path / "out.png")
        after = await client.balance()

        assert fake.requests[0].path == "/v1/user/balance"
        assert fake.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert (before, after) == (50.0, 47.0)


async def test_create_session_caps_the_connections_in_flight(fake: FakeStability, tmp_path: Path) -> None:
    async with StabilityClient.create_session(max_connections=2) as session:
        client = StabilityClient(session, KEY, fake.base_url, request_timeout=5)
        fake.hold()
        tasks = [
            asyncio.create_task(client.generate(generation(f"p{i}"), tmp_path / f"{i}.png")) for i in range(5)
        ]
        await fake.wait_requests(2)
        await asyncio.sleep(0.05)  # room for a third request to arrive, were the pool not capped
        assert fake.in_flight == 2
        fake.release()
        await asyncio.gather(*tasks)

    assert (fake.count(), fake.max_in_flight) == (5, 2)
