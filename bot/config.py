"""Settings: the only place that reads the environment.

`Settings.from_env` checks every value at once and raises one `ConfigError` listing every problem with
how to fix it, so a user fixes their `.env` in one go instead of one crash at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from bot.engine.options import MODELS

T = TypeVar("T")

PROVIDERS = ("stability", "demo")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
PROMPTS_CEILING = 25  # Discord: 25 attachments' worth of followups stays readable; the issue's hard cap.


class ConfigError(Exception):
    """Every problem found in the settings, each with how to fix it."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        lines = ["imagine-bot cannot start: fix these settings in .env (see .env.example):"]
        lines += [f"  - {problem}" for problem in self.problems]
        return "\n".join(lines)


class Secret:
    """A string that never shows itself in repr, str, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('********')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Settings:
    discord_token: Secret = field(repr=False)
    stability_api_key: Secret = field(repr=False)
    stability_api_base: str = "https://api.stability.ai"
    stability_model: str = "core"
    image_provider: str = "stability"
    data_dir: Path = Path("data")
    max_prompts: int = 10
    max_concurrent_generations: int = 10
    generation_timeout: float = 120.0
    demo_delay: float = 2.0
    generation_attempts: int = 3
    rate_limit_requests: int = 150
    rate_limit_window: float = 10.0
    shutdown_grace: float = 30.0
    resume_window: float = 30 * 60.0  # seconds: older unfinished jobs are reported, not resumed
    user_max_active_jobs: int = 2
    user_daily_image_quota: int = 0  # 0: unlimited
    guild_daily_image_quota: int = 0
    guild_daily_credit_budget: float = 0.0
    model_credits: Mapping[str, float] = field(
        default_factory=lambda: {m.name: m.credits for m in MODELS.values()}
    )
    discord_dev_guild_id: int | None = None
    log_level: str = "INFO"

    @property
    def database_path(self) -> Path:
        return self.data_dir / "imagine.sqlite3"

    @property
    def images_dir(self) -> Path:
        return self.data_dir / "images"

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, need_discord: bool = True) -> Settings:
        """Build settings from `env`; `need_discord=False` for the CLI, which never talks to Discord."""
        reader = _Reader(env)
        provider = reader.choice("IMAGE_PROVIDER", "stability", PROVIDERS)
        token = reader.text("DISCORD_TOKEN", "")
        if need_discord and not token:
            reader.problems.append(
                "DISCORD_TOKEN is not set: copy the bot token from https://discord.com/developers/applications"
                " → your application → Bot → Reset Token (or use `imagine` without Discord)."
            )
        key = reader.text("STABILITY_API_KEY", "")
        if provider == "stability" and not key:
            reader.problems.append(
                "STABILITY_API_KEY is not set: create a key at https://platform.stability.ai/account/keys,"
                " or set IMAGE_PROVIDER=demo to try the bot without one."
            )
        settings = cls(
            discord_token=Secret(token),
            stability_api_key=Secret(key),
            stability_api_base=reader.url("STABILITY_API_BASE", "https://api.stability.ai"),
            stability_model=reader.choice("STABILITY_MODEL", "core", tuple(MODELS)),
            image_provider=provider,
            data_dir=Path(reader.text("DATA_DIR", "data") or "data"),
            max_prompts=reader.number("MAX_PROMPTS", 10, int, 1, PROMPTS_CEILING),
            max_concurrent_generations=reader.number("MAX_CONCURRENT_GENERATIONS", 10, int, 1, 1000),
            generation_timeout=reader.number("GENERATION_TIMEOUT", 120.0, float, 1.0, 3600.0),
            demo_delay=reader.number("DEMO_DELAY", 2.0, float, 0.0, 600.0),
            generation_attempts=reader.number("GENERATION_ATTEMPTS", 3, int, 1, 10),
            rate_limit_requests=reader.number("RATE_LIMIT_REQUESTS", 150, int, 1, 10_000),
            rate_limit_window=reader.number("RATE_LIMIT_WINDOW", 10.0, float, 0.1, 3600.0),
            shutdown_grace=reader.number("SHUTDOWN_GRACE", 30.0, float, 0.0, 3600.0),
            resume_window=60 * reader.number("RESUME_WINDOW_MINUTES", 30.0, float, 0.0, 7 * 24 * 60.0),
            user_max_active_jobs=reader.number("USER_MAX_ACTIVE_JOBS", 2, int, 1, 100),
            user_daily_image_quota=reader.number("USER_DAILY_IMAGE_QUOTA", 0, int, 0, 1_000_000),
            guild_daily_image_quota=reader.number("GUILD_DAILY_IMAGE_QUOTA", 0, int, 0, 1_000_000),
            guild_daily_credit_budget=reader.number("GUILD_DAILY_CREDIT_BUDGET", 0.0, float, 0.0, 1e9),
            model_credits=reader.prices("MODEL_CREDITS"),
            discord_dev_guild_id=reader.optional_id("DISCORD_DEV_GUILD_ID"),
            log_level=reader.choice("LOG_LEVEL", "INFO", LOG_LEVELS, upper=True),
        )
        if reader.problems:
            raise ConfigError(reader.problems)
        return settings

    @property
    def log_level_number(self) -> int:
        return logging.getLevelNamesMapping()[self.log_level]


class _Reader:
    """Parses one variable at a time, collecting problems instead of raising on the first."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def text(self, name: str, default: str) -> str:
        return self.env.get(name, default).strip()

    def choice(self, name: str, default: str, allowed: tuple[str, ...], *, upper: bool = False) -> str:
        value = self.text(name, default) or default
        if upper:
            value = value.upper()
        if value not in allowed:
            self.problems.append(f"{name}={value!r} is not one of: {', '.join(allowed)}.")
            return default
        return value

    def url(self, name: str, default: str) -> str:
        value = (self.text(name, default) or default).rstrip("/")
        if not value.startswith(("http://", "https://")):
            self.problems.append(f"{name}={value!r} must start with http:// or https://.")
            return default
        return value

    def number(self, name: str, default: T, kind: Callable[[str], T], low: float, high: float) -> T:
        raw = self.text(name, "")
        if not raw:
            return default
        try:
            value = kind(raw)
        except ValueError:
            word = "a whole number" if kind is int else "a number"
            self.problems.append(f"{name}={raw!r} must be {word} between {low:g} and {high:g}.")
            return default
        if not low <= value <= high:  # type: ignore[operator]
            self.problems.append(f"{name}={raw} is out of range: use a value between {low:g} and {high:g}.")
            return default
        return value

    def prices(self, name: str) -> dict[str, float]:
        """`core=3,ultra=8`: override some models' prices in credits; the rest keep Stability's."""
        prices = {m.name: m.credits for m in MODELS.values()}
        for item in filter(None, (part.strip() for part in self.text(name, "").split(","))):
            model, _, price = item.partition("=")
            model = model.strip()
            try:
                value = float(price)
            except ValueError:
                value = -1.0
            if model not in prices or value < 0:
                self.problems.append(
                    f"{name}: {item!r} must be MODEL=CREDITS with a known model and a number >= 0, "
                    "e.g. core=3,ultra=8."
                )
                continue
            prices[model] = value
        return prices

    def optional_id(self, name: str) -> int | None:
        raw = self.text(name, "")
        if not raw:
            return None
        if not raw.isdigit():
            self.problems.append(
                f"{name}={raw!r} must be a server ID "
                "(enable Developer Mode, right-click the server → Copy ID)."
            )
            return None
        return int(raw)
