"""A bounded, in-memory time series of every autoscaler and node group, for the dashboard.

The server samples the control loop on a timer (by default one point every 5 s, kept for an hour),
so a freshly opened dashboard shows the last hour at once. Sampling is cheap and does not slow the
loop: under the loop's lock it only copies references (decisions are immutable) and a few integers;
everything else happens outside the lock.

Storage is by change: the history keeps the time of every sample once, and each series keeps only
the samples at which its values changed; reading expands them back into one point per sample.
Most series are steady most of the time, so an hour of a steady autoscaler and its node group
costs well under 1 KiB, and one that changes at every sample about 100 KiB (10,000 autoscalers
with their node groups, steady: about 8 MiB; measured with tracemalloc). A sample of 10,000
autoscalers and node groups takes about 30 ms, of which a few ms under the loop's lock.

Memory is bounded: at most ``retention / interval + 1`` samples are kept, samples older than the
retention are dropped, and the series of a deleted object is dropped at the next sample.

Every sample has a sequence number (shared by all its points): ``version`` is the latest, and
readers ask for the points ``after`` a sequence number they already have (cheap polling).
"""

from __future__ import annotations

import logging
import math
import threading
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, TypeVar

from autoscaler.algorithms.types import Decision
from autoscaler.loop import ControlLoop

log = logging.getLogger("autoscaler.history")

Clock = Callable[[], float]

DEFAULT_INTERVAL_SECONDS = 5.0
DEFAULT_RETENTION_SECONDS = 3600.0
#: Objects copied per hold of the loop's lock while sampling.
_CHUNK = 1000
#: Before each chunk, wait at most this long for HTTP requests in flight to be answered.
_FOREGROUND_WAIT_SECONDS = 0.02


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One metric of an autoscaler at one sample."""

    name: str
    #: The metric's value; None when it could not be read.
    value: float | None
    target_type: str
    #: The target as written in the spec (per replica for ``AverageValue``).
    target: float
    #: The value at which the current count is right: ``target × current`` for
    #: ``AverageValue``, the target itself for ``Value`` and ``Utilization``.
    target_level: float


@dataclass(frozen=True, slots=True)
class AutoscalerPoint:
    seq: int
    time: float
    #: The count the autoscaler asks for (None before its first evaluation).
    desired: int | None
    #: The count it started from at its last evaluation.
    current: int | None
    #: Ready nodes of its node group (None until the group has been read).
    ready: int | None
    min_replicas: int
    max_replicas: int
    metrics: tuple[MetricPoint, ...]


@dataclass(frozen=True, slots=True)
class NodeGroupPoint:
    seq: int
    time: float
    #: The count the service asked for (spec.replicas).
    desired: int | None
    #: Ready nodes.
    ready: int | None


@dataclass(slots=True)
class _NodeGroupSeries:
    """A node group's values, stored at the samples where they changed."""

    #: The first sample this series is in.
    first_seq: int
    #: (sequence number from which they hold, desired, ready), oldest first.
    changes: list[tuple[int, int | None, int | None]]

    def record(self, seq: int, desired: int | None, ready: int | None, oldest_seq: int) -> None:
        changes = self.changes
        last = changes[-1]
        if last[1] != desired or last[2] != ready:
            changes.append((seq, desired, ready))
        _prune(changes, oldest_seq)

    def points(self, samples: deque[tuple[int, float]], after: int | None) -> list[NodeGroupPoint]:
        return [
            NodeGroupPoint(seq, time, change[1], change[2])
            for seq, time, change in _expand(samples, self.first_seq, self.changes, after)
        ]


@dataclass(slots=True)
class _AutoscalerSeries:
    """An autoscaler's values, stored at the samples where they changed."""

    first_seq: int
    #: (sequence number from which they hold, desired, current, ready, min, max, metrics).
    changes: list[tuple[int, int | None, int | None, int | None, int, int, tuple[MetricPoint, ...]]]
    node_group: str
    #: The decision the last change was made from: an unchanged decision reuses its values.
    decision: Decision | None

    def points(self, samples: deque[tuple[int, float]], after: int | None) -> list[AutoscalerPoint]:
        return [
            AutoscalerPoint(seq, time, *change[1:])
            for seq, time, change in _expand(samples, self.first_seq, self.changes, after)
        ]


#: A change: its sequence number first, then the values.
C = TypeVar("C", bound=tuple[Any, ...])


def _prune(changes: list[C], oldest_seq: int) -> None:
    """Keep the change in force at the oldest sample kept, and the later ones."""
    drop = 0
    while drop + 1 < len(changes) and changes[drop + 1][0] <= oldest_seq:
        drop += 1
    if drop:
        del changes[:drop]


def _expand(
    samples: deque[tuple[int, float]], first_seq: int, changes: list[C], after: int | None
) -> list[tuple[int, float, C]]:
    """(seq, time, change in force) at every kept sample after ``after`` from ``first_seq``."""
    lowest = first_seq if after is None else max(first_seq, after + 1)
    picked: list[tuple[int, float]] = []
    for sample in reversed(samples):  # in sequence order: walk back to the first wanted
        if sample[0] < lowest:
            break
        picked.append(sample)
    picked.reverse()
    starts = [change[0] for change in changes]
    return [(seq, time, changes[max(bisect_right(starts, seq) - 1, 0)]) for seq, time in picked]


S = TypeVar("S")


def _published(known: dict[str, S], fresh: dict[str, S], sampled: AbstractSet[str]) -> dict[str, S]:
    """The series after a sample: those sampled, known or new; a series that was not sampled
    (its object was deleted) is dropped."""
    if not fresh and len(known) == len(sampled):
        return known  # nothing added or removed: the usual case keeps the dict as it is
    kept = {key: series for key, series in known.items() if key in sampled}
    kept.update(fresh)
    return kept


def _target_level(target_type: str, target: float, current: int | None) -> float:
    if target_type == "AverageValue":
        return target * max(current or 0, 1)
    return target


def _metric_points(decision: Decision | None) -> tuple[MetricPoint, ...]:
    if decision is None:
        return ()
    return tuple(
        MetricPoint(
            m.name,
            m.value,
            m.target_type,
            m.target,
            _target_level(m.target_type, m.target, decision.current_replicas),
        )
        for m in decision.metrics
    )


@dataclass
class History:
    """The time series of every autoscaler and node group (thread-safe)."""

    clock: Clock
    interval_seconds: float = DEFAULT_INTERVAL_SECONDS
    retention_seconds: float = DEFAULT_RETENTION_SECONDS
    _autoscalers: dict[str, _AutoscalerSeries] = field(default_factory=dict, init=False)
    _node_groups: dict[str, _NodeGroupSeries] = field(default_factory=dict, init=False)
    #: (seq, time) of every sample kept, oldest first.
    _samples: deque[tuple[int, float]] = field(init=False)
    _seq: int = field(default=0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    #: Held for a whole sample: two samples never interleave their chunks.
    _sampling: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        if self.interval_seconds <= 0 or self.retention_seconds <= 0:
            raise ValueError("interval and retention must be positive")
        self._samples = deque(maxlen=self.max_points)

    @property
    def max_points(self) -> int:
        """The most points one series holds."""
        return math.floor(self.retention_seconds / self.interval_seconds) + 1

    @property
    def version(self) -> int:
        """Sequence number of the latest sample (0 before the first)."""
        with self._lock:
            return self._seq

    def sample(self, loop: ControlLoop) -> int:
        """Take one point of every autoscaler and node group; return its sequence number."""
        with self._sampling:
            return self._sample(loop)

    def _sample(self, loop: ControlLoop) -> int:
        with loop.lock:
            group_items = list(loop.node_groups.items())
            autoscaler_items = list(loop.autoscalers.items())
        # Copy references and integers only, a chunk of objects at a time under the loop's lock:
        # each object is read as the loop left it, and the loop never waits long.
        groups: list[tuple[str, int | None, int | None]] = []
        for start in range(0, len(group_items), _CHUNK):
            loop.lock.wait_for_foreground(_FOREGROUND_WAIT_SECONDS)
            with loop.lock:
                groups.extend(
                    (key, g.desired, g.observed.ready if g.observed is not None else None)
                    for key, g in group_items[start : start + _CHUNK]
                )
        autoscalers: list[tuple[str, str, Decision | None, int, int]] = []
        for start in range(0, len(autoscaler_items), _CHUNK):
            loop.lock.wait_for_foreground(_FOREGROUND_WAIT_SECONDS)
            with loop.lock:
                autoscalers.extend(
                    (
                        key,
                        rt.target_key,
                        rt.last,
                        rt.resource.spec.min_replicas,
                        rt.resource.spec.max_replicas,
                    )
                    for key, rt in autoscaler_items[start : start + _CHUNK]
                )
        now = self.clock()
        ready_of = {key: ready for key, _, ready in groups}
        # Record the changes a chunk at a time, letting requests in between (readers take this
        # lock too), then publish the sample. Until it is published no reader sees a change
        # recorded for it: a reader expands the series only at published samples, and a change
        # holds from its own sample on. Pruning uses the oldest sample published so far, so the
        # samples readers can ask for keep their values (at most one extra change per series).
        with self._lock:
            seq = self._seq + 1
            oldest_seq = self._samples[0][0] if self._samples else seq
        fresh_groups: dict[str, _NodeGroupSeries] = {}
        for start in range(0, len(groups), _CHUNK):
            loop.lock.wait_for_foreground(_FOREGROUND_WAIT_SECONDS)
            with self._lock:
                known_groups = self._node_groups
                for key, desired, ready in groups[start : start + _CHUNK]:
                    group = known_groups.get(key)
                    if group is None:
                        fresh_groups[key] = _NodeGroupSeries(seq, [(seq, desired, ready)])
                    else:
                        group.record(seq, desired, ready, oldest_seq)
        fresh_autoscalers: dict[str, _AutoscalerSeries] = {}
        for start in range(0, len(autoscalers), _CHUNK):
            loop.lock.wait_for_foreground(_FOREGROUND_WAIT_SECONDS)
            with self._lock:
                for key, target, last, low, high in autoscalers[start : start + _CHUNK]:
                    series = self._record_autoscaler(
                        key, target, last, seq, oldest_seq, ready_of.get(target), low, high
                    )
                    if series is not None:
                        fresh_autoscalers[key] = series
        with self._lock:
            self._seq = seq
            samples = self._samples
            samples.append((seq, now))
            oldest = now - self.retention_seconds
            while samples[0][1] < oldest:  # the newest sample is never older than now
                samples.popleft()
            self._node_groups = _published(self._node_groups, fresh_groups, ready_of.keys())
            self._autoscalers = _published(
                self._autoscalers, fresh_autoscalers, {key for key, *_ in autoscalers}
            )
        return seq

    def _record_autoscaler(
        self,
        key: str,
        node_group: str,
        last: Decision | None,
        seq: int,
        oldest_seq: int,
        ready: int | None,
        min_replicas: int,
        max_replicas: int,
    ) -> _AutoscalerSeries | None:
        """Record one autoscaler's values; a new series is returned (and not yet stored)."""
        series = self._autoscalers.get(key)
        desired = last.desired_replicas if last is not None else None
        current = last.current_replicas if last is not None else None
        if series is None:
            change = (seq, desired, current, ready, min_replicas, max_replicas)
            return _AutoscalerSeries(seq, [(*change, _metric_points(last))], node_group, last)
        series.node_group = node_group
        changes = series.changes
        previous = changes[-1]
        # Samples share unchanged metrics: most fall between two evaluations.
        metrics = previous[6]
        if last is not series.decision:
            series.decision = last
            fresh = _metric_points(last)
            if fresh != metrics:
                metrics = fresh
        if (
            previous[1] != desired
            or previous[2] != current
            or previous[3] != ready
            or previous[4] != min_replicas
            or previous[5] != max_replicas
            or previous[6] is not metrics
        ):
            changes.append((seq, desired, current, ready, min_replicas, max_replicas, metrics))
        _prune(changes, oldest_seq)
        return None

    # ----------------------------------------------------------------- reading

    def autoscalers(
        self, keys: Iterable[str] | None = None, after: int | None = None
    ) -> list[tuple[str, str, list[AutoscalerPoint]]]:
        """(key, node group, points) of the autoscalers (all, or ``keys``) sorted by key; only
        the points with ``seq > after`` when given."""
        with self._lock:
            chosen = sorted(self._autoscalers) if keys is None else sorted(set(keys))
            return [
                (key, s.node_group, s.points(self._samples, after))
                for key in chosen
                if (s := self._autoscalers.get(key)) is not None
            ]

    def node_groups(
        self, keys: Iterable[str] | None = None, after: int | None = None
    ) -> list[tuple[str, list[NodeGroupPoint]]]:
        """(key, points) of the node groups (all, or ``keys``) sorted by key."""
        with self._lock:
            chosen = sorted(self._node_groups) if keys is None else sorted(set(keys))
            return [
                (key, s.points(self._samples, after))
                for key in chosen
                if (s := self._node_groups.get(key)) is not None
            ]

    def has_autoscaler(self, key: str) -> bool:
        with self._lock:
            return key in self._autoscalers

    def has_node_group(self, key: str) -> bool:
        with self._lock:
            return key in self._node_groups


class HistorySampler:
    """Samples a loop into a :class:`History` every ``interval_seconds`` on its own thread."""

    def __init__(self, history: History, loop: ControlLoop) -> None:
        self.history = history
        self.loop = loop
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="history-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                self.history.sample(self.loop)
            except Exception:  # never let the sampler die; the dashboard only loses a point
                log.exception("sampling the history failed")
            if self._stop.wait(self.history.interval_seconds):
                return

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
