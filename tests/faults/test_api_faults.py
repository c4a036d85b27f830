"""Issue 4's fault suite: every way the image API misbehaves, through the real engine (JobRunner, RetryPolicy,
RequestLimiter, FairSlots), the real StabilityClient and a FakeStability speaking HTTP on loopback.

Backoff sleeps are injected (recorded, not waited); the limiter's blocks and windows are real but short, and
only lower bounds on time are asserted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.engine.errors import FailureReason
from bot.engine.models import GenerationStatus, JobRequest, JobStatus, Place, Requester
from bot.engine.options import GenerationOptions
from bot.engine.progress import GenerationState, JobProgress
from bot.engine.ratelimit import RequestLimiter
from bot.engine.retry import RetryPolicy
from bot.engine.runner import JobRunner
from bot.providers.stability import StabilityClient
from bot.storage.images import ImageFiles
from tests.fakes.images import noise_png
from tests.fakes.stability import (
    BadBody,
    Behaviour,
    Drop,
    FakeStability,
    Filtered,
    Hang,
    RecordedRequest,
    Status,
    Succeed,
)

KEY = "sk-test-faults"
GENERATE = "/v2beta/stable-image/generate"
NOT_AN_IMAGE = "the image API sent back something that is not an image"


@dataclass
class Engine:
    fake: FakeStability
    runner: JobRunner
    images: Path
    sleeps: list[float] = field(default_factory=list)

    def submit(self, *prompts: str, user: str = "u1") -> Awaitable[JobProgress]:
        request = JobRequest(Requester(user, user), Place(), prompts, GenerationOptions())
        return self.runner.submit(request).wait()

    async def run(self, *prompts: str, user: str = "u1") -> JobProgress:
        async with asyncio.timeout(15):
            return await self.submit(*prompts, user=user)

    def generations(self) -> list[RecordedRequest]:
        return [r for r in self.fake.requests if GENERATE in r.path]

    def statuses(self) -> list[int | None]:
        return [r.status for r in self.generations()]

    def files(self) -> list[Path]:
        return sorted(p for p in self.images.rglob("*") if p.is_file())


Build = Callable[..., Awaitable[Engine]]


@pytest.fixture
async def fake() -> AsyncIterator[FakeStability]:
    async with FakeStability(api_key=KEY) as server:
        yield server


class WatchedLimiter(RequestLimiter):
    """The real limiter, telling the test when a 429 has blocked it."""

    def __init__(self, limit: int, window: float, *, block_seconds: float) -> None:
        super().__init__(limit, window, block_seconds=block_seconds)
        self.blocked = asyncio.Event()
        self.blocked_at = 0.0  # a lower bound on when the first block started (monotonic, like the fake's)

    def block(self, seconds: float | None = None) -> None:
        if not self.blocked.is_set():
            self.blocked_at = time.monotonic()
        super().block(seconds)
        self.blocked.set()


@pytest.fixture
async def build(fake: FakeStability, tmp_path: Path) -> AsyncIterator[Build]:
    async with AsyncExitStack() as stack:

        async def make(
            *,
            server: FakeStability | None = None,
            limiter: RequestLimiter | None = None,
            attempts: int = 3,
            timeout: float = 5.0,
            request_timeout: float = 5.0,
            max_concurrent: int = 50,
            retry: RetryPolicy | None = None,
        ) -> Engine:
            server = server or fake
            session = await stack.enter_async_context(StabilityClient.create_session(max_concurrent))
            client = StabilityClient(session, KEY, server.base_url, request_timeout=request_timeout)
            sleeps: list[float] = []

            async def sleep(seconds: float) -> None:  # backoff is recorded, not waited
                sleeps.append(seconds)
                await asyncio.sleep(0)

            limiter = limiter if limiter is not None else RequestLimiter(150, 0.05, block_seconds=0.05)
            runner = JobRunner(
                client,
                ImageFiles(tmp_path / "images"),
                max_concurrent=max_concurrent,
                timeout=timeout,
                retry=retry or RetryPolicy(attempts=attempts),
                limiter=limiter,
                sleep=sleep,
            )
            stack.push_async_callback(runner.shutdown, 0)
            return Engine(server, runner, tmp_path / "images", sleeps)

        yield make


def delivered(generation: GenerationState) -> bool:
    image = generation.image
    return (
        generation.status is GenerationStatus.SUCCEEDED
        and image is not None
        and image.path.is_file()
        and image.path.read_bytes().startswith(b"\x89PNG")
    )


def failed_with(generation: GenerationState, reason: FailureReason) -> bool:
    failure = generation.failure
    return generation.status is GenerationStatus.FAILED and failure is not None and failure.reason is reason


# ------------------------------------------------------------------ retried, then delivered


async def test_429_twice_then_success_sends_three_requests_and_delivers(
    build: Build, fake: FakeStability
) -> None:
    engine = await build()
    fake.queue(Status(429), Status(429))
    result = await engine.run("a lighthouse at dawn")
    assert delivered(result.generations[0])
    assert engine.statuses() == [429, 429, 200]
    assert len(engine.sleeps) == 2  # one backoff per failed attempt, within the policy's 3 attempts
    first, second, third = engine.generations()
    # Each retry waited out the limiter's block (0.05 s) that the 429 started.
    assert second.received_at >= (first.answered_at or 0) + 0.05
    assert third.received_at >= (second.answered_at or 0) + 0.05


async def test_429_three_times_gives_up_after_the_policys_attempts(build: Build, fake: FakeStability) -> None:
    engine = await build(attempts=3)
    fake.queue(Status(429), Status(429), Status(429))
    result = await engine.run("a lighthouse at dawn")
    assert failed_with(result.generations[0], FailureReason.RATE_LIMITED)
    assert engine.statuses() == [429, 429, 429]
    assert engine.files() == []


async def test_429_with_retry_after_is_honoured_by_the_limiter(build: Build, fake: FakeStability) -> None:
    # The limiter's own block is 30 s: only honouring Retry-After (1 s) lets the retry in before the deadline.
    engine = await build(limiter=RequestLimiter(150, 0.05, block_seconds=30), timeout=4)
    fake.queue(Status(429, headers={"retry-after": "1"}))
    result = await engine.run("a lighthouse at dawn")
    assert delivered(result.generations[0])
    limited, retried = engine.generations()
    assert limited.status == 429 and retried.status == 200
    assert retried.received_at >= (limited.answered_at or 0) + 1.0


@pytest.mark.parametrize(("header", "waited"), [("2", 2.0), ("7200", 5.0)])
async def test_429_with_retry_after_is_honoured_up_to_the_cap_without_a_limiter(
    build: Build, fake: FakeStability, header: str, waited: float
) -> None:
    engine = await build(retry=RetryPolicy(max_retry_after=5.0), timeout=30)
    engine.runner.limiter = None  # then the policy waits out Retry-After itself
    fake.queue(Status(429, headers={"retry-after": header}))
    result = await engine.run("a lighthouse at dawn")
    assert delivered(result.generations[0])
    assert engine.sleeps == [waited]
    assert engine.statuses() == [429, 200]


@pytest.mark.parametrize("code", [500, 502, 503])
async def test_server_error_then_success(build: Build, fake: FakeStability, code: int) -> None:
    engine = await build()
    fake.queue(Status(code))
    result = await engine.run("a lighthouse at dawn")
    assert delivered(result.generations[0])
    assert engine.statuses() == [code, 200]
    assert len(engine.sleeps) == 1


@pytest.mark.parametrize("after_bytes", [None, 0, 40], ids=["before-headers", "after-headers", "mid-body"])
async def test_dropped_connection_then_success(
    build: Build, fake: FakeStability, after_bytes: int | None
) -> None:
    engine = await build()
    fake.queue(Drop(after_bytes))
    result = await engine.run("a lighthouse at dawn")
    assert delivered(result.generations[0])
    assert [r.outcome for r in engine.generations()] == ["dropped", "answered"]
    assert len(engine.files()) == 1  # the half-written first answer left nothing behind


async def test_a_hang_is_cut_by_the_request_timeout_and_retried(build: Build, fake: FakeStability) -> None:
    engine = await build(request_timeout=0.5)  # siblings answer in milliseconds
    fake.on_prompt("stuck", Hang(), times=1)
    result = await engine.run("calm sea", "stuck clock", "quiet field")
    assert all(delivered(g) for g in result.generations)
    assert [r.prompt for r in engine.generations()].count("stuck clock") == 2


async def test_a_hang_that_never_ends_fails_as_timed_out_and_siblings_still_succeed(
    build: Build, fake: FakeStability
) -> None:
    engine = await build(request_timeout=0.5, attempts=2)
    fake.on_prompt("stuck", Hang())
    result = await engine.run("calm sea", "stuck clock", "quiet field")
    calm, stuck, quiet = result.generations
    assert delivered(calm) and delivered(quiet)
    assert failed_with(stuck, FailureReason.TIMED_OUT)
    assert [r.prompt for r in engine.generations()].count("stuck clock") == 2  # the policy's 2 attempts
    assert result.status is JobStatus.PARTIAL


async def test_the_generation_deadline_cuts_a_hang_even_with_a_long_request_timeout(
    build: Build, fake: FakeStability
) -> None:
    engine = await build(timeout=1.0, request_timeout=60)
    fake.on_prompt("stuck", Hang())
    result = await engine.run("calm sea", "stuck clock")
    assert delivered(result.generations[0])
    assert failed_with(result.generations[1], FailureReason.TIMED_OUT)
    assert [r.prompt for r in engine.generations()].count("stuck clock") == 1
    assert len(engine.files()) == 1


# ------------------------------------------------------------------ failed at once, never retried

GARBAGE = bytes(range(256)) * 8


@pytest.mark.parametrize(
    ("behaviour", "detail"),
    [
        (BadBody("text/html", "<html><body>Welcome to the proxy</body></html>"), "text/html"),
        (BadBody("image/png", GARBAGE), "not a PNG"),
        (BadBody("image/png", b""), "empty"),
        (BadBody("image/png", b"\x89PNG\r\n\x1a\n" + GARBAGE), "unreadable image"),
        (BadBody("application/json", b'{"image": "nope"}'), "application/json"),
    ],
    ids=["html-200", "garbage", "empty", "png-signature-then-garbage", "json-when-image-asked"],
)
async def test_a_bad_body_is_a_clear_failure_and_not_retried(
    build: Build, fake: FakeStability, behaviour: Behaviour, detail: str
) -> None:
    engine = await build(attempts=3)
    fake.queue(behaviour)
    result = await engine.run("a lighthouse at dawn", "calm sea")
    bad, good = result.generations
    assert failed_with(bad, FailureReason.UNAVAILABLE)
    assert bad.failure is not None
    assert bad.failure.message == NOT_AN_IMAGE
    assert detail in bad.failure.detail
    assert delivered(good)
    # A body that is not an image is not a transient fault: the policy does not retry it.
    assert [r.prompt for r in engine.generations()].count("a lighthouse at dawn") == 1
    assert engine.sleeps == []
    assert len(engine.files()) == 1


async def test_a_png_with_a_sound_header_but_corrupt_data_is_not_delivered(
    build: Build, fake: FakeStability
) -> None:
    engine = await build()
    image = bytearray(noise_png(20_000))
    image[200:] = bytes(len(image) - 200)  # signature and IHDR intact, the compressed pixels zeroed
    fake.queue(BadBody("image/png", bytes(image)))
    result = await engine.run("a lighthouse at dawn")
    assert failed_with(result.generations[0], FailureReason.UNAVAILABLE)


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        (Status(403), FailureReason.MODERATION),  # name content_moderation
        (Filtered(), FailureReason.FILTERED),
        (Status(401), FailureReason.ACCOUNT),
        (Status(402), FailureReason.ACCOUNT),
        (Status(400, {"name": "bad_request", "errors": ["seed: out of range"]}), FailureReason.REJECTED),
    ],
    ids=["moderation-403", "filtered", "unauthorized-401", "no-credits-402", "bad-request-400"],
)
async def test_final_answers_fail_with_their_reason_after_exactly_one_request(
    build: Build, fake: FakeStability, behaviour: Behaviour, reason: FailureReason
) -> None:
    engine = await build(attempts=5)
    fake.on_prompt("dragon", behaviour)
    result = await engine.run("a red dragon", "calm sea")
    assert failed_with(result.generations[0], reason)
    assert delivered(result.generations[1])
    assert [r.prompt for r in engine.generations()].count("a red dragon") == 1
    assert engine.sleeps == []
    assert len(engine.files()) == 1  # a filtered (blurred) image is never kept


async def test_a_wrong_key_is_an_account_failure_after_one_request_per_prompt(
    build: Build, fake: FakeStability
) -> None:
    engine = await build(attempts=5)
    fake.api_keys = {"sk-some-other-key"}
    result = await engine.run("a red dragon", "calm sea")
    assert all(failed_with(g, FailureReason.ACCOUNT) for g in result.generations)
    assert engine.statuses() == [401, 401]
    assert result.status is JobStatus.FAILED


# ------------------------------------------------------------------ the key's rate limit


async def test_a_429_without_retry_after_holds_every_generation_of_every_job_for_the_block(
    build: Build, fake: FakeStability
) -> None:
    block = 0.3
    # One request at a time (and no window, so a place is free the moment an answer comes back, as in a
    # limiter far from full): every request after the 429 is sent after the client has received it.
    engine = await build(limiter=RequestLimiter(1, 0.0, block_seconds=block))
    fake.queue(Succeed(), Succeed(), Status(429))
    jobs = [engine.submit(f"{user} one", f"{user} two", f"{user} three", user=user) for user in "abc"]
    async with asyncio.timeout(15):
        results = await asyncio.gather(*jobs)
    assert all(delivered(g) for result in results for g in result.generations)
    requests = engine.generations()
    assert [r.status for r in requests] == [200, 200, 429] + [200] * 7
    limited = requests[2]
    assert limited.answered_at is not None
    # Nothing reached the fake while the key was blocked: not the retry, nor any other job's generation.
    assert all(r.received_at >= limited.answered_at + block for r in requests[3:])
    assert len({r.prompt for r in requests[3:]}) == 7


async def test_a_job_submitted_during_a_block_waits_for_its_end(build: Build, fake: FakeStability) -> None:
    block = 0.3
    limiter = WatchedLimiter(150, 10.0, block_seconds=block)  # plenty of places: only the block holds
    engine = await build(limiter=limiter)
    fake.queue(Status(429))
    first = engine.submit("first")
    async with asyncio.timeout(5):
        await limiter.blocked.wait()
    later = engine.submit("later one", "later two", user="b")
    async with asyncio.timeout(15):
        results = await asyncio.gather(first, later)
    assert all(delivered(g) for result in results for g in result.generations)
    limited, *after = engine.generations()
    assert limited.status == 429
    assert sorted(r.prompt or "" for r in after) == ["first", "later one", "later two"]
    assert all(r.received_at >= limiter.blocked_at + block for r in after)


async def test_a_burst_within_the_real_rate_limit_draws_no_429(build: Build) -> None:
    limit, window = 10, 0.5
    async with FakeStability(
        api_key=KEY, latency=0.05, rate_limit=(limit, window), block_seconds=5
    ) as server:
        engine = await build(server=server, limiter=RequestLimiter(limit, window, block_seconds=5))
        jobs = [engine.submit(*(f"user{u} prompt{i}" for i in range(10)), user=f"user{u}") for u in range(4)]
        async with asyncio.timeout(15):
            results = await asyncio.gather(*jobs)
        assert all(delivered(g) for result in results for g in result.generations)
        requests = engine.generations()
        assert len(requests) == 40
        assert [r.status for r in requests] == [200] * 40
        # However the sends were delayed, the fake never saw more than `limit` in one window.
        received = sorted(r.received_at for r in requests)
        assert all(received[k + limit] - received[k] >= window for k in range(len(received) - limit))
        assert server.max_in_flight <= limit
