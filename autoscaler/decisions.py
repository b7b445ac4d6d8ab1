"""The audit trail: every decision with its inputs and the rules that shaped it."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One decision of one autoscaler, as served at ``/api/v1/decisions``."""

    seq: int
    time: float
    autoscaler: str  # namespace/name
    node_group: str  # namespace/name
    from_replicas: int
    to_replicas: int
    recommendation: int | None
    #: The rule that last shaped the result (e.g. "stabilization"), or None.
    limited_by: str | None
    reasons: tuple[str, ...]
    metrics: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    #: "up", "down" or "none".
    direction: str = "none"
    #: The authenticated identity whose action (pause, resume, override) led to this decision.
    actor: str | None = None


class DecisionLog:
    """A bounded, thread-safe ring of decisions, newest last."""

    def __init__(self, max_records: int = 10_000) -> None:
        self._records: deque[DecisionRecord] = deque(maxlen=max_records)
        self._lock = threading.Lock()
        self._seq = 0

    def next_seq(self) -> int:
        with self._lock:
            self._seq += 1
            return self._seq

    def append(self, record: DecisionRecord) -> None:
        with self._lock:
            self._records.append(record)

    def query(
        self,
        autoscaler: str | None = None,
        since: float | None = None,
        after_seq: int | None = None,
        limit: int = 100,
    ) -> list[DecisionRecord]:
        """Newest first, filtered by autoscaler key, time (>= since) and sequence (> after_seq)."""
        with self._lock:
            records = list(self._records)
        out: list[DecisionRecord] = []
        for record in reversed(records):
            if autoscaler is not None and record.autoscaler != autoscaler:
                continue
            if since is not None and record.time < since:
                break
            if after_seq is not None and record.seq <= after_seq:
                break
            out.append(record)
            if len(out) >= limit:
                break
        return out

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)
