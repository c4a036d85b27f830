"""Graceful shutdown of the real bot process: SIGTERM (or SIGINT) stops new work, gives running generations
`SHUTDOWN_GRACE` seconds, says in the progress message that the job will resume, and exits 0; the next
start resumes what was cut."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.e2e.test_recovery import API_KEY, bot_env, images_of, requests_for, wait_summary
from tests.fakes.bot_process import BotProcess
from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.stability import FakeStability, Hang

pytestmark = pytest.mark.e2e

GRACE = 1.5


async def test_sigterm_pauses_a_running_job_and_the_restart_finishes_it(tmp_path: Path) -> None:
    async with FakeStability(api_key=API_KEY) as stability, FakeDiscord() as fake:
        stability.on_prompt("slow", Hang(), times=1)  # runs past the grace once; resumed, it succeeds
        env = bot_env(fake, stability, tmp_path / "data", SHUTDOWN_GRACE=str(GRACE))
        async with BotProcess(fake, env, cwd=tmp_path) as first:
            await first.ready()
            pushed = await fake.push_slash_command("imagine", {"prompts": "quick, slow one"})
            await first.wait_log(": posted image 1 ")
            await stability.wait_requests(2)

            first.terminate()
            asked_at = time.monotonic()
            # The runner logs this as the grace begins; the gateway still serves: a newcomer is turned away.
            await first.wait_log("shutting down: 1 job(s) running")
            late = await fake.push_slash_command("imagine", {"prompts": "too late"})
            await fake.wait_for(lambda f: f.interaction(late.id).original is not None, what="the refusal")
            assert await first.wait() == 0
            stopped_in = time.monotonic() - asked_at

        original = fake.interaction(pushed.id).original
        assert original is not None
        paused = original.content

        async with BotProcess(fake, env, cwd=tmp_path) as second:
            await second.ready()
            summary = await wait_summary(fake, pushed.id)
            second.terminate()
            assert await second.wait() == 0

    refusal = fake.interaction(late.id).original
    assert refusal is not None and refusal.ephemeral
    assert "restarting" in refusal.content and "try again in a minute" in refusal.content
    assert requests_for(stability, "too late") == 0
    assert GRACE <= stopped_in < GRACE + 3
    assert "✅ 1. quick" in paused and "⏳ 2. slow one — queued" in paused
    assert "1 unfinished prompt will carry on when it is back" in paused
    assert "**Done**: 2 of 2 images delivered" in summary
    assert {p: len(images_of(fake, p)) for p in ("quick", "slow one")} == {"quick": 1, "slow one": 1}
    assert (requests_for(stability, "quick"), requests_for(stability, "slow one")) == (1, 2)


async def test_a_generation_finishing_within_the_grace_is_delivered_before_exit(tmp_path: Path) -> None:
    async with FakeStability(api_key=API_KEY) as stability, FakeDiscord() as fake:
        stability.hold()
        env = bot_env(fake, stability, tmp_path / "data", SHUTDOWN_GRACE="10")
        async with BotProcess(fake, env, cwd=tmp_path) as bot:
            await bot.ready()
            pushed = await fake.push_slash_command("imagine", {"prompts": "almost there"})
            await stability.wait_requests(1)
            bot.terminate()
            await bot.wait_log("shutting down: 1 job(s) running")
            stability.release()
            assert await bot.wait() == 0
    original = fake.interaction(pushed.id).original
    assert original is not None and "**Done**: 1 of 1 image delivered" in original.content
    assert len(images_of(fake, "almost there")) == 1


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_a_second_signal_stops_waiting_for_the_grace(tmp_path: Path, signum: signal.Signals) -> None:
    async with FakeStability(api_key=API_KEY) as stability, FakeDiscord() as fake:
        stability.on_prompt("slow", Hang())
        env = bot_env(fake, stability, tmp_path / "data", SHUTDOWN_GRACE="60")
        async with BotProcess(fake, env, cwd=tmp_path) as bot:
            await bot.ready()
            pushed = await fake.push_slash_command("imagine", {"prompts": "slow one"})
            await stability.wait_requests(1)
            assert bot.process is not None
            bot.process.send_signal(signum)
            await bot.wait_log("shutting down: 1 job(s) running")
            bot.process.send_signal(signum)
            assert await bot.wait(timeout=8) == 0  # not 60 s later; and Ctrl-C is a clean exit too
    original = fake.interaction(pushed.id).original
    assert original is not None and "will carry on when it is back" in original.content
