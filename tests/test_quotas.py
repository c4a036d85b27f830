"""Quota decisions as pure functions, and the gate that feeds them (with an in-memory usage source)."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Collection
from dataclasses import replace

import pytest

from bot.config import Secret, Settings
from bot.quotas import (
    DAY,
    GuildSettings,
    Limits,
    QuotaGate,
    Usage,
    check_channel,
    check_quota,
    day_start,
    effective_limits,
    next_reset,
)

# 2023-11-14 22:13:20 UTC: the next reset is 2023-11-15 00:00 UTC.
NOW = 1_700_000_000.0
MIDNIGHT = datetime.datetime(2023, 11, 15, tzinfo=datetime.UTC).timestamp()
SETTINGS = Settings(discord_token=Secret("t"), stability_api_key=Secret("k"))
LIMITS = Limits(
    max_prompts=10,
    user_max_active_jobs=2,
    user_daily_images=10,
    guild_daily_images=50,
    guild_daily_credits=100,
)


def test_days_reset_at_midnight_utc() -> None:
    assert next_reset(NOW) == MIDNIGHT
    assert day_start(NOW) == MIDNIGHT - DAY
    assert next_reset(MIDNIGHT) == MIDNIGHT + DAY, "at 00:00 exactly a new day has begun"
    assert day_start(MIDNIGHT - 0.001) == MIDNIGHT - DAY


@pytest.mark.parametrize(
    ("usage", "limits", "prompts", "price", "allowed", "says"),
    [
        (Usage(), LIMITS, 3, 3.0, True, ""),
        (Usage(), LIMITS, 11, 3.0, False, "at most 10 are allowed"),
        (Usage(user_active_jobs=1), LIMITS, 1, 3.0, True, ""),
        (Usage(user_active_jobs=2), LIMITS, 1, 3.0, False, "You already have 2 jobs running"),
        (Usage(user_images=7), LIMITS, 3, 3.0, True, ""),  # exactly reaches the quota
        (Usage(user_images=8), LIMITS, 3, 3.0, False, "8 of 10 images made or in progress today"),
        (Usage(user_images=10), LIMITS, 1, 3.0, False, "needs 1 and 0 are left"),
        (Usage(user_images=9), LIMITS, 2, 3.0, False, "needs 2 and 1 is left"),
        (Usage(guild_images=47), LIMITS, 3, 3.0, True, ""),
        (Usage(guild_images=48), LIMITS, 3, 3.0, False, "over this server's daily image quota"),
        (Usage(guild_credits=91), LIMITS, 3, 3.0, True, ""),  # 91 + 9 = 100: on budget
        (Usage(guild_credits=92), LIMITS, 3, 3.0, False, "92 of 100 credits committed today"),
        (Usage(guild_credits=92), LIMITS, 1, 8.0, True, ""),
        (Usage(guild_credits=0), LIMITS, 2, 64.0, False, "would cost 128 and only 100 are left"),
        # 0 means unlimited for every daily figure.
        (Usage(user_images=10**6, guild_images=10**6, guild_credits=1e9), replace(
            LIMITS, user_daily_images=0, guild_daily_images=0, guild_daily_credits=0
        ), 10, 8.0, True, ""),
        # The first limit hit is the one reported.
        (Usage(user_active_jobs=2, user_images=10), LIMITS, 1, 3.0, False, "jobs running"),
        (Usage(user_images=10, guild_images=50), LIMITS, 1, 3.0, False, "over your daily image quota"),
    ],
)  # fmt: skip
def test_check_quota(
    usage: Usage, limits: Limits, prompts: int, price: float, allowed: bool, says: str
) -> None:
    decision = check_quota(usage, limits, prompts, price, NOW)
    assert decision.allowed is allowed
    assert says in decision.message
    assert bool(decision.message) is not allowed


@pytest.mark.parametrize(
    "usage",
    [Usage(user_images=10), Usage(guild_images=50), Usage(guild_credits=100)],
)
def test_daily_refusals_say_when_they_reset(usage: Usage) -> None:
    message = check_quota(usage, LIMITS, 1, 3.0, NOW).message
    assert f"It resets <t:{int(MIDNIGHT)}:R> (00:00 UTC)." in message


def test_the_active_job_cap_has_no_reset_time() -> None:
    message = check_quota(Usage(user_active_jobs=2), LIMITS, 1, 3.0, NOW).message
    assert "<t:" not in message and "finished" in message


@pytest.mark.parametrize(
    ("env", "guild", "expected"),
    [
        # Outside a server: only the user's limits; no server quota or budget.
        ({}, None, Limits(10, 2, 0, 0, 0)),
        ({"user_daily_image_quota": 5, "guild_daily_image_quota": 9, "guild_daily_credit_budget": 30.0},
         None, Limits(10, 2, 5, 0, 0)),
        # A server without settings: the bot-wide values.
        ({"user_daily_image_quota": 5, "guild_daily_image_quota": 9, "guild_daily_credit_budget": 30.0},
         GuildSettings(), Limits(10, 2, 5, 9, 30.0)),
        # A server's own values win, 0 (unlimited) included.
        ({"user_daily_image_quota": 5, "guild_daily_image_quota": 9, "guild_daily_credit_budget": 30.0},
         GuildSettings(user_daily_image_quota=0, guild_daily_image_quota=100, guild_daily_credit_budget=0),
         Limits(10, 2, 0, 100, 0)),
        # A server may lower the prompt limit, never raise it.
        ({}, GuildSettings(max_prompts=3), Limits(3, 2, 0, 0, 0)),
        ({"max_prompts": 5}, GuildSettings(max_prompts=8), Limits(5, 2, 0, 0, 0)),
        ({"user_max_active_jobs": 4}, GuildSettings(), Limits(10, 4, 0, 0, 0)),
    ],
)  # fmt: skip
def test_effective_limits(env: dict[str, object], guild: GuildSettings | None, expected: Limits) -> None:
    assert effective_limits(replace(SETTINGS, **env), guild) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("allowed", "ids", "ok"),
    [
        ((), (1,), True),
        ((1, 2), (1,), True),
        ((1, 2), (3,), False),
        ((1, 2), (30, 2), True),  # a thread of an allowed channel
        ((7,), (3, None, 7), True),  # a channel in an allowed category
        ((7,), (3, None), False),
    ],
)
def test_allowed_channels(allowed: tuple[int, ...], ids: tuple[int | None, ...], ok: bool) -> None:
    decision = check_channel(GuildSettings(allowed_channel_ids=allowed), ids)
    assert decision.allowed is ok
    if not ok:
        assert all(f"<#{c}>" in decision.message for c in allowed)


def test_no_channel_rule_outside_a_server() -> None:
    assert check_channel(None, (5,)).allowed


def test_guild_settings_round_trip_through_json() -> None:
    settings = GuildSettings(
        allowed_channel_ids=(3, 1),
        max_prompts=4,
        user_daily_image_quota=0,
        guild_daily_image_quota=20,
        guild_daily_credit_budget=12.5,
        default_model="ultra",
        default_style="anime",
        spoilers=True,
    )
    data = settings.to_json()
    assert GuildSettings.from_json(data) == replace(settings, allowed_channel_ids=(1, 3))
    assert GuildSettings().to_json() == {}, "defaults are not stored: a later default applies"
    assert GuildSettings(user_daily_image_quota=0).to_json() == {"user_daily_image_quota": 0}


@pytest.mark.parametrize(
    "data",
    [
        {"max_prompts": "5", "default_model": "dall-e", "default_style": "watercolour", "spoilers": "yes"},
        {"user_daily_image_quota": -1, "guild_daily_image_quota": 2.5, "guild_daily_credit_budget": True},
        {"allowed_channel_ids": "123", "max_prompts": 0, "guild_daily_credit_budget": float("nan")},
        {"daily_limit": 50, "nsfw": False},  # keys this version does not know
    ],
)
def test_stored_settings_that_make_no_sense_fall_back_to_the_defaults(data: dict[str, object]) -> None:
    assert GuildSettings.from_json(data) == GuildSettings()


def test_stored_channel_ids_keep_only_integers() -> None:
    assert GuildSettings.from_json({"allowed_channel_ids": [5, "6", True, 5, 4]}).allowed_channel_ids == (
        4,
        5,
    )


# --- the gate ------------------------------------------------------------------------------------------


class MemoryUsage:
    """A `UsageSource` over a fixed figure and a set of stored job ids."""

    def __init__(self, usage: Usage | None = None) -> None:
        self.stored = usage or Usage()
        self.job_ids: set[str] = set()
        self.reads = 0

    async def usage_and_existing(
        self, requester_id: str, guild_id: int | None, since: float, job_ids: Collection[str]
    ) -> tuple[Usage, set[str]]:
        assert since == day_start(NOW)
        self.reads += 1
        await asyncio.sleep(0)  # a real database read lets other tasks run
        return self.stored, self.job_ids & set(job_ids)


class MemoryGuilds:
    def __init__(self, **guilds: GuildSettings) -> None:
        self.guilds = {int(k.removeprefix("g")): v for k, v in guilds.items()}

    async def get(self, guild_id: int) -> GuildSettings:
        return self.guilds.get(guild_id, GuildSettings())


def gate(usage: MemoryUsage, guilds: MemoryGuilds | None = None, **env: object) -> QuotaGate:
    settings = replace(SETTINGS, **env)  # type: ignore[arg-type]
    return QuotaGate(usage, guilds or MemoryGuilds(), settings, clock=lambda: NOW)


async def test_requests_arriving_together_cannot_share_the_last_images() -> None:
    quotas = gate(MemoryUsage(Usage(user_images=7)), user_daily_image_quota=10, user_max_active_jobs=5)
    decisions = await asyncio.gather(*(quotas.admit(f"job{i}", "u1", 10, (20,), 3, "core") for i in range(3)))
    assert [d.allowed for d in decisions] == [True, False, False]


async def test_a_reservation_stops_counting_once_its_job_is_stored() -> None:
    source = MemoryUsage()
    quotas = gate(source, guild_daily_image_quota=5)
    assert (await quotas.admit("job1", "u1", 10, (20,), 3, "core")).allowed
    assert (await quotas.usage("u2", 10)).guild_images == 3, "another member sees the server's reservation"
    # The job's rows are written: the stored figure now includes it, the reservation no longer counts.
    source.stored, source.job_ids = Usage(1, 3, 9.0, 3, 9.0), {"job1"}
    assert await quotas.usage("u1", 10) == Usage(1, 3, 9.0, 3, 9.0)


async def test_a_released_or_expired_reservation_frees_its_images() -> None:
    now = [NOW]
    quotas = QuotaGate(
        MemoryUsage(),
        MemoryGuilds(),
        replace(SETTINGS, user_daily_image_quota=3),
        clock=lambda: now[0],
        reservation_ttl=60,
    )
    assert (await quotas.admit("job1", "u1", None, (20,), 3, "core")).allowed
    assert not (await quotas.admit("job2", "u1", None, (20,), 1, "core")).allowed
    quotas.release("job1")
    assert (await quotas.admit("job2", "u1", None, (20,), 3, "core")).allowed
    now[0] += 61  # job2 was never submitted
    assert (await quotas.usage("u1", None)).user_images == 0


async def test_the_gate_applies_the_servers_settings() -> None:
    guilds = MemoryGuilds(g10=GuildSettings(allowed_channel_ids=(21,), guild_daily_credit_budget=10))
    quotas = gate(MemoryUsage(), guilds)
    refused = await quotas.admit("job1", "u1", 10, (20,), 1, "core")
    assert not refused.allowed and "<#21>" in refused.message
    assert (await quotas.admit("job2", "u1", 10, (21,), 3, "core")).allowed  # 9 credits
    over = await quotas.admit("job3", "u2", 10, (21,), 1, "core")
    assert not over.allowed and "credit budget" in over.message
    assert (await quotas.admit("job4", "u1", None, (99,), 1, "ultra")).allowed, "no server rules in DMs"
