import asyncio
from pathlib import Path
from typing import Any

import pytest

from bot.engine.errors import FailureReason
from bot.engine.events import (
    Event,
    GenerationCancelled,
    GenerationFailed,
    GenerationStarted,
    GenerationSucceeded,
    JobFinished,
    JobStarted,
)
from bot.engine.models import GenerationStatus, JobRequest, JobStatus, Place, Requester
from bot.engine.options import MAX_SEED, GenerationOptions
from bot.engine.retry import RetryPolicy
from bot.engine.runner import JobRunner, plan_seeds
from bot.providers.errors import ContentModerated, RateLimited
from bot.storage.images import ImageFiles
from tests.fakes.providers import ScriptedProvider, raises, returns, waits_for


def request(*prompts: str, **options: object) -> JobRequest:
    return JobRequest(Requester("u1", "user"), Place(1, 2), prompts, GenerationOptions(**options))  # type: ignore[arg-type]


def make_runner(
    tmp_path: Path, provider: ScriptedProvider, *, limit: int = 10, timeout: float = 5, **extra: Any
) -> JobRunner:
    extra.setdefault("retry", RetryPolicy(attempts=1))
    return JobRunner(provider, ImageFiles(tmp_path), max_concurrent=limit, timeout=timeout, **extra)


async def test_all_generations_of_a_job_run_at_the_same_time(tmp_path: Path) -> None:
    barrier = asyncio.Barrier(5)

    async def meet(_: object) -> None:
        await barrier.wait()  # deadlocks (and times out) unless all five are in flight together

    provider = ScriptedProvider({p: meet for p in "abcde"})
    async with asyncio.timeout(5):
        result = await make_runner(tmp_path, provider).run(request(*"abcde"))
    assert result.status is JobStatus.SUCCEEDED
    assert provider.max_in_flight == 5


async def test_global_limit_holds_across_jobs(tmp_path: Path) -> None:
    gates = {p: asyncio.Event() for p in ["a1", "a2", "a3", "a4", "b1", "b2", "b3", "b4"]}
    provider = ScriptedProvider({p: waits_for(g) for p, g in gates.items()})
    runner = make_runner(tmp_path, provider, limit=3)
    jobs = [runner.submit(request("a1", "a2", "a3", "a4")), runner.submit(request("b1", "b2", "b3", "b4"))]
    for released in range(len(gates)):
        # Exactly as many as the limit allows are in flight before each release, never more.
        await provider.wait_until(
            lambda p, r=released: len(p.started) == min(8, r + 3) and p.in_flight == min(3, 8 - r)
        )
        gates[next(p for p in provider.started if not gates[p].is_set())].set()
    results = [await job.wait() for job in jobs]
    assert provider.max_in_flight == 3
    assert [r.status for r in results] == [JobStatus.SUCCEEDED, JobStatus.SUCCEEDED]


async def test_timeout_fails_only_the_slow_generation(tmp_path: Path) -> None:
    never = asyncio.Event()
    provider = ScriptedProvider({"slow": waits_for(never)})
    result = await make_runner(tmp_path, provider, timeout=0.2).run(request("fast", "slow", "quick"))
    statuses = [g.status for g in result.generations]
    assert statuses == [GenerationStatus.SUCCEEDED, GenerationStatus.FAILED, GenerationStatus.SUCCEEDED]
    failure = result.generations[1].failure
    assert failure is not None and failure.reason is FailureReason.TIMED_OUT
    assert "timed out" in failure.message
    assert result.status is JobStatus.PARTIAL


async def test_failures_carry_a_reason_and_never_take_siblings_down(tmp_path: Path) -> None:
    provider = ScriptedProvider(
        {
            "blocked": raises(ContentModerated("HTTP 403 content_moderation")),
            "limited": raises(RateLimited("HTTP 429")),
            "bug": raises(RuntimeError("boom")),
            "junk": returns(b"<html>not an image</html>"),
        }
    )
    result = await make_runner(tmp_path, provider).run(request("blocked", "ok", "limited", "bug", "junk"))
    reasons = [g.failure.reason if g.failure else None for g in result.generations]
    assert reasons == [
        FailureReason.MODERATION,
        None,
        FailureReason.RATE_LIMITED,
        FailureReason.INTERNAL,
        FailureReason.UNAVAILABLE,
    ]
    assert "moderation" in result.generations[0].failure.message  # type: ignore[union-attr]
    assert "not an image" in result.generations[4].failure.message  # type: ignore[union-attr]
    assert result.generations[1].image is not None and result.generations[1].image.path.exists()
    assert result.status is JobStatus.PARTIAL
    assert not list(tmp_path.rglob("*.part")), "scratch files of failed generations are removed"


async def test_all_failed_is_failed(tmp_path: Path) -> None:
    provider = ScriptedProvider({"x": raises(ContentModerated("no"))})
    result = await make_runner(tmp_path, provider).run(request("x", "x"))
    assert result.status is JobStatus.FAILED


async def test_cancel_stops_queued_and_running_generations(tmp_path: Path) -> None:
    gate = asyncio.Event()
    provider = ScriptedProvider({p: waits_for(gate) for p in ("running1", "running2", "queued")})
    runner = make_runner(tmp_path, provider, limit=2)
    events: list[Event] = []

    async def record(event: Event) -> None:
        events.append(event)

    first_done = asyncio.Event()

    async def on_success(event: Event) -> None:
        if isinstance(event, GenerationSucceeded):
            first_done.set()

    runner.subscribe(record)
    runner.subscribe(on_success)
    job = runner.submit(request("done", "running1", "running2", "queued"))
    await asyncio.wait_for(first_done.wait(), 5)
    await provider.wait_until(lambda p: p.in_flight == 2)
    job.cancel()
    result = await job.wait()
    by_prompt = {g.prompt: g.status for g in result.generations}
    assert by_prompt == {
        "done": GenerationStatus.SUCCEEDED,
        "running1": GenerationStatus.CANCELLED,
        "running2": GenerationStatus.CANCELLED,
        "queued": GenerationStatus.CANCELLED,
    }
    assert result.status is JobStatus.CANCELLED
    assert sum(isinstance(e, GenerationCancelled) for e in events) == 3
    assert isinstance(events[-1], JobFinished) and events[-1].status is JobStatus.CANCELLED
    assert "queued" not in provider.started
    assert provider.in_flight == 0
    assert not list(tmp_path.rglob("*.part"))
    assert runner.jobs == {}


async def test_events_arrive_in_order_to_every_subscriber(tmp_path: Path) -> None:
    provider = ScriptedProvider({"bad": raises(ContentModerated("no"))})
    runner = make_runner(tmp_path, provider)
    seen: dict[str, list[Event]] = {"a": [], "b": []}

    async def broken(event: Event) -> None:
        raise RuntimeError("a subscriber bug must not stop the job")

    for name in seen:
        runner.subscribe(lambda e, name=name: _append(seen[name], e))
    runner.subscribe(broken)
    result = await runner.run(request("good", "bad"))
    assert seen["a"] == seen["b"]
    events = seen["a"]
    assert isinstance(events[0], JobStarted) and isinstance(events[-1], JobFinished)
    for index in (0, 1):
        kinds = [type(e) for e in events if getattr(e, "index", None) == index]
        assert kinds[0] is GenerationStarted and len(kinds) == 2
    assert [type(e) for e in events if getattr(e, "index", None) == 1][1] is GenerationFailed
    assert result.status is JobStatus.PARTIAL


async def _append(events: list[Event], event: Event) -> None:
    events.append(event)


async def test_duplicates_get_their_own_seeds_and_a_given_seed_is_kept(tmp_path: Path) -> None:
    provider = ScriptedProvider()
    runner = make_runner(tmp_path, provider)
    random_result = await runner.run(request("cat", "cat", "cat"))
    assert len({g.seed for g in random_result.generations}) == 3
    seeded = await runner.run(request("cat", "cat", seed=42))
    assert [g.seed for g in seeded.generations] == [42, 43]
    assert sorted(r.seed for r in provider.requests[-2:]) == [42, 43]
    assert all(g.image and g.image.seed == g.seed for g in seeded.generations)


@pytest.mark.parametrize(
    ("count", "seed", "expected"),
    [(3, 7, [7, 8, 9]), (2, MAX_SEED, [MAX_SEED, 1]), (1, 1, [1])],
)
def test_plan_seeds(count: int, seed: int, expected: list[int]) -> None:
    assert plan_seeds(count, seed) == expected


def test_seed_zero_means_random() -> None:
    assert plan_seeds(2, 0, iter([5, 6]).__next__) == [5, 6]


async def test_images_land_in_the_job_folder(tmp_path: Path) -> None:
    result = await make_runner(tmp_path, ScriptedProvider()).run(request("a", "b"))
    paths = [g.image.path for g in result.generations if g.image]
    assert [p.parent for p in paths] == [tmp_path / result.job_id] * 2
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in paths)
