"""Custom resources in: watch the three kinds, cache them, and turn them into a SpecSet.

**Watching.** One :class:`Watcher` thread per kind and namespace (or one per kind for all
namespaces) runs the reflector cycle of client-go:

1. **List** the objects and remember the list's ``resourceVersion``; the list replaces what the
   cache held for that kind and scope.
2. **Watch** from that version; each event updates the cache and moves the version on. When the
   watch ends (its ``timeoutSeconds``, or the server closed it), watch again from the last
   version.
3. **410 Gone** (the version is too old to resume from) → list again at once.
4. Any other failure (5xx, connection refused, 404 while the CRD is not installed) → wait with
   capped exponential backoff and jitter, then resume: from the last version if it had one, else
   with a list. The backoff resets after a successful list or event.

**Cache.** :class:`ObjectCache` keeps the objects as the API returned them (JSON). A writer that
got 409 re-reads the object and puts it in with :meth:`ObjectCache.refresh`; older watch events for
that object are then ignored until the watch catches up with the re-read version, so the cache
never moves back in time.

**Specs.** :func:`build_specs` validates a snapshot of the cache with the same pipeline as spec
files (:func:`autoscaler.config.load_objects`): the server-owned parts (``status``, most of
``metadata``) are left out of validation; an autoscaler's status is then attached, parsed on its
own, so the loop can restore the algorithm's history from it. Objects being deleted are left out.
Invalid objects come back with their issues; everything else keeps running.

**Replicas.** :class:`ReplicaTracker` tells the service which ``spec.replicas`` changes were made
by someone else (an operator, ``kubectl scale``, another tool through the scale subresource):
those are honoured as overrides, as an edited spec file is in standalone mode.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from autoscaler.api import HorizontalAutoscaler
from autoscaler.api.horizontalautoscaler import HorizontalAutoscalerStatus
from autoscaler.backoff import backoff_delay
from autoscaler.config import LoadResult, SpecIssue, load_objects
from autoscaler.errors import AutoscalerError
from autoscaler.kube import KubeClients, translate

log = logging.getLogger("autoscaler.kube.controller")

GROUP, VERSION = "autoscaler.dev", "v1alpha1"


@dataclass(frozen=True)
class Kind:
    """One of the three custom resources."""

    kind: str
    plural: str


NODE_GROUPS = Kind("ScalableNodeGroup", "scalablenodegroups")
PRODUCERS = Kind("MetricsProducer", "metricsproducers")
AUTOSCALERS = Kind("HorizontalAutoscaler", "horizontalautoscalers")
KINDS: tuple[Kind, ...] = (NODE_GROUPS, PRODUCERS, AUTOSCALERS)
PLURAL_OF: dict[str, str] = {k.kind: k.plural for k in KINDS}

#: Metadata fields validated with the object (the rest is the API server's business).
METADATA_KEPT = ("name", "namespace", "labels", "annotations", "uid", "resourceVersion")
#: The parts of an autoscaler's status the algorithms restore their history from.
HISTORY_FIELDS = ("recommendations", "scaleEvents", "pid", "forecasts")

Obj = dict[str, Any]
#: ``(plural, "namespace/name")``
ObjKey = tuple[str, str]


def key_of(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name')}"


def resource_version(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def where_of(kind: str, key: str) -> str:
    """How issues name a cluster object: ``HorizontalAutoscaler default/x``."""
    return f"{kind} {key}"


# --------------------------------------------------------------------------- the cache


class ObjectCache:
    """The objects of the three kinds as last seen, thread-safe (see the module docstring)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._objects: dict[ObjKey, Obj] = {}
        #: key → version re-read after a conflict; watch events wait until they reach it
        self._pending: dict[ObjKey, str] = {}
        self.version = 0
        self._listeners: list[Callable[[], None]] = []

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (without the lock) after every change."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        self.version += 1
        self._cond.notify_all()

    def _notify(self) -> None:
        for listener in self._listeners:
            listener()

    def replace(self, plural: str, namespace: str | None, items: Sequence[Obj]) -> None:
        """A fresh list of ``plural`` in ``namespace`` (None: all namespaces)."""
        fresh = {(plural, key_of(obj)): obj for obj in items}
        with self._cond:
            stale = [
                k
                for k in self._objects
                if k[0] == plural
                and (namespace is None or k[1].split("/", 1)[0] == namespace)
                and k not in fresh
            ]
            changed = bool(stale)
            for k in stale:
                del self._objects[k]
                self._pending.pop(k, None)
            for k, obj in fresh.items():
                self._pending.pop(k, None)
                old = self._objects.get(k)
                if old is None or resource_version(old) != resource_version(obj):
                    self._objects[k] = obj
                    changed = True
            if changed:
                self._changed()
        if changed:
            self._notify()

    def apply(self, plural: str, event_type: str, obj: Obj) -> None:
        """One watch event (ADDED, MODIFIED or DELETED)."""
        key = (plural, key_of(obj))
        with self._cond:
            pending = self._pending.get(key)
            if event_type == "DELETED":
                self._pending.pop(key, None)
                if self._objects.pop(key, None) is None:
                    return
            else:
                if pending is not None:
                    if resource_version(obj) != pending:
                        return  # older than the re-read version: the watch is catching up
                    del self._pending[key]
                old = self._objects.get(key)
                if old is not None and resource_version(old) == resource_version(obj):
                    return
                self._objects[key] = obj
            self._changed()
        self._notify()

    def refresh(self, plural: str, key: str, obj: Obj | None) -> None:
        """The object as just re-read with a GET (None: it is gone)."""
        ckey = (plural, key)
        with self._cond:
            if obj is None:
                if self._objects.pop(ckey, None) is None:
                    return
                self._pending.pop(ckey, None)
            else:
                old = self._objects.get(ckey)
                if old is not None and resource_version(old) == resource_version(obj):
                    return
                self._objects[ckey] = obj
                self._pending[ckey] = resource_version(obj)
            self._changed()
        self._notify()

    def get(self, plural: str, key: str) -> Obj | None:
        with self._cond:
            return self._objects.get((plural, key))

    def snapshot(self) -> tuple[int, dict[ObjKey, Obj]]:
        """The cache version and a shallow copy of its objects (objects are never mutated)."""
        with self._cond:
            return self.version, dict(self._objects)


# --------------------------------------------------------------------------- watching


class WatchExpired(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""


class ListWatch(Protocol):
    """List and watch one kind in one namespace (None: all). Errors are autoscaler errors,
    except 410, which is :class:`WatchExpired`."""

    def list(self, plural: str, namespace: str | None) -> tuple[list[Obj], str]: ...

    def watch(
        self, plural: str, namespace: str | None, resource_version: str, timeout_seconds: int
    ) -> Iterator[tuple[str, Obj]]: ...

    def stop(self) -> None:
        """End the open watch streams now (for shutdown)."""
        ...


class KubeListWatch:
    """:class:`ListWatch` on the custom objects API (verbs: list, watch)."""

    def __init__(self, clients: KubeClients, page_size: int = 500, timeout_seconds: float = 30.0):
        self.clients = clients
        self.page_size = page_size
        self.timeout_seconds = timeout_seconds
        self._lock = threading.Lock()
        self._watches: set[Any] = set()

    def _function(self, plural: str, namespace: str | None) -> tuple[Any, tuple[str, ...]]:
        api = self.clients.custom()
        if namespace is None:
            return api.list_cluster_custom_object, (GROUP, VERSION, plural)
        return api.list_namespaced_custom_object, (GROUP, VERSION, namespace, plural)

    def list(self, plural: str, namespace: str | None) -> tuple[list[Obj], str]:
        function, args = self._function(plural, namespace)
        items: list[Obj] = []
        version = ""
        token: str | None = None
        try:
            while True:
                kwargs: dict[str, Any] = {"limit": self.page_size}
                if token:
                    kwargs["_continue"] = token
                page = function(*args, _request_timeout=self.timeout_seconds, **kwargs)
                items.extend(page.get("items") or [])
                meta = page.get("metadata") or {}
                version = version or str(meta.get("resourceVersion") or "")
                token = meta.get("continue")
                if not token:
                    return items, version
        except Exception as exc:
            raise translate(exc, f"LIST {plural} in {namespace or 'all namespaces'}") from exc

    def watch(
        self, plural: str, namespace: str | None, resource_version: str, timeout_seconds: int
    ) -> Iterator[tuple[str, Obj]]:
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        function, args = self._function(plural, namespace)
        stream = watch.Watch()  # type: ignore[no-untyped-call]
        with self._lock:
            self._watches.add(stream)
        try:
            for event in stream.stream(  # type: ignore[no-untyped-call]
                function,
                *args,
                resource_version=resource_version,
                timeout_seconds=timeout_seconds,
                allow_watch_bookmarks=True,
                _request_timeout=(self.timeout_seconds, timeout_seconds + self.timeout_seconds),
            ):
                yield str(event["type"]), event["raw_object"]
        except ApiException as exc:
            if exc.status == 410:
                raise WatchExpired(str(exc.reason)) from exc
            raise translate(exc, f"WATCH {plural} in {namespace or 'all namespaces'}") from exc
        except Exception as exc:
            raise translate(exc, f"WATCH {plural} in {namespace or 'all namespaces'}") from exc
        finally:
            with self._lock:
                self._watches.discard(stream)

    def stop(self) -> None:
        with self._lock:
            streams = list(self._watches)
        for stream in streams:
            stream.stop()


class Watcher:
    """The list-and-watch cycle (module docstring) for one kind in one scope, on a thread."""

    def __init__(
        self,
        api: ListWatch,
        cache: ObjectCache,
        kind: Kind,
        namespace: str | None,
        *,
        stop: threading.Event,
        timeout_seconds: int = 300,
        backoff_initial_seconds: float = 0.5,
        backoff_max_seconds: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self.api = api
        self.cache = cache
        self.kind = kind
        self.namespace = namespace
        self.stop_event = stop
        self.timeout_seconds = timeout_seconds
        self.backoff_initial_seconds = backoff_initial_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.rng = rng or random.Random()
        #: True once the first list succeeded.
        self.synced = False
        #: The version the next watch starts from ("" → list first).
        self.resource_version = ""
        self.lists = 0
        self.failures = 0
        self._thread: threading.Thread | None = None

    @property
    def scope(self) -> str:
        return f"{self.kind.plural} in {self.namespace or 'all namespaces'}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.run, name=f"watch-{self.kind.plural}-{self.namespace or 'all'}", daemon=True
        )
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        """Cycle until the stop event is set."""
        while not self.stop_event.is_set():
            delay = self.run_once()
            if delay > 0:
                self.stop_event.wait(delay)

    def run_once(self) -> float:
        """One list (when needed) and one watch; return how long to wait before the next."""
        try:
            if not self.resource_version:
                items, version = self.api.list(self.kind.plural, self.namespace)
                self.cache.replace(self.kind.plural, self.namespace, items)
                self.resource_version = version
                self.lists += 1
                self._recovered()
                self.synced = True
            for event_type, obj in self.api.watch(
                self.kind.plural, self.namespace, self.resource_version, self.timeout_seconds
            ):
                if event_type == "ERROR":
                    raise AutoscalerError(f"watch {self.scope}: {obj.get('message', obj)}")
                version = resource_version(obj)
                if event_type != "BOOKMARK":
                    self.cache.apply(self.kind.plural, event_type, obj)
                if version:
                    self.resource_version = version
                self._recovered()
                if self.stop_event.is_set():
                    break
            return 0.0
        except WatchExpired:
            log.info("watch of %s expired (410); listing again", self.scope)
            self.resource_version = ""
            return 0.0
        except Exception as exc:
            if self.stop_event.is_set():
                return 0.0  # the stream was cut to stop
            self.failures += 1
            delay = backoff_delay(
                self.failures, self.backoff_initial_seconds, self.backoff_max_seconds, self.rng
            )
            if self.failures == 1 or self.failures % 10 == 0:
                log.warning(
                    "list/watch of %s failed (%d in a row): %s; retrying in %.1fs",
                    self.scope,
                    self.failures,
                    exc,
                    delay,
                )
            return delay

    def _recovered(self) -> None:
        if self.failures:
            log.info("list/watch of %s recovered", self.scope)
        self.failures = 0


class ClusterController:
    """The watchers of the three kinds in the configured namespaces, feeding one cache."""

    def __init__(
        self,
        api: ListWatch,
        *,
        namespaces: Sequence[str] = (),
        timeout_seconds: int = 300,
        backoff_initial_seconds: float = 0.5,
        backoff_max_seconds: float = 30.0,
    ) -> None:
        self.api = api
        self.cache = ObjectCache()
        self._stop = threading.Event()
        scopes: list[str | None] = list(dict.fromkeys(namespaces)) or [None]
        self.watchers = [
            Watcher(
                api,
                self.cache,
                kind,
                namespace,
                stop=self._stop,
                timeout_seconds=timeout_seconds,
                backoff_initial_seconds=backoff_initial_seconds,
                backoff_max_seconds=backoff_max_seconds,
            )
            for kind in KINDS
            for namespace in scopes
        ]

    def start(self) -> None:
        for watcher in self.watchers:
            watcher.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self.api.stop()
        for watcher in self.watchers:
            watcher.join(timeout)

    @property
    def synced(self) -> bool:
        """True once every kind has been listed in every scope."""
        return all(w.synced for w in self.watchers)

    @property
    def alive(self) -> bool:
        return all(w.alive for w in self.watchers)


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class ClusterSpecs:
    """One snapshot of the cache, validated."""

    version: int
    objects: dict[ObjKey, Obj]
    result: LoadResult
    #: Invalid objects and their issues.
    invalid: dict[ObjKey, list[SpecIssue]] = field(default_factory=dict)

    @property
    def issues(self) -> list[SpecIssue]:
        return self.result.issues


def _for_validation(obj: Obj) -> Obj:
    """The object without status and without the metadata the API server owns."""
    meta = obj.get("metadata") or {}
    body = {k: v for k, v in obj.items() if k != "status"}
    body["metadata"] = {k: meta[k] for k in METADATA_KEPT if k in meta}
    if "generation" in meta:
        body["metadata"]["generation"] = meta["generation"]
    return body


def _history_status(obj: Obj, key: str) -> HorizontalAutoscalerStatus | None:
    """The history part of an autoscaler's status, or None when there is none or it is bad."""
    status = obj.get("status")
    if not isinstance(status, dict):
        return None
    history = {k: status[k] for k in HISTORY_FIELDS if k in status}
    if not history:
        return None
    try:
        return HorizontalAutoscalerStatus.model_validate(history)
    except ValidationError as exc:
        log.warning("autoscaler %s: history in status ignored: %s", key, exc.errors()[0]["msg"])
        return None


def build_specs(version: int, objects: dict[ObjKey, Obj]) -> ClusterSpecs:
    """Validate a snapshot of the cache (module docstring)."""
    order = {k.plural: i for i, k in enumerate(KINDS)}
    kinds = {k.plural: k.kind for k in KINDS}
    live = sorted(
        (
            k
            for k, obj in objects.items()
            if not (obj.get("metadata") or {}).get("deletionTimestamp")
        ),
        key=lambda k: (order.get(k[0], len(order)), k[1]),
    )
    where = {k: where_of(kinds.get(k[0], k[0]), k[1]) for k in live}
    result = load_objects([(where[k], _for_validation(objects[k])) for k in live])
    for key, resource in list(result.specs.autoscalers.items()):
        status = _history_status(objects[(AUTOSCALERS.plural, key)], key)
        if status is not None:
            result.specs.autoscalers[key] = _with_status(resource, status)
    by_where = {w: k for k, w in where.items()}
    invalid: dict[ObjKey, list[SpecIssue]] = {}
    for issue in result.issues:
        ckey = by_where.get(issue.file)
        if ckey is not None:
            invalid.setdefault(ckey, []).append(issue)
    return ClusterSpecs(version, objects, result, invalid)


def _with_status(
    resource: HorizontalAutoscaler, status: HorizontalAutoscalerStatus
) -> HorizontalAutoscaler:
    return resource.model_copy(update={"status": status})


def describe_issues(issues: Sequence[SpecIssue]) -> str:
    """``spec.maxReplicas: must be …; spec.metrics[0]…: …`` (one line for a condition)."""
    return "; ".join(f"{i.path}: {i.message}" if i.path else i.message for i in issues)


# --------------------------------------------------------------------------- replicas


@dataclass
class _Replicas:
    known: int | None
    version: str
    own: list[str] = field(default_factory=list)


class ReplicaTracker:
    """Which changes of a ScalableNodeGroup's ``spec.replicas`` someone else made.

    :meth:`own` notes every object this service wrote (the version and the spec.replicas it
    produced). :meth:`observe` is given each version of the object seen; it returns the new
    count when that version is not one of ours and its ``spec.replicas`` differs from the last
    count known (ours or theirs) — an override — else None. The first version seen is never an
    override: a new runtime starts from it anyway.
    """

    def __init__(self, remembered: int = 16) -> None:
        self.remembered = remembered
        self._state: dict[str, _Replicas] = {}

    def observe(self, key: str, version: str, replicas: int | None) -> int | None:
        state = self._state.get(key)
        if state is None:
            self._state[key] = _Replicas(replicas, version)
            return None
        if version == state.version:
            return None
        state.version = version
        if version in state.own:
            return None  # ours: :meth:`own` already knows the count (or a newer one of ours)
        if replicas is None or replicas == state.known:
            return None
        state.known = replicas
        return replicas

    def own(self, key: str, version: str, replicas: int | None) -> None:
        state = self._state.setdefault(key, _Replicas(replicas, ""))
        state.known = replicas
        state.own = [*state.own[-(self.remembered - 1) :], version]

    def forget_except(self, keys: set[str]) -> None:
        for key in set(self._state) - keys:
            del self._state[key]
