"""Making an image fit an upload limit: re-encode (WebP, then JPEG), then downscale, until it fits.

The original stays on disk untouched; this only produces the bytes to upload. Runs in a worker thread.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

_ATTEMPTS = (("WEBP", 90), ("WEBP", 75), ("JPEG", 88), ("JPEG", 72))
_SCALE_STEP = 0.75
_MIN_SIDE = 64


@dataclass(frozen=True)
class Fitted:
    data: bytes
    extension: str  # ".webp" or ".jpg"
    width: int
    height: int


class CannotFit(Exception):
    """Even a tiny version of the image exceeds the limit."""


def fit_image(path: Path, limit: int) -> Fitted:
    """A smaller encoding of the image at `path` that is at most `limit` bytes."""
    with Image.open(path) as original:
        image = original.convert("RGB")
    while True:
        for fmt, quality in _ATTEMPTS:
            buffer = io.BytesIO()
            image.save(buffer, fmt, quality=quality)
            if buffer.tell() <= limit:
                extension = ".webp" if fmt == "WEBP" else ".jpg"
                return Fitted(buffer.getvalue(), extension, image.width, image.height)
        width, height = int(image.width * _SCALE_STEP), int(image.height * _SCALE_STEP)
        if min(width, height) < _MIN_SIDE:
            raise CannotFit(f"{path.name} does not fit in {limit} bytes")
        image = image.resize((width, height), Image.Resampling.LANCZOS)
