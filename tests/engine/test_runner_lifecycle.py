"""Retries, shutdown and resumption in the runner, with a scripted provider and injected sleeps."""

import asyncio
import time
from dataclasses import replace
from pathlib import Path

from bot.engine.errors import FailureReason
from bot.engine.events import Event, GenerationStarted, JobFinished, JobResumed
from bot.engine.models import GenerationRequest, GenerationStatus, JobStatus
from bot.engine.progress import JobProgress
from bot.engine.ratelimit import RequestLimiter
from bot.engine.retry import RetryPolicy
from bot.engine.runner import JobRunner, RunnerClosed
from bot.providers.errors import BadRequest, ContentModerated, RateLimited, ServerError
from bot.storage.images import ImageFiles
from tests.engine.test_runner import request
from tests.fakes.providers import ScriptedProvider, waits_for


def failing_first(*errors: Exception):  # type: ignore[no-untyped-def]
    remaining = list(errors)

    async def script(_: GenerationRequest) -> bytes | None:
        if remaining:
            raise remaining.pop(0)
        return None

    return script


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def runner(tmp_path: Path, provider: ScriptedProvider, sleeps: Sleeps, **extra: object) -> JobRunner:
    return JobRunner(
        provider,
        ImageFiles(tmp_path),
        max_concurrent=10,
        timeout=5,
        retry=RetryPolicy(attempts=3, jitter=lambda: 1.0),
        sleep=sleeps,
        **extra,  # type: ignore[arg-type]
    )


async def test_retryable_errors_are_retried_with_backoff(tmp_path: Path) -> None:
    provider = ScriptedProvider({"p": failing_first(ServerError("500"), ServerError("502"))})
    sleeps = Sleeps()
    result = await runner(tmp_path, provider, sleeps).run(request("p"))
    assert result.status is JobStatus.SUCCEEDED
    assert len(provider.requests) == 3
    assert sleeps.delays == [0.5, 1.0]


async def test_retry_after_is_honoured(tmp_path: Path) -> None:
    provider = ScriptedProvider({"p": failing_first(RateLimited("429", retry_after=4))})
    sleeps = Sleeps()
    result = await runner(tmp_path, provider, sleeps).run(request("p"))
    assert result.status is JobStatus.SUCCEEDED and sleeps.delays == [4]


async def test_gives_up_after_the_last_attempt(tmp_path: Path) -> None:
    provider = ScriptedProvider({"p": failing_first(*[ServerError("500")] * 5)})
    result = await runner(tmp_path, provider, Sleeps()).run(request("p"))
    assert len(provider.requests) == 3
    failure = result.generations[0].failure
    assert failure is not None and failure.reason is FailureReason.UNAVAILABLE


async def test_never_retries_what_would_fail_again(tmp_path: Path) -> None:
    provider = ScriptedProvider(
        {
            "m": failing_first(ContentModerated("403")),
            "b": failing_first(BadRequest("400")),
        }
    )
    result = await runner(tmp_path, provider, Sleeps()).run(request("m", "b"))
    assert len(provider.requests) == 2
    assert [g.failure.reason for g in result.generations if g.failure] == [
        FailureReason.MODERATION,
        FailureReason.REJECTED,
    ]


async def test_a_429_blocks_the_key_for_every_generation(tmp_path: Path) -> None:
    limiter = RequestLimiter(100, 10.0, block_seconds=0.3)
    sent: dict[str, list[float]] = {"p": [], "q": []}
    gate = asyncio.Event()
    first_429 = failing_first(RateLimited("429"))

    async def p(req: GenerationRequest) -> bytes | None:
        sent["p"].append(time.monotonic())
        result = await first_429(req)
        return result

    async def q(req: GenerationRequest) -> bytes | None:
        await gate.wait()  # q is sent only after p's 429 has blocked the key
        sent["q"].append(time.monotonic())
        return None

    provider = ScriptedProvider({"p": p})
    r = runner(tmp_path, provider, Sleeps(), limiter=limiter)
    job_p = r.submit(request("p"))
    await provider.wait_until(lambda prov: len(sent["p"]) == 1)
    while limiter._blocked_until == 0:  # noqa: ASYNC110 - the runner reacts to the 429 within a few steps
        await asyncio.sleep(0)
    blocked_at = time.monotonic()
    provider.scripts["q"] = q
    gate.set()
    result = await r.run(request("q"))
    assert (await job_p.wait()).status is JobStatus.SUCCEEDED
    assert result.status is JobStatus.SUCCEEDED
    assert sent["q"][0] - blocked_at >= 0.25, "another job's request waited out the block"
    assert sent["p"][1] - sent["p"][0] >= 0.25, "the retry waited out the block"


async def test_shutdown_waits_for_running_work_then_leaves_the_rest_as_recorded(tmp_path: Path) -> None:
    gate = asyncio.Event()
    provider = ScriptedProvider({"stuck": waits_for(gate)})
    r = runner(tmp_path, provider, Sleeps())
    events: list[Event] = []

    async def record(e: Event) -> None:
        events.append(e)

    r.subscribe(record)
    job = r.submit(request("quick", "stuck"))
    await provider.wait_until(lambda p: "stuck" in p.started)
    await r.shutdown(grace=0.05)
    progress = await job.wait()
    assert [g.status for g in progress.generations] == [GenerationStatus.SUCCEEDED, GenerationStatus.RUNNING]
    assert not any(isinstance(e, JobFinished) for e in events), "an interrupted job is not finished"
    assert r.jobs == {}
    try:
        r.submit(request("late"))
    except RunnerClosed:
        pass
    else:
        raise AssertionError("a closed runner takes no new jobs")


async def test_resume_runs_only_unfinished_generations_with_their_seeds(tmp_path: Path) -> None:
    provider = ScriptedProvider()
    r = runner(tmp_path, provider, Sleeps())
    first = await r.run(request("done", "again", "also"))
    # As a restart would find it: the first finished, the other two queued/running.
    states = (
        first.generations[0],
        replace(first.generations[1], status=GenerationStatus.RUNNING, image=None, finished_at=None),
        replace(
            first.generations[2],
            status=GenerationStatus.QUEUED,
            image=None,
            started_at=None,
            finished_at=None,
        ),
    )
    progress = replace(first, generations=states, finished_at=None, status=JobStatus.RUNNING)
    provider.requests.clear()
    events: list[Event] = []

    async def record(e: Event) -> None:
        events.append(e)

    r.subscribe(record)
    resumed = await r.resume(progress).wait()
    assert resumed.status is JobStatus.SUCCEEDED
    assert sorted((q.prompt, q.seed) for q in provider.requests) == [
        ("again", first.generations[1].seed),
        ("also", first.generations[2].seed),
    ]
    assert isinstance(events[0], JobResumed)
    assert sorted(e.index for e in events if isinstance(e, GenerationStarted)) == [1, 2]
    assert isinstance(resumed, JobProgress)


async def test_queue_positions_are_reported_fairly(tmp_path: Path) -> None:
    gate = asyncio.Event()
    provider = ScriptedProvider({p: waits_for(gate) for p in ("a1", "a2", "a3", "b1")})
    r = JobRunner(provider, ImageFiles(tmp_path), max_concurrent=1, timeout=5)
    from bot.engine.models import JobRequest, Requester

    big = r.submit(request("a1", "a2", "a3"))
    other = JobRequest(
        Requester("u2", "other"), big.progress.request.place, ("b1",), big.progress.request.options
    )
    small = r.submit(other)
    await provider.wait_until(lambda p: p.in_flight == 1)
    await asyncio.sleep(0)  # let the second job's generation take its place in the queue
    assert r.queue_positions(small.job_id) == {0: 1}, "the other user's prompt is next, not fourth"
    assert r.queue_positions(big.job_id) == {1: 2, 2: 3}
    gate.set()
    await big.wait()
    await small.wait()
    assert provider.started[:2] == ["a1", "b1"]
