"""The demo provider: a deterministic, clearly marked picture, drawn off the event loop after a delay."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest
from PIL import Image

from bot.engine.models import GenerationRequest
from bot.engine.options import GenerationOptions
from bot.engine.ports import ImageProvider
from bot.providers import demo
from bot.providers.demo import MARK, DemoProvider, ascii_text, demo_size, render_demo
from bot.providers.errors import BadRequest


def generation(
    prompt: str = "a red fox in the snow", seed: int = 7, aspect_ratio: str = "1:1"
) -> GenerationRequest:
    return GenerationRequest(prompt, seed, GenerationOptions(aspect_ratio=aspect_ratio))


async def draw(tmp_path: Path, request: GenerationRequest, name: str = "out.png") -> bytes:
    provider: ImageProvider = DemoProvider(delay=0)
    image = await provider.generate(request, tmp_path / name)
    assert (image.seed, image.format) == (request.seed, "png")
    return (tmp_path / name).read_bytes()


async def test_same_prompt_and_seed_give_identical_bytes(tmp_path: Path) -> None:
    first = await draw(tmp_path, generation(), "a.png")
    second = await draw(tmp_path, generation(), "b.png")

    assert first == second


@pytest.mark.parametrize("other", [generation(seed=8), generation("a red fox in the rain")])
async def test_another_seed_or_prompt_gives_another_picture(tmp_path: Path, other: GenerationRequest) -> None:
    base = await draw(tmp_path, generation(), "a.png")

    assert await draw(tmp_path, other, "b.png") != base


async def test_the_picture_is_marked_as_a_demo(tmp_path: Path) -> None:
    data = await draw(tmp_path, generation())

    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        assert image.info["Comment"] == MARK  # in the file's metadata ...
        r, g, b = image.convert("RGB").getpixel((1, 1))  # type: ignore[misc]
    assert (r, g, b) == (200, 20, 40)  # ... and as the red banner across the top


@pytest.mark.parametrize(
    ("ratio", "size"),
    [
        ("1:1", (512, 512)),
        ("16:9", (512, 288)),
        ("9:16", (288, 512)),
        ("21:9", (512, 219)),
        ("4:5", (410, 512)),
    ],
)
async def test_the_size_follows_the_aspect_ratio(tmp_path: Path, ratio: str, size: tuple[int, int]) -> None:
    data = await draw(tmp_path, generation(aspect_ratio=ratio))

    assert demo_size(ratio) == size
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == size


@pytest.mark.parametrize("ratio", ["wide", "0:1", "1:x"])
def test_a_nonsense_aspect_ratio_is_a_bad_request(ratio: str) -> None:
    with pytest.raises(BadRequest):
        demo_size(ratio)


@pytest.mark.parametrize(
    "prompt",
    ["", "城の上に🏰 — “quoted” café", "x" * 400, "word " * 2000, "line\nbreaks\tand\x00control"],
)
def test_any_prompt_can_be_drawn(prompt: str) -> None:
    with Image.open(io.BytesIO(render_demo(prompt, 1, "9:21"))) as image:
        image.verify()


@pytest.mark.parametrize(
    ("text", "ascii"),
    [
        ("café — “ok”", 'cafe - "ok"'),
        ("城🏰", "??"),
        ("  two\n lines\t", "two lines"),
        ("plain", "plain"),
    ],
)
def test_ascii_text_keeps_what_any_font_can_draw(text: str, ascii: str) -> None:
    assert ascii_text(text) == ascii


async def test_the_delay_is_awaited_before_drawing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    async def sleep(seconds: float) -> None:
        calls.append(f"sleep {seconds}")

    original = demo.render_demo

    def render(*args: object) -> bytes:
        calls.append("draw")
        return original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(demo, "render_demo", render)
    await DemoProvider(delay=3.5, sleep=sleep).generate(generation(), tmp_path / "out.png")

    assert calls == ["sleep 3.5", "draw"]


async def test_drawing_happens_off_the_event_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[int] = []
    original = demo.render_demo

    def render(*args: object) -> bytes:
        threads.append(threading.get_ident())
        return original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(demo, "render_demo", render)
    await DemoProvider(delay=0).generate(generation(), tmp_path / "out.png")

    assert threads
    assert threading.get_ident() not in threads


def test_repr_and_name() -> None:
    provider = DemoProvider(delay=0.5)

    assert (provider.name, repr(provider)) == ("demo", "DemoProvider(delay=0.5)")
