"""The in-process signal store: the latest signals of every producer.

Producers write whole observations; readers look a signal up by producer, name and labels.
Writing a changed value notifies the subscribers (the control loop), so autoscalers that read a
signal react at once instead of waiting for their next resync.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence

from autoscaler.api import Signal
from autoscaler.errors import PermanentError

Listener = Callable[[str], None]


def _matches(signal: Signal, name: str, labels: Mapping[str, str]) -> bool:
    return signal.name == name and all(signal.labels.get(k) == v for k, v in labels.items())


class SignalStore:
    """Latest signals per producer key (``namespace/name``). Thread-safe."""

    def __init__(self) -> None:
        self._signals: dict[str, tuple[Signal, ...]] = {}
        #: producer → signal name → its signals (readers look signals up by name)
        self._by_name: dict[str, dict[str, tuple[Signal, ...]]] = {}
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(producer_key)`` whenever that producer's values change."""
        self._listeners.append(listener)

    def put(self, producer: str, signals: Sequence[Signal]) -> bool:
        """Replace the signals of ``producer``; return whether any value or series changed."""
        new = tuple(signals)
        by_name: dict[str, tuple[Signal, ...]] = {}
        for signal in new:
            by_name[signal.name] = (*by_name.get(signal.name, ()), signal)
        with self._lock:
            old = self._signals.get(producer, ())
            self._signals[producer] = new
            self._by_name[producer] = by_name
        changed = [(s.name, dict(s.labels), s.value) for s in old] != [
            (s.name, dict(s.labels), s.value) for s in new
        ]
        if changed:
            for listener in self._listeners:
                listener(producer)
        return changed

    def remove(self, producer: str) -> None:
        with self._lock:
            self._signals.pop(producer, None)
            self._by_name.pop(producer, None)

    def signals(self, producer: str) -> tuple[Signal, ...]:
        with self._lock:
            return self._signals.get(producer, ())

    def get(self, producer: str, name: str, labels: Mapping[str, str] | None = None) -> Signal:
        """The one signal of ``producer`` called ``name`` whose labels include ``labels``.
        When several do, the one whose labels are exactly ``labels`` wins (an unlabelled total
        next to its labelled breakdown, e.g. ``utilization`` and ``utilization{resource=cpu}``).

        Raises ``PermanentError`` when there is none yet or the selection is ambiguous.
        """
        wanted = labels or {}
        with self._lock:
            named = self._by_name.get(producer, {}).get(name, ())
        found = [s for s in named if _matches(s, name, wanted)] if wanted else list(named)
        if not found:
            raise PermanentError(f"producer {producer} has no signal {name!r} yet", code="NoSignal")
        if len(found) > 1:
            found = [s for s in found if dict(s.labels) == dict(wanted)] or found
        if len(found) > 1:
            raise PermanentError(
                f"producer {producer} has {len(found)} signals {name!r}; select one with labels",
                code="AmbiguousSignal",
            )
        return found[0]

    def items(self) -> Iterable[tuple[str, Signal]]:
        """Every (producer key, signal), for export on /metrics."""
        with self._lock:
            snapshot = list(self._signals.items())
        for producer, signals in snapshot:
            for signal in signals:
                yield producer, signal
