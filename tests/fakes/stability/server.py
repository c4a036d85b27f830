"""A fake Stability AI REST server on loopback: real validation, real rate limiting, scriptable faults."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Self

from aiohttp import web

from .. import images
from . import responses, spec
from .behaviours import BadBody, Behaviour, Drop, Filtered, Hang, Status, Succeed
from .generate import generate
from .recorded import RateLimiter, RecordedRequest
from .responses import Family

Route = Literal["v2", "v1", "balance", "other"]

#: What ``GET /v1/user/balance`` starts from when no starting balance is configured (never runs out).
UNLIMITED_BALANCE = 1_000_000.0


@dataclass(slots=True)
class _Rule:
    substring: str
    behaviour: Behaviour
    remaining: int | None


class FakeStability:
    """``async with FakeStability(api_key="sk-test") as fake:`` then point the client at ``fake.base_url``.

    ``api_key``: the accepted key(s); None accepts any bearer token. ``image``: the bytes served for every
    success (default a 64×64 PNG); other output formats are converted once and cached. ``credits``: a starting
    balance (402 when a generation costs more than what is left); None never runs out.
    ``rate_limit=(requests, seconds)``: counted per key at receipt; exceeding it → 429 and the key is blocked
    for ``block_seconds`` (every request meanwhile gets 429, with ``Retry-After`` only if ``retry_after``).
    """

    def __init__(
        self,
        api_key: str | Iterable[str] | None = "sk-test",
        latency: float = 0.0,
        image: bytes | None = None,
        credits: float | None = None,
        rate_limit: tuple[int, float] | None = None,
        *,
        block_seconds: float = 60.0,
        retry_after: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api_keys: set[str] | None = (
            {api_key} if isinstance(api_key, str) else (None if api_key is None else set(api_key))
        )
        self.latency = latency
        self.default_behaviour: Behaviour = Succeed()
        self.requests: list[RecordedRequest] = []
        self.max_in_flight = 0
        self.spent = 0.0
        self._start_credits = credits
        self._host, self._port = host, port
        self._clock = clock
        self._rate = rate_limit
        self._block_seconds = block_seconds
        self._retry_after = retry_after
        self._limiter = (
            RateLimiter(rate_limit[0], rate_limit[1], block_seconds, clock)
            if rate_limit is not None
            else None
        )
        self._base_image = image if image is not None else images.png_bytes()
        self._base_format = images.sniff_format(self._base_image) or "png"
        self._image_cache: dict[tuple[str, bool], bytes] = {(self._base_format, False): self._base_image}
        self._b64_cache: dict[tuple[str, bool], bytes] = {}
        self._image_lock = asyncio.Lock()
        self._queue: deque[Behaviour] = deque()
        self._rules: list[_Rule] = []
        self._in_flight = 0
        self._changed = asyncio.Event()
        self._gate = asyncio.Event()
        self._gate.set()
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.base_url = ""

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        app = web.Application(client_max_size=spec.MAX_REQUEST_BYTES)
        app.router.add_post("/v2beta/stable-image/generate/{model:core|ultra|sd3}", self._v2)
        app.router.add_post("/v1/generation/{engine}/text-to-image", self._v1)
        app.router.add_get("/v1/user/balance", self._balance)
        app.router.add_get("/_fake/stats", self._stats)
        app.router.add_route("*", "/{tail:.*}", self._other)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=5.0)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._port))
            # A deep backlog: hundreds of clients connecting at once must not hit SYN retries.
            await web.SockSite(self._runner, sock, backlog=1024).start()
        except BaseException:
            sock.close()
            await self._runner.cleanup()
            raise
        self.port = sock.getsockname()[1]
        self.base_url = f"http://{self._host}:{self.port}"

    async def close(self) -> None:
        """Stop: held, slow and hung requests are cut (connection closed) so shutdown is prompt."""
        self._closing.set()
        self._gate.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def url(self, path: str) -> str:
        return self.base_url + path

    # ----------------------------------------------------------------- scripting

    def queue(self, *behaviours: Behaviour) -> None:
        """The next generation requests (any generation route, FIFO) get these behaviours."""
        self._queue.extend(behaviours)

    def on_prompt(self, substring: str, behaviour: Behaviour, times: int | None = None) -> None:
        """Generation requests whose prompt contains ``substring`` get ``behaviour`` (``times`` times, or
        always). Checked before the queue; the first matching rule wins."""
        self._rules.append(_Rule(substring, behaviour, times))

    def clear_script(self) -> None:
        self._queue.clear()
        self._rules.clear()

    def hold(self) -> None:
        """From now on, generation requests wait (after validation and credits) until :meth:`release`."""
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    # ----------------------------------------------------------------- observation

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def credits(self) -> float | None:
        """Credits left, or None when no starting balance was configured."""
        return None if self._start_credits is None else self._start_credits - self.spent

    def count(self, path_substring: str | None = None) -> int:
        return sum(1 for r in self.requests if path_substring is None or path_substring in r.path)

    def reset_stats(self) -> None:
        self.requests.clear()
        self.max_in_flight = self._in_flight

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Return once ``predicate()`` is true; re-checked whenever a request is received or finishes."""
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._changed.wait()

    async def wait_requests(
        self,
        n: int,
        timeout: float = 5.0,
        path: str | None = None,
    ) -> list[RecordedRequest]:
        """Wait until ``n`` requests (matching ``path`` substring) were received; return the matching ones."""
        try:
            await self.wait_until(lambda: self.count(path) >= n, timeout)
        except TimeoutError:
            raise TimeoutError(f"{self.count(path)} of {n} requests received after {timeout}s") from None
        return [r for r in self.requests if path is None or path in r.path]

    async def wait_finished(self, n: int, timeout: float = 5.0) -> None:
        """Wait until ``n`` requests are over (answered, dropped, hung up on, cancelled or aborted)."""

        def done() -> bool:
            return sum(1 for r in self.requests if r.outcome != "pending") >= n

        try:
            await self.wait_until(done, timeout)
        except TimeoutError:
            raise TimeoutError(f"fewer than {n} requests finished after {timeout}s") from None

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # ----------------------------------------------------------------- handlers

    async def _v2(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "v2")

    async def _v1(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "v1")

    async def _balance(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "balance")

    async def _other(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "other")

    async def _stats(self, request: web.Request) -> web.StreamResponse:
        """Not part of the real API: lets a benchmark in another process read what the fake saw."""
        statuses: dict[str, int] = {}
        for r in self.requests:
            statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
        stats = {
            "requests": len(self.requests),
            "in_flight": self._in_flight,
            "max_in_flight": self.max_in_flight,
            "statuses": statuses,
            "spent": self.spent,
        }
        return responses.json_response(200, stats)

    async def _serve(self, request: web.Request, route: Route) -> web.StreamResponse:
        rec = RecordedRequest(
            method=request.method,
            path=request.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            received_at=self._clock(),
        )
        # Counted at receipt, before anything is awaited (like the real API).
        authorized = self._authorized(rec.api_key)
        blocked_for = None
        if authorized and self._limiter is not None and rec.api_key is not None:
            blocked_for = self._limiter.hit(rec.api_key)
        self._in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            resp = await self._respond(request, rec, route, authorized, blocked_for)
        except asyncio.CancelledError:
            if rec.outcome == "pending":
                rec.outcome = "cancelled"
            raise
        else:
            if rec.outcome == "pending":
                rec.outcome = "answered"
            if rec.outcome == "answered" and rec.status is None:
                rec.status = resp.status
                rec.content_type_sent = resp.headers.get("content-type")
                rec.answered_at = self._clock()
            return resp
        finally:
            self._in_flight -= 1
            self._notify()

    def _authorized(self, key: str | None) -> bool:
        return key is not None and (self.api_keys is None or key in self.api_keys)

    def _record(self, rec: RecordedRequest) -> None:
        self.requests.append(rec)
        self._notify()

    async def _read_body(
        self, request: web.Request, rec: RecordedRequest, route: Route
    ) -> web.Response | None:
        """Parse and record the body; an error response when it is unusable."""
        family: Family = "v2" if route == "v2" else "v1"
        try:
            if route == "v2":
                if request.content_type != "multipart/form-data":
                    await request.read()
                    return responses.error(family, 400, ["content-type: must be multipart/form-data"])
                form = await request.post()
                rec.form = {
                    k: v if isinstance(v, str) else f"<file {getattr(v, 'filename', '?')}>"
                    for k, v in form.items()
                }
            elif route == "v1":
                raw = await request.read()
                try:
                    rec.json = await request.json() if raw else None
                except ValueError:
                    return responses.error(family, 400, ["body: must be valid JSON"])
        except web.HTTPRequestEntityTooLarge:
            return responses.error(family, 413)
        return None

    async def _respond(
        self,
        request: web.Request,
        rec: RecordedRequest,
        route: Route,
        authorized: bool,
        blocked_for: float | None,
    ) -> web.StreamResponse:
        body_error = await self._read_body(request, rec, route)
        self._record(rec)
        family: Family = "v2" if route == "v2" else "v1"
        if not authorized:
            return responses.error(family, 401)
        if blocked_for is not None:
            assert self._rate is not None
            limit, window = self._rate
            return responses.rate_limited(
                family, blocked_for, limit, window, self._block_seconds, self._retry_after
            )
        if route == "balance":
            return responses.json_response(200, {"credits": self._balance_left()})
        if route == "other":
            return responses.error(family, 404, [f"{request.method} {request.path}: no such route"])
        if route == "v1" and request.match_info["engine"] != spec.V1_ENGINE:
            return responses.error(family, 404, [f"engine not found: {request.match_info['engine']}"])
        if body_error is not None:
            return body_error
        return await generate(self, request, rec, v1=route == "v1")

    def _balance_left(self) -> float:
        start = UNLIMITED_BALANCE if self._start_credits is None else self._start_credits
        return round(start - self.spent, 6)

    # ----------------------------------------------------------------- generation

    def _pick(self, prompt: str | None) -> Behaviour:
        for rule in self._rules:
            if prompt is not None and rule.substring in prompt:
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._rules.remove(rule)
                return rule.behaviour
        if self._queue:
            return self._queue.popleft()
        return self.default_behaviour

    def _charge(self, cost: float) -> bool:
        """Take ``cost`` credits; False (nothing taken) when the configured balance cannot cover it."""
        if self._start_credits is not None and self._start_credits - self.spent < cost - 1e-9:
            return False
        self.spent += cost
        return True

    async def _gate_and_pause(self, seconds: float) -> bool:
        """Wait for :meth:`release` (if held), then ``seconds``; False when the fake is closing meanwhile."""
        if not self._gate.is_set():
            await self._gate.wait()
        if seconds > 0 and not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._closing.wait()
        return not self._closing.is_set()

    async def _image(self, fmt: str, filtered: bool) -> bytes:
        """The served image in ``fmt`` (blurred if ``filtered``); converted at most once per fake."""
        key = (fmt, filtered)
        cached = self._image_cache.get(key)
        if cached is not None:
            return cached
        async with self._image_lock:
            cached = self._image_cache.get(key)
            if cached is None:
                target: images.ImageFormat = "jpeg" if fmt == "jpeg" else "webp" if fmt == "webp" else "png"
                if filtered:
                    cached = await asyncio.to_thread(images.blurred, self._base_image, target)
                else:
                    cached = await asyncio.to_thread(images.convert_image, self._base_image, target)
                self._image_cache[key] = cached
        return cached

    async def _image_b64(self, fmt: str, filtered: bool) -> bytes:
        key = (fmt, filtered)
        cached = self._b64_cache.get(key)
        if cached is None:
            cached = base64.b64encode(await self._image(fmt, filtered))
            self._b64_cache[key] = cached
        return cached

    @staticmethod
    def random_seed() -> int:
        return random.randint(1, spec.MAX_SEED)


__all__ = [
    "BadBody",
    "Drop",
    "FakeStability",
    "Filtered",
    "Hang",
    "RecordedRequest",
    "Status",
    "Succeed",
]
