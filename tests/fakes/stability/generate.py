"""The generation routes of the fake: validation, behaviour, credits, then the (possibly broken) answer."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from .. import images
from . import responses, spec
from .behaviours import BadBody, Behaviour, Drop, Filtered, Hang, Status, Succeed
from .responses import Family

if TYPE_CHECKING:
    from .server import FakeStability, RecordedRequest


def _cut(request: web.Request) -> web.StreamResponse:
    """Close the connection without an answer (the returned response is never sent)."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=499)


async def generate(
    fake: FakeStability, request: web.Request, rec: RecordedRequest, v1: bool
) -> web.StreamResponse:
    family: Family = "v1" if v1 else "v2"
    accept = request.headers.get("accept", "").lower()
    if v1:
        checked = spec.validate_v1(rec.json)
        if isinstance(checked, spec.V1Error):
            return responses.error(family, checked.status, [checked.message], checked.name)
        json_mode = not accept.startswith("image/")
        model, fmt, seed, samples = spec.V1_ENGINE, "png", checked.seed, checked.samples
    else:
        form = rec.form or {}
        route = request.match_info["model"]
        errors = spec.validate_v2(route, form)
        json_mode = "application/json" in accept
        if not json_mode and accept.strip() and "image/" not in accept and "*/*" not in accept:
            errors.append("accept: must be image/* or application/json")
        if errors:
            return responses.error(family, 400, errors)
        model, fmt, samples = spec.v2_model(route, form), form.get("output_format") or "png", 1
        seed = int(form.get("seed") or 0)
    rec.model = model
    behaviour: Behaviour = fake._pick(rec.prompt)
    rec.behaviour = behaviour

    if isinstance(behaviour, Hang):
        try:
            await fake._closing.wait()
        finally:
            rec.outcome = "hung"
        return _cut(request)
    if isinstance(behaviour, Succeed | Filtered):
        if not fake._charge(spec.PRICES[model] * samples):
            return responses.error(family, 402)
        latency = fake.latency if behaviour.latency is None else behaviour.latency
    else:
        latency = behaviour.latency
    if not await fake._gate_and_pause(latency):
        rec.outcome = "aborted"
        return _cut(request)

    if isinstance(behaviour, Status):
        return responses.status_response(family, behaviour)
    if isinstance(behaviour, BadBody):
        return responses.bad_body_response(behaviour)
    seeds = [(seed + i) % (spec.V1_MAX_SEED + 1) if seed else fake.random_seed() for i in range(samples)]
    answer = await _success(
        fake, v1, json_mode, fmt, seeds, Succeed() if isinstance(behaviour, Drop) else behaviour
    )
    if isinstance(behaviour, Drop):
        return await _drop(fake, request, rec, answer, behaviour.after_bytes)
    if len(answer.parts) == 1:
        return web.Response(body=answer.parts[0], headers=answer.headers)
    return await _stream(fake, request, rec, answer)


@dataclass(frozen=True, slots=True)
class _Answer:
    """A success, as headers and body pieces: the big piece is the fake's shared image (or its base64)."""

    headers: dict[str, str]
    parts: list[bytes]

    @property
    def length(self) -> int:
        return sum(len(p) for p in self.parts)


async def _success(
    fake: FakeStability, v1: bool, json_mode: bool, fmt: str, seeds: list[int], behaviour: Succeed | Filtered
) -> _Answer:
    filtered = isinstance(behaviour, Filtered)
    reason = "CONTENT_FILTERED" if isinstance(behaviour, Filtered) else behaviour.finish_reason
    custom = None if isinstance(behaviour, Filtered) else behaviour.image
    if not json_mode:
        data = custom if custom is not None else await fake._image(fmt, filtered)
        content_type = f"image/{images.sniff_format(data) or fmt}"
        return _Answer({"content-type": content_type, "finish-reason": reason, "seed": str(seeds[0])}, [data])
    b64 = base64.b64encode(custom) if custom is not None else await fake._image_b64(fmt, filtered)
    reason_json = json.dumps(reason).encode()
    parts: list[bytes] = []
    if v1:
        parts.append(b'{"artifacts":[')
        for i, s in enumerate(seeds):
            parts += [b',{"base64":"' if i else b'{"base64":"', b64]
            parts.append(b'","seed":' + str(s).encode() + b',"finishReason":' + reason_json + b"}")
        parts.append(b"]}")
    else:
        parts += [
            b'{"image":"',
            b64,
            b'","finish_reason":' + reason_json + b',"seed":' + str(seeds[0]).encode() + b"}",
        ]
    return _Answer({"content-type": "application/json"}, parts)


async def _start(
    fake: FakeStability, request: web.Request, rec: RecordedRequest, answer: _Answer
) -> web.StreamResponse:
    """Send the status line and headers now (a StreamResponse does not wait for the body)."""
    resp = web.StreamResponse(status=200, headers=answer.headers)
    resp.content_length = answer.length
    await resp.prepare(request)
    rec.status = resp.status
    rec.content_type_sent = answer.headers["content-type"]
    rec.answered_at = fake._clock()
    return resp


async def _stream(
    fake: FakeStability, request: web.Request, rec: RecordedRequest, answer: _Answer
) -> web.StreamResponse:
    """Write the pieces one after the other: the shared base64 is never copied into a per-request body."""
    try:
        resp = await _start(fake, request, rec, answer)
        for part in answer.parts:
            await resp.write(part)
        await resp.write_eof()
    except ConnectionError:
        rec.outcome = "cancelled"
        return _cut(request)
    rec.outcome = "answered"
    return resp


async def _drop(
    fake: FakeStability,
    request: web.Request,
    rec: RecordedRequest,
    answer: _Answer,
    after_bytes: int | None,
) -> web.StreamResponse:
    rec.outcome = "dropped"
    if after_bytes is None:
        return _cut(request)
    body = b"".join(answer.parts)
    resp = await _start(fake, request, rec, answer)
    sent = max(0, min(after_bytes, len(body) - 1))
    if sent:
        await resp.write(memoryview(body)[:sent])
    _cut(request)  # close() flushes what was written, then the connection ends mid-body
    return resp
