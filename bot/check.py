"""`python -m bot check`: is everything set up? Settings parse, the data folder is writable, the key works."""

from __future__ import annotations

import sys
from typing import TextIO

from bot.config import Settings
from bot.engine.errors import GenerationError
from bot.providers.stability import StabilityClient
from bot.storage.database import migrate, open_database


async def run_check(settings: Settings, out: TextIO = sys.stdout) -> int:
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
            client = StabilityClient(
                session, settings.stability_api_key.reveal(), settings.stability_api_base
            )
            try:
                credits = await client.balance()
                out.write(f"Stability API key: ok, {credits:g} credits left\n")
            except GenerationError as exc:
                ok = False
                out.write(f"Stability API key: FAILED: {exc.to_failure().message} ({exc.detail})\n")
    return 0 if ok else 1
