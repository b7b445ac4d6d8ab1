"""Injected time. Everything in the loop asks a :class:`~autoscaler.api.Clock` for the time."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime


def system_clock() -> float:
    """Wall-clock seconds since the epoch."""
    return time.time()


class FakeClock:
    """A clock that only moves when told to: for tests and the simulator."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, now: float) -> None:
        with self._lock:
            self._now = now


def to_datetime(timestamp: float) -> datetime:
    """Epoch seconds → an aware UTC datetime."""
    return datetime.fromtimestamp(timestamp, tz=UTC)


def to_timestamp(moment: datetime) -> float:
    """An aware datetime → epoch seconds (naive values are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
