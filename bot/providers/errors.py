"""The provider layer's exceptions: one base, one class per thing that can go wrong, and one function that
maps an HTTP status to its class. Each carries the `FailureReason` the engine shows the user."""

from __future__ import annotations

from collections.abc import Mapping

from bot.engine.errors import FailureReason, GenerationError, InvalidImage


class ProviderError(GenerationError):
    """Base of every error raised by an image provider."""

    status: int | None = None


class BadRequest(ProviderError):
    """400/422: a parameter the API refused; its own message is shown, it tells the user what to change."""

    reason = FailureReason.REJECTED


class PayloadTooLarge(ProviderError):
    reason = FailureReason.REJECTED


class AuthenticationFailed(ProviderError):
    """401/403 that is not moderation: the key is wrong or revoked. Only the operator can fix it."""

    reason = FailureReason.ACCOUNT


class PaymentRequired(ProviderError):
    """402: the account is out of credits."""

    reason = FailureReason.ACCOUNT


class ContentModerated(ProviderError):
    """403 content_moderation: the prompt was blocked before generating (not charged)."""

    reason = FailureReason.MODERATION


class ContentFiltered(ProviderError):
    """The image was generated but blurred by the provider's filter: never posted as a success."""

    reason = FailureReason.FILTERED


class RateLimited(ProviderError):
    reason = FailureReason.RATE_LIMITED
    retryable = True


class ServerError(ProviderError):
    reason = FailureReason.UNAVAILABLE
    retryable = True


class ProviderTimeout(ProviderError):
    reason = FailureReason.TIMED_OUT
    retryable = True


class ProviderUnreachable(ProviderError):
    """The connection failed or dropped mid-answer."""

    reason = FailureReason.UNAVAILABLE
    retryable = True


class InvalidResponse(ProviderError, InvalidImage):
    """A success status with a body that is not what the API promises (not JSON, not an image, empty)."""


def error_for_status(
    status: int, messages: list[str], name: str = "", headers: Mapping[str, str] | None = None
) -> ProviderError:
    """The exception for an error answer; `messages` are the API's own words (shown for 400/422 only)."""
    detail = f"HTTP {status} {name}: {'; '.join(messages)}".strip()
    error: ProviderError
    if status == 403 and "moderation" in name.lower():
        error = ContentModerated(detail)
    elif status in (400, 422):
        said = "; ".join(messages)[:300] or name or "bad request"
        error = BadRequest(detail, user_message=f"rejected by the image API: {said}")
    elif status == 413:
        error = PayloadTooLarge(detail, user_message="rejected by the image API: the prompt is too large")
    elif status in (401, 403):
        error = AuthenticationFailed(detail)
    elif status == 402:
        error = PaymentRequired(detail)
    elif status == 429:
        error = RateLimited(detail, retry_after=parse_retry_after((headers or {}).get("retry-after")))
    elif status == 408:
        error = ProviderTimeout(detail)
    else:
        error = ServerError(detail)
    error.status = status
    return error


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header; HTTP dates and nonsense count as absent."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
