"""Benchmark of the generation core (issue 2).

N prompts through the engine the CLI uses, against a fake Stability server in another process that answers
each request after 2 s with a ~1.5 MB PNG, with MAX_CONCURRENT_GENERATIONS >= N. Each N runs in a fresh
process so that its peak RSS is its own. Prints makespan, the ideal (the 2 s latency), their ratio, peak RSS
and CPU time per image. Targets: ratio <= 1.05 at N = 100, peak RSS <= 150 MB, <= 10 ms CPU per image.

    .venv/bin/python -m bench.core [N ...]
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time

from bench._support import ROOT, fake_stability_process, peak_rss_mb

LATENCY = 2.0
IMAGE_BYTES = 1_500_000


async def one_run(n: int, base_url: str) -> dict[str, float]:
    from bot.app import open_services
    from bot.config import Settings
    from bot.engine.models import GenerationStatus, JobRequest, Place, Requester
    from bot.engine.options import GenerationOptions

    with tempfile.TemporaryDirectory() as data:
        settings = Settings.from_env(
            {
                "STABILITY_API_KEY": "sk-test",
                "STABILITY_API_BASE": base_url,
                "DATA_DIR": data,
                "MAX_CONCURRENT_GENERATIONS": str(n),
                "LOG_LEVEL": "WARNING",
            },
            need_discord=False,
        )
        async with open_services(settings) as services:
            request = JobRequest(
                Requester("bench", "bench"),
                Place(),
                tuple(f"prompt {i}" for i in range(n)),
                GenerationOptions(),
            )
            cpu, start = time.process_time(), time.perf_counter()
            progress = await services.runner.run(request)
            makespan, cpu = time.perf_counter() - start, time.process_time() - cpu
        ok = progress.count(GenerationStatus.SUCCEEDED)
        if ok != n:
            raise SystemExit(
                f"only {ok}/{n} succeeded: {[g.failure for g in progress.generations if g.failure]}"
            )
    return {
        "n": n,
        "makespan": makespan,
        "ratio": makespan / LATENCY,
        "rss_mb": peak_rss_mb(),
        "cpu_ms_per_image": cpu / n * 1000,
    }


async def main(sizes: list[int]) -> None:
    async with fake_stability_process("--latency", str(LATENCY), "--image-bytes", str(IMAGE_BYTES)) as url:
        print(f"{'N':>5} {'makespan':>9} {'ideal':>6} {'ratio':>6} {'peak RSS':>9} {'CPU/image':>10}")
        for n in sizes:
            out = subprocess.run(
                [sys.executable, "-m", "bench.core", "--child", str(n), url],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(
                f"{n:>5} {r['makespan']:>8.2f}s {LATENCY:>5.1f}s {r['ratio']:>6.3f} {r['rss_mb']:>6.1f} MB"
                f" {r['cpu_ms_per_image']:>7.1f} ms"
            )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        import os as _o

        if _o.environ.get("UV"):
            import uvloop

            uvloop.install()
        print(json.dumps(asyncio.run(one_run(int(sys.argv[2]), sys.argv[3]))))
    else:
        asyncio.run(main([int(a) for a in sys.argv[1:]] or [10, 100]))
