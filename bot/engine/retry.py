"""When to try a generation again, and how long to wait first: data, not code paths.

Retried: rate limits, 5xx, timeouts and dropped connections (the errors marked `retryable`). Never retried:
a refused parameter, moderation, a filtered image, a key or credits problem: trying again would fail the
same way, or cost credits for nothing.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3  # in all, the first one included
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0  # a server asking for longer than this is not waited for
    jitter: Callable[[], float] = field(default=random.random, compare=False)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based).

        `Retry-After` wins when given (up to `max_retry_after`); otherwise capped exponential backoff with
        jitter (between half and all of it), so generations failing together do not retry together."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return ceiling * (0.5 + self.jitter() / 2)
