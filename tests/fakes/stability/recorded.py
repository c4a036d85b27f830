"""What the fake records about each request, and its per-key rate limiter."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from .behaviours import Behaviour

Outcome = Literal["pending", "answered", "dropped", "hung", "cancelled", "aborted"]


@dataclass(slots=True)
class RecordedRequest:
    """One request as the fake saw it. Times come from the fake's clock (``time.monotonic`` by default).

    ``outcome``: ``answered`` (a response was handed over), ``dropped`` (:class:`Drop`), ``hung``
    (:class:`Hang`), ``cancelled`` (the client went away first), ``aborted`` (the fake shut down first).
    """

    method: str
    path: str
    headers: dict[str, str]
    received_at: float
    form: dict[str, str] | None = None
    json: Any = None
    answered_at: float | None = None
    status: int | None = None
    content_type_sent: str | None = None
    model: str | None = None
    behaviour: Behaviour | None = None
    outcome: Outcome = "pending"

    @property
    def api_key(self) -> str | None:
        return bearer(self.headers.get("authorization"))

    @property
    def prompt(self) -> str | None:
        if self.form is not None:
            return self.form.get("prompt")
        if isinstance(self.json, dict) and isinstance(self.json.get("text_prompts"), list):
            texts = [p.get("text") for p in self.json["text_prompts"] if isinstance(p, dict)]
            return " ".join(t for t in texts if isinstance(t, str))
        return None

    def redacted_headers(self) -> dict[str, str]:
        """The headers with the API key replaced (safe to print in a failure message)."""
        return {k: ("Bearer <redacted>" if k == "authorization" else v) for k, v in self.headers.items()}


@dataclass(slots=True)
class RateLimiter:
    limit: int
    window: float
    block_seconds: float
    clock: Callable[[], float]
    hits: dict[str, deque[float]] = field(default_factory=dict)
    blocked_until: dict[str, float] = field(default_factory=dict)

    def hit(self, key: str) -> float | None:
        """Count one request now; None when allowed, else the seconds the key stays blocked."""
        now = self.clock()
        until = self.blocked_until.get(key)
        if until is not None:
            if now < until:
                return until - now
            del self.blocked_until[key]
        window = self.hits.setdefault(key, deque())
        while window and window[0] <= now - self.window:
            window.popleft()
        if len(window) >= self.limit:
            window.clear()
            self.blocked_until[key] = now + self.block_seconds
            return self.block_seconds
        window.append(now)
        return None


def bearer(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
