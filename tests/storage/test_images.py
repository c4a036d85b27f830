"""Image files: kept only when they are whole images, moved into place, named by prompt number and seed."""

from pathlib import Path

import pytest

from bot.engine.errors import InvalidImage
from bot.engine.models import ProviderImage
from bot.storage.images import ImageFiles
from tests.fakes.images import jpeg_bytes, noise_png, png_bytes, webp_bytes

WHOLE = {"png": png_bytes(), "jpeg": jpeg_bytes(), "webp": webp_bytes(), "big png": noise_png(50_000)}


@pytest.mark.parametrize("name", WHOLE)
async def test_a_whole_image_is_kept(tmp_path: Path, name: str) -> None:
    files = ImageFiles(tmp_path)
    scratch = files.scratch_path("job", 0)
    scratch.parent.mkdir(parents=True)
    scratch.write_bytes(WHOLE[name])
    kept = await files.keep(scratch, "job", 0, ProviderImage(7, "png"))
    assert kept.path == tmp_path / "job" / f"01-7{kept.path.suffix}"
    assert kept.path.read_bytes() == WHOLE[name] and not scratch.exists()
    assert kept.size_bytes == len(WHOLE[name])


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("png", lambda b: b[:-1]),
        ("big png", lambda b: b[:200] + bytes(len(b) - 200)),  # sound header, the rest zeroed
        ("big png", lambda b: b[: len(b) // 2]),
        ("jpeg", lambda b: b[:-2]),
        ("webp", lambda b: b[:-6]),
        ("png", lambda b: b"\x89PNG\r\n\x1a\n" + b"garbage"),
    ],
)
async def test_a_damaged_image_is_refused(tmp_path: Path, name: str, damage: object) -> None:
    files = ImageFiles(tmp_path)
    scratch = files.scratch_path("job", 0)
    scratch.parent.mkdir(parents=True)
    scratch.write_bytes(damage(WHOLE[name]))  # type: ignore[operator]
    with pytest.raises(InvalidImage):
        await files.keep(scratch, "job", 0, ProviderImage(7, "png"))
    assert not (tmp_path / "job" / "01-7.png").exists()
