"""Kubernetes Events for decisions and errors, correlated and rate-limited like client-go's
``EventRecorder``.

Every event goes through :class:`EventCorrelator` (pure, on the injected clock), in client-go's
order:

1. **Aggregate.** Events of one object with the same type and reason but different messages are
   "similar". From the :data:`AGGREGATE_THRESHOLD`-th distinct message within
   :data:`AGGREGATE_WINDOW_SECONDS`, they are folded into one event whose message is
   ``(combined from similar events): <latest message>``.
2. **Deduplicate.** An event identical to an earlier one (object, type, reason, message) is not
   created again: the earlier Event's ``count`` and ``lastTimestamp`` are patched instead.
3. **Filter spam.** A token bucket per object and event type (burst :data:`SPAM_BURST`, one token
   per :data:`SPAM_REFILL_SECONDS`) drops events beyond it; the counts of deduplicated events
   keep growing meanwhile, so the next patch that passes shows the true count.

:class:`EventRecorder` queues events without blocking (the loop calls it under its lock) and sends
them from one background thread through an :class:`EventSink` (core ``v1`` Events: create and
patch), and only while ``can_send()`` is true — the leader. :func:`decision_event` turns a
decision into ``ScaledUp`` / ``ScaledDown`` / ``ScalingLimited`` with the from→to and the reasons.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from autoscaler.api import Clock
from autoscaler.clock import to_datetime
from autoscaler.decisions import DecisionRecord
from autoscaler.errors import AutoscalerError, NotFoundError
from autoscaler.kube import KubeClients, translate

log = logging.getLogger("autoscaler.kube.events")

EventType = Literal["Normal", "Warning"]

COMPONENT = "node-autoscaler"
AGGREGATE_THRESHOLD = 10
AGGREGATE_WINDOW_SECONDS = 600.0
AGGREGATE_PREFIX = "(combined from similar events): "
SPAM_BURST = 25
SPAM_REFILL_SECONDS = 300.0
#: Entries kept by the deduplication and aggregation caches (least recently used go first).
CACHE_SIZE = 4096
#: Longest message sent (longer ones are cut with an ellipsis).
MAX_MESSAGE = 1024


@dataclass(frozen=True)
class ObjectRef:
    """The object an Event is about (``involvedObject``)."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str | None = None
    resource_version: str | None = None

    @classmethod
    def of(cls, obj: dict[str, Any]) -> ObjectRef:
        """The reference to a JSON object as read from the API."""
        meta = obj.get("metadata") or {}
        return cls(
            api_version=str(obj.get("apiVersion", "")),
            kind=str(obj.get("kind", "")),
            namespace=str(meta.get("namespace") or "default"),
            name=str(meta.get("name", "")),
            uid=meta.get("uid"),
            resource_version=meta.get("resourceVersion"),
        )

    @property
    def identity(self) -> tuple[str, str, str, str, str]:
        """What makes two references the same object (the resourceVersion does not)."""
        return (self.api_version, self.kind, self.namespace, self.name, self.uid or "")

    def to_dict(self) -> dict[str, Any]:
        body = {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
            "resourceVersion": self.resource_version,
        }
        return {k: v for k, v in body.items() if v}


@dataclass(frozen=True)
class Event:
    """One event as reported: about ``ref``, at ``time`` (clock seconds)."""

    ref: ObjectRef
    type: EventType
    reason: str
    message: str
    time: float


@dataclass(frozen=True)
class Emission:
    """What to send for one correlated event: a new Event, or a patch of an earlier one."""

    action: Literal["create", "patch"]
    namespace: str
    name: str
    event: Event
    message: str
    count: int
    first_time: float

    def body(self, component: str, instance: str) -> dict[str, Any]:
        """The core ``v1`` Event to create."""
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "involvedObject": self.event.ref.to_dict(),
            "type": self.event.type,
            "reason": self.event.reason,
            "message": self.message,
            "count": self.count,
            "firstTimestamp": _time(self.first_time),
            "lastTimestamp": _time(self.event.time),
            "source": {"component": component},
            "reportingComponent": component,
            "reportingInstance": instance,
        }

    def patch(self) -> dict[str, Any]:
        """The strategic merge patch that records a repeat."""
        return {
            "count": self.count,
            "lastTimestamp": _time(self.event.time),
            "message": self.message,
        }


def _time(timestamp: float) -> str:
    return to_datetime(timestamp).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cut(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


@dataclass
class _Seen:
    name: str
    namespace: str
    count: int
    first_time: float


@dataclass
class _Similar:
    messages: set[str]
    since: float


@dataclass
class _Bucket:
    tokens: float
    time: float


K = TypeVar("K")
V = TypeVar("V")


class _Lru(OrderedDict[K, V]):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def touch(self, key: K, value: V) -> V:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)
        return value


class EventCorrelator:
    """Aggregation, deduplication and spam filtering (module docstring), with no I/O."""

    def __init__(
        self,
        *,
        burst: int = SPAM_BURST,
        refill_seconds: float = SPAM_REFILL_SECONDS,
        threshold: int = AGGREGATE_THRESHOLD,
        window_seconds: float = AGGREGATE_WINDOW_SECONDS,
    ) -> None:
        self.burst = burst
        self.refill_seconds = refill_seconds
        self.threshold = threshold
        self.window_seconds = window_seconds
        self._similar: _Lru[tuple[Any, ...], _Similar] = _Lru(CACHE_SIZE)
        self._seen: _Lru[tuple[Any, ...], _Seen] = _Lru(CACHE_SIZE)
        self._buckets: _Lru[tuple[Any, ...], _Bucket] = _Lru(CACHE_SIZE)
        self._names = 0

    def _name(self, event: Event) -> str:
        self._names += 1
        return f"{event.ref.name}.{int(event.time * 1e9) + self._names:x}"

    def correlate(self, event: Event) -> Emission | None:
        """What to send for ``event``, or None when the spam filter drops it."""
        similar_key = (*event.ref.identity, event.type, event.reason)
        message = _cut(event.message)
        key: tuple[Any, ...] = (*similar_key, message)
        # 1. aggregate
        similar = self._similar.get(similar_key)
        if similar is None or event.time - similar.since > self.window_seconds:
            similar = _Similar(set(), event.time)
        similar.messages.add(message)
        self._similar.touch(similar_key, similar)
        if len(similar.messages) >= self.threshold:
            message = _cut(AGGREGATE_PREFIX + event.message)
            key = (*similar_key, AGGREGATE_PREFIX)
        # 2. deduplicate
        seen = self._seen.get(key)
        if seen is None:
            seen = _Seen(self._name(event), event.ref.namespace, 1, event.time)
            action: Literal["create", "patch"] = "create"
        else:
            seen.count += 1
            action = "patch"
        self._seen.touch(key, seen)
        # 3. filter
        if not self._take_token((*event.ref.identity, event.type), event.time):
            return None
        return Emission(
            action, seen.namespace, seen.name, event, message, seen.count, seen.first_time
        )

    def _take_token(self, key: tuple[Any, ...], now: float) -> bool:
        bucket = self._buckets.get(key) or _Bucket(float(self.burst), now)
        refill = (
            (now - bucket.time) / self.refill_seconds if self.refill_seconds > 0 else self.burst
        )
        bucket.tokens = min(float(self.burst), bucket.tokens + max(refill, 0.0))
        bucket.time = now
        self._buckets.touch(key, bucket)
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def forget(self, emission: Emission) -> None:
        """The Event behind ``emission`` is gone: the next repeat creates a new one."""
        for key, seen in list(self._seen.items()):
            if seen.name == emission.name and seen.namespace == emission.namespace:
                del self._seen[key]


# --------------------------------------------------------------------------- sending


class EventSink(Protocol):
    """Creates and patches core ``v1`` Events (errors are :mod:`autoscaler.errors`)."""

    def create(self, namespace: str, body: dict[str, Any]) -> None: ...

    def patch(self, namespace: str, name: str, body: dict[str, Any]) -> None: ...


class KubeEventSink:
    """Events through the API (verbs: create and patch on core ``events``)."""

    def __init__(self, clients: KubeClients, timeout_seconds: float = 5.0) -> None:
        self.clients = clients
        self.timeout_seconds = timeout_seconds

    def create(self, namespace: str, body: dict[str, Any]) -> None:
        try:
            self.clients.core().create_namespaced_event(
                namespace, body, _preload_content=False, _request_timeout=self.timeout_seconds
            )
        except Exception as exc:
            raise translate(exc, f"POST events/{namespace}") from exc

    def patch(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        try:
            self.clients.core().patch_namespaced_event(
                name, namespace, body, _preload_content=False, _request_timeout=self.timeout_seconds
            )
        except Exception as exc:
            raise translate(exc, f"PATCH events/{namespace}/{name}") from exc


class EventRecorder:
    """Queues events and sends them on a background thread, while ``can_send()`` (the leader).

    :meth:`event` never blocks; when the queue is full the event is dropped (and counted). Events
    queued while ``can_send()`` is false are dropped when their turn comes. ``on_result`` is
    told ``created``, ``patched``, ``filtered``, ``dropped`` or ``failed`` for each event.
    """

    def __init__(
        self,
        sink: EventSink,
        clock: Clock,
        *,
        instance: str,
        component: str = COMPONENT,
        can_send: Callable[[], bool] = lambda: True,
        correlator: EventCorrelator | None = None,
        max_queue: int = 1000,
        on_result: Callable[[str], None] | None = None,
    ) -> None:
        self.sink = sink
        self.clock = clock
        self.instance = instance
        self.component = component
        self.can_send = can_send
        self.correlator = correlator or EventCorrelator()
        self.on_result = on_result
        self._queue: queue.Queue[Event | None] = queue.Queue(max_queue)
        self._thread: threading.Thread | None = None

    def event(self, ref: ObjectRef, type_: EventType, reason: str, message: str) -> None:
        """Report an event about ``ref`` now (non-blocking)."""
        try:
            self._queue.put_nowait(Event(ref, type_, reason, message, self.clock()))
        except queue.Full:
            self._result("dropped")

    def _result(self, result: str) -> None:
        if self.on_result is not None:
            self.on_result(result)

    def flush(self) -> int:
        """Send everything queued now, on the caller's thread; return how many were handled."""
        handled = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return handled
            if item is not None:
                self._send(item)
                handled += 1

    def _send(self, event: Event) -> None:
        if not self.can_send():
            self._result("dropped")
            return
        emission = self.correlator.correlate(event)
        if emission is None:
            self._result("filtered")
            return
        try:
            if emission.action == "patch":
                try:
                    self.sink.patch(emission.namespace, emission.name, emission.patch())
                    self._result("patched")
                    return
                except NotFoundError:
                    pass  # the Event expired: create it again, count kept
            self.sink.create(emission.namespace, emission.body(self.component, self.instance))
            self._result("created")
        except AutoscalerError as exc:
            self.correlator.forget(emission)
            log.warning(
                "event %s %s on %s not sent: %s", event.type, event.reason, event.ref.name, exc
            )
            self._result("failed")

    def start(self) -> None:
        """Send queued events on a background thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self._run, name="kube-events", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                self._send(item)
            except Exception:  # never let the sender die
                log.exception("sending an event failed")

    def stop(self, timeout: float = 2.0) -> None:
        """Send what is queued (for up to ``timeout`` seconds), then stop the thread."""
        if self._thread is None:
            return
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._thread.join(timeout)
        self._thread = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


# --------------------------------------------------------------------------- what to report


def decision_event(record: DecisionRecord) -> tuple[EventType, str, str] | None:
    """The event for a recorded decision: ``ScaledUp`` / ``ScaledDown`` with from→to and the
    reasons, ``ScalingLimited`` when a rule held the count away from the recommendation, or
    None when nothing worth an event happened (the count stays and nothing held it)."""
    why = "; ".join(record.reasons) or "no reason recorded"
    group = record.node_group
    if record.direction == "up":
        return (
            "Normal",
            "ScaledUp",
            f"{group}: {record.from_replicas} → {record.to_replicas}: {why}",
        )
    if record.direction == "down":
        return (
            "Normal",
            "ScaledDown",
            f"{group}: {record.from_replicas} → {record.to_replicas}: {why}",
        )
    if record.recommendation is not None and record.recommendation != record.to_replicas:
        return (
            "Normal",
            "ScalingLimited",
            f"{group}: stays at {record.to_replicas} (recommended {record.recommendation}, "
            f"limited by {record.limited_by}): {why}",
        )
    return None
