import random

import pytest

from autoscaler.backoff import backoff_delay


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [(1, 0.5, 1.0), (2, 1.0, 2.0), (3, 2.0, 4.0), (7, 30.0, 60.0), (500, 30.0, 60.0)],
    ids=["first", "second doubles", "third doubles", "capped", "huge attempt stays capped"],
)
def test_the_delay_doubles_per_attempt_up_to_the_cap_with_jitter(
    attempt: int, low: float, high: float
) -> None:
    rng = random.Random(7)
    delays = [backoff_delay(attempt, 1.0, 60.0, rng) for _ in range(200)]
    assert all(low <= d <= high for d in delays)
    assert len(set(delays)) > 100  # jittered, not in lockstep


def test_no_attempt_means_no_delay() -> None:
    assert backoff_delay(0, 1.0, 60.0) == 0.0
