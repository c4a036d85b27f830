"""`python -m bot check`: is everything set up? Settings parse, the data folder is writable, the key works."""

from __future__ import annotations

import sys
from typing import TextIO

from bot.config import Settings
from bot.engine.errors import GenerationError
from bot.providers.stability import StabilityClient
from bot.storage.database import migrate, open_database

CHECK_TIMEOUT = 15.0


async def run_check(settings: Settings, out: TextIO | None = None) -> int:
    """Prints one line per check; returns 0 when all passed, else 1."""
    out = out or sys.stdout
    ok = True
    out.write(f"settings: ok (provider {settings.image_provider}, model {settings.stability_model})\n")
    try:
        conn = await open_database(settings.database_path)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        out.write(f"database: ok ({settings.database_path})\n")
    except Exception as exc:  # any failure here is worth one clear line, not a traceback
        ok = False
        out.write(f"database: FAILED at {settings.database_path}: {exc}\n")
    if settings.image_provider == "stability":
        async with StabilityClient.create_session(2) as session:
            # A balance answers in well under a second; don't leave someone staring at a hung check.
            client = StabilityClient(
                session,
                settings.stability_api_key.reveal(),
                settings.stability_api_base,
                request_timeout=CHECK_TIMEOUT,
            )
            try:
                credits = await client.balance()
                out.write(f"Stability API key: ok, {format_credits(credits)} credits left\n")
            except GenerationError as exc:
                ok = False
                out.write(f"Stability API key: FAILED: {exc.to_failure().message} ({exc.detail})\n")
    return 0 if ok else 1


def format_credits(credits: float) -> str:
    """`1,000,000` and `12.5`, never `1e+06`: a balance is read by a person."""
    return f"{credits:,.2f}".rstrip("0").rstrip(".")
