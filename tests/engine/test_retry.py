"""RetryPolicy: capped exponential backoff with jitter, and a server's Retry-After honoured up to a cap."""

import pytest

from bot.engine.retry import RetryPolicy


def policy(jitter: float, **fields: float) -> RetryPolicy:
    return RetryPolicy(jitter=lambda: jitter, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 8.0), (30, 8.0)],
)
def test_backoff_doubles_from_the_base_delay_up_to_the_cap(attempt: int, ceiling: float) -> None:
    # The largest jitter (just under 1) gives just under the ceiling; none gives half of it.
    assert policy(1.0, base_delay=0.5, max_delay=8.0).delay(attempt) == pytest.approx(ceiling)
    assert policy(0.0, base_delay=0.5, max_delay=8.0).delay(attempt) == pytest.approx(ceiling / 2)


@pytest.mark.parametrize(("base", "cap", "attempt", "ceiling"), [(1.0, 3.0, 1, 1.0), (1.0, 3.0, 3, 3.0)])
def test_backoff_follows_the_configured_base_and_cap(
    base: float, cap: float, attempt: int, ceiling: float
) -> None:
    assert policy(1.0, base_delay=base, max_delay=cap).delay(attempt) == pytest.approx(ceiling)


@pytest.mark.parametrize("jitter", [0.0, 0.1, 0.25, 0.5, 0.75, 0.999999])
@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 6, 10])
def test_jitter_keeps_the_delay_between_half_the_ceiling_and_the_ceiling(jitter: float, attempt: int) -> None:
    ceiling = min(8.0, 0.5 * 2 ** (attempt - 1))
    delay = policy(jitter).delay(attempt)
    assert ceiling / 2 <= delay <= ceiling
    assert delay == pytest.approx(ceiling * (0.5 + jitter / 2))


def test_jitter_spreads_generations_that_fail_together() -> None:
    delays = {RetryPolicy().delay(2) for _ in range(50)}  # the real random source
    assert len(delays) > 1
    assert all(0.5 <= d <= 1.0 for d in delays)


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [(0.0, 0.0), (1.0, 1.0), (2.5, 2.5), (59.0, 59.0), (60.0, 60.0), (61.0, 60.0), (3600.0, 60.0)],
)
@pytest.mark.parametrize("attempt", [1, 3])
def test_retry_after_wins_over_backoff_up_to_the_cap(
    retry_after: float, expected: float, attempt: int
) -> None:
    assert policy(0.5).delay(attempt, retry_after) == expected


def test_retry_after_cap_is_configurable() -> None:
    assert policy(0.5, max_retry_after=5.0).delay(1, 30.0) == 5.0
    assert policy(0.5, max_retry_after=5.0).delay(1, 4.0) == 4.0


def test_no_retry_after_means_backoff() -> None:
    assert policy(0.0).delay(3, None) == policy(0.0).delay(3) == pytest.approx(1.0)


def test_policies_compare_by_their_numbers_not_their_jitter_source() -> None:
    assert policy(0.0, attempts=4) == policy(1.0, attempts=4)
    assert policy(0.0, attempts=4) != policy(0.0, attempts=5)
