"""Leader election with a ``coordination.k8s.io/v1`` Lease, on the injected clock.

Only the leader acts (runs the loop, writes status, scale and Events); the others stand by with a
warm cache. The rules are client-go's ``leaderelection`` package with its defaults:

1. A candidate reads the Lease every ``retry_seconds``. It **acquires** the Lease when there is
   none, when it has no holder (released), or when its record has not changed for
   ``leaseDurationSeconds`` *as seen on the candidate's own clock*: expiry counts from the moment
   the candidate observed the current record, never from the ``renewTime`` written by another
   machine, so clock skew between nodes does not matter.
2. The leader **renews** every ``renew_seconds`` (retrying every ``retry_seconds`` after a
   failure). It stops acting as soon as ``renew_deadline_seconds`` have passed since the start of
   its last successful renewal; the deadline is shorter than the lease duration, so a leader that
   cannot renew has stopped before any standby can see the Lease expire.
3. Every write is conditional on the ``resourceVersion`` that was read (a PUT), so two candidates
   racing for an expired Lease cannot both win: the loser gets 409 Conflict.
4. On graceful shutdown the leader **releases** the Lease (no holder, duration 1 s), so a standby
   takes over at its next attempt instead of after the lease duration.

With the defaults (15 s lease, 10 s deadline, renewals every 5 s, attempts every 2 s), a standby
takes over about 15–19 s after the leader dies.

:class:`LeaderElector` holds the rules and is driven by :meth:`LeaderElector.step` (one attempt);
:meth:`LeaderElector.run` calls it on a thread. The Lease is read and written through a small
:class:`LeaseStore` protocol: :class:`KubeLeaseStore` in a cluster, an in-memory fake in tests.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from autoscaler.api import Clock
from autoscaler.clock import to_datetime, to_timestamp
from autoscaler.errors import AutoscalerError, NotFoundError
from autoscaler.kube import KubeClients, translate

log = logging.getLogger("autoscaler.kube.leader")

GROUP, VERSION, PLURAL = "coordination.k8s.io", "v1", "leases"


def default_identity() -> str:
    """``POD_NAME`` when set (the Helm chart passes it), else ``hostname_pid``."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}_{os.getpid()}"


@dataclass(frozen=True)
class LeaseRecord:
    """The fields of a Lease that election uses (times in epoch seconds)."""

    holder: str | None
    duration_seconds: int
    acquire_time: float | None = None
    renew_time: float | None = None
    transitions: int = 0
    #: The version read; writes are conditional on it.
    resource_version: str | None = None


class LeaseStore(Protocol):
    """Reads and writes one Lease; errors are :mod:`autoscaler.errors` (409 → RetryableError)."""

    def get(self) -> LeaseRecord | None:
        """The Lease, or None when it does not exist."""
        ...

    def create(self, record: LeaseRecord) -> LeaseRecord:
        """Create the Lease (fails when it exists); returns it with its resourceVersion."""
        ...

    def update(self, record: LeaseRecord) -> LeaseRecord:
        """Replace the Lease if it is still at ``record.resource_version``."""
        ...


class LeaderElector:
    """One candidate in the election for one Lease (see the module docstring for the rules).

    ``on_started_leading`` / ``on_stopped_leading`` are called from :meth:`step` (so from the
    election thread) when this candidate gains or loses leadership. Writers must not rely on the
    callbacks alone: they check :attr:`is_leader` right before each write, which also turns False
    by itself once the renew deadline passes.
    """

    def __init__(
        self,
        store: LeaseStore,
        identity: str,
        clock: Clock,
        *,
        lease_duration_seconds: float = 15.0,
        renew_deadline_seconds: float = 10.0,
        renew_seconds: float = 5.0,
        retry_seconds: float = 2.0,
        on_started_leading: Callable[[], None] | None = None,
        on_stopped_leading: Callable[[], None] | None = None,
    ) -> None:
        if not renew_seconds < renew_deadline_seconds < lease_duration_seconds:
            raise ValueError("need renew_seconds < renew_deadline_seconds < lease_duration_seconds")
        self.store = store
        self.identity = identity
        self.clock = clock
        self.lease_duration_seconds = lease_duration_seconds
        self.renew_deadline_seconds = renew_deadline_seconds
        self.renew_seconds = renew_seconds
        self.retry_seconds = retry_seconds
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self._lock = threading.RLock()
        self._leading = False
        self._renewed_at = 0.0
        self._observed: LeaseRecord | None = None
        self._observed_time = 0.0

    # ----------------------------------------------------------------- state

    @property
    def is_leader(self) -> bool:
        """True while this candidate holds the Lease and its last renewal is recent enough."""
        with self._lock:
            return self._leading and self.clock() < self._renewed_at + self.renew_deadline_seconds

    @property
    def holder(self) -> str | None:
        """The holder in the last Lease record seen (None: none seen, or released)."""
        with self._lock:
            return self._observed.holder if self._observed is not None else None

    def _set_leading(self, leading: bool) -> None:
        with self._lock:
            if leading == self._leading:
                return
            self._leading = leading
        if leading:
            log.info("%s became the leader (Lease holder)", self.identity)
            callback = self.on_started_leading
        else:
            log.warning("%s is no longer the leader; it stops acting", self.identity)
            callback = self.on_stopped_leading
        if callback is not None:
            callback()

    def _observe(self, record: LeaseRecord, now: float) -> None:
        with self._lock:
            if self._observed is None or record.resource_version != self._observed.resource_version:
                self._observed = record
                self._observed_time = now

    def observe(self, record: LeaseRecord) -> None:
        """Note a record of the Lease read elsewhere (a list): its expiry counts from now when
        it changed since the last record seen."""
        self._observe(record, self.clock())

    def _won(self, record: LeaseRecord, started: float) -> float:
        with self._lock:
            self._observed = record
            self._observed_time = started
            self._renewed_at = started
        self._set_leading(True)
        return started + self.renew_seconds

    # ----------------------------------------------------------------- one attempt

    def step(self) -> float:
        """Try to acquire or renew the Lease once; return when to try next (clock time)."""
        now = self.clock()
        with self._lock:
            expired = self._leading and now >= self._renewed_at + self.renew_deadline_seconds
        if expired:
            log.warning(
                "%s could not renew the Lease within %.0fs",
                self.identity,
                self.renew_deadline_seconds,
            )
            self._set_leading(False)
        try:
            record = self.store.get()
        except AutoscalerError as exc:
            log.warning("reading the Lease failed: %s", exc)
            return now + self.retry_seconds
        duration = max(1, round(self.lease_duration_seconds))
        if record is None:
            try:
                created = self.store.create(LeaseRecord(self.identity, duration, now, now, 0))
            except AutoscalerError as exc:
                log.info("creating the Lease failed (another candidate may have won): %s", exc)
                return now + self.retry_seconds
            return self._won(created, now)
        self._observe(record, now)
        held_by_other = bool(record.holder) and record.holder != self.identity
        with self._lock:
            expires = self._observed_time + record.duration_seconds
        if held_by_other and now < expires:
            if self._leading:
                log.warning("the Lease is held by %s", record.holder)
                self._set_leading(False)
            return now + self.retry_seconds
        if record.holder == self.identity:
            wanted = replace(record, duration_seconds=duration, renew_time=now)
            if wanted.acquire_time is None:
                wanted = replace(wanted, acquire_time=now)
        else:
            wanted = LeaseRecord(
                self.identity,
                duration,
                now,
                now,
                record.transitions + 1,
                record.resource_version,
            )
        try:
            updated = self.store.update(wanted)
        except AutoscalerError as exc:
            log.info("writing the Lease failed: %s", exc)
            if exc.code == "Conflict":  # someone else wrote it: never act on a stale read
                self._set_leading(False)
            return now + self.retry_seconds  # else lead on until the renew deadline
        if record.holder != self.identity:
            log.info(
                "%s acquired the Lease from %s", self.identity, record.holder or "nobody (released)"
            )
        return self._won(updated, now)

    def run(self, stop: threading.Event) -> None:
        """Attempt on schedule until ``stop`` is set (the election thread)."""
        while not stop.is_set():
            try:
                next_due = self.step()
            except Exception:  # never let the election thread die
                log.exception("leader election attempt failed")
                next_due = self.clock() + self.retry_seconds
            if self.is_leader:
                with self._lock:
                    deadline = self._renewed_at + self.renew_deadline_seconds
                next_due = min(next_due, deadline)
            stop.wait(min(max(next_due - self.clock(), 0.05), self.retry_seconds))

    def release(self) -> bool:
        """Give the Lease up if this candidate holds it (graceful shutdown). True when released."""
        with self._lock:
            record = self._observed
            leading = self._leading
        if not leading or record is None or record.holder != self.identity:
            self._set_leading(False)
            return False
        now = self.clock()
        released = LeaseRecord(None, 1, now, now, record.transitions, record.resource_version)
        self._set_leading(False)
        try:
            updated = self.store.update(released)
        except AutoscalerError as exc:
            log.warning("releasing the Lease failed: %s", exc)
            return False
        self._observe(updated, now)
        log.info("%s released the Lease", self.identity)
        return True


# --------------------------------------------------------------------------- the Lease in a cluster


def _micro_time(timestamp: float | None) -> str | None:
    """RFC 3339 with exactly six fractional digits (what ``MicroTime`` parses)."""
    if timestamp is None:
        return None
    return to_datetime(timestamp).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    return to_timestamp(datetime.fromisoformat(value.replace("Z", "+00:00")))


def record_from_lease(lease: dict[str, Any]) -> LeaseRecord:
    """A Lease object (JSON) as a record."""
    spec = lease.get("spec") or {}
    return LeaseRecord(
        holder=spec.get("holderIdentity") or None,
        duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
        acquire_time=_parse_time(spec.get("acquireTime")),
        renew_time=_parse_time(spec.get("renewTime")),
        transitions=int(spec.get("leaseTransitions") or 0),
        resource_version=(lease.get("metadata") or {}).get("resourceVersion"),
    )


class KubeLeaseStore:
    """The Lease ``namespace/name`` through the API (verbs: get, create, update on leases).

    Requests go through the client's generic object calls so that the bodies are sent exactly as
    built here (``MicroTime`` with six fractional digits), as plain JSON both ways.
    """

    def __init__(
        self, clients: KubeClients, name: str, namespace: str, timeout_seconds: float = 5.0
    ) -> None:
        self.clients = clients
        self.name = name
        self.namespace = namespace
        self.timeout_seconds = timeout_seconds

    def _body(self, record: LeaseRecord) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "holderIdentity": record.holder,
            "leaseDurationSeconds": record.duration_seconds,
            "acquireTime": _micro_time(record.acquire_time),
            "renewTime": _micro_time(record.renew_time),
            "leaseTransitions": record.transitions,
        }
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if record.resource_version:
            metadata["resourceVersion"] = record.resource_version
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Lease",
            "metadata": metadata,
            "spec": {k: v for k, v in spec.items() if v is not None},
        }

    def _call(self, action: str, call: Callable[[], Any]) -> dict[str, Any]:
        try:
            response = call()
        except Exception as exc:
            raise translate(exc, f"{action} lease {self.namespace}/{self.name}") from exc
        lease: dict[str, Any] = json.loads(response.data)
        return lease

    def get(self) -> LeaseRecord | None:
        api = self.clients.custom()
        try:
            lease = self._call(
                "GET",
                lambda: api.get_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    self.namespace,
                    PLURAL,
                    self.name,
                    _preload_content=False,
                    _request_timeout=self.timeout_seconds,
                ),
            )
        except NotFoundError:
            return None
        return record_from_lease(lease)

    def create(self, record: LeaseRecord) -> LeaseRecord:
        api = self.clients.custom()
        body = self._body(replace(record, resource_version=None))
        lease = self._call(
            "POST",
            lambda: api.create_namespaced_custom_object(
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                body,
                _preload_content=False,
                _request_timeout=self.timeout_seconds,
            ),
        )
        return record_from_lease(lease)

    def update(self, record: LeaseRecord) -> LeaseRecord:
        api = self.clients.custom()
        body = self._body(record)
        lease = self._call(
            "PUT",
            lambda: api.replace_namespaced_custom_object(
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                self.name,
                body,
                _preload_content=False,
                _request_timeout=self.timeout_seconds,
            ),
        )
        return record_from_lease(lease)
