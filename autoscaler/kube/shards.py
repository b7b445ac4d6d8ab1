"""Sharding: N replicas split the autoscalers, each shard guarded by its own Lease.

With ``kubernetes.shards`` = S > 1 the objects are split into S shards. An autoscaler belongs to
the shard of the node group it scales (:func:`shard_of` its ``namespace/name``), so an autoscaler
and its node group always move together; a node group and a producer belong to the shard of their
own key (that decides only who writes their status: producers are read-only and run in every
replica that needs them).

Members. Every replica announces itself with a member Lease ``<lease_name>-member-<identity>``
that it renews like a leader; the live members are those whose Lease has a holder and changed
within its duration *on the observer's own clock* (as in :mod:`autoscaler.kube.leader`, so clock
skew does not matter). Member and shard Leases carry the label :data:`GROUP_LABEL`, so one list
per round reads them all (and starts the expiry clock of shards held by others).

Ring. :func:`assign` maps each shard to one live member by rendezvous (highest random weight)
hashing: a member joining or leaving moves only the shards it wins or held, about S/N of them.

Ownership. Shard ``i`` has the Lease ``<lease_name>-shard-<i>`` and one
:class:`~autoscaler.kube.leader.LeaderElector` per shard holds it by the election rules (acquire
only when absent, released or expired; conditional writes; stop acting at the renew deadline,
before anyone can see the Lease expire). A replica tries to acquire exactly the shards the ring
gives it. A shard the ring moves away is first **drained**: it stops counting as owned at once,
and its Lease is released only after the service has confirmed (:meth:`ShardManager.ack`) that
its loop no longer runs any object of that shard. The new owner acquires only after the release
(or expiry), so two replicas never act on one shard at once.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from autoscaler.api import Clock
from autoscaler.errors import AutoscalerError
from autoscaler.kube import KubeClients, translate
from autoscaler.kube.leader import (
    GROUP,
    PLURAL,
    VERSION,
    KubeLeaseStore,
    LeaderElector,
    LeaseRecord,
    LeaseStore,
    record_from_lease,
)

log = logging.getLogger("autoscaler.kube.shards")

#: Label on member and shard Leases; its value is the ``lease_name`` of the group of replicas.
GROUP_LABEL = "autoscaler.dev/lease-group"


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def shard_of(key: str, shards: int) -> int:
    """The shard of an object key (``namespace/name``); stable across processes and versions."""
    return _hash(key) % shards if shards > 1 else 0


def assign(shards: int, members: Iterable[str]) -> dict[int, str]:
    """Each shard → its member by rendezvous hashing (empty without members). Deterministic."""
    ranked = sorted(set(members))
    if not ranked:
        return {}
    return {i: max(ranked, key=lambda m: (_hash(f"{m}\x00{i}"), m)) for i in range(shards)}


class LeaseDirectory(Protocol):
    """The Leases of one group of replicas: a store per Lease, and all of them listed."""

    def store(self, name: str) -> LeaseStore:
        """The Lease ``name`` (created with :data:`GROUP_LABEL`)."""
        ...

    def leases(self) -> dict[str, LeaseRecord]:
        """Every Lease of the group by name."""
        ...


class _LabeledLeaseStore(KubeLeaseStore):
    """A :class:`KubeLeaseStore` whose Lease carries labels."""

    def __init__(self, clients: KubeClients, name: str, namespace: str, labels: dict[str, str]):
        super().__init__(clients, name, namespace)
        self.labels = labels

    def _body(self, record: LeaseRecord) -> dict[str, Any]:
        body = super()._body(record)
        body["metadata"]["labels"] = dict(self.labels)
        return body


class KubeLeaseDirectory:
    """Leases in ``namespace`` through the API (verbs: get, list, create, update on leases)."""

    def __init__(self, clients: KubeClients, group: str, namespace: str) -> None:
        self.clients = clients
        self.group = group
        self.namespace = namespace

    def store(self, name: str) -> LeaseStore:
        return _LabeledLeaseStore(self.clients, name, self.namespace, {GROUP_LABEL: self.group})

    def leases(self) -> dict[str, LeaseRecord]:
        api = self.clients.custom()
        try:
            result = api.list_namespaced_custom_object(
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                label_selector=f"{GROUP_LABEL}={self.group}",
                _request_timeout=5.0,
            )
        except Exception as exc:
            raise translate(exc, f"LIST leases in {self.namespace}") from exc
        return {
            str(item["metadata"]["name"]): record_from_lease(item)
            for item in result.get("items") or []
        }


class ShardManager:
    """Membership, the ring and one elector per shard for one replica (module docstring).

    Driven by :meth:`step` (one round) from :meth:`run`'s thread. :meth:`owned` is what the
    replica may act on right now; ``on_change`` is called when it may have changed.
    """

    def __init__(
        self,
        directory: LeaseDirectory,
        lease_name: str,
        shards: int,
        identity: str,
        clock: Clock,
        *,
        lease_duration_seconds: float = 15.0,
        renew_deadline_seconds: float = 10.0,
        renew_seconds: float = 5.0,
        retry_seconds: float = 2.0,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.directory = directory
        self.shards = shards
        self.identity = identity
        self.clock = clock
        self.retry_seconds = retry_seconds
        self.lease_duration_seconds = lease_duration_seconds
        self.on_change = on_change
        self.member_prefix = f"{lease_name}-member-"
        self.shard_prefix = f"{lease_name}-shard-"

        def elector(store: LeaseStore, callbacks: bool) -> LeaderElector:
            return LeaderElector(
                store,
                identity,
                clock,
                lease_duration_seconds=lease_duration_seconds,
                renew_deadline_seconds=renew_deadline_seconds,
                renew_seconds=renew_seconds,
                retry_seconds=retry_seconds,
                on_started_leading=self._changed if callbacks else None,
                on_stopped_leading=self._changed if callbacks else None,
            )

        self.member = elector(directory.store(self.member_prefix + identity), False)
        self.electors = [
            elector(directory.store(f"{self.shard_prefix}{i}"), True) for i in range(shards)
        ]
        self._lock = threading.RLock()
        self._due = [0.0] * shards
        self._member_due = 0.0
        #: member Lease name → (resourceVersion, when this replica saw it change)
        self._seen: dict[str, tuple[str | None, float]] = {}
        self._live: set[str] = {identity}
        self._assigned: set[int] = set()
        self._draining: set[int] = set()
        self._acked: frozenset[int] = frozenset()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    # ----------------------------------------------------------------- state

    def owned(self) -> frozenset[int]:
        """Shards held (within the renew deadline), assigned to this replica and not draining."""
        with self._lock:
            draining = set(self._draining)
        return frozenset(
            i for i, e in enumerate(self.electors) if e.is_leader and i not in draining
        )

    def owns(self, shard: int) -> bool:
        """True while this replica may act on ``shard``."""
        return shard in self.owned()

    def claim(self) -> frozenset[int]:
        """:meth:`owned`, noted as acted on (atomically) before the service starts acting on it:
        a shard claimed is not released until a later :meth:`ack` leaves it out."""
        with self._lock:
            owned = self.owned()
            self._acked = self._acked | owned
            return owned

    def ack(self, acting: Iterable[int]) -> None:
        """The service acts on these shards only from now on (drained shards may be released)."""
        with self._lock:
            self._acked = frozenset(acting)

    @property
    def members(self) -> frozenset[str]:
        """The live members seen at the last round (this replica always included)."""
        with self._lock:
            return frozenset(self._live)

    @property
    def assigned(self) -> frozenset[int]:
        """The shards the ring gave this replica at the last round."""
        with self._lock:
            return frozenset(self._assigned)

    # ----------------------------------------------------------------- one round

    def _refresh(self, now: float) -> None:
        try:
            leases = self.directory.leases()
        except AutoscalerError as exc:
            log.warning("listing the Leases failed: %s", exc)
            return  # keep the last view: membership only decides who tries, not who acts
        live = {self.identity}
        seen: dict[str, tuple[str | None, float]] = {}
        for name, record in leases.items():
            shard = name.removeprefix(self.shard_prefix)
            if shard.isdigit() and int(shard) < self.shards:
                elector = self.electors[int(shard)]
                if elector.holder != self.identity:  # its own record it knows better
                    elector.observe(record)
            if not name.startswith(self.member_prefix):
                continue
            before = self._seen.get(name)
            if before is not None and before[0] == record.resource_version:
                seen[name] = before
            else:
                seen[name] = (record.resource_version, now)
            if record.holder and now < seen[name][1] + record.duration_seconds:
                live.add(record.holder)
        with self._lock:
            self._seen = seen
            self._live = live

    def step(self) -> float:
        """Renew the member Lease, refresh the ring, acquire/renew/drain/release shards; return
        when to step next (clock time)."""
        now = self.clock()
        if now >= self._member_due:
            self._member_due = self.member.step()
        self._refresh(now)
        ring = assign(self.shards, self.members)
        assigned = {i for i, member in ring.items() if member == self.identity}
        changed = False
        with self._lock:
            if assigned != self._assigned:
                log.info("%s: shards assigned %s", self.identity, sorted(assigned))
            self._assigned = assigned
        for i, elector in enumerate(self.electors):
            if i in assigned:
                with self._lock:
                    if i in self._draining:
                        self._draining.discard(i)
                        changed = True
                if now >= self._due[i]:
                    self._due[i] = elector.step()
                continue
            if not elector.is_leader:
                with self._lock:
                    self._draining.discard(i)
                self._due[i] = 0.0
                continue
            with self._lock:
                draining = i in self._draining
                if not draining:
                    self._draining.add(i)  # stop acting first
                    changed = True
                drained = draining and i not in self._acked
            if drained:
                log.info("%s releases shard %d (moved to %s)", self.identity, i, ring.get(i))
                elector.release()
                with self._lock:
                    self._draining.discard(i)
                self._due[i] = 0.0
            elif now >= self._due[i]:
                self._due[i] = elector.step()  # keep it until drained
        if changed:
            self._changed()
        due = [self._member_due, *(d for d in self._due if d > 0)]
        return min([*due, now + self.retry_seconds])

    def run(self, stop: threading.Event) -> None:
        """Step on schedule until ``stop`` is set (the sharding thread)."""
        while not stop.is_set():
            try:
                next_due = self.step()
            except Exception:  # never let the thread die
                log.exception("sharding round failed")
                next_due = self.clock() + self.retry_seconds
            stop.wait(min(max(next_due - self.clock(), 0.05), self.retry_seconds))

    def release(self) -> None:
        """Give every shard and the member Lease up (graceful shutdown, after acting stopped)."""
        for elector in self.electors:
            elector.release()
        self.member.release()
