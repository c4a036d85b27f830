"""Benchmark of /imagine through Discord (issue 3).

The real bot runs in its own process against a fake Discord (this process) and a fake Stability server
(a third process) answering each request after 2 s with a ~1.5 MB PNG. For N = 10 and N = 25 (MAX_PROMPTS)
it prints: time from the interaction to the last attachment and its ratio to the ideal (2 s), REST calls
and progress-message edits per job, 429s received, and the bot's peak RSS.
Targets: ratio <= 1.15, zero 429s, REST calls <= prompts + 10.

    .venv/bin/python -m bench.discord_bot [N ...]
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time

from bench._support import ROOT, fake_stability_process
from tests.fakes.fake_discord import FakeDiscord

LATENCY = 2.0
IMAGE_BYTES = 1_500_000


async def one_job(fake: FakeDiscord, n: int) -> dict[str, float]:
    calls_before, pushed_at = len(fake.rest_calls), time.monotonic()
    pushed = await fake.push_slash_command("imagine", {"prompts": ", ".join(f"prompt {i}" for i in range(n))})

    def done(f: FakeDiscord) -> bool:
        original = f.interaction(pushed.id).original
        return original is not None and "delivered" in original.content

    await fake.wait_for(done, timeout=60)
    images = [m for m in fake.messages.values() if m.interaction_id == pushed.id and m.attachments]
    if len(images) != n:
        raise SystemExit(f"only {len(images)}/{n} images delivered")
    last = max(m.created_at for m in images) - pushed_at
    original = fake.interaction(pushed.id).original
    assert original is not None
    return {
        "n": n,
        "last_image": last,
        "ratio": last / LATENCY,
        "rest": len(fake.rest_calls) - calls_before,
        "edits": len(original.edits),
    }


async def main(sizes: list[int]) -> None:
    stability = fake_stability_process("--latency", str(LATENCY), "--image-bytes", str(IMAGE_BYTES))
    async with stability as url, FakeDiscord(patch_client=False) as fake:
        fake.enable_edit_rate_limit(5, 5.0)  # answer 429 like Discord would if the bot edited too often
        with tempfile.TemporaryDirectory() as data:
            env = {
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "DISCORD_TOKEN": fake.token,
                "STABILITY_API_KEY": "sk-test",
                "STABILITY_API_BASE": url,
                "DATA_DIR": data,
                "DISCORD_DEV_GUILD_ID": str(fake.guild_id),
                "MAX_PROMPTS": str(max(sizes)),
                "MAX_CONCURRENT_GENERATIONS": str(max(sizes)),
                "LOG_LEVEL": "WARNING",
            }
            bot = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench._bot_process",
                fake.rest_base,
                fake.gateway_url,
                cwd=ROOT,
                env=env,
                stdout=asyncio.subprocess.PIPE,
            )
            await fake.wait_identified(timeout=30)
            await fake.wait_for(lambda f: fake.guild_id in f.guild_commands, timeout=30)
            rows = [await one_job(fake, n) for n in sizes]
            bot.terminate()
            out, _ = await bot.communicate()
            rss = json.loads(out.decode().strip().splitlines()[-1])["rss_mb"]
    header = ("N", "to last image", "ideal", "ratio", "REST calls", "edits", "429s")
    print("{:>4} {:>14} {:>6} {:>6} {:>11} {:>6} {:>5}".format(*header))
    for r in rows:
        print(
            f"{r['n']:>4} {r['last_image']:>13.2f}s {LATENCY:>5.1f}s {r['ratio']:>6.3f} "
            f"{r['rest']:>5} (≤{r['n'] + 10:>2}) {r['edits']:>6} {fake.rate_limited_count:>5}"
        )
    print(f"bot peak RSS: {rss:.1f} MB")


if __name__ == "__main__":
    asyncio.run(main([int(a) for a in sys.argv[1:]] or [10, 25]))
