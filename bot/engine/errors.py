"""Why a generation failed, in words a user can act on.

Providers raise subclasses of `GenerationError`; the engine turns each into a `Failure` that carries a
reason (for rendering and statistics), a short message for the user and details for the operator's log only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class FailureReason(enum.StrEnum):
    MODERATION = "moderation"  # the prompt was blocked before generation (not charged)
    FILTERED = "filtered"  # the image was generated but blurred by the provider's filter
    RATE_LIMITED = "rate_limited"
    TIMED_OUT = "timed_out"
    REJECTED = "rejected"  # a parameter the API refused, with its own message
    UNAVAILABLE = "unavailable"  # provider down, 5xx, connection dropped, unreadable answer
    ACCOUNT = "account"  # API key or credits: only the operator can fix it
    INTERRUPTED = "interrupted"  # the bot stopped while it ran
    INTERNAL = "internal"  # a bug of ours


# What a user sees for each reason when the provider gave nothing more specific.
DEFAULT_MESSAGES: dict[FailureReason, str] = {
    FailureReason.MODERATION: "blocked by content moderation: rephrase the prompt",
    FailureReason.FILTERED: "output filtered (the image came back blurred): try another prompt or seed",
    FailureReason.RATE_LIMITED: "rate limited by the image API: try again in a minute",
    FailureReason.TIMED_OUT: "timed out: the image API took too long, try again",
    FailureReason.REJECTED: "rejected by the image API",
    FailureReason.UNAVAILABLE: "the image API is unavailable right now: try again later",
    FailureReason.ACCOUNT: (
        "the bot's image API account has a problem (key or credits): tell the bot's operator"
    ),
    FailureReason.INTERRUPTED: "interrupted: the bot restarted while this ran",
    FailureReason.INTERNAL: "an internal error: the bot's operator can find details in the log",
}


@dataclass(frozen=True)
class Failure:
    reason: FailureReason
    message: str  # safe to show to the user
    detail: str = ""  # for the operator's log only: may hold API internals, never a key

    @classmethod
    def of(cls, reason: FailureReason, detail: str = "") -> Failure:
        return cls(reason, DEFAULT_MESSAGES[reason], detail)


class GenerationError(Exception):
    """Base of every error a provider raises for one generation."""

    reason: FailureReason = FailureReason.UNAVAILABLE
    retryable: bool = False

    def __init__(
        self, detail: str = "", *, user_message: str | None = None, retry_after: float | None = None
    ):
        super().__init__(detail or self.reason.value)
        self.detail = detail
        self.user_message = user_message
        self.retry_after = retry_after

    def to_failure(self) -> Failure:
        message = self.user_message or DEFAULT_MESSAGES[self.reason]
        return Failure(self.reason, message, self.detail)


class InvalidImage(GenerationError):
    """The provider answered success with something that is not a readable image."""

    reason = FailureReason.UNAVAILABLE

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail, user_message="the image API sent back something that is not an image")
