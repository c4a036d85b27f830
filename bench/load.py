"""Benchmark of the load test (issue 4): 20 users each send 5 jobs of 5 prompts at once, 500 images.

The real bot runs in its own process against a fake Discord (this process, answering 429 to a sixth edit of
a message within 5 s, like Discord) and a fake Stability server (a third process) that answers each request
after 2 s with a ~1.5 MB PNG and enforces 150 requests / 10 s per key (one more blocks the key for 60 s).
The bot runs with its default rate limit (150 / 10 s), 150 generations at once, 25 prompts a job and 5
active jobs a user.

The fastest schedule the limit allows is 150 requests at once and 150 more every 10 s: for 500 requests,
30 s + one 2 s answer. The limiter counts each request until one window after its *answer*, so its own best
is 3 × 12 s + 2 s. Prints the makespan (first push → last image) against both, images per second against
the key's 15, the bot's peak RSS, API calls per image and the 429s drawn from the API and from Discord.
Targets: every image posted once, ratio <= 1.25, zero 429s, 1.00 API call per image.

    .venv/bin/python -m bench.load [--user-max-active-jobs N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

import aiohttp

from bench._support import ROOT, fake_stability_process
from tests.fakes.fake_discord import FakeDiscord, InteractionRecord

USERS, JOBS_EACH, PROMPTS_EACH = 20, 5, 5
IMAGES = USERS * JOBS_EACH * PROMPTS_EACH
LATENCY, IMAGE_BYTES = 2.0, 1_500_000
LIMIT, WINDOW = 150, 10.0
TIMEOUT = 300.0


@dataclass
class BotProcess:
    rss_mb: float = float("nan")


@asynccontextmanager
async def bot_process(fake: FakeDiscord, env: dict[str, str]) -> AsyncIterator[BotProcess]:
    """`bench._bot_process` against `fake`, ready for interactions; its peak RSS is known after exit."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench._bot_process",
        fake.rest_base,
        fake.gateway_url,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        stdout=asyncio.subprocess.PIPE,
    )
    result = BotProcess()
    try:
        await fake.wait_identified(timeout=30)
        await fake.wait_for(lambda f: fake.guild_id in f.guild_commands, timeout=30)
        yield result
    finally:
        process.terminate()
        out, _ = await process.communicate()
        lines = out.decode().strip().splitlines()
        if lines:
            result.rss_mb = json.loads(lines[-1])["rss_mb"]


async def push_everything(fake: FakeDiscord) -> list[InteractionRecord]:
    users = [fake.add_user(f"user{u:02d}") for u in range(USERS)]
    texts = [
        (user.id, ", ".join(f"user {u:02d} job {j} prompt {i}" for i in range(PROMPTS_EACH)))
        for u, user in enumerate(users)
        for j in range(JOBS_EACH)
    ]
    return await asyncio.gather(
        *(fake.push_slash_command("imagine", {"prompts": text}, user_id=uid) for uid, text in texts)
    )


def over(fake: FakeDiscord, record: InteractionRecord) -> bool:
    """Summary shown, or refused (the thinking message deleted), or never acknowledged in time."""
    original = fake.interaction(record.id).original
    if original is None:
        return record.late_callback_at is not None
    return original.deleted or ("\n**" in original.content and "delivered" in original.content)


def forget_uploads(fake: FakeDiscord) -> None:
    """Keep the file names, drop the bytes: 750 MB of uploads would otherwise sit in this process."""
    for message in fake.messages.values():
        message.attachments = [replace(a, data=b"") if a.data else a for a in message.attachments]


async def settle(fake: FakeDiscord, pushed: list[InteractionRecord]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not all(over(fake, r) for r in pushed):
        if time.monotonic() > deadline:
            raise SystemExit(f"not settled after {TIMEOUT:g}s:\n{fake.dump()}")
        forget_uploads(fake)
        await asyncio.sleep(0.5)


async def fake_stats(base_url: str) -> dict[str, object]:
    async with aiohttp.ClientSession() as session, session.get(f"{base_url}/_fake/stats") as response:
        stats: dict[str, object] = await response.json()
        return stats


def figures(fake: FakeDiscord, pushed: list[InteractionRecord], stats: dict[str, object], rss: float) -> None:
    ids = {r.id for r in pushed}
    posted = Counter(
        (m.interaction_id, a.filename)
        for m in fake.messages.values()
        if m.interaction_id in ids and not m.deleted
        for a in m.attachments
    )
    image_times = [m.created_at for m in fake.messages.values() if m.attachments and m.interaction_id in ids]
    refused = sum(1 for r in pushed if (o := fake.interaction(r.id).original) is not None and o.deleted)
    late = sum(1 for r in pushed if r.late_callback_at is not None)
    makespan = max(image_times, default=float("nan")) - min(r.pushed_at for r in pushed)
    images = len(posted)
    waves = math.ceil(images / LIMIT) if images else 1
    ideal, own_best = (waves - 1) * WINDOW + LATENCY, (waves - 1) * (WINDOW + LATENCY) + LATENCY
    calls = int(str(stats["requests"]))
    statuses = stats["statuses"]
    assert isinstance(statuses, dict)
    api_429s = int(statuses.get("429", 0))
    discord_429s = fake.rate_limited_count + sum(1 for c in fake.rest_calls if c.status == 429)
    rows = [
        ("load", f"{USERS} users × {JOBS_EACH} jobs × {PROMPTS_EACH} prompts = {IMAGES}, pushed at once"),
        ("jobs", f"{len(pushed) - refused - late} run, {refused} refused, {late} not acknowledged in time"),
        ("images posted", f"{images}/{IMAGES}, {sum(n - 1 for n in posted.values())} posted twice"),
        ("makespan", f"{makespan:.2f} s (first push → last image)"),
        (
            "fastest allowed",
            f"{ideal:.2f} s ({waves} waves of ≤{LIMIT}, {WINDOW:g} s apart, + {LATENCY:g} s)",
        ),
        ("ratio", f"{makespan / ideal:.3f} (target <= 1.25)"),
        ("limiter's own best", f"{own_best:.2f} s, ratio {own_best / ideal:.3f} (window from the answer)"),
        ("images per second", f"{images / makespan:.1f}/s (the key's sustained limit: {LIMIT / WINDOW:g}/s)"),
        ("bot peak RSS", f"{rss:.1f} MB (the bot's own process)"),
        (
            "API calls per image",
            f"{calls / max(images, 1):.3f} ({calls} calls, max {stats['max_in_flight']} at once)",
        ),
        ("429s from the API", f"{api_429s} (target 0); statuses {statuses}"),
        ("429s from Discord", f"{discord_429s} (target 0); {len(fake.rest_calls)} REST calls"),
    ]
    for label, value in rows:
        print(f"{label:<20} {value}")


async def main(user_max_active_jobs: int) -> None:
    args = (
        "--latency",
        str(LATENCY),
        "--image-bytes",
        str(IMAGE_BYTES),
        "--rate-limit",
        f"{LIMIT}/{WINDOW:g}",
    )
    async with fake_stability_process(*args) as url, FakeDiscord(patch_client=False) as fake:
        fake.enable_edit_rate_limit(5, 5.0)
        with tempfile.TemporaryDirectory() as data:
            env = {
                "DISCORD_TOKEN": fake.token,
                "STABILITY_API_KEY": "sk-test",
                "STABILITY_API_BASE": url,
                "DATA_DIR": data,
                "DISCORD_DEV_GUILD_ID": str(fake.guild_id),
                "MAX_PROMPTS": "25",
                "MAX_CONCURRENT_GENERATIONS": str(LIMIT),
                "USER_MAX_ACTIVE_JOBS": str(user_max_active_jobs),
                "LOG_LEVEL": "WARNING",
            }
            async with bot_process(fake, env) as bot:
                pushed = await push_everything(fake)
                await settle(fake, pushed)
                stats = await fake_stats(url)
        figures(fake, pushed, stats, bot.rss_mb)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    parser.add_argument("--user-max-active-jobs", type=int, default=JOBS_EACH)
    asyncio.run(main(parser.parse_args().user_max_active_jobs))
