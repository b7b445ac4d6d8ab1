"""Capped exponential backoff with jitter, computed (not slept): the loop schedules the retry."""

from __future__ import annotations

import random


def backoff_delay(
    attempt: int,
    initial: float,
    maximum: float,
    rng: random.Random | None = None,
) -> float:
    """Delay before retry number ``attempt`` (1-based): ``initial × 2^(attempt−1)``, capped at
    ``maximum``, with "equal jitter" (uniformly between half and all of it) so that many groups
    failing together do not retry in lockstep."""
    if attempt < 1:
        return 0.0
    ceiling = min(maximum, initial * 2.0 ** min(attempt - 1, 62))
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)
