"""A client-side limit on requests per API key, so that a burst of jobs never draws a 429.

Stability counts a request when it *receives* it and allows `limit` per `window` seconds; one request too
many blocks the key for 60 s. We cannot see when a request is received, only that it happened between
sending it and getting the answer, so each request counts from when it is sent until one window after its
answer. That never overshoots, whatever the network delays, and still lets `limit` requests go at once.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress

log = logging.getLogger(__name__)


class RequestLimiter:
    def __init__(
        self,
        limit: int = 150,
        window: float = 10.0,
        *,
        block_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.block_seconds = block_seconds
        self._clock = clock
        self._in_flight = 0
        self._releases: list[float] = []  # heap: when each answered request stops counting
        self._blocked_until = 0.0
        self._changed = asyncio.Event()
        self.sent = 0

    @property
    def held(self) -> int:
        """Requests currently counting against the limit."""
        self._expire()
        return self._in_flight + len(self._releases)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait until a request may be sent; hold its place until one window after the answer."""
        await self._acquire()
        try:
            yield
        finally:
            self._in_flight -= 1
            heapq.heappush(self._releases, self._clock() + self.window)
            self._notify()

    def block(self, seconds: float | None = None) -> None:
        """The API said 429: the key is blocked, so nobody sends until the block is over."""
        until = self._clock() + (self.block_seconds if seconds is None else seconds)
        if until > self._blocked_until:
            log.warning(
                "rate limited by the image API: holding every request for %.0fs", until - self._clock()
            )
            self._blocked_until = until
            self._notify()

    async def _acquire(self) -> None:
        while True:
            now = self._clock()
            wait: float | None = self._blocked_until - now
            if wait is not None and wait <= 0:
                self._expire()
                if self._in_flight + len(self._releases) < self.limit:
                    self._in_flight += 1
                    self.sent += 1
                    return
                # Full: the next place frees when the oldest answered request leaves the window, or when an
                # in-flight one is answered (and starts its own window); whichever comes first wakes us.
                wait = self._releases[0] - now if self._releases else None
            self._changed.clear()
            # Not `wait_for`: on Python 3.11 it swallows a cancellation that lands as the event is set, and
            # the cancelled waiter would go on to send its request.
            with suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._changed.wait()

    def _expire(self) -> None:
        now = self._clock()
        while self._releases and self._releases[0] <= now:
            heapq.heappop(self._releases)

    def _notify(self) -> None:
        self._changed.set()
