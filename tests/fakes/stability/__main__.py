"""Run the fake in its own process (for benchmarks).

    python -m tests.fakes.stability --port 0 --latency 2 --image-bytes 1500000 --rate-limit 150/10

Prints one line ``LISTENING http://127.0.0.1:PORT`` once it accepts connections; exits cleanly on SIGTERM or
SIGINT, printing a one-line summary to stderr. ``GET /_fake/stats`` returns what it has seen so far (JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from ..images import noise_png
from .server import FakeStability


def _rate(value: str) -> tuple[int, float]:
    try:
        count, _, seconds = value.partition("/")
        return int(count), float(seconds or "1")
    except ValueError:
        raise argparse.ArgumentTypeError("expected REQUESTS/SECONDS, e.g. 150/10") from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.stability", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = a random free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per successful generation")
    parser.add_argument("--image-bytes", type=int, default=0, help="serve a noise PNG of about this size")
    parser.add_argument("--rate-limit", type=_rate, default=None, metavar="N/SECONDS")
    parser.add_argument("--block-seconds", type=float, default=60.0)
    parser.add_argument(
        "--retry-after", action="store_true", help="send Retry-After on 429 (the real API doesn't)"
    )
    parser.add_argument("--credits", type=float, default=None, help="starting balance (default: unlimited)")
    parser.add_argument(
        "--api-key", action="append", default=None, help="accepted key (repeatable; default sk-test)"
    )
    parser.add_argument("--any-key", action="store_true", help="accept any bearer token")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    keys = None if args.any_key else (args.api_key or ["sk-test"])
    fake = FakeStability(
        api_key=keys,
        latency=args.latency,
        image=noise_png(args.image_bytes) if args.image_bytes else None,
        credits=args.credits,
        rate_limit=args.rate_limit,
        block_seconds=args.block_seconds,
        retry_after=args.retry_after,
        host=args.host,
        port=args.port,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with fake:
        print(f"LISTENING {fake.base_url}", flush=True)
        await stop.wait()
        print(
            f"fake stability: {len(fake.requests)} requests, max in flight {fake.max_in_flight}, "
            f"spent {fake.spent:g} credits",
            file=sys.stderr,
            flush=True,
        )


def main(argv: list[str] | None = None) -> None:
    asyncio.run(serve(parse_args(argv)))


if __name__ == "__main__":
    main()
