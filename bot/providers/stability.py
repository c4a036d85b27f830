"""Stability AI's REST API as an `ImageProvider`: the v2beta stable-image routes (multipart form in, raw image
streamed to disk out) and the legacy v1 SDXL route (JSON both ways), through one request choke point."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

import aiohttp

from bot.engine.models import GenerationRequest, ProviderImage
from bot.providers.errors import (
    BadRequest,
    ContentFiltered,
    InvalidResponse,
    ProviderError,
    ProviderTimeout,
    ProviderUnreachable,
    ServerError,
    error_for_status,
)
from bot.providers.files import ScratchWriter, write_file

log = logging.getLogger(__name__)

ACCEPT_IMAGE: Final = "image/*"
ACCEPT_JSON: Final = "application/json"
V2_ROUTE: Final = "/v2beta/stable-image/generate"
V1_ENGINE: Final = "stable-diffusion-xl-1024-v1-0"
SDXL_SIZES: Final = (
    (1024, 1024), (1152, 896), (896, 1152), (1216, 832), (1344, 768), (768, 1344), (1536, 640), (640, 1536),
)  # fmt: skip

CHUNK_BYTES = 64 * 1024
_ERROR_BODY_LIMIT = 64 * 1024  # an error page is read only this far: enough for any JSON error
_HEAD_BYTES = 12  # enough for every signature below (WEBP needs 12)


def sdxl_size(aspect_ratio: str) -> tuple[int, int]:
    """The SDXL v1 size whose shape is closest to `aspect_ratio` ("16:9"), compared as ratios on a log scale
    (so 2:3 and 3:2 are treated alike); a tie goes to the less elongated size."""
    width, height = (int(part) for part in aspect_ratio.split(":"))
    target = Fraction(width, height)

    def distance(size: tuple[int, int]) -> tuple[Fraction, Fraction]:
        ratio = Fraction(*size)
        return max(ratio / target, target / ratio), max(ratio, 1 / ratio)

    return min(SDXL_SIZES, key=distance)


def sniff_format(head: bytes) -> str | None:
    """The format ("png", "jpeg" or "webp") of an encoded image from its first bytes; None if unknown."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def v2_request(request: GenerationRequest) -> tuple[str, list[tuple[str, str]]]:
    """The v2beta route and form fields for one generation."""
    options = request.options
    fields = [("prompt", request.prompt)]
    if options.model in ("core", "ultra"):
        path = f"{V2_ROUTE}/{options.model}"
    elif options.model.startswith("sd3"):
        path = f"{V2_ROUTE}/sd3"
        fields.append(("model", options.model))
    else:
        raise BadRequest(f"model {options.model!r} has no Stability route", user_message="unknown model")
    if options.negative_prompt:
        fields.append(("negative_prompt", options.negative_prompt))
    fields += [("aspect_ratio", options.aspect_ratio), ("seed", str(request.seed)), ("output_format", "png")]
    if options.style:
        fields.append(("style_preset", options.style))
    return path, fields


def v1_body(request: GenerationRequest) -> dict[str, Any]:
    """The legacy v1 text-to-image JSON body for one generation."""
    options = request.options
    prompts: list[dict[str, Any]] = [{"text": request.prompt, "weight": 1}]
    if options.negative_prompt:
        prompts.append({"text": options.negative_prompt, "weight": -1})
    width, height = sdxl_size(options.aspect_ratio)
    body: dict[str, Any] = {
        "text_prompts": prompts,
        "width": width,
        "height": height,
        "cfg_scale": 7,
        "steps": 30,
        "seed": request.seed,
        "samples": 1,
    }
    if options.style:
        body["style_preset"] = options.style
    return body


def parse_error_body(raw: bytes) -> tuple[list[str], str]:
    """The API's own messages and error name from an error body; ([], "") when it is not the API's JSON
    (a proxy's HTML page, an empty body)."""
    try:
        data = json.loads(raw)
    except ValueError:
        return [], ""
    if not isinstance(data, dict):
        return [], ""
    name = data.get("name")
    errors = data.get("errors")
    messages = [str(error) for error in errors] if isinstance(errors, list) else []
    message = data.get("message")
    if isinstance(message, str) and message:
        messages.append(message)
    return messages, name if isinstance(name, str) else ""


def check_finish_reason(reason: object) -> None:
    if reason in (None, "SUCCESS"):
        return
    if reason == "CONTENT_FILTERED":
        raise ContentFiltered("finish reason CONTENT_FILTERED: the image came back blurred")
    raise ServerError(f"finish reason {reason!r}")


def _seed(value: object, fallback: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    return fallback


def _image_format(head: bytes) -> str:
    if not head:
        raise InvalidResponse("empty body where an image was expected")
    fmt = sniff_format(head)
    if fmt is None:
        raise InvalidResponse(f"body is not a PNG, JPEG or WEBP image (starts with {head[:8]!r})")
    return fmt


def _decode_image(encoded: object) -> tuple[bytes, str]:
    if not isinstance(encoded, str) or not encoded:
        raise InvalidResponse("no base64 image in the JSON answer")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidResponse("the JSON answer's image is not valid base64") from exc
    return data, _image_format(data[:_HEAD_BYTES])


async def _json_object(response: aiohttp.ClientResponse) -> dict[str, Any]:
    if response.content_type != ACCEPT_JSON:
        raise InvalidResponse(f"expected JSON, got {response.content_type!r}")
    raw = await response.read()
    try:
        data = await asyncio.to_thread(json.loads, raw)  # a base64 image is ~2 MB: parse off the loop
    except ValueError as exc:
        raise InvalidResponse("the JSON answer is not valid JSON") from exc
    if not isinstance(data, dict):
        raise InvalidResponse("the JSON answer is not an object")
    return data


async def _read_head(content: aiohttp.StreamReader) -> bytes:
    head = b""
    while len(head) < _HEAD_BYTES:
        chunk = await content.read(_HEAD_BYTES - len(head))
        if not chunk:
            break
        head += chunk
    return head


async def _read_capped(content: aiohttp.StreamReader, limit: int) -> bytes:
    body = bytearray()
    async for chunk in content.iter_chunked(CHUNK_BYTES):
        body += chunk
        if len(body) >= limit:
            break
    return bytes(body[:limit])


class StabilityClient:
    """`ImageProvider` for api.stability.ai. With `accept="image/*"` (the default) the image is streamed to
    disk as it arrives; `accept="application/json"` asks for base64 JSON instead (held whole in memory)."""

    name = "stability"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        api_key: str,
        base_url: str,
        *,
        request_timeout: float = 120,
        accept: str = ACCEPT_IMAGE,
    ) -> None:
        if accept not in (ACCEPT_IMAGE, ACCEPT_JSON):
            raise ValueError(f"accept must be {ACCEPT_IMAGE!r} or {ACCEPT_JSON!r}, not {accept!r}")
        self._session = session
        self._key = api_key
        self.base_url = base_url.rstrip("/")
        self.request_timeout = request_timeout
        self.accept = accept

    def __repr__(self) -> str:
        return (
            f"StabilityClient(base_url={self.base_url!r}, accept={self.accept!r}, "
            f"request_timeout={self.request_timeout!r})"
        )

    @staticmethod
    def create_session(max_connections: int) -> aiohttp.ClientSession:
        """A session whose connection pool matches the bot's concurrency (aiohttp's default is 100).
        Call it inside the running event loop, and close it when the bot stops."""
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=max_connections))

    async def generate(self, request: GenerationRequest, dest: Path) -> ProviderImage:
        try:
            if request.options.model == V1_ENGINE:
                return await self._generate_v1(request, dest)
            return await self._generate_v2(request, dest)
        except ProviderError:
            # Never leave a half-written or filtered image where a caller might pick it up.
            await asyncio.to_thread(dest.unlink, missing_ok=True)
            raise

    async def balance(self) -> float:
        """The account's remaining credits."""
        async with self._request("GET", "/v1/user/balance", accept=ACCEPT_JSON) as response:
            body = await _json_object(response)
        credits = body.get("credits")
        if isinstance(credits, bool) or not isinstance(credits, int | float):
            raise InvalidResponse("the balance answer has no numeric `credits`")
        return float(credits)

    async def _generate_v2(self, request: GenerationRequest, dest: Path) -> ProviderImage:
        path, fields = v2_request(request)
        form = aiohttp.FormData(fields, default_to_multipart=True)
        async with self._request("POST", path, accept=self.accept, data=form) as response:
            if self.accept == ACCEPT_JSON:
                body = await _json_object(response)
                return await self._write_json_image(body, "image", body.get("finish_reason"), request, dest)
            # Both headers come before the body: a filtered image is never downloaded.
            check_finish_reason(response.headers.get("finish-reason"))
            seed = _seed(response.headers.get("seed"), request.seed)
            fmt = await self._stream_image(response, dest)
        return ProviderImage(seed, fmt)

    async def _generate_v1(self, request: GenerationRequest, dest: Path) -> ProviderImage:
        path = f"/v1/generation/{V1_ENGINE}/text-to-image"
        async with self._request("POST", path, accept=ACCEPT_JSON, json_body=v1_body(request)) as response:
            body = await _json_object(response)
        artifacts = body.get("artifacts")
        if not isinstance(artifacts, list) or not artifacts or not isinstance(artifacts[0], dict):
            raise InvalidResponse("the v1 answer has no artifacts")
        artifact: dict[str, Any] = artifacts[0]
        return await self._write_json_image(artifact, "base64", artifact.get("finishReason"), request, dest)

    @staticmethod
    async def _write_json_image(
        body: dict[str, Any], key: str, finish_reason: object, request: GenerationRequest, dest: Path
    ) -> ProviderImage:
        check_finish_reason(finish_reason)
        data, fmt = await asyncio.to_thread(_decode_image, body.get(key))
        await write_file(dest, data)
        return ProviderImage(_seed(body.get("seed"), request.seed), fmt)

    @staticmethod
    async def _stream_image(response: aiohttp.ClientResponse, dest: Path) -> str:
        if not response.content_type.startswith("image/"):
            raise InvalidResponse(f"expected an image, got {response.content_type!r}")
        head = await _read_head(response.content)
        fmt = _image_format(head)  # checked before the file exists
        async with ScratchWriter(dest) as writer:
            await writer.write(head)
            async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                await writer.write(chunk)
        return fmt

    @asynccontextmanager
    async def _request(
        self,
        method: str,
        path: str,
        *,
        accept: str,
        data: aiohttp.FormData | None = None,
        json_body: dict[str, Any] | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """The one place a request is sent: yields a 2xx response whose body the caller reads inside the
        block (the timeout covers it too); every failure leaves as a `ProviderError`."""
        headers = {"authorization": f"Bearer {self._key}", "accept": accept}
        url = self.base_url + path
        log.debug("stability %s %s", method, path)
        try:
            async with asyncio.timeout(self.request_timeout):
                async with self._session.request(
                    method, url, headers=headers, data=data, json=json_body
                ) as response:
                    log.debug("stability %s %s -> HTTP %s", method, path, response.status)
                    if not 200 <= response.status < 300:
                        raise await self._status_error(response)
                    yield response
        except TimeoutError as exc:  # before ClientError: aiohttp's timeouts are both
            raise ProviderTimeout(f"{method} {path}: no answer within {self.request_timeout:g} s") from exc
        except aiohttp.ClientError as exc:  # refused, reset, disconnected, or a body cut short
            detail = self._scrub(f"{method} {path}: {type(exc).__name__}: {exc}")
            raise ProviderUnreachable(detail) from exc

    async def _status_error(self, response: aiohttp.ClientResponse) -> ProviderError:
        messages, name = parse_error_body(await _read_capped(response.content, _ERROR_BODY_LIMIT))
        messages = [self._scrub(message) for message in messages]
        name = self._scrub(name) or response.reason or ""
        log.debug("stability error HTTP %s %s: %s", response.status, name, messages)
        return error_for_status(response.status, messages, name, response.headers)

    def _scrub(self, text: str) -> str:
        """Text from outside (an exception, the API's words) with the key blanked, should it ever echo it."""
        return text.replace(self._key, "***") if self._key else text
