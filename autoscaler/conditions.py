"""Kubernetes-style conditions whose transition time moves only when the status changes."""

from __future__ import annotations

from typing import Any, NamedTuple

from autoscaler.api import Condition
from autoscaler.api.common import ConditionStatus
from autoscaler.clock import to_datetime


class _Entry(NamedTuple):
    """One condition as plain values (a tuple of them is not scanned by the GC)."""

    status: ConditionStatus
    reason: str
    message: str
    #: When the status last changed (epoch seconds).
    since: float


class Conditions:
    """An ordered set of conditions keyed by type.

    The loop sets several conditions per object at every evaluation, nearly always to what they
    were: setting an unchanged condition costs a comparison. Conditions are kept as plain values;
    :class:`Condition` models are made when read (:meth:`get`, :meth:`as_list`), and
    :meth:`to_dicts` gives their JSON form without making any.
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

    def to_dicts(self) -> list[dict[str, Any]]:
        """Every condition as ``Condition.to_dict()`` gives it (RFC 3339 times in UTC)."""
        return [
            {
                "type": type_,
                "status": entry.status,
                "reason": entry.reason,
                "message": entry.message,
                "lastTransitionTime": _rfc3339(entry.since),
            }
            for type_, entry in list(self._items.items())
        ]


#: RFC 3339 texts of recent transition times: the conditions set in one pass share their time.
_TIMES: dict[float, str] = {}
_TIMES_MAX = 4096


def _rfc3339(moment: float) -> str:
    """``moment`` as pydantic writes an aware UTC datetime (``…T09:00:00Z``)."""
    text = _TIMES.get(moment)
    if text is None:
        text = to_datetime(moment).isoformat().replace("+00:00", "Z")
        if len(_TIMES) >= _TIMES_MAX:
            _TIMES.clear()
        _TIMES[moment] = text
    return text


def _model(type_: str, entry: _Entry) -> Condition:
    return Condition(
        type=type_,
        status=entry.status,
        reason=entry.reason,
        message=entry.message,
        last_transition_time=to_datetime(entry.since),
    )
