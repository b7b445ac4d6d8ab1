"""Sharding against the Kubernetes API emulator: three replicas in-process split the autoscalers.

Every replica is a :class:`~autoscaler.kube.service.ClusterService` with ``shards`` > 1 on the
real clock (short Lease timings). A watcher samples, every few milliseconds, which replicas may act
on each node group, and every resize that reaches a provider is recorded with who made it and
when: no node group ever has two actors, and each is resized only by the owner the ring names.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from autoscaler import registry
from autoscaler.api import BackendContext, NodeGroupState, Provider, ScalableNodeGroup
from autoscaler.errors import RetryableError
from autoscaler.kube import KubeClients
from autoscaler.kube.leader import LeaseRecord, LeaseStore
from autoscaler.kube.service import ClusterService
from autoscaler.kube.shards import KubeLeaseDirectory, assign, shard_of
from autoscaler.settings import KubernetesSettings, LoopSettings, Settings
from tests.integration.test_cluster_mode import (
    Cluster,
    autoscaler,
    cluster,
    node_group,
    schedule,
    wait_until,
)
from tests.k8s_emulator import KubeEmulator, kube

__all__ = ["cluster", "kube"]  # the fixtures, imported for pytest

pytestmark = pytest.mark.integration

SHARDS = 6
GROUPS = [f"g{i}" for i in range(6)]
TIMINGS: dict[str, Any] = {
    "leader_election": True,
    "shards": SHARDS,
    "lease_name": "autoscaler",
    "lease_duration_seconds": 3,
    "renew_deadline_seconds": 2,
    "renew_seconds": 0.5,
    "retry_seconds": 0.2,
}


class Resizes:
    """Every resize that reached a provider: (replica, node group key, start, end)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[tuple[str, str, float, float]] = []

    def factory(self, identity: str) -> Callable[[ScalableNodeGroup, BackendContext], Provider]:
        def create(resource: ScalableNodeGroup, context: BackendContext) -> Provider:
            key = f"{resource.metadata.namespace}/{resource.metadata.name}"
            return _Recording(registry.create_provider(resource, context), self, identity, key)

        return create


class _Recording:
    def __init__(self, provider: Provider, log: Resizes, identity: str, key: str) -> None:
        self.provider, self.log, self.identity, self.key = provider, log, identity, key

    def get_replicas(self) -> NodeGroupState:
        return self.provider.get_replicas()

    def set_replicas(self, replicas: int) -> None:
        start = time.monotonic()
        self.provider.set_replicas(replicas)
        with self.log.lock:
            self.log.calls.append((self.identity, self.key, start, time.monotonic()))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.provider, name)


class Partitioned:
    """A Lease directory that can be cut off from the API."""

    def __init__(self, directory: KubeLeaseDirectory) -> None:
        self.directory = directory
        self.cut = False

    def _check(self) -> None:
        if self.cut:
            raise RetryableError("partitioned", code="ConnectionError")

    def store(self, name: str) -> LeaseStore:
        return _PartitionedStore(self, self.directory.store(name))

    def leases(self) -> dict[str, LeaseRecord]:
        self._check()
        return self.directory.leases()


class _PartitionedStore:
    def __init__(self, partition: Partitioned, store: LeaseStore) -> None:
        self.partition, self.store = partition, store

    def get(self) -> LeaseRecord | None:
        self.partition._check()
        return self.store.get()

    def create(self, record: LeaseRecord) -> LeaseRecord:
        self.partition._check()
        return self.store.create(record)

    def update(self, record: LeaseRecord) -> LeaseRecord:
        self.partition._check()
        return self.store.update(record)


class Fleet:
    """The replicas, the resize log, and a sampler of who may act on what."""

    def __init__(self, emulator: KubeEmulator, tmp_path: Path) -> None:
        self.kubeconfig = str(emulator.write_kubeconfig(tmp_path / "kubeconfig"))
        self.replicas: dict[str, ClusterService] = {}
        self.partitions: dict[str, Partitioned] = {}
        self.resizes = Resizes()
        self.overlaps: list[tuple[str, list[str]]] = []
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def start(self, identity: str) -> ClusterService:
        settings = Settings(
            kubernetes=KubernetesSettings(
                kubeconfig=self.kubeconfig,
                identity=identity,
                backoff_initial_seconds=0.05,
                backoff_max_seconds=0.5,
                status_interval_seconds=1.0,
                **TIMINGS,
            ),
            loop=LoopSettings(resync_seconds=1, node_group_sync_seconds=1),
        )
        clients = KubeClients(self.kubeconfig)
        partition = Partitioned(KubeLeaseDirectory(clients, "autoscaler", "default"))
        service = ClusterService(
            settings,
            clients=clients,
            lease_directory=partition,
            create_provider=self.resizes.factory(identity),
            tick_seconds=0.1,
        )
        service.start()
        self.replicas[identity] = service
        self.partitions[identity] = partition
        return service

    def _sample(self) -> None:
        while not self._stop.is_set():
            for group in GROUPS:
                key = f"default/{group}"
                actors = [n for n, s in list(self.replicas.items()) if s.owns(key)]
                if len(actors) > 1:
                    self.overlaps.append((key, actors))
            time.sleep(0.002)

    def owners(self) -> dict[str, list[str]]:
        return {
            f"default/{g}": [n for n, s in self.replicas.items() if s.owns(f"default/{g}")]
            for g in GROUPS
        }

    def stop(self) -> None:
        self._stop.set()
        self._sampler.join(2)
        for service in self.replicas.values():
            service.stop(timeout=2)


@pytest.fixture
def fleet(kube: KubeEmulator, tmp_path: Path) -> Iterator[Fleet]:
    fleet = Fleet(kube, tmp_path)
    yield fleet
    fleet.stop()


def ring_owners(members: list[str]) -> dict[str, list[str]]:
    ring = assign(SHARDS, members)
    return {f"default/{g}": [ring[shard_of(f"default/{g}", SHARDS)]] for g in GROUPS}


def create_objects(cluster: Cluster) -> None:
    cluster.create(schedule(replicas=3))
    for group in GROUPS:
        cluster.create(node_group(group, replicas=1), autoscaler(group, target=group))


def lease_holders(cluster: Cluster) -> dict[int, str | None]:
    holders: dict[int, str | None] = {}
    for shard in range(SHARDS):
        lease = cluster.kube.get_object("leases", f"autoscaler-shard-{shard}")
        holders[shard] = lease["spec"].get("holderIdentity") if lease is not None else None
    return holders


def all_at(cluster: Cluster, replicas: int) -> bool:
    return all(
        cluster.get("scalablenodegroups", g)["spec"].get("replicas") == replicas for g in GROUPS
    )


def test_every_autoscaler_is_acted_on_by_exactly_the_replica_the_ring_names(
    cluster: Cluster, fleet: Fleet
) -> None:
    for name in ("a", "b", "c"):
        fleet.start(name)
    expected = ring_owners(["a", "b", "c"])
    wait_until(lambda: fleet.owners() == expected, "the shards settle on the ring")
    # Shards 2 and 4 hold no node group: their Leases move by the same drain-and-release
    # handoff, which may finish after the shards with objects have settled.
    wait_until(
        lambda: lease_holders(cluster) == assign(SHARDS, ["a", "b", "c"]),
        "every shard Lease is held by the member the ring names",
    )
    create_objects(cluster)
    wait_until(lambda: all_at(cluster, 3), "every node group scaled")
    for who, key, _, _ in fleet.resizes.calls:
        assert expected[key] == [who], (who, key)
    assert {key for _, key, _, _ in fleet.resizes.calls} == set(expected)
    for name, service in fleet.replicas.items():
        owned = {k for k, owners in expected.items() if owners == [name]}
        assert {k for k in service.loop.node_groups} == owned
        assert set(service.loop.autoscalers) == owned  # each autoscaler is named like its group
    plan_owner = assign(SHARDS, ["a", "b", "c"])[shard_of("default/plan", SHARDS)]
    wait_until(
        lambda: writes(fleet.replicas[plan_owner], "metricsproducers") > 0, "the producer status"
    )
    for name, service in fleet.replicas.items():
        if name != plan_owner:
            assert writes(service, "metricsproducers") == 0, name
    assert fleet.overlaps == []


def writes(service: ClusterService, resource: str) -> float:
    value = service.metrics.registry.get_sample_value(
        "autoscaler_kube_writes_total", {"resource": resource, "write": "status", "result": "ok"}
    )
    return value or 0.0


def test_a_stopped_replicas_shards_move_to_the_others_without_two_actors_at_once(
    cluster: Cluster, fleet: Fleet
) -> None:
    for name in ("a", "b", "c"):
        fleet.start(name)
    wait_until(lambda: fleet.owners() == ring_owners(["a", "b", "c"]), "settled")
    create_objects(cluster)
    wait_until(lambda: all_at(cluster, 3), "every node group scaled")
    moved = [k for k, owners in ring_owners(["a", "b", "c"]).items() if owners == ["b"]]
    assert moved, "the ring gives b some node groups"

    fleet.replicas["b"].stop()
    stopped = time.monotonic()
    expected = ring_owners(["a", "c"])
    wait_until(lambda: fleet.owners() == expected, "b's shards move to a and c")
    cluster.patch("metricsproducers", "plan", {"spec": {"schedule": {"defaultReplicas": 5}}})
    wait_until(lambda: all_at(cluster, 5), "the new owners keep scaling")
    for who, key, start, _ in fleet.resizes.calls:
        if start > stopped:
            assert expected[key] == [who], (who, key)
    assert fleet.overlaps == []


def test_a_partitioned_replica_stops_before_its_shards_are_taken_over_after_expiry(
    cluster: Cluster, fleet: Fleet
) -> None:
    for name in ("a", "b", "c"):
        fleet.start(name)
    wait_until(lambda: fleet.owners() == ring_owners(["a", "b", "c"]), "settled")
    create_objects(cluster)
    wait_until(lambda: all_at(cluster, 3), "every node group scaled")
    ring = ring_owners(["a", "b", "c"])
    victim = max("abc", key=lambda n: sum(owners == [n] for owners in ring.values()))
    others = [n for n in "abc" if n != victim]
    lost = [k for k, owners in ring.items() if owners == [victim]]

    fleet.partitions[victim].cut = True
    cut = time.monotonic()
    wait_until(lambda: not any(fleet.replicas[victim].owns(k) for k in lost), "it stops", 5)
    c_stopped = time.monotonic()
    expected = {k: v for k, v in ring_owners(others).items()}
    wait_until(
        lambda: (
            {k: v for k, v in fleet.owners().items() if k in lost} == {k: expected[k] for k in lost}
        ),
        "c's shards are taken over",
        15,
    )
    assert c_stopped - cut < 3.0  # within the renew deadline (2 s) plus a round
    cluster.patch("metricsproducers", "plan", {"spec": {"schedule": {"defaultReplicas": 4}}})
    wait_until(
        lambda: all(
            cluster.get("scalablenodegroups", k.split("/")[1])["spec"].get("replicas") == 4
            for k in lost
        ),
        "c's node groups scaled by the others",
    )
    late = [c for c in fleet.resizes.calls if c[0] == victim and c[2] > c_stopped]
    assert late == []
    assert fleet.overlaps == []
