"""A bounded, in-memory time series of every autoscaler and node group, for the dashboard.

The server samples the control loop on a timer (by default one point every 5 s, kept for an hour),
so a freshly opened dashboard shows the last hour at once. Sampling is cheap and does not slow the
loop: under the loop's lock it only copies references (decisions are immutable) and a few integers;
everything else happens outside the lock.

Memory is bounded: each series is a ring of at most ``retention / interval + 1`` points, points
older than the retention are dropped, and the series of a deleted object is dropped at the next
sample; points reuse unchanged metric values. An hour at 5 s costs about 130 KiB per autoscaler
with one metric and its node group, up to about 230 KiB when the metric changes at every sample
(measured with tracemalloc); a sample of 100 autoscalers takes about 2 ms.

Every sample has a sequence number (shared by all its points): ``version`` is the latest, and
readers ask for the points ``after`` a sequence number they already have (cheap polling).
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from autoscaler.algorithms.types import Decision
from autoscaler.loop import ControlLoop

log = logging.getLogger("autoscaler.history")

Clock = Callable[[], float]

DEFAULT_INTERVAL_SECONDS = 5.0
DEFAULT_RETENTION_SECONDS = 3600.0


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


P = TypeVar("P", AutoscalerPoint, NodeGroupPoint)


@dataclass(slots=True)
class AutoscalerSeries:
    key: str
    node_group: str
    points: deque[AutoscalerPoint]
    #: The decision the last point was made from: an unchanged decision reuses its metrics.
    decision: Decision | None = None


@dataclass(slots=True)
class NodeGroupSeries:
    key: str
    points: deque[NodeGroupPoint]


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
    _autoscalers: dict[str, AutoscalerSeries] = field(default_factory=dict, init=False)
    _node_groups: dict[str, NodeGroupSeries] = field(default_factory=dict, init=False)
    _seq: int = field(default=0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        if self.interval_seconds <= 0 or self.retention_seconds <= 0:
            raise ValueError("interval and retention must be positive")

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
        with loop.lock:  # copy references and integers only; the loop waits microseconds
            groups = [
                (key, g.desired, g.observed.ready if g.observed is not None else None)
                for key, g in loop.node_groups.items()
            ]
            autoscalers = [
                (
                    key,
                    rt.target_key,
                    rt.last,
                    rt.resource.spec.min_replicas,
                    rt.resource.spec.max_replicas,
                )
                for key, rt in loop.autoscalers.items()
            ]
        now = self.clock()
        ready_of = {key: ready for key, _, ready in groups}
        with self._lock:
            self._seq += 1
            seq = self._seq
            self._node_groups = {
                key: self._append_group(key, NodeGroupPoint(seq, now, desired, ready))
                for key, desired, ready in groups
            }
            self._autoscalers = {
                key: self._append_autoscaler(
                    key, target, last, seq, now, ready_of.get(target), min_replicas, max_replicas
                )
                for key, target, last, min_replicas, max_replicas in autoscalers
            }
        return seq

    def _append_group(self, key: str, point: NodeGroupPoint) -> NodeGroupSeries:
        series = self._node_groups.get(key)
        if series is None:
            series = NodeGroupSeries(key, deque(maxlen=self.max_points))
        series.points.append(point)
        self._expire(series.points, point.time)
        return series

    def _append_autoscaler(
        self,
        key: str,
        node_group: str,
        last: Decision | None,
        seq: int,
        now: float,
        ready: int | None,
        min_replicas: int,
        max_replicas: int,
    ) -> AutoscalerSeries:
        series = self._autoscalers.get(key)
        if series is None:
            series = AutoscalerSeries(key, node_group, deque(maxlen=self.max_points))
        series.node_group = node_group
        # Points share unchanged metrics: most samples fall between two evaluations.
        metrics = _metric_points(last) if last is not series.decision or not series.points else None
        if series.points and (metrics is None or metrics == series.points[-1].metrics):
            metrics = series.points[-1].metrics
        series.decision = last
        series.points.append(
            AutoscalerPoint(
                seq,
                now,
                last.desired_replicas if last is not None else None,
                last.current_replicas if last is not None else None,
                ready,
                min_replicas,
                max_replicas,
                metrics if metrics is not None else (),
            )
        )
        self._expire(series.points, now)
        return series

    def _expire(self, points: deque[AutoscalerPoint] | deque[NodeGroupPoint], now: float) -> None:
        oldest = now - self.retention_seconds
        while points and points[0].time < oldest:
            points.popleft()

    # ----------------------------------------------------------------- reading

    def autoscalers(
        self, keys: Iterable[str] | None = None, after: int | None = None
    ) -> list[tuple[str, str, list[AutoscalerPoint]]]:
        """(key, node group, points) of the autoscalers (all, or ``keys``) sorted by key; only
        the points with ``seq > after`` when given."""
        with self._lock:
            chosen = sorted(self._autoscalers) if keys is None else sorted(set(keys))
            return [
                (key, s.node_group, _after(s.points, after))
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
                (key, _after(s.points, after))
                for key in chosen
                if (s := self._node_groups.get(key)) is not None
            ]

    def has_autoscaler(self, key: str) -> bool:
        with self._lock:
            return key in self._autoscalers

    def has_node_group(self, key: str) -> bool:
        with self._lock:
            return key in self._node_groups


def _after(points: deque[P], after: int | None) -> list[P]:
    if after is None:
        return list(points)
    # Points are in sequence order: walk back from the newest until an old one.
    out: list[P] = []
    for point in reversed(points):
        if point.seq <= after:
            break
        out.append(point)
    out.reverse()
    return out


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
