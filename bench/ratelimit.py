"""Benchmark of a burst against the key's rate limit (issue 4).

300 prompts (12 users × 25, submitted at once) through the engine `open_services` builds with the real
defaults (RATE_LIMIT_REQUESTS=150, RATE_LIMIT_WINDOW=10, MAX_CONCURRENT_GENERATIONS=300), against a fake
Stability server in its own process that answers after 2 s and enforces 150 requests / 10 s per key (one more
blocks the key for 60 s).

The fastest schedule the limit allows is 150 at once and the next 150 ten seconds later: window + latency.
The limiter counts each request until one window after its *answer* (the only moment we know the server has
received it), so its own best is window + 2 × latency. Targets: ratio <= 1.25, zero 429s.

    .venv/bin/python -m bench.ratelimit
"""

from __future__ import annotations

import asyncio
import tempfile
import time

import aiohttp

from bench._support import fake_stability_process, peak_rss_mb

USERS, PROMPTS_EACH = 12, 25
LATENCY = 2.0
IMAGE_BYTES = 50_000
LIMIT, WINDOW = 150, 10.0


async def burst(base_url: str) -> dict[str, float]:
    from bot.app import open_services
    from bot.config import Settings
    from bot.engine.events import Event, GenerationSucceeded
    from bot.engine.models import GenerationStatus, JobRequest, Place, Requester
    from bot.engine.options import GenerationOptions

    finished: list[float] = []

    async def on_event(event: Event) -> None:
        if isinstance(event, GenerationSucceeded):
            finished.append(time.monotonic())

    with tempfile.TemporaryDirectory() as data:
        settings = Settings.from_env(
            {
                "STABILITY_API_KEY": "sk-test",
                "STABILITY_API_BASE": base_url,
                "DATA_DIR": data,
                "MAX_CONCURRENT_GENERATIONS": str(USERS * PROMPTS_EACH),
                "LOG_LEVEL": "WARNING",
            },
            need_discord=False,
        )
        assert (settings.rate_limit_requests, settings.rate_limit_window) == (LIMIT, WINDOW)
        async with open_services(settings) as services:
            services.runner.subscribe(on_event)
            requests = [
                JobRequest(
                    Requester(f"user{u}", f"user {u}"),
                    Place(),
                    tuple(f"user {u} prompt {i}" for i in range(PROMPTS_EACH)),
                    GenerationOptions(),
                )
                for u in range(USERS)
            ]
            cpu, start = time.process_time(), time.monotonic()
            handles = [services.runner.submit(r) for r in requests]
            results = [await h.wait() for h in handles]
            makespan, cpu = time.monotonic() - start, time.process_time() - cpu
    images = sum(r.count(GenerationStatus.SUCCEEDED) for r in results)
    finished = sorted(t - start for t in finished)
    return {
        "images": images,
        "makespan": makespan,
        "first_wave_done": finished[LIMIT - 1] if len(finished) >= LIMIT else float("nan"),
        "second_wave_first": finished[LIMIT] if len(finished) > LIMIT else float("nan"),
        "cpu_s": cpu,
    }


async def fake_stats(base_url: str) -> dict[str, object]:
    async with aiohttp.ClientSession() as session, session.get(f"{base_url}/_fake/stats") as response:
        stats: dict[str, object] = await response.json()
        return stats


async def main() -> None:
    total = USERS * PROMPTS_EACH
    args = (
        "--latency",
        str(LATENCY),
        "--image-bytes",
        str(IMAGE_BYTES),
        "--rate-limit",
        f"{LIMIT}/{WINDOW:g}",
    )
    async with fake_stability_process(*args) as url:
        run = await burst(url)
        stats = await fake_stats(url)
    statuses = stats["statuses"]
    assert isinstance(statuses, dict)
    calls = int(str(stats["requests"]))
    images = int(run["images"])
    ideal, own_best = WINDOW + LATENCY, WINDOW + 2 * LATENCY
    rows = [
        ("burst", f"{USERS} users × {PROMPTS_EACH} prompts = {total}; limit {LIMIT}/{WINDOW:g} s"),
        ("images delivered", f"{images}/{total}"),
        ("makespan", f"{run['makespan']:.2f} s"),
        ("fastest allowed", f"{ideal:.2f} s (150 at once, 150 more {WINDOW:g} s later, + {LATENCY:g} s)"),
        ("ratio", f"{run['makespan'] / ideal:.3f} (target <= 1.25)"),
        ("limiter's own best", f"{own_best:.2f} s, ratio {own_best / ideal:.3f} (window from the answer)"),
        ("150th image at", f"{run['first_wave_done']:.2f} s; 151st at {run['second_wave_first']:.2f} s"),
        (
            "images per second",
            f"{images / run['makespan']:.1f}/s (the key's sustained limit: {LIMIT / WINDOW:g}/s)",
        ),
        ("API calls per image", f"{calls / max(images, 1):.3f} ({calls} calls)"),
        ("429s drawn", f"{statuses.get('429', 0)} (target 0); statuses {statuses}"),
        ("peak RSS", f"{peak_rss_mb():.1f} MB (this process; the fake runs in its own)"),
        ("CPU", f"{run['cpu_s']:.2f} s ({run['cpu_s'] / max(images, 1) * 1000:.1f} ms per image)"),
    ]
    for label, value in rows:
        print(f"{label:<20} {value}")


if __name__ == "__main__":
    asyncio.run(main())
