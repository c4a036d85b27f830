"""Small, deterministic image helpers for tests and benchmarks.

Everything here is cached: the fakes call these once and share the resulting ``bytes`` between all responses.
"""

from __future__ import annotations

import io
import math
import random
from functools import lru_cache
from typing import Literal

from PIL import Image, ImageFilter

ImageFormat = Literal["png", "jpeg", "webp"]

_PIL_FORMAT: dict[str, str] = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


def _colour(seed: int) -> tuple[int, int, int]:
    rng = random.Random(seed)
    return (rng.randrange(256), rng.randrange(256), rng.randrange(256))


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    if fmt == "jpeg" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    image.save(buf, format=_PIL_FORMAT[fmt], **options)
    return buf.getvalue()


def _solid(width: int, height: int, seed: int) -> Image.Image:
    image = Image.new("RGB", (width, height), _colour(seed))
    # A contrasting square in one corner, so the image is not a single flat colour.
    r, g, b = _colour(seed + 1)
    image.paste((r, g, b), (0, 0, max(1, width // 4), max(1, height // 4)))
    return image


@lru_cache(maxsize=64)
def png_bytes(width: int = 64, height: int = 64, seed: int = 0) -> bytes:
    """A small valid PNG whose colours derive from ``seed`` (same arguments → same bytes)."""
    return _encode(_solid(width, height, seed), "png")


@lru_cache(maxsize=64)
def jpeg_bytes(width: int = 64, height: int = 64, seed: int = 0, quality: int = 85) -> bytes:
    """A small valid JPEG, same picture as :func:`png_bytes`."""
    return _encode(_solid(width, height, seed), "jpeg", quality=quality)


@lru_cache(maxsize=64)
def webp_bytes(width: int = 64, height: int = 64, seed: int = 0, quality: int = 80) -> bytes:
    """A small valid WEBP, same picture as :func:`png_bytes`."""
    return _encode(_solid(width, height, seed), "webp", quality=quality)


def image_bytes(fmt: ImageFormat, width: int = 64, height: int = 64, seed: int = 0) -> bytes:
    """The small test image in the given format."""
    if fmt == "png":
        return png_bytes(width, height, seed)
    if fmt == "jpeg":
        return jpeg_bytes(width, height, seed)
    return webp_bytes(width, height, seed)


@lru_cache(maxsize=8)
def noise_png(target_bytes: int = 1_500_000, seed: int = 0) -> bytes:
    """A valid PNG of random RGB noise, about ``target_bytes`` long (incompressible, so the size is honest).

    Cached: benchmarks call it repeatedly and share one ``bytes`` object.
    """
    if target_bytes < 1_000:
        raise ValueError("target_bytes must be at least 1000")
    # Noise does not compress: each pixel costs ~3 bytes, plus one filter byte per row and a little overhead.
    side = max(8, int(math.sqrt(target_bytes / 3)))
    width = side
    height = max(8, round((target_bytes - 200) / (3 * width + 1)))
    data = random.Random(seed).randbytes(width * height * 3)
    image = Image.frombytes("RGB", (width, height), data)
    return _encode(image, "png", compress_level=1)


def sniff_format(data: bytes) -> ImageFormat | None:
    """The format of encoded image bytes, from their magic number; None when unknown."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def convert_image(data: bytes, fmt: ImageFormat) -> bytes:
    """Re-encode ``data`` as ``fmt`` (``data`` itself when it already is). Not cached: cache the result."""
    if sniff_format(data) == fmt:
        return data
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return _encode(image, fmt)


def blurred(data: bytes, fmt: ImageFormat = "png", radius: float = 12.0) -> bytes:
    """A heavily blurred copy of ``data`` (what a CONTENT_FILTERED result looks like). Cache the result."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return _encode(image.convert("RGB").filter(ImageFilter.GaussianBlur(radius)), fmt)


@lru_cache(maxsize=8)
def blurred_png(width: int = 64, height: int = 64, seed: int = 0) -> bytes:
    """The blurred version of :func:`png_bytes` (cached)."""
    return blurred(png_bytes(width, height, seed), "png", radius=max(width, height) / 6)


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) of encoded image bytes; raises if they are not a readable image."""
    with Image.open(io.BytesIO(data)) as image:
        image.verify()
        return image.size
