"""Discord-style errors, declarative fault injection and the optional per-message edit limit."""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from aiohttp import web

JSON_CONTENT_TYPE = "application/json"  # exactly: discord.py compares the header verbatim

DEFAULT_MESSAGES: dict[int, str] = {
    0: "General error",
    10002: "Unknown Application",
    10003: "Unknown Channel",
    10008: "Unknown Message",
    10015: "Unknown Webhook",
    10062: "Unknown interaction",
    40005: "Request entity too large",
    40060: "Interaction has already been acknowledged.",
    50001: "Missing Access",
    50006: "Cannot send an empty message",
    50007: "Cannot send messages to this user",
    50013: "Missing Permissions",
    50027: "Invalid Webhook Token",
    50035: "Invalid Form Body",
}


@dataclass(frozen=True)
class RouteInfo:
    method: str
    template: str
    path: str


RouteMatcher = str | Callable[[RouteInfo], bool]


class DiscordError(Exception):
    """Raised inside the fake to answer with a Discord-style error body."""

    def __init__(
        self,
        status: int,
        code: int = 0,
        message: str | None = None,
        *,
        retry_after: float = 0.0,
        is_global: bool = False,
        errors: dict[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message or DEFAULT_MESSAGES.get(code, f"{status}: error")
        self.retry_after = retry_after
        self.is_global = is_global
        self.errors = errors
        super().__init__(f"{status} (code {code}): {self.message}")


def unknown_message() -> DiscordError:
    return DiscordError(404, 10008)


def unknown_channel() -> DiscordError:
    return DiscordError(404, 10003)


def invalid_webhook_token() -> DiscordError:
    return DiscordError(401, 50027)


def missing_permissions() -> DiscordError:
    return DiscordError(403, 50013)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """Content-Type ``application/json`` exactly: aiohttp's json_response adds a charset; login then fails."""
    all_headers = {"Content-Type": JSON_CONTENT_TYPE, **(headers or {})}
    return web.Response(status=status, body=json.dumps(data).encode(), headers=all_headers)


def no_content() -> web.Response:
    # No Content-Type: discord.py would try to parse the empty body as JSON and fail.
    return web.Response(status=204)


def error_response(error: DiscordError) -> web.Response:
    if error.status == 429:
        return _rate_limited_response(error)
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.errors is not None:
        body["errors"] = error.errors
    return json_response(body, status=error.status)


def _rate_limited_response(error: DiscordError) -> web.Response:
    body = {
        "message": "You are being rate limited.",
        "retry_after": error.retry_after,
        "global": error.is_global,
    }
    if error.code:
        body["code"] = error.code
    headers = {
        "Retry-After": str(max(1, math.ceil(error.retry_after))),
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": f"{time.time() + error.retry_after:.3f}",
        "X-RateLimit-Reset-After": f"{error.retry_after:.3f}",
        "X-RateLimit-Scope": "shared" if not error.is_global else "global",
        # Without Via discord.py assumes a Cloudflare ban and raises instead of retrying.
        "Via": "1.1 google",
    }
    if error.is_global:
        headers["X-RateLimit-Global"] = "true"
    return json_response(body, status=429, headers=headers)


def route_matches(matcher: RouteMatcher, info: RouteInfo) -> bool:
    """A callable gets the RouteInfo; a string is a glob against "METHOD template" or "METHOD path".

    A pattern starting with "/" ignores the method: "/channels/*/messages" matches any method.
    """
    if callable(matcher):
        return matcher(info)
    if matcher.startswith("/"):
        return fnmatchcase(info.template, matcher) or fnmatchcase(info.path, matcher)
    return fnmatchcase(f"{info.method} {info.template}", matcher) or fnmatchcase(
        f"{info.method} {info.path}", matcher
    )


@dataclass
class FaultRule:
    matcher: RouteMatcher
    status: int
    code: int | None
    message: str | None
    retry_after: float
    is_global: bool
    remaining: int
    hits: list[RouteInfo] = field(default_factory=list)

    def to_error(self) -> DiscordError:
        return DiscordError(
            self.status,
            self.code or 0,
            self.message,
            retry_after=self.retry_after,
            is_global=self.is_global,
        )


@dataclass
class EditRateLimit:
    """At most ``limit`` edits of one message per ``per`` seconds; beyond that the edit gets a 429."""

    limit: int = 5
    per: float = 5.0
    _accepted: dict[int, deque[float]] = field(default_factory=dict)

    def retry_after(self, message_id: int, now: float) -> float | None:
        """None when the edit may go through (and count it), else the seconds until it may."""
        window = self._accepted.setdefault(message_id, deque())
        while window and now - window[0] >= self.per:
            window.popleft()
        if len(window) >= self.limit:
            return max(0.001, self.per - (now - window[0]))
        window.append(now)
        return None
