"""Kubernetes-style conditions whose transition time moves only when the status changes."""

from __future__ import annotations

from autoscaler.api import Condition
from autoscaler.api.common import ConditionStatus
from autoscaler.clock import to_datetime


class Conditions:
    """An ordered set of conditions keyed by type."""

    def __init__(self) -> None:
        self._items: dict[str, Condition] = {}

    def set(
        self, type_: str, status: ConditionStatus, reason: str, message: str, now: float
    ) -> bool:
        """Set a condition; return True when its status changed."""
        old = self._items.get(type_)
        changed = old is None or old.status != status
        when = to_datetime(now) if changed or old is None else old.last_transition_time
        self._items[type_] = Condition(
            type=type_, status=status, reason=reason, message=message, last_transition_time=when
        )
        return changed

    def get(self, type_: str) -> Condition | None:
        return self._items.get(type_)

    def remove(self, type_: str) -> None:
        self._items.pop(type_, None)

    def as_list(self) -> list[Condition]:
        return list(self._items.values())
