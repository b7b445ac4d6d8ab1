"""ClusterCache: pods and nodes of the whole cluster, kept current by list + watch.

The cluster producers (``reservedCapacity``, ``pendingCapacity``) read this cache instead of
listing the cluster on every observation. One cache serves every producer of the service
(:meth:`autoscaler.kube.KubeClients.cluster_cache`).

**Streams.** Two background threads, one for pods (all namespaces) and one for nodes, each:

1. *List* the resource in pages (``limit``/``continue``), applying each page as it arrives, then
   drop what the list no longer has; the list's ``resourceVersion`` is remembered.
2. *Watch* from that ``resourceVersion`` (with bookmarks, ``timeoutSeconds`` of about five
   minutes) and apply every ADDED, MODIFIED and DELETED event; each event's ``resourceVersion``
   is remembered, so a watch that ends (server timeout, connection closed) resumes from there.
3. A watch answered with ``410 Gone`` (an ERROR event or the HTTP status) means the version is
   too old: relist at once. Any other failure (connection refused, 5xx, a broken stream) is
   retried with capped exponential backoff (:func:`autoscaler.backoff.backoff_delay`), resuming
   the watch when a version is known and relisting otherwise. A server that ends watches at once
   without events is retried with the same backoff, so the cache never spins.

Objects are read as JSON (``_preload_content=False``), never turned into client models, and
reduced at once to the small values below; raw objects are not kept.

**Indexes** (kept incrementally, under one lock):

- nodes by name (:class:`NodeInfo`: labels, allocatable, taints, Ready, unschedulable, being
  deleted, creation time), with node-selector results memoized until a node changes;
- per node, the requests of the non-terminal pods bound to it (:class:`NodeUsage`: effective
  requests as :func:`autoscaler.scheduling.pod_requests`, pod counts, workload pods — neither
  DaemonSet nor mirror pods — and the requests of DaemonSet pods);
- the pending-unschedulable pods (:func:`is_pending_unschedulable`) and their count per
  :class:`~autoscaler.scheduling.PodDemand`, so identical pods are evaluated once.

Counters (``nodes_version``, ``usage_version``, ``pending_version``) move only when an index
changes: a pod status update that changes nothing indexed costs no re-evaluation.

**Listeners** (:meth:`ClusterCache.add_pending_listener`) are called on the stream thread, after
the lock is released, whenever a pod becomes pending-unschedulable, stops being so, or changes
its scheduling demand while pending. They must be quick (e.g. wake a producer).

**Sync.** :attr:`ClusterCache.synced` turns true once both resources have been listed, and stays
true while watches reconnect (the data may then lag; :meth:`ClusterCache.disconnected_seconds`
says for how long). Errors are logged here, once per change of error, since no caller sees them;
producers report the cache's state through their own errors.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from autoscaler.backoff import backoff_delay
from autoscaler.errors import AutoscalerError, RetryableError
from autoscaler.scheduling import (
    PodDemand,
    ResourceTuple,
    Taint,
    as_tuple,
    demand_of,
    pod_requests,
    resources_of,
    selector_matches,
    taints_of,
)

log = logging.getLogger("autoscaler.kube.cache")

#: Server-side timeout of one watch request (the API server caps it too).
WATCH_TIMEOUT_SECONDS = 290
#: Items per page when listing.
PAGE_SIZE = 500
#: Seconds to connect; reads wait for the watch timeout plus this slack.
CONNECT_TIMEOUT_SECONDS = 10.0
READ_SLACK_SECONDS = 30.0
#: Reconnect backoff: first delay and cap, in seconds.
BACKOFF_INITIAL_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0
#: A watch that ends sooner than this without any event counts as a failed attempt.
SHORT_WATCH_SECONDS = 1.0
#: Readers get an error when a watch has been failing for longer than this (seconds).
STALE_AFTER_SECONDS = 120.0
#: The interning tables are cleared past this size (objects in use keep their values).
INTERN_LIMIT = 20_000

PodKind = Literal["workload", "daemonset", "mirror"]
#: ``callback(pod, pending)``: ``pod`` became (``True``) or stopped being (``False``) pending.
PendingListener = Callable[["PodInfo", bool], None]
StreamName = Literal["pods", "nodes"]


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """What the producers need of one node."""

    name: str
    labels: Mapping[str, str]
    #: Allocatable resources in milli-units.
    allocatable: Mapping[str, int]
    taints: tuple[Taint, ...] = ()
    ready: bool = False
    #: ``spec.unschedulable`` (cordoned).
    unschedulable: bool = False
    #: Has a deletionTimestamp.
    deleting: bool = False
    #: creationTimestamp in epoch seconds.
    created: float | None = None

    @property
    def schedulable(self) -> bool:
        """Ready, not cordoned and not being deleted: the scheduler may place pods on it."""
        return self.ready and not self.unschedulable and not self.deleting


@dataclass(frozen=True, slots=True)
class NodeUsage:
    """The non-terminal pods bound to one node (replaced, never mutated)."""

    #: Sum of their effective requests, milli-units.
    requests: Mapping[str, int] = field(default_factory=dict)
    pods: int = 0
    #: Pods that are neither DaemonSet nor mirror (static) pods.
    workload_pods: int = 0
    #: Sum of the requests of DaemonSet pods, milli-units.
    daemonset_requests: Mapping[str, int] = field(default_factory=dict)


EMPTY_USAGE = NodeUsage()


@dataclass(frozen=True, slots=True)
class PodInfo:
    """What the producers need of one pod."""

    namespace: str
    name: str
    node_name: str | None
    #: Bound to a node and not terminal: counts on that node.
    active: bool
    kind: PodKind
    #: Effective requests (milli-units), one ``pods`` slot included.
    requests: ResourceTuple
    #: Set when the pod is pending-unschedulable.
    demand: PodDemand | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def is_pending_unschedulable(pod: Mapping[str, Any]) -> bool:
    """``PodScheduled`` is False with reason ``Unschedulable``, and the pod is not bound, not
    terminal, not being deleted and not nominated to a node (a pod waiting for preemption
    victims to leave will be scheduled there)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    if meta.get("deletionTimestamp") or spec.get("nodeName") or status.get("nominatedNodeName"):
        return False
    if status.get("phase") in ("Succeeded", "Failed"):
        return False
    for condition in status.get("conditions") or ():
        if condition.get("type") == "PodScheduled":
            return bool(
                condition.get("status") == "False" and condition.get("reason") == "Unschedulable"
            )
    return False


def pod_kind(meta: Mapping[str, Any]) -> PodKind:
    """DaemonSet pods and mirror (static) pods come with every node; the rest is workload."""
    if "kubernetes.io/config.mirror" in (meta.get("annotations") or {}):
        return "mirror"
    for owner in meta.get("ownerReferences") or ():
        if owner.get("controller"):
            if owner.get("kind") == "DaemonSet":
                return "daemonset"
            if owner.get("kind") == "Node":
                return "mirror"
    return "workload"


def _timestamp(text: Any) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def node_info(node: Mapping[str, Any]) -> NodeInfo:
    """Reduce a Node object (JSON) to a :class:`NodeInfo`."""
    meta = node.get("metadata") or {}
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or ()
    )
    allocatable = status.get("allocatable")
    if allocatable is None:
        allocatable = status.get("capacity")
    return NodeInfo(
        name=str(meta.get("name") or ""),
        labels={str(k): str(v) for k, v in (meta.get("labels") or {}).items()},
        allocatable=resources_of(allocatable),
        taints=taints_of(spec.get("taints")),
        ready=ready,
        unschedulable=bool(spec.get("unschedulable")),
        deleting=bool(meta.get("deletionTimestamp")),
        created=_timestamp(meta.get("creationTimestamp")),
    )


def _added(base: Mapping[str, int], more: Iterable[tuple[str, int]], sign: int) -> dict[str, int]:
    out = dict(base)
    for name, value in more:
        total = out.get(name, 0) + sign * value
        if total:
            out[name] = total
        else:
            out.pop(name, None)
    return out


class _Expired(Exception):
    """The resourceVersion is too old (410 Gone): relist."""


@dataclass
class _Stream:
    name: StreamName
    resource_version: str | None = None
    synced: bool = False
    error: AutoscalerError | None = None
    #: time.monotonic() of the first failure in a row, or None.
    failing_since: float | None = None
    relists: int = 0
    watches: int = 0
    events: int = 0


# --------------------------------------------------------------------------- the cache


class ClusterCache:
    """Pods and nodes, list + watch fed (module docstring). Thread-safe.

    ``client``: returns the shared ``kubernetes.client.ApiClient`` (called on the stream
    threads, so a missing configuration is retried like any other failure). Without one the
    cache is fed by hand through :meth:`apply` / :meth:`delete` / :meth:`replace` (tests).
    """

    def __init__(
        self,
        client: Callable[[], Any] | None = None,
        *,
        watch_timeout_seconds: int = WATCH_TIMEOUT_SECONDS,
        page_size: int = PAGE_SIZE,
        backoff_initial_seconds: float = BACKOFF_INITIAL_SECONDS,
        backoff_max_seconds: float = BACKOFF_MAX_SECONDS,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self.watch_timeout_seconds = watch_timeout_seconds
        self.page_size = page_size
        self.backoff_initial_seconds = backoff_initial_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self._rng = rng or random.Random()
        self._lock = threading.RLock()
        self._nodes: dict[str, NodeInfo] = {}
        self._pods: dict[str, PodInfo] = {}
        self._usage: dict[str, NodeUsage] = {}
        self._pending: dict[str, PodInfo] = {}
        self._pending_counts: dict[PodDemand, int] = {}
        self._selections: dict[frozenset[tuple[str, str]], list[str]] = {}
        self._interned: dict[Any, Any] = {}
        self._listeners: list[Callable[[], PendingListener | None]] = []
        self._sync_callbacks: list[Callable[[], Callable[[], None] | None]] = []
        self.nodes_version = 0
        self.usage_version = 0
        self.pending_version = 0
        self._streams: dict[StreamName, _Stream] = {
            "pods": _Stream("pods"),
            "nodes": _Stream("nodes"),
        }
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._responses: set[Any] = set()

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start the list + watch threads (once; later calls do nothing)."""
        if self._client is None:
            raise RuntimeError("this ClusterCache has no API client: feed it by hand")
        with self._lock:
            if self._threads:
                return
            for stream in self._streams.values():
                thread = threading.Thread(
                    target=self._run, args=(stream,), name=f"cluster-cache-{stream.name}"
                )
                thread.daemon = True
                self._threads.append(thread)
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the threads, interrupting open watches."""
        self._stop.set()
        with self._lock:
            responses = list(self._responses)
        for response in responses:
            _interrupt(response)
        for thread in self._threads:
            thread.join(timeout)

    @property
    def started(self) -> bool:
        return bool(self._threads)

    @property
    def synced(self) -> bool:
        """Both pods and nodes have been listed at least once."""
        return self._synced.is_set()

    def wait_until_synced(self, timeout: float | None = None) -> bool:
        """Block until :attr:`synced` (or ``timeout`` seconds); return whether it is."""
        return self._synced.wait(timeout)

    def mark_synced(self) -> None:
        """Declare a hand-fed cache complete (tests)."""
        for stream in self._streams.values():
            stream.synced = True
        self._set_synced()

    @property
    def error(self) -> AutoscalerError | None:
        """The current failure of a stream, if any."""
        for stream in self._streams.values():
            if stream.error is not None:
                return stream.error
        return None

    def check_ready(self, stale_after_seconds: float = STALE_AFTER_SECONDS) -> None:
        """Raise ``RetryableError`` unless the cache can be read: ``CacheNotSynced`` before the
        first list of pods and nodes, ``CacheDisconnected`` when a watch has been failing for
        longer than ``stale_after_seconds``."""
        if not self.synced:
            error = self.error
            detail = f": {error}" if error is not None else ""
            raise RetryableError(f"cache not synced yet{detail}", code="CacheNotSynced")
        stale = self.disconnected_seconds()
        if stale > stale_after_seconds:
            raise RetryableError(
                f"cluster cache out of date: watches failing for {stale:.0f}s: {self.error}",
                code="CacheDisconnected",
            )

    def disconnected_seconds(self) -> float:
        """How long a stream has been failing without a successful list or watch (0: none)."""
        now = time.monotonic()
        since = [s.failing_since for s in self._streams.values() if s.failing_since is not None]
        return now - min(since) if since else 0.0

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per stream: resourceVersion, synced, relists, watches, events, error (for tests and
        diagnostics)."""
        return {
            s.name: {
                "resourceVersion": s.resource_version,
                "synced": s.synced,
                "relists": s.relists,
                "watches": s.watches,
                "events": s.events,
                "error": str(s.error) if s.error else None,
            }
            for s in self._streams.values()
        }

    # ----------------------------------------------------------------- listeners

    def add_pending_listener(
        self, callback: PendingListener, *, weak: bool = False
    ) -> Callable[[], None]:
        """Call ``callback(pod, pending)`` when a pod enters or leaves the pending-unschedulable
        state (or changes its demand while pending). With ``weak`` and a bound method, the
        cache does not keep its object alive: the listener goes away with it. Returns a function
        that removes the listener."""
        ref = _reference(callback, weak)
        with self._lock:
            self._listeners.append(ref)

        def remove() -> None:
            with self._lock:
                if ref in self._listeners:
                    self._listeners.remove(ref)

        return remove

    def when_synced(self, callback: Callable[[], None], *, weak: bool = False) -> None:
        """Call ``callback()`` once when the cache first syncs (on the stream thread), or now if
        it has; ``weak`` as for :meth:`add_pending_listener`. Lets a producer whose first
        observation came too early run again at once instead of at its next interval."""
        ref = _reference(callback, weak)
        with self._lock:
            if not self._synced.is_set():
                self._sync_callbacks.append(ref)
                return
        callback()

    def _set_synced(self) -> None:
        with self._lock:
            if self._synced.is_set():
                return
            self._synced.set()
            callbacks, self._sync_callbacks = self._sync_callbacks, []
        for ref in callbacks:
            callback = ref()
            if callback is None:
                continue
            try:
                callback()
            except Exception:  # a callback bug must not stop the stream
                log.exception("cluster cache sync callback failed")

    def _notify(self, notices: list[tuple[PodInfo, bool]]) -> None:
        if not notices:
            return
        with self._lock:
            refs = list(self._listeners)
        dead = []
        for ref in refs:
            callback = ref()
            if callback is None:
                dead.append(ref)
                continue
            for pod, pending in notices:
                try:
                    callback(pod, pending)
                except Exception:  # a listener bug must not stop the stream
                    log.exception("cluster cache listener failed")
        if dead:
            with self._lock:
                self._listeners = [r for r in self._listeners if r not in dead]

    # ----------------------------------------------------------------- reads

    def nodes(self, selector: Mapping[str, str] | None = None) -> list[tuple[NodeInfo, NodeUsage]]:
        """Nodes whose labels include ``selector`` (all when empty), sorted by name, each with
        the usage of its bound pods."""
        key = frozenset((selector or {}).items())
        with self._lock:
            names = self._selections.get(key)
            if names is None:
                names = sorted(
                    name for name, info in self._nodes.items() if selector_matches(key, info.labels)
                )
                if len(self._selections) > 1024:
                    self._selections.clear()
                self._selections[key] = names
            usage = self._usage
            return [(self._nodes[name], usage.get(name, EMPTY_USAGE)) for name in names]

    def node(self, name: str) -> NodeInfo | None:
        with self._lock:
            return self._nodes.get(name)

    def usage(self, name: str) -> NodeUsage:
        with self._lock:
            return self._usage.get(name, EMPTY_USAGE)

    def pending(self) -> list[tuple[PodDemand, int]]:
        """Pending-unschedulable pods, counted per distinct demand."""
        with self._lock:
            return list(self._pending_counts.items())

    def pending_pods(self, demand: PodDemand | None = None) -> list[PodInfo]:
        """The pending-unschedulable pods (of one demand), sorted by namespace/name."""
        with self._lock:
            pods = [p for p in self._pending.values() if demand is None or p.demand == demand]
        return sorted(pods, key=lambda p: p.key)

    def pod(self, key: str) -> PodInfo | None:
        with self._lock:
            return self._pods.get(key)

    def counts(self) -> dict[str, int]:
        """Objects held: nodes, pods, pending pods, distinct pending demands."""
        with self._lock:
            return {
                "nodes": len(self._nodes),
                "pods": len(self._pods),
                "pending": len(self._pending),
                "demands": len(self._pending_counts),
            }

    # ----------------------------------------------------------------- writes

    def apply(self, obj: Mapping[str, Any], stream: StreamName | None = None) -> None:
        """Add or update a Pod or Node (JSON; ``stream`` defaults from its kind), as a watch
        event would."""
        self.apply_all(stream or _stream_of(obj), [obj])

    def delete(self, obj: Mapping[str, Any], stream: StreamName | None = None) -> None:
        """Remove a Pod or Node (JSON; ``stream`` defaults from its kind), as a DELETED watch
        event would."""
        notices: list[tuple[PodInfo, bool]] = []
        with self._lock:
            if (stream or _stream_of(obj)) == "pods":
                self._delete_pod(_pod_key(obj), notices)
            else:
                self._delete_node(str((obj.get("metadata") or {}).get("name") or ""))
        self._notify(notices)

    def apply_all(self, stream: StreamName, objects: Iterable[Mapping[str, Any]]) -> set[str]:
        """Apply many objects of one kind under one lock; return their keys."""
        notices: list[tuple[PodInfo, bool]] = []
        keys: set[str] = set()
        with self._lock:
            for obj in objects:
                if stream == "pods":
                    keys.add(self._upsert_pod(obj, notices))
                else:
                    keys.add(self._upsert_node(obj))
        self._notify(notices)
        return keys

    def replace(self, stream: StreamName, objects: Iterable[Mapping[str, Any]]) -> None:
        """Make the cache hold exactly ``objects`` of one kind (a relist)."""
        keys = self.apply_all(stream, objects)
        self._retain(stream, keys)

    def _retain(self, stream: StreamName, keys: set[str]) -> None:
        """Drop the objects of ``stream`` whose keys are not in ``keys``."""
        notices: list[tuple[PodInfo, bool]] = []
        with self._lock:
            if stream == "pods":
                for key in [k for k in self._pods if k not in keys]:
                    self._delete_pod(key, notices)
            else:
                for name in [n for n in self._nodes if n not in keys]:
                    self._delete_node(name)
        self._notify(notices)

    def _intern(self, value: Any) -> Any:
        found = self._interned.get(value)
        if found is not None:
            return found
        if len(self._interned) >= INTERN_LIMIT:
            self._interned.clear()
        self._interned[value] = value
        return value

    def _pod_info(self, pod: Mapping[str, Any]) -> PodInfo:
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        status = pod.get("status") or {}
        node_name = spec.get("nodeName") or None
        terminal = status.get("phase") in ("Succeeded", "Failed")
        demand: PodDemand | None = None
        if is_pending_unschedulable(pod):
            demand = self._intern(demand_of(spec))
            requests = demand.requests
        else:
            requests = self._intern(as_tuple(pod_requests(spec)))
        return PodInfo(
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name") or ""),
            node_name=node_name,
            active=node_name is not None and not terminal,
            kind=pod_kind(meta),
            requests=requests,
            demand=demand,
        )

    def _upsert_pod(self, obj: Mapping[str, Any], notices: list[tuple[PodInfo, bool]]) -> str:
        info = self._pod_info(obj)
        key = info.key
        old = self._pods.get(key)
        if old == info:
            return key
        self._pods[key] = info
        if old is not None:
            self._unindex(old)
        self._index(info)
        old_demand = old.demand if old is not None else None
        if info.demand is not None and info.demand != old_demand:
            notices.append((info, True))
        elif info.demand is None and old is not None and old_demand is not None:
            notices.append((old, False))
        return key

    def _delete_pod(self, key: str, notices: list[tuple[PodInfo, bool]]) -> None:
        old = self._pods.pop(key, None)
        if old is None:
            return
        self._unindex(old)
        if old.demand is not None:
            notices.append((old, False))

    def _index(self, info: PodInfo) -> None:
        if info.active and info.node_name is not None:
            self._change_usage(info, +1)
        if info.demand is not None:
            self._pending[info.key] = info
            counts = self._pending_counts
            counts[info.demand] = counts.get(info.demand, 0) + 1
            self.pending_version += 1

    def _unindex(self, info: PodInfo) -> None:
        if info.active and info.node_name is not None:
            self._change_usage(info, -1)
        if info.demand is not None:
            self._pending.pop(info.key, None)
            counts = self._pending_counts
            left = counts.get(info.demand, 0) - 1
            if left > 0:
                counts[info.demand] = left
            else:
                counts.pop(info.demand, None)
            self.pending_version += 1

    def _change_usage(self, info: PodInfo, sign: int) -> None:
        assert info.node_name is not None
        usage = self._usage.get(info.node_name, EMPTY_USAGE)
        daemonset = info.kind == "daemonset"
        updated = NodeUsage(
            requests=_added(usage.requests, info.requests, sign),
            pods=usage.pods + sign,
            workload_pods=usage.workload_pods + (sign if info.kind == "workload" else 0),
            daemonset_requests=(
                _added(usage.daemonset_requests, info.requests, sign)
                if daemonset
                else usage.daemonset_requests
            ),
        )
        if updated.pods <= 0:
            self._usage.pop(info.node_name, None)
        else:
            self._usage[info.node_name] = updated
        self.usage_version += 1

    def _upsert_node(self, obj: Mapping[str, Any]) -> str:
        info = node_info(obj)
        old = self._nodes.get(info.name)
        if old != info:
            self._nodes[info.name] = info
            if old is None or old.labels != info.labels:
                self._selections.clear()
            self.nodes_version += 1
        return info.name

    def _delete_node(self, name: str) -> None:
        if self._nodes.pop(name, None) is not None:
            self._selections.clear()
            self.nodes_version += 1

    # ----------------------------------------------------------------- streams

    def _run(self, stream: _Stream) -> None:
        attempt = expired = 0
        while not self._stop.is_set():
            started = time.monotonic()
            delivered = 0
            try:
                if stream.resource_version is None:
                    self._relist(stream)
                delivered = self._watch(stream)
            except _Expired:
                stream.resource_version = None  # relist at once; again and again: back off
                expired += 1
                if expired > 1:
                    self._stop.wait(self._delay(expired - 1))
                continue
            except Exception as exc:
                if self._stop.is_set():
                    break
                attempt += 1
                self._failed(stream, exc, attempt)
                continue
            self._recovered(stream)
            expired = 0
            if delivered == 0 and time.monotonic() - started < SHORT_WATCH_SECONDS:
                attempt += 1  # a server that closes watches at once: do not spin
                self._stop.wait(self._delay(attempt))
            else:
                attempt = 0

    def _delay(self, attempt: int) -> float:
        return backoff_delay(
            attempt, self.backoff_initial_seconds, self.backoff_max_seconds, self._rng
        )

    def _failed(self, stream: _Stream, exc: Exception, attempt: int) -> None:
        from autoscaler.kube import translate

        error = translate(
            exc, f"{'LIST' if stream.resource_version is None else 'WATCH'} {stream.name}"
        )
        delay = self._delay(attempt)
        if stream.error is None or stream.error.code != error.code:
            log.warning("cluster cache: %s (retry in %.1fs)", error, delay)
        stream.error = error
        if stream.failing_since is None:
            stream.failing_since = time.monotonic()
        self._stop.wait(delay)

    def _recovered(self, stream: _Stream) -> None:
        if stream.error is not None:
            log.info("cluster cache: %s stream recovered", stream.name)
        stream.error = None
        stream.failing_since = None

    def _get(self, stream: _Stream, query: list[tuple[str, Any]], timeout: Any) -> Any:
        """GET ``/api/v1/pods`` or ``/api/v1/nodes`` through the shared ApiClient (its
        configuration, authentication and connection pool), returning the raw urllib3 response.
        The generated ``CoreV1Api`` is not used: importing it costs seconds and megabytes, and
        its typed models are never needed here."""
        from kubernetes.client.exceptions import ApiException

        assert self._client is not None
        api = self._client()
        method, url, headers, body, post = api.param_serialize(
            method="GET",
            resource_path=f"/api/v1/{stream.name}",
            query_params=[(k, v) for k, v in query if v is not None],
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        response = api.call_api(method, url, headers, body, post, _request_timeout=timeout)
        if not 200 <= response.status <= 299:
            response.read()
            raise ApiException.from_response(http_resp=response, body=None, data=None)
        return response.response

    def _relist(self, stream: _Stream) -> None:
        """List every object in pages, applying each page; then drop what is gone."""
        from kubernetes.client.exceptions import ApiException

        keys: set[str] = set()
        token: str | None = None
        version: str | None = None
        timeout = (CONNECT_TIMEOUT_SECONDS, READ_SLACK_SECONDS + 60.0)
        while True:
            try:
                response = self._get(
                    stream, [("limit", self.page_size), ("continue", token)], timeout
                )
            except ApiException as exc:
                if exc.status == 410:  # the continue token expired: start over
                    raise _Expired from exc
                raise
            try:
                body = json.loads(response.data)
            finally:
                response.release_conn()
            keys |= self.apply_all(stream.name, body.get("items") or ())
            meta = body.get("metadata") or {}
            version = meta.get("resourceVersion") or version
            token = meta.get("continue") or None
            if token is None:
                break
        self._retain(stream.name, keys)
        stream.resource_version = version or "0"
        stream.relists += 1
        stream.synced = True
        self._recovered(stream)
        if all(s.synced for s in self._streams.values()):
            self._set_synced()

    def _watch(self, stream: _Stream) -> int:
        """Watch from the known resourceVersion until the stream ends; return the events
        applied. Raises :class:`_Expired` on 410."""
        from kubernetes.client.exceptions import ApiException

        timeout = self.watch_timeout_seconds
        try:
            response = self._get(
                stream,
                [
                    ("watch", True),
                    ("resourceVersion", stream.resource_version),
                    ("allowWatchBookmarks", True),
                    ("timeoutSeconds", timeout),
                ],
                (CONNECT_TIMEOUT_SECONDS, timeout + READ_SLACK_SECONDS),
            )
        except ApiException as exc:
            if exc.status == 410:
                raise _Expired from exc
            raise
        stream.watches += 1
        with self._lock:
            self._responses.add(response)
        if self._stop.is_set():
            _interrupt(response)
        applied = 0
        try:
            self._recovered(stream)
            for line in _lines(response):
                event = json.loads(line)
                kind = event.get("type")
                obj = event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise _Expired(obj.get("message"))
                    raise RetryableError(
                        f"WATCH {stream.name}: {obj.get('code')} {obj.get('message')}",
                        code=str(obj.get("reason") or "WatchError"),
                    )
                version = (obj.get("metadata") or {}).get("resourceVersion")
                if kind in ("ADDED", "MODIFIED"):
                    self.apply_all(stream.name, [obj])
                elif kind == "DELETED":
                    self.delete(obj, stream.name)
                if version:
                    stream.resource_version = str(version)
                if kind != "BOOKMARK":
                    applied += 1
                    stream.events += 1
        finally:
            with self._lock:
                self._responses.discard(response)
            response.close()
        return applied


def _reference(callback: Callable[..., Any], weak: bool) -> Callable[[], Any]:
    """A strong or (for a bound method, with ``weak``) weak reference to ``callback``."""
    if weak and hasattr(callback, "__self__"):
        return weakref.WeakMethod(callback)
    return lambda: callback


def _stream_of(obj: Mapping[str, Any]) -> StreamName:
    kind = obj.get("kind")
    if kind == "Node":
        return "nodes"
    if kind == "Pod":
        return "pods"
    raise ValueError(f"expected a Pod or a Node, got kind {kind!r}")


def _pod_key(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"


def _lines(response: Any) -> Iterator[bytes]:
    """Newline-delimited JSON lines of a streaming response (linear in the bytes read)."""
    pending = b""
    for chunk in response.stream(amt=None, decode_content=False):
        data = pending + chunk if pending else chunk
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            if end > start:
                yield data[start:end]
            start = end + 1
        pending = data[start:]
    if pending.strip():
        yield pending


def _interrupt(response: Any) -> None:
    """Unblock a thread reading ``response`` (urllib3 ≥ 2.3 ``shutdown``)."""
    try:
        response.shutdown()
    except Exception:  # already closed, or an older urllib3
        return
