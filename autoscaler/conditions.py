"""Kubernetes-style conditions whose transition time moves only when the status changes."""

from __future__ import annotations

from dataclasses import dataclass

from autoscaler.api import Condition
from autoscaler.api.common import ConditionStatus
from autoscaler.clock import to_datetime


@dataclass(slots=True)
class _Entry:
    """One condition as plain values; its model is made when it is read."""

    status: ConditionStatus
    reason: str
    message: str
    #: When the status last changed (epoch seconds).
    since: float
    model: Condition | None = None


class Conditions:
    """An ordered set of conditions keyed by type.

    The loop sets several conditions per object at every evaluation, nearly always to what they
    were: setting an unchanged condition costs a comparison, and the :class:`Condition` models
    are made only when read (and kept until the condition changes).
    """

    def __init__(self) -> None:
        self._items: dict[str, _Entry] = {}

    def set(
        self, type_: str, status: ConditionStatus, reason: str, message: str, now: float
    ) -> bool:
        """Set a condition; return True when its status changed."""
        old = self._items.get(type_)
        if old is None or old.status != status:
            self._items[type_] = _Entry(status, reason, message, now)
            return True
        if old.reason != reason or old.message != message:
            self._items[type_] = _Entry(status, reason, message, old.since)
        return False

    def get(self, type_: str) -> Condition | None:
        entry = self._items.get(type_)
        return None if entry is None else _model(type_, entry)

    def remove(self, type_: str) -> None:
        self._items.pop(type_, None)

    def as_list(self) -> list[Condition]:
        return [_model(type_, entry) for type_, entry in list(self._items.items())]


def _model(type_: str, entry: _Entry) -> Condition:
    model = entry.model
    if model is None:
        model = entry.model = Condition(
            type=type_,
            status=entry.status,
            reason=entry.reason,
            message=entry.message,
            last_transition_time=to_datetime(entry.since),
        )
    return model
