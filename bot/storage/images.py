"""Images on disk: each written to a scratch file as it streams in, checked, then renamed into place under
`<root>/<job>/`, so a crash never leaves a half-written image where a finished one is expected."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from bot.engine.errors import InvalidImage
from bot.engine.models import ImageFile, ProviderImage

_FORMATS = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp", "GIF": "gif"}
EXTENSIONS = {"png": ".png", "jpeg": ".jpg", "webp": ".webp", "gif": ".gif"}


def slug(text: str, limit: int = 40) -> str:
    """A file-name-safe piece of a prompt: `A castle, at dusk!` → `a-castle-at-dusk`."""
    cleaned = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return cleaned[:limit].rstrip("-") or "image"


_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def _ends_properly(path: Path, fmt: str) -> bool:
    """Whether the file ends the way a complete image of its format must."""
    with open(path, "rb") as file:
        size = file.seek(0, os.SEEK_END)
        file.seek(max(size - len(_PNG_END), 0))
        tail = file.read()
        if fmt == "png":
            return tail == _PNG_END
        if fmt == "jpeg":
            return tail.rstrip(b"\x00").endswith(b"\xff\xd9")
        if fmt == "webp":  # RIFF header: the size of everything after the first 8 bytes
            file.seek(4)
            return int.from_bytes(file.read(4), "little") + 8 in (size, size - 1)
    return True


class ImageFiles:
    """The `ImageStore` the engine writes through. `names` gives each image a readable file name stem."""

    def __init__(self, root: Path, *, flat: bool = False) -> None:
        self.root = root
        self.flat = flat  # the CLI's --out: files straight in root, not one folder per job

    def job_dir(self, job_id: str) -> Path:
        return self.root if self.flat else self.root / job_id

    def scratch_path(self, job_id: str, index: int) -> Path:
        return self.job_dir(job_id) / f".{job_id}-{index:02d}.part"

    async def keep(self, scratch: Path, job_id: str, index: int, image: ProviderImage) -> ImageFile:
        return await asyncio.to_thread(self._keep, scratch, job_id, index, image)

    def _keep(self, scratch: Path, job_id: str, index: int, image: ProviderImage) -> ImageFile:
        try:
            with Image.open(scratch) as opened:  # reads the header only
                fmt = _FORMATS.get(opened.format or "")
                width, height = opened.size
        except (FileNotFoundError, UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise InvalidImage(f"unreadable image from provider: {exc}") from exc
        if fmt is None:
            raise InvalidImage(f"unexpected image format {opened.format!r}")
        if not _ends_properly(scratch, fmt):
            # A body cut or garbled after a sound header is not passed off as an image. Checking the end
            # costs one small read; checking every chunk's checksum cost ~2 ms of CPU per image under load.
            raise InvalidImage(f"the {fmt} image from the provider is incomplete or damaged")
        name = f"{job_id}-{index + 1:02d}" if self.flat else f"{index + 1:02d}"
        final = self.job_dir(job_id) / f"{name}-{image.seed}{EXTENSIONS[fmt]}"
        os.replace(scratch, final)
        return ImageFile(final, fmt, width, height, final.stat().st_size, image.seed)

    async def discard(self, scratch: Path) -> None:
        await asyncio.to_thread(scratch.unlink, missing_ok=True)

    async def delete_job(self, job_id: str) -> None:
        """Remove every stored image of a job (a user asked to be forgotten)."""
        if not self.flat:
            await asyncio.to_thread(shutil.rmtree, self.job_dir(job_id), ignore_errors=True)
