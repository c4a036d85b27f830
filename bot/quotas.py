"""Who may start a job now: per-server settings, the limits they give, and the decision for one request.

The decisions are pure functions of numbers (usage today, limits, the request, the time); `QuotaGate` feeds
them from storage and holds a short in-memory reservation for each admitted job until its rows are written,
so two requests arriving together cannot both take the last images of a quota.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Protocol

from bot.config import Settings
from bot.engine.options import MODELS, STYLES

DAY = 24 * 60 * 60


def day_start(now: float) -> float:
    """00:00 UTC of the day `now` falls in (Unix time has no leap seconds: days are whole multiples)."""
    return now - now % DAY


def next_reset(now: float) -> float:
    """When daily quotas start again: the next 00:00 UTC."""
    return day_start(now) + DAY


def reset_text(now: float) -> str:
    return f"<t:{int(next_reset(now))}:R> (00:00 UTC)"


@dataclass(frozen=True)
class GuildSettings:
    """What a server's managers chose with /imagine-settings. None: the bot-wide value applies."""

    allowed_channel_ids: tuple[int, ...] = ()  # empty: every channel
    max_prompts: int | None = None
    user_daily_image_quota: int | None = None  # 0: unlimited
    guild_daily_image_quota: int | None = None  # 0: unlimited
    guild_daily_credit_budget: float | None = None  # 0: no budget
    default_model: str | None = None
    default_style: str | None = None
    spoilers: bool = False

    def allows_channel(self, channel_ids: Iterable[int | None]) -> bool:
        """`channel_ids`: the channel, then its parents (a thread's channel, a channel's category)."""
        return not self.allowed_channel_ids or any(c in self.allowed_channel_ids for c in channel_ids)

    def with_channels(self, channel_ids: Iterable[int]) -> GuildSettings:
        return replace(self, allowed_channel_ids=tuple(sorted(set(channel_ids))))

    def to_json(self) -> dict[str, Any]:
        """Only what differs from the defaults, so a default added later applies to stored servers too."""
        data: dict[str, Any] = {}
        for name, default in _DEFAULTS.items():
            value = getattr(self, name)
            if value != default:
                data[name] = list(value) if isinstance(value, tuple) else value
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GuildSettings:
        """Tolerant: unknown keys, values of the wrong type and models or styles this version no longer
        offers are dropped (the bot-wide value applies), never an error that locks a server out."""

        def number(name: str) -> float | None:
            value = data.get(name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None
            if not math.isfinite(value) or value < 0:
                return None
            return float(value)

        def whole(name: str) -> int | None:
            value = number(name)
            return int(value) if value is not None and value.is_integer() else None

        channels = data.get("allowed_channel_ids")
        if not isinstance(channels, list):
            channels = []
        model, style = data.get("default_model"), data.get("default_style")
        return cls(
            allowed_channel_ids=tuple(
                sorted({c for c in channels if isinstance(c, int) and not isinstance(c, bool)})
            ),
            max_prompts=whole("max_prompts") or None,
            user_daily_image_quota=whole("user_daily_image_quota"),
            guild_daily_image_quota=whole("guild_daily_image_quota"),
            guild_daily_credit_budget=number("guild_daily_credit_budget"),
            default_model=model if model in MODELS else None,
            default_style=style if style in STYLES else None,
            spoilers=data.get("spoilers") is True,
        )


_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(GuildSettings)}


@dataclass(frozen=True)
class Limits:
    """The limits in force for one place. 0 means unlimited for every daily figure."""

    max_prompts: int
    user_max_active_jobs: int
    user_daily_images: int
    guild_daily_images: int
    guild_daily_credits: float


@dataclass(frozen=True)
class Usage:
    """Counted since 00:00 UTC: generations that succeeded or may still (queued, running), so jobs running
    side by side cannot overshoot; credits as estimated for those generations."""

    user_active_jobs: int = 0
    user_images: int = 0  # everywhere: every server and direct messages
    user_credits: float = 0.0
    guild_images: int = 0
    guild_credits: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.user_active_jobs + other.user_active_jobs,
            self.user_images + other.user_images,
            self.user_credits + other.user_credits,
            self.guild_images + other.guild_images,
            self.guild_credits + other.guild_credits,
        )


@dataclass(frozen=True)
class QuotaDecision:
    allowed: bool
    message: str = ""  # why not, and when it resets: ready to show the user

    @classmethod
    def ok(cls) -> QuotaDecision:
        return cls(True)


def effective_limits(settings: Settings, guild: GuildSettings | None) -> Limits:
    """The limits of one place: `guild` is that server's settings, None outside a server (direct messages,
    group DMs), where no server quota or budget applies. A server may lower MAX_PROMPTS, not raise it."""
    if guild is None:
        return Limits(
            settings.max_prompts, settings.user_max_active_jobs, settings.user_daily_image_quota, 0, 0
        )

    def pick(own: Any, default: Any) -> Any:
        return default if own is None else own

    return Limits(
        max_prompts=min(guild.max_prompts or settings.max_prompts, settings.max_prompts),
        user_max_active_jobs=settings.user_max_active_jobs,
        user_daily_images=pick(guild.user_daily_image_quota, settings.user_daily_image_quota),
        guild_daily_images=pick(guild.guild_daily_image_quota, settings.guild_daily_image_quota),
        guild_daily_credits=pick(guild.guild_daily_credit_budget, settings.guild_daily_credit_budget),
    )


def check_channel(guild: GuildSettings | None, channel_ids: Iterable[int | None]) -> QuotaDecision:
    if guild is None or guild.allows_channel(channel_ids):
        return QuotaDecision.ok()
    where = ", ".join(f"<#{c}>" for c in guild.allowed_channel_ids)
    return QuotaDecision(False, f"Images can't be made in this channel on this server. Use {where}.")


def check_quota(usage: Usage, limits: Limits, prompts: int, price: float, now: float) -> QuotaDecision:
    """May a request for `prompts` images at `price` credits each start now? Refused whole, never trimmed:
    the message says which limit it hit and when that limit resets."""
    resets = f"It resets {reset_text(now)}."
    if prompts > limits.max_prompts:
        return QuotaDecision(
            False,
            f"You gave {prompts} prompts; at most {limits.max_prompts} are allowed in one command here.",
        )
    if usage.user_active_jobs >= limits.user_max_active_jobs:
        return QuotaDecision(
            False,
            f"You already have {_count(usage.user_active_jobs, 'job')} running, the most you may have at "
            "once. Try again when one has finished.",
        )
    if limits.user_daily_images and usage.user_images + prompts > limits.user_daily_images:
        used = _used(usage.user_images, limits.user_daily_images, prompts)
        return QuotaDecision(False, f"That would go over your daily image quota: {used}. {resets}")
    if limits.guild_daily_images and usage.guild_images + prompts > limits.guild_daily_images:
        used = _used(usage.guild_images, limits.guild_daily_images, prompts)
        return QuotaDecision(False, f"That would go over this server's daily image quota: {used}. {resets}")
    cost = price * prompts
    budget = limits.guild_daily_credits
    if budget and usage.guild_credits + cost > budget + 1e-9:
        left = max(budget - usage.guild_credits, 0.0)
        return QuotaDecision(
            False,
            f"That would go over this server's daily credit budget: {usage.guild_credits:g} of {budget:g} "
            f"credits committed today, this request would cost {cost:g} and only {left:g} are left. {resets}",
        )
    return QuotaDecision.ok()


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _used(used: int, quota: int, prompts: int) -> str:
    left = max(quota - used, 0)
    return (
        f"{used} of {_count(quota, 'image')} made or in progress today, "
        f"this request needs {prompts} and {left} {'is' if left == 1 else 'are'} left"
    )


# --- the gate /imagine calls --------------------------------------------------------------------------


class UsageSource(Protocol):
    async def usage_and_existing(
        self, requester_id: str, guild_id: int | None, since: float, job_ids: Collection[str]
    ) -> tuple[Usage, set[str]]:
        """Stored usage, and which of `job_ids` are stored, as one consistent reading."""
        ...


class GuildSettingsSource(Protocol):
    async def get(self, guild_id: int) -> GuildSettings: ...


@dataclass(frozen=True)
class _Reservation:
    requester_id: str
    guild_id: int | None
    images: int
    credits: float
    expires_at: float


class QuotaGate:
    """`decision = await gate.admit(job_id, ...)`, then `runner.submit(request, job_id=job_id)` — or
    `gate.release(job_id)` if the job is not submitted after all."""

    def __init__(
        self,
        usage: UsageSource,
        guild_settings: GuildSettingsSource,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        reservation_ttl: float = 120.0,
    ) -> None:
        self.usage_source = usage
        self.guild_settings = guild_settings
        self.settings = settings
        self.clock = clock
        self.reservation_ttl = reservation_ttl  # seconds a reservation counts while its job is not stored
        self._reserved: dict[str, _Reservation] = {}
        self._lock = asyncio.Lock()

    async def settings_for(self, guild_id: int | None) -> GuildSettings | None:
        return None if guild_id is None else await self.guild_settings.get(guild_id)

    async def limits_for(self, guild_id: int | None) -> Limits:
        return effective_limits(self.settings, await self.settings_for(guild_id))

    async def usage(self, requester_id: str, guild_id: int | None) -> Usage:
        """Today's usage as stored, plus admitted jobs not stored yet."""
        async with self._lock:
            return await self._usage(requester_id, guild_id, self.clock())

    async def admit(
        self,
        job_id: str,
        requester_id: str,
        guild_id: int | None,
        channel_ids: Iterable[int | None],
        prompts: int,
        model: str,
    ) -> QuotaDecision:
        """Check the channel, the prompt count, the active-job cap and every daily quota; when allowed,
        the job's images and credits count at once."""
        guild = await self.settings_for(guild_id)
        decision = check_channel(guild, channel_ids)
        if not decision.allowed:
            return decision
        price = self.settings.model_credits.get(model, 0.0)
        async with self._lock:  # no await between reading usage and reserving lets another in
            now = self.clock()
            usage = await self._usage(requester_id, guild_id, now)
            decision = check_quota(usage, effective_limits(self.settings, guild), prompts, price, now)
            if decision.allowed:
                expires = now + self.reservation_ttl
                self._reserved[job_id] = _Reservation(
                    requester_id, guild_id, prompts, price * prompts, expires
                )
        return decision

    def release(self, job_id: str) -> None:
        self._reserved.pop(job_id, None)

    async def _usage(self, requester_id: str, guild_id: int | None, now: float) -> Usage:
        """Stored usage plus the reservations whose job is not stored yet, from one consistent reading:
        each job counts exactly once, whether its rows were written a moment ago or not yet."""
        for job_id in [j for j, r in self._reserved.items() if r.expires_at <= now]:
            del self._reserved[job_id]
        stored, written = await self.usage_source.usage_and_existing(
            requester_id, guild_id, day_start(now), list(self._reserved)
        )
        for job_id in written:  # from now on its stored rows count
            self._reserved.pop(job_id, None)
        pending = [self._as_usage(r, requester_id, guild_id) for r in self._reserved.values()]
        return sum(pending, stored)

    @staticmethod
    def _as_usage(r: _Reservation, requester_id: str, guild_id: int | None) -> Usage:
        mine, here = r.requester_id == requester_id, guild_id is not None and r.guild_id == guild_id
        return Usage(
            user_active_jobs=int(mine),
            user_images=r.images if mine else 0,
            user_credits=r.credits if mine else 0.0,
            guild_images=r.images if here else 0,
            guild_credits=r.credits if here else 0.0,
        )
