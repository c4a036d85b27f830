"""RequestLimiter: `limit` requests at once, each counting from its send until one window after its answer;
a block holds everybody; cancelled waiters take nothing.

Waits are real but short (windows of 0.1-0.3 s) and only lower bounds on elapsed time are asserted: the
limiter re-checks its own clock before letting a request go, so it can never be early, only late."""

import asyncio
import time
from contextlib import AsyncExitStack

import pytest

from bot.engine.ratelimit import RequestLimiter


class Clock:
    """A clock that only moves when told to (for counting, never for waiting)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Request:
    """One request through the limiter: when it was let go, and an event that answers it."""

    def __init__(self, limiter: RequestLimiter, latency: float = 0.0) -> None:
        self.limiter = limiter
        self.latency = latency
        self.sent = asyncio.Event()
        self.answer = asyncio.Event()
        self.sent_at: float | None = None
        self.answered_at: float | None = None
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async with self.limiter.slot():
            self.sent_at = time.monotonic()
            self.sent.set()
            if self.latency:
                await asyncio.sleep(self.latency)  # the API taking its time: the input, not a wait for a test
            else:
                await self.answer.wait()
            self.answered_at = time.monotonic()

    async def answered(self) -> float:
        await self.task
        assert self.answered_at is not None
        return self.answered_at


async def sent_at(request: Request) -> float:
    async with asyncio.timeout(5):
        await request.sent.wait()
    assert request.sent_at is not None
    return request.sent_at


async def test_limit_requests_go_at_once_without_waiting() -> None:
    clock = Clock()  # never moves: any wait would hang, and the timeout would fail the test
    limiter = RequestLimiter(5, 10.0, clock=clock)
    async with asyncio.timeout(1), AsyncExitStack() as stack:
        for _ in range(5):
            await stack.enter_async_context(limiter.slot())
        assert limiter.held == 5
        assert limiter.sent == 5


async def test_an_answered_request_counts_until_one_window_after_its_answer() -> None:
    clock = Clock()
    limiter = RequestLimiter(3, 10.0, clock=clock)
    async with limiter.slot():
        clock.now += 4.0  # a slow answer
    clock.now += 9.9
    assert limiter.held == 1  # 13.9 s after the send, but only 9.9 s after the answer
    clock.now += 0.1
    assert limiter.held == 0


async def test_the_next_request_waits_one_window_after_the_earliest_answer_not_after_its_send() -> None:
    window = 0.2
    limiter = RequestLimiter(2, window)
    slow = Request(limiter, latency=0.15)  # answered well after it was sent
    in_flight = Request(limiter)  # never answered during the test: holds its place throughout
    await sent_at(slow)
    await sent_at(in_flight)
    waiting = Request(limiter)
    answered = await slow.answered()
    went = await sent_at(waiting)
    assert went >= answered + window
    assert went >= (slow.sent_at or 0) + window + 0.15  # counting from the send would have let it go early
    assert not in_flight.task.done()
    in_flight.answer.set()
    waiting.answer.set()
    await asyncio.gather(in_flight.task, waiting.task)
    assert limiter.sent == 3


async def test_an_in_flight_request_holds_its_place_until_answered() -> None:
    window = 0.1
    limiter = RequestLimiter(1, window)
    first = Request(limiter, latency=0.2)
    await sent_at(first)
    second = Request(limiter)
    assert limiter.held == 1
    answered = await first.answered()
    assert second.sent_at is None or second.sent_at >= answered + window
    assert await sent_at(second) >= answered + window
    second.answer.set()
    await second.task


async def test_requests_beyond_the_limit_go_as_places_free_never_more_than_the_limit_at_once() -> None:
    window = 0.1
    limiter = RequestLimiter(3, window)
    requests = [Request(limiter, latency=0.05) for _ in range(9)]
    async with asyncio.timeout(5):
        await asyncio.gather(*(r.task for r in requests))
    sends = sorted(r.sent_at or 0 for r in requests)
    answers = sorted(r.answered_at or 0 for r in requests)
    # Request k+3 (in send order) never goes before one window after the k-th answer.
    for k in range(6):
        assert sends[k + 3] >= answers[k] + window
    assert limiter.sent == 9


async def test_block_holds_every_acquirer_until_it_ends() -> None:
    limiter = RequestLimiter(100, 0.05)
    blocked_at = time.monotonic()
    limiter.block(0.2)
    requests = [Request(limiter, latency=0.001) for _ in range(5)]
    assert limiter.held == 0
    for request in requests:
        assert await sent_at(request) >= blocked_at + 0.2
    await asyncio.gather(*(r.task for r in requests))


async def test_block_without_seconds_lasts_block_seconds() -> None:
    limiter = RequestLimiter(100, 0.05, block_seconds=0.2)
    blocked_at = time.monotonic()
    limiter.block()
    request = Request(limiter, latency=0.001)
    assert await sent_at(request) >= blocked_at + 0.2
    await request.task


async def test_a_longer_block_extends_the_current_one_and_a_shorter_one_does_not_cut_it() -> None:
    limiter = RequestLimiter(100, 0.05)
    start = time.monotonic()
    limiter.block(0.1)
    waiting = Request(limiter, latency=0.001)  # waiting on the first block when the second comes
    limiter.block(0.25)
    limiter.block(0.05)
    assert await sent_at(waiting) >= start + 0.25
    await waiting.task


async def test_a_block_also_holds_requests_already_waiting_for_a_window() -> None:
    window = 0.05
    limiter = RequestLimiter(1, window)
    first = Request(limiter, latency=0.001)
    await first.answered()
    waiting = Request(limiter, latency=0.001)  # waiting for the first one's window
    blocked_at = time.monotonic()
    limiter.block(0.25)
    assert await sent_at(waiting) >= blocked_at + 0.25
    await waiting.task


async def test_a_cancelled_waiter_does_not_leak_a_place() -> None:
    window = 0.05
    limiter = RequestLimiter(1, window)
    first = Request(limiter)
    await sent_at(first)
    cancelled = Request(limiter)
    later = Request(limiter)
    cancelled.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled.task
    first.answer.set()
    answered = await first.answered()
    assert await sent_at(later) >= answered + window
    later.answer.set()
    await later.task
    assert cancelled.sent_at is None
    assert limiter.sent == 2
    assert limiter.held == 1  # only `later`, for one window after its answer


async def test_many_cancelled_waiters_leave_every_place_free() -> None:
    clock = Clock()
    limiter = RequestLimiter(2, 10.0, clock=clock)
    holders = [Request(limiter) for _ in range(2)]
    for holder in holders:
        await sent_at(holder)
    waiters = [Request(limiter) for _ in range(10)]
    for waiter in waiters:
        waiter.task.cancel()
    await asyncio.gather(*(w.task for w in waiters), return_exceptions=True)
    for holder in holders:
        holder.answer.set()
    await asyncio.gather(*(h.task for h in holders))
    clock.now += 10.0
    assert limiter.held == 0
    async with asyncio.timeout(1), AsyncExitStack() as stack:  # both places free again, at once
        for _ in range(2):
            await stack.enter_async_context(limiter.slot())
    assert limiter.sent == 4


@pytest.mark.parametrize("wake", ["block", "answer"])
async def test_a_waiter_cancelled_as_the_limiter_changes_is_cancelled_and_sends_nothing(wake: str) -> None:
    # A change wakes every waiter; a cancellation arriving in the same loop iteration must still win, or a
    # cancelled generation would go on to send its request (and be charged) once its place came.
    window = 0.1
    limiter = RequestLimiter(2, window)
    async with limiter.slot():
        pass  # one place taken for a window: waiters wait with a timeout
    other = Request(limiter)
    await sent_at(other)
    waiter = Request(limiter, latency=0.001)
    await asyncio.sleep(0)  # let it start waiting (a yield, not a wait for time)
    if wake == "block":
        limiter.block(0.01)
        waiter.task.cancel()
    else:
        # Cancelled just after the other request's answer woke every waiter (its place still counts).
        other.task.add_done_callback(lambda _: waiter.task.cancel())
        other.answer.set()
    async with asyncio.timeout(5):
        with pytest.raises(asyncio.CancelledError):
            await waiter.task
    assert waiter.sent_at is None
    assert limiter.sent == 2
