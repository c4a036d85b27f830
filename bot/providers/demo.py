"""A provider that calls no API: it draws a placeholder picture locally, so the bot can be tried (and its
concurrency watched) without a key or credits. Same prompt and seed → the same bytes."""

from __future__ import annotations

import asyncio
import hashlib
import io
import unicodedata
from collections.abc import Awaitable, Callable
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps
from PIL.PngImagePlugin import PngInfo

from bot.engine.models import GenerationRequest, ProviderImage
from bot.providers.errors import BadRequest
from bot.providers.files import write_file

MARK = "DEMO — no image API used"
LONG_SIDE = 512

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
_PUNCTUATION = str.maketrans({"—": "-", "–": "-", "‘": "'", "’": "'", "“": '"', "”": '"', "…": "..."})


def demo_size(aspect_ratio: str) -> tuple[int, int]:
    """The picture's size: `LONG_SIDE` on the long side, the other side from `aspect_ratio` ("16:9")."""
    try:
        width, height = (int(part) for part in aspect_ratio.split(":"))
    except ValueError:
        raise BadRequest(f"aspect ratio {aspect_ratio!r}", user_message="unknown aspect ratio") from None
    if width <= 0 or height <= 0:
        raise BadRequest(f"aspect ratio {aspect_ratio!r}", user_message="unknown aspect ratio")
    if width >= height:
        return LONG_SIDE, max(1, round(LONG_SIDE * height / width))
    return max(1, round(LONG_SIDE * width / height)), LONG_SIDE


def ascii_text(text: str) -> str:
    """`text` reduced to printable ASCII (accents dropped, anything else `?`, whitespace collapsed), which
    every font Pillow can load is able to draw."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_PUNCTUATION))
    kept = "".join(c for c in decomposed if not unicodedata.combining(c))
    printable = "".join(c if c.isprintable() else " " for c in kept)
    return " ".join(printable.encode("ascii", "replace").decode("ascii").split())


def _wrap(text: str, font: Font, width: float, max_lines: int) -> list[str]:
    """Greedy word wrap by drawn width; a word too long for a line is cut, and overflow ends in `...`."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        while font.getlength(word) > width:  # a word longer than a line: hard-break it
            cut = max(1, len(word) - 1)
            while cut > 1 and font.getlength(word[:cut]) > width:
                cut -= 1
            if line:
                lines.append(line)
                line = ""
            lines.append(word[:cut])
            word = word[cut:]
        candidate = f"{line} {word}" if line else word
        if font.getlength(candidate) <= width:
            line = candidate
        else:
            lines.append(line)
            line = word
    if line:
        lines.append(line)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1].rstrip(".") + "..."
    return lines


def _line_height(font: Font) -> float:
    return font.size * 1.3 if isinstance(font, ImageFont.FreeTypeFont) else 14.0


def _banner(width: int) -> tuple[Font, list[str]]:
    """The banner's font and lines: the mark on one line in up to 1/25 of the width, or on two lines when a
    narrow picture would make one line too small to read."""
    mark = ascii_text(MARK)
    for lines in ([mark], [part.strip() for part in mark.split(" - ")]):
        size = max(12, width // 25)
        while size >= 12:
            font = ImageFont.load_default(size=size)
            if max(font.getlength(line) for line in lines) <= width * 0.9:
                return font, lines
            size -= 1
    return ImageFont.load_default(size=10), lines


def render_demo(prompt: str, seed: int, aspect_ratio: str) -> bytes:
    """The demo picture as PNG bytes: a gradient and shapes chosen by a hash of prompt and seed, the prompt
    written on it, and a banner saying no image API was used. CPU work: call it off the event loop."""
    width, height = demo_size(aspect_ratio)
    digest = hashlib.sha256(f"{seed}\x00{prompt}".encode()).digest()
    colours = [(digest[i], digest[i + 1], digest[i + 2]) for i in range(0, 30, 3)]
    gradient = Image.linear_gradient("L").rotate(digest[30] % 4 * 90).resize((width, height))
    image = ImageOps.colorize(gradient, colours[0], colours[1]).convert("RGB")
    draw = ImageDraw.Draw(image)
    for i, colour in enumerate(colours[2:8]):
        x, y = digest[8 + i] / 255 * width, digest[16 + i] / 255 * height
        r = (0.08 + digest[24 + i] / 255 * 0.2) * min(width, height)
        box = (x - r, y - r, x + r, y + r)
        if i % 2:
            draw.ellipse(box, outline=colour, width=max(2, round(r / 6)))
        else:
            draw.rectangle(box, fill=colour)

    banner_font, banner_lines = _banner(width)
    banner_line = _line_height(banner_font)
    banner_height = round(banner_line * (len(banner_lines) + 0.6))
    draw.rectangle((0, 0, width, banner_height), fill=(200, 20, 40))
    for n, line in enumerate(banner_lines):
        y = banner_line * (n + 0.8)
        draw.text((width / 2, y), line, font=banner_font, fill="white", anchor="mm")

    font = ImageFont.load_default(size=max(12, min(width, height) // 20))
    line_height = _line_height(font)
    margin = width * 0.06
    max_lines = max(1, int((height - banner_height - 2 * margin) // line_height))
    lines = _wrap(ascii_text(prompt) or "(empty prompt)", font, width - 2 * margin, max_lines)
    top = banner_height + (height - banner_height - line_height * len(lines)) / 2
    panel = (margin / 2, top - margin / 3, width - margin / 2, top + line_height * len(lines) + margin / 3)
    draw.rectangle(panel, fill=(0, 0, 0))
    for n, line in enumerate(lines):
        draw.text((width / 2, top + line_height * (n + 0.5)), line, font=font, fill="white", anchor="mm")

    info = PngInfo()
    info.add_itxt("Comment", MARK)
    info.add_text("Software", "imagine-bot demo provider")
    info.add_text("Seed", str(seed))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


class DemoProvider:
    """`ImageProvider` that waits `delay` seconds (like a real API would) and then draws locally."""

    name = "demo"

    def __init__(
        self, delay: float = 2.0, *, sleep: Callable[[float], Awaitable[object]] = asyncio.sleep
    ) -> None:
        self.delay = delay
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"DemoProvider(delay={self.delay!r})"

    async def generate(self, request: GenerationRequest, dest: Path) -> ProviderImage:
        await self._sleep(self.delay)
        options = request.options
        data = await asyncio.to_thread(render_demo, request.prompt, request.seed, options.aspect_ratio)
        await write_file(dest, data)
        return ProviderImage(seed=request.seed, format="png")
