"""Writes what the leader knows back to the custom resources: status, and node-group replicas.

:class:`StatusWriter` is given, each round, the :class:`Target` state of every object (computed
from the control loop by the service) and writes what differs:

1. **spec.replicas** of a ScalableNodeGroup, when the loop's desired count differs from the
   object's: a JSON merge patch of ``spec.replicas`` carrying ``metadata.resourceVersion`` (a
   precondition: if anyone changed the object since it was read, the API answers 409 and nothing
   is written — an operator's own edit of ``spec.replicas`` is never overwritten blindly).
2. **status** through the ``/status`` subresource: a PUT of the whole status with
   ``observedGeneration`` and conditions, carrying the same precondition. A change to anything
   but timestamps and signal values is written at once; changes of those alone at most every
   ``interval_seconds``.

The resourceVersion used is the one of the object version the target was computed from, or the
one the writer's own previous write returned (the cache lags behind it for a moment). On 409 the
object is re-read (``on_conflict`` hands the fresh object to the cache) and the write is retried
next round, computed from the fresh version. Before every single write the writer asks
``is_leader()``: a deposed leader stops writing at once, and a write it had already computed
carries a resourceVersion older than the new leader's writes, so the API rejects it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from autoscaler.api import Clock
from autoscaler.errors import AutoscalerError, NotFoundError
from autoscaler.kube import KubeClients, translate

log = logging.getLogger("autoscaler.kube.status")

GROUP, VERSION = "autoscaler.dev", "v1alpha1"
#: Status fields that change with every observation; alone they are written only periodically.
VOLATILE = frozenset({"lastObservedTime", "lastUpdated", "signals", "currentMetrics"})


@dataclass(frozen=True)
class Target:
    """The state one object should have, computed from one cached version of it."""

    plural: str
    api_version: str
    kind: str
    namespace: str
    name: str
    #: The resourceVersion of the cached version the target was computed from.
    resource_version: str
    #: That version's status and spec.replicas (what the API has, as far as the cache knows).
    current_status: dict[str, Any]
    current_replicas: int | None
    #: The status to write.
    status: dict[str, Any]
    #: ScalableNodeGroups: the count to write to spec.replicas (None: leave it alone).
    replicas: int | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.plural, self.namespace, self.name)


class ObjectApi(Protocol):
    """The object calls the writer makes (JSON in and out; errors are autoscaler errors)."""

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any]: ...

    def patch(
        self, plural: str, namespace: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]: ...

    def replace_status(
        self, plural: str, namespace: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]: ...


class KubeObjectApi:
    """:class:`ObjectApi` on the custom objects API (verbs: get, patch; update on ``/status``)."""

    def __init__(self, clients: KubeClients, timeout_seconds: float = 10.0) -> None:
        self.clients = clients
        self.timeout_seconds = timeout_seconds

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        try:
            obj: dict[str, Any] = self.clients.custom().get_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, name, _request_timeout=self.timeout_seconds
            )
        except Exception as exc:
            raise translate(exc, f"GET {plural}/{namespace}/{name}") from exc
        return obj

    def patch(self, plural: str, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            obj: dict[str, Any] = self.clients.custom().patch_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, name, body, _request_timeout=self.timeout_seconds
            )
        except Exception as exc:
            raise translate(exc, f"PATCH {plural}/{namespace}/{name}") from exc
        return obj

    def replace_status(
        self, plural: str, namespace: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        try:
            obj: dict[str, Any] = self.clients.custom().replace_namespaced_custom_object_status(
                GROUP, VERSION, namespace, plural, name, body, _request_timeout=self.timeout_seconds
            )
        except Exception as exc:
            raise translate(exc, f"PUT {plural}/{namespace}/{name}/status") from exc
        return obj


@dataclass
class _Known:
    """What the writer knows of one object on the API server."""

    #: The cached version it last took into account.
    seen_version: str
    #: The version to base the next write on.
    resource_version: str
    status: dict[str, Any]
    replicas: int | None
    written_at: float | None = None
    #: A write conflicted: wait for a newer version before writing again.
    stale: bool = False
    #: The versions our own latest writes produced.
    own_versions: list[str] = field(default_factory=list)


def significant(status: dict[str, Any]) -> dict[str, Any]:
    """``status`` without the fields that change with every observation (:data:`VOLATILE`)."""
    return {k: v for k, v in status.items() if k not in VOLATILE}


def _resource_version(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


class StatusWriter:
    """Writes targets for the leader (module docstring). Not thread-safe: one caller at a time.

    ``on_written(plural, obj)`` receives every object a write returned (the service notes its
    own writes with it); ``on_conflict(plural, namespace, name, obj)`` the object re-read after a
    409 (None when it is gone); ``on_result(plural, what, result)`` counts writes: ``what`` is
    ``status`` or ``replicas``, ``result`` ``ok``, ``conflict`` or ``error``.
    """

    def __init__(
        self,
        api: ObjectApi,
        clock: Clock,
        *,
        is_leader: Callable[[], bool],
        interval_seconds: float = 10.0,
        on_written: Callable[[str, dict[str, Any]], None] | None = None,
        on_conflict: Callable[[str, str, str, dict[str, Any] | None], None] | None = None,
        on_result: Callable[[str, str, str], None] | None = None,
    ) -> None:
        self.api = api
        self.clock = clock
        self.is_leader = is_leader
        self.interval_seconds = interval_seconds
        self.on_written = on_written
        self.on_conflict = on_conflict
        self.on_result = on_result
        self._known: dict[tuple[str, str, str], _Known] = {}

    def forget(self) -> None:
        """Drop what is known (a new leadership term starts from the cache)."""
        self._known.clear()

    def write(self, targets: Iterable[Target], *, statuses: bool = True) -> int:
        """Write what differs for each target; return how many writes succeeded. With
        ``statuses=False`` only spec.replicas is written (a first pass, so that the statuses
        computed afterwards can observe the generation those writes produced)."""
        done = 0
        wanted: set[tuple[str, str, str]] = set()
        for target in targets:
            wanted.add(target.key)
            if not self.is_leader():
                break
            done += self._write_one(target, statuses)
        for key in set(self._known) - wanted:
            del self._known[key]
        return done

    def _write_one(self, target: Target, statuses: bool = True) -> int:
        known = self._known.get(target.key)
        if known is not None and known.seen_version != target.resource_version:
            if target.resource_version in known.own_versions:
                # The cache caught up with one of our own writes: what we know since then is
                # newer (compared with what we wrote, fields the API server prunes cause no
                # rewrites).
                known.seen_version = target.resource_version
            else:
                known = None
        if known is None:
            previous = self._known.get(target.key)
            known = _Known(
                seen_version=target.resource_version,
                resource_version=target.resource_version,
                status=target.current_status,
                replicas=target.current_replicas,
                written_at=previous.written_at if previous is not None else None,
            )
            self._known[target.key] = known
        if known.stale:
            return 0
        done = 0
        if target.replicas is not None and target.replicas != known.replicas:
            body = {
                "metadata": {"resourceVersion": known.resource_version},
                "spec": {"replicas": target.replicas},
            }
            if not self._attempt(target, known, "replicas", body):
                return done
            known.replicas = target.replicas
            done += 1
        now = self.clock()
        if statuses and target.status != known.status:
            due = known.written_at is None or now - known.written_at >= self.interval_seconds
            if due or significant(target.status) != significant(known.status):
                body = {
                    "apiVersion": target.api_version,
                    "kind": target.kind,
                    "metadata": {
                        "name": target.name,
                        "namespace": target.namespace,
                        "resourceVersion": known.resource_version,
                    },
                    "status": target.status,
                }
                if self._attempt(target, known, "status", body):
                    known.status = target.status
                    known.written_at = now
                    done += 1
        return done

    def _attempt(self, target: Target, known: _Known, what: str, body: dict[str, Any]) -> bool:
        """One conditional write; True when it succeeded."""
        if not self.is_leader():
            return False
        plural, namespace, name = target.key
        try:
            if what == "replicas":
                result = self.api.patch(plural, namespace, name, body)
            else:
                result = self.api.replace_status(plural, namespace, name, body)
        except AutoscalerError as exc:
            if exc.code == "Conflict":
                log.info("%s/%s/%s changed meanwhile (409); re-reading", plural, namespace, name)
                self._count(plural, what, "conflict")
                known.stale = True
                self._reread(target, known)
            elif isinstance(exc, NotFoundError):
                self._count(plural, what, "error")
                known.stale = True
            else:
                log.warning("writing %s of %s/%s/%s failed: %s", what, plural, namespace, name, exc)
                self._count(plural, what, "error")
            return False
        self._count(plural, what, "ok")
        version = _resource_version(result)
        if version:
            known.resource_version = version
            known.own_versions = [*known.own_versions[-7:], version]
        if self.on_written is not None:
            self.on_written(plural, result)
        return True

    def _reread(self, target: Target, known: _Known) -> None:
        """After a 409: hand the fresh object to the cache; the next round works from it. When
        it is the very version the target came from (the conflict was not about a newer
        version), retry from that version."""
        plural, namespace, name = target.key
        try:
            fresh: dict[str, Any] | None = self.api.get(plural, namespace, name)
        except NotFoundError:
            fresh = None
        except AutoscalerError as exc:
            log.warning("re-reading %s/%s/%s failed: %s", plural, namespace, name, exc)
            known.stale = False  # retry next round from what the cache has
            return
        if fresh is not None and _resource_version(fresh) == known.seen_version:
            known.resource_version = known.seen_version
            known.stale = False
        if self.on_conflict is not None:
            self.on_conflict(plural, namespace, name, fresh)

    def _count(self, plural: str, what: str, result: str) -> None:
        if self.on_result is not None:
            self.on_result(plural, what, result)
