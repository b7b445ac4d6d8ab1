"""Cluster mode against the Kubernetes API emulator, through the official client over HTTP.

Each test starts :class:`~autoscaler.kube.service.ClusterService` with a kubeconfig that points at
the emulator, creates custom resources with the client, and waits for what the service writes
back: status through ``/status``, ``spec.replicas``, Events, the Lease.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from autoscaler.clock import FakeClock
from autoscaler.errors import RetryableError
from autoscaler.kube import KubeClients
from autoscaler.kube.leader import KubeLeaseStore, LeaseRecord
from autoscaler.kube.service import ClusterService, LeaderOnlyProvider
from autoscaler.kube.status import KubeObjectApi, StatusWriter, Target
from autoscaler.settings import KubernetesSettings, LoopSettings, Settings
from tests.k8s_emulator import KubeEmulator, Resource, ScaleSubresource, kube
from tests.support import FakeProvider

__all__ = ["kube"]  # the fixture, imported for pytest

pytestmark = pytest.mark.integration

GROUP, VERSION = "autoscaler.dev", "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
Obj = dict[str, Any]


# --------------------------------------------------------------------------- helpers


def register_crds(emulator: KubeEmulator) -> None:
    """Serve the three resources as their CRDs declare them."""
    emulator.register(
        Resource(
            GROUP,
            VERSION,
            "scalablenodegroups",
            "ScalableNodeGroup",
            status=True,
            scale=ScaleSubresource(".spec.replicas", ".status.replicas"),
        )
    )
    emulator.register(Resource(GROUP, VERSION, "metricsproducers", "MetricsProducer", status=True))
    emulator.register(
        Resource(GROUP, VERSION, "horizontalautoscalers", "HorizontalAutoscaler", status=True)
    )


def node_group(name: str = "workers", replicas: int | None = 1, **spec: Any) -> Obj:
    body: Obj = {
        "type": "Simulated",
        "id": name,
        "simulated": {"provisioningDelaySeconds": 0},
        **spec,
    }
    if replicas is not None:
        body["replicas"] = replicas
    return {
        "apiVersion": API_VERSION,
        "kind": "ScalableNodeGroup",
        "metadata": {"name": name},
        "spec": body,
    }


def schedule(name: str = "plan", replicas: int = 4, interval: float = 0.5) -> Obj:
    return {
        "apiVersion": API_VERSION,
        "kind": "MetricsProducer",
        "metadata": {"name": name},
        "spec": {"intervalSeconds": interval, "schedule": {"defaultReplicas": replicas}},
    }


def autoscaler(
    name: str = "workers", target: str = "workers", producer: str = "plan", **spec: Any
) -> Obj:
    return {
        "apiVersion": API_VERSION,
        "kind": "HorizontalAutoscaler",
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"name": target},
            "minReplicas": 1,
            "maxReplicas": 10,
            "metrics": [
                {
                    "producer": {"name": producer},
                    "target": {"type": "AverageValue", "averageValue": 1},
                }
            ],
            **spec,
        },
    }


PLURALS = {
    "ScalableNodeGroup": "scalablenodegroups",
    "MetricsProducer": "metricsproducers",
    "HorizontalAutoscaler": "horizontalautoscalers",
}


class Cluster:
    """The client side of a test: create and change objects, read them back."""

    def __init__(self, emulator: KubeEmulator, api_client: ApiClient) -> None:
        self.kube = emulator
        self.api = client.CustomObjectsApi(api_client)

    def create(self, *objects: Obj, namespace: str = "default") -> None:
        for obj in objects:
            self.api.create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURALS[obj["kind"]], obj
            )

    def patch(self, plural: str, name: str, body: Obj, namespace: str = "default") -> Obj:
        result: Obj = self.api.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, name, body
        )
        return result

    def get(self, plural: str, name: str, namespace: str = "default") -> Obj:
        obj = self.kube.get_object(plural, name, namespace)
        assert obj is not None, f"{plural} {namespace}/{name} does not exist"
        return obj

    def status(self, plural: str, name: str, namespace: str = "default") -> Obj:
        return dict(self.get(plural, name, namespace).get("status") or {})

    def events(self, reason: str | None = None) -> list[Obj]:
        return [
            e for e in self.kube.list_objects("events") if reason is None or e["reason"] == reason
        ]


def condition(status: Obj, type_: str) -> Obj | None:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), None)


def wait_until(check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (AssertionError, KeyError, TypeError):
            last = None
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@pytest.fixture
def cluster(kube: KubeEmulator) -> Iterator[Cluster]:
    register_crds(kube)
    with kube.api_client() as api_client:
        yield Cluster(kube, api_client)


Start = Callable[..., ClusterService]


@pytest.fixture
def start(kube: KubeEmulator, tmp_path: Path) -> Iterator[Start]:
    """Start a ClusterService on the emulator; every one is stopped at the end."""
    services: list[ClusterService] = []
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")

    def run(
        clock: Callable[[], float] | None = None,
        loop: LoopSettings | None = None,
        **kubernetes: Any,
    ) -> ClusterService:
        options: dict[str, Any] = {
            "kubeconfig": str(kubeconfig),
            "leader_election": False,
            "identity": f"test-{len(services)}",
            "backoff_initial_seconds": 0.05,
            "backoff_max_seconds": 0.5,
            "status_interval_seconds": 1.0,
            **kubernetes,
        }
        settings = Settings(
            kubernetes=KubernetesSettings(**options),
            loop=loop or LoopSettings(resync_seconds=1, node_group_sync_seconds=1),
        )
        service = ClusterService(settings, clock or time.time, tick_seconds=0.1)
        service.start()
        services.append(service)
        return service

    yield run
    for service in services:
        service.stop(timeout=2)


def writes(service: ClusterService, resource: str, write: str, result: str) -> float:
    value = service.metrics.registry.get_sample_value(
        "autoscaler_kube_writes_total", {"resource": resource, "write": write, "result": result}
    )
    return value or 0.0


# --------------------------------------------------------------------------- objects in, status out


def test_created_objects_run_and_get_a_status_with_observed_generation_and_conditions(
    cluster: Cluster, start: Start
) -> None:
    cluster.create(node_group(), schedule(replicas=4), autoscaler())
    service = start()
    wait_until(lambda: service.ready, "readiness")

    status = wait_until(
        lambda: (
            (s := cluster.status("horizontalautoscalers", "workers")).get("desiredReplicas") == 4
            and s
        ),
        "the autoscaler's status",
    )
    assert status["observedGeneration"] == 1
    assert condition(status, "Active") == {
        "type": "Active",
        "status": "True",
        "reason": "Accepted",
        "message": "the spec is valid and runs",
        "lastTransitionTime": condition(status, "Active")["lastTransitionTime"],  # type: ignore[index]
        "observedGeneration": 1,
    }
    assert condition(status, "ScalingActive")["status"] == "True"  # type: ignore[index]
    assert all(c["observedGeneration"] == 1 for c in status["conditions"])
    assert status["recommendations"]

    group = wait_until(
        lambda: (
            (g := cluster.get("scalablenodegroups", "workers"))["status"].get("replicas") == 4
            and g["status"]["observedGeneration"]
            == g["metadata"]["generation"]
            == 2  # ours: replicas
            and g
        ),
        "the node group's status",
    )
    assert condition(group["status"], "Active")["reason"] == "Reachable"  # type: ignore[index]
    assert condition(group["status"], "Stabilized")["status"] == "True"  # type: ignore[index]

    producer = cluster.status("metricsproducers", "plan")
    assert producer["observedGeneration"] == 1
    assert condition(producer, "Active")["reason"] == "Observed"  # type: ignore[index]

    # An edit of the spec moves the generation; the status says it was observed.
    cluster.patch("horizontalautoscalers", "workers", {"spec": {"maxReplicas": 3}})
    status = wait_until(
        lambda: (
            (s := cluster.status("horizontalautoscalers", "workers")).get("observedGeneration") == 2
            and s
        ),
        "the new generation observed",
    )
    wait_until(
        lambda: cluster.status("horizontalautoscalers", "workers")["desiredReplicas"] == 3,
        "the new maximum applied",
    )


def test_status_goes_through_the_status_subresource_with_the_version_read(
    cluster: Cluster, start: Start
) -> None:
    cluster.create(node_group(), schedule(), autoscaler())
    start()
    wait_until(
        lambda: cluster.status("horizontalautoscalers", "workers").get("desiredReplicas"),
        "a status",
    )
    puts = [b for b in cluster.kube.request_bodies if b.method == "PUT"]
    assert puts and all(b.path.endswith("/status") for b in puts)
    assert all(b.body["metadata"]["resourceVersion"] for b in puts)


def test_the_desired_count_is_written_back_to_spec_replicas_with_a_precondition(
    cluster: Cluster, start: Start
) -> None:
    cluster.create(node_group(replicas=1), schedule(replicas=5), autoscaler())
    start()
    wait_until(
        lambda: cluster.get("scalablenodegroups", "workers")["spec"]["replicas"] == 5,
        "spec.replicas written",
    )
    patches = [
        b
        for b in cluster.kube.request_bodies
        if b.method == "PATCH" and b.path.endswith("/scalablenodegroups/workers")
    ]
    assert patches[0].content_type == "application/merge-patch+json"
    assert patches[0].body["spec"] == {"replicas": 5}
    assert patches[0].body["metadata"]["resourceVersion"]
    # the scale subresource shows the same count to other tools
    scale = cluster.api.get_namespaced_custom_object_scale(
        GROUP, VERSION, "default", "scalablenodegroups", "workers"
    )
    assert scale["spec"]["replicas"] == 5


def test_a_node_group_without_spec_replicas_gets_the_groups_current_size(
    cluster: Cluster, start: Start
) -> None:
    cluster.create(
        node_group(replicas=None, simulated={"initialReady": 3, "provisioningDelaySeconds": 0}),
        schedule(replicas=3),
        autoscaler(),
    )
    start()
    wait_until(
        lambda: cluster.get("scalablenodegroups", "workers")["spec"].get("replicas") == 3,
        "the adopted size written",
    )


def test_a_decision_becomes_an_event_with_its_reason_and_why(
    cluster: Cluster, start: Start
) -> None:
    cluster.create(node_group(replicas=1), schedule(replicas=4), autoscaler())
    start()
    event = wait_until(lambda: cluster.events("ScaledUp"), "a ScaledUp event")[0]
    target = cluster.get("horizontalautoscalers", "workers")
    assert event["type"] == "Normal"
    assert event["involvedObject"]["kind"] == "HorizontalAutoscaler"
    assert event["involvedObject"]["name"] == "workers"
    assert event["involvedObject"]["uid"] == target["metadata"]["uid"]
    assert "default/workers: 1 → 4" in event["message"]
    assert "target AverageValue 1" in event["message"]
    assert event["count"] == 1 and event["source"]["component"] == "node-autoscaler"


def test_an_invalid_object_gets_a_false_active_condition_and_a_warning_event_while_others_run(
    cluster: Cluster, start: Start
) -> None:
    bad_group = node_group("broken", replicas=1, color="blue")  # an unknown field
    cluster.create(
        node_group(), schedule(), autoscaler(), autoscaler("orphan", target="missing"), bad_group
    )
    service = start()
    status = wait_until(
        lambda: (s := cluster.status("horizontalautoscalers", "orphan")).get("conditions") and s,
        "the invalid object's status",
    )
    active = condition(status, "Active")
    assert active is not None
    assert (active["status"], active["reason"]) == ("False", "InvalidSpec")
    assert active["message"] == (
        "spec.scaleTargetRef.name: no valid ScalableNodeGroup named 'missing' in namespace "
        "'default'"
    )
    assert status["observedGeneration"] == 1
    broken = wait_until(
        lambda: condition(cluster.status("scalablenodegroups", "broken"), "Active"),
        "the schema error reported",
    )
    assert broken["message"] == "spec.color: unknown field"

    warnings = wait_until(
        lambda: len(cluster.events("InvalidSpec")) == 2 and cluster.events("InvalidSpec"),
        "two warnings",
    )
    assert {e["type"] for e in warnings} == {"Warning"}
    assert {e["involvedObject"]["name"] for e in warnings} == {"orphan", "broken"}
    # the valid objects run
    wait_until(
        lambda: cluster.status("horizontalautoscalers", "workers").get("desiredReplicas") == 4,
        "the valid autoscaler's decision",
    )
    assert {i.file for i in service.issues} == {
        "HorizontalAutoscaler default/orphan",
        "ScalableNodeGroup default/broken",
    }
    # Fixing the object makes it run; no more warnings are sent for it.
    cluster.create(node_group("missing"))
    wait_until(
        lambda: (
            condition(cluster.status("horizontalautoscalers", "orphan"), "Active")["status"]  # type: ignore[index]
            == "True"
        ),
        "the fixed object accepted",
    )
    assert len(cluster.events("InvalidSpec")) == 2


def test_an_external_spec_replicas_change_is_honoured_as_an_operator_override(
    cluster: Cluster, start: Start
) -> None:
    no_scale_down = {"scaleDown": {"selectPolicy": "Disabled"}}
    cluster.create(node_group(replicas=1), schedule(replicas=4), autoscaler(behavior=no_scale_down))
    service = start()
    wait_until(
        lambda: cluster.get("scalablenodegroups", "workers")["status"].get("replicas") == 4,
        "scaled to 4",
    )
    # Another tool drives the group through the scale subresource (kubectl scale).
    cluster.api.patch_namespaced_custom_object_scale(
        GROUP, VERSION, "default", "scalablenodegroups", "workers", {"spec": {"replicas": 7}}
    )
    wait_until(
        lambda: cluster.get("scalablenodegroups", "workers")["status"].get("replicas") == 7,
        "the node group resized to the operator's count",
    )
    assert service.loop.node_groups["default/workers"].desired == 7
    event = wait_until(lambda: cluster.events("ReplicasOverridden"), "an override event")[0]
    assert "spec.replicas set to 7 by another client (was 4)" in event["message"]
    time.sleep(1.5)  # a few evaluations later, the autoscaler continued from 7
    assert cluster.get("scalablenodegroups", "workers")["spec"]["replicas"] == 7


# --------------------------------------------------------------------------- failures


def test_a_conflicting_status_write_is_re_read_and_retried(cluster: Cluster, start: Start) -> None:
    cluster.kube.fail_next("PUT", r"/horizontalautoscalers/workers/status$", 409, times=2)
    cluster.create(node_group(), schedule(replicas=4), autoscaler())
    service = start()
    wait_until(
        lambda: cluster.status("horizontalautoscalers", "workers").get("desiredReplicas") == 4,
        "the status written after the conflicts",
    )
    assert writes(service, "horizontalautoscalers", "status", "conflict") == 2
    assert writes(service, "horizontalautoscalers", "status", "ok") >= 1
    gets = [
        r
        for r in cluster.kube.requests
        if r.method == "GET" and r.path.endswith("/horizontalautoscalers/workers")
    ]
    assert len(gets) >= 2  # re-read after each conflict


def test_an_expired_watch_lists_again_and_sees_later_changes(
    cluster: Cluster, start: Start
) -> None:
    cluster.create(node_group(), schedule(replicas=2), autoscaler())
    clock = FakeClock()  # a clock that stands still: soon nothing more to write
    service = start(clock=clock)
    wait_until(
        lambda: cluster.get("scalablenodegroups", "workers")["spec"]["replicas"] == 2, "scaled"
    )
    settled = wait_until(lambda: _quiet(cluster.kube), "the writes settled")
    assert settled
    cluster.kube.wait_for_watches(3)
    cluster.kube.put_object(  # a change elsewhere: every watch is now behind the latest version
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "elsewhere"}}
    )
    cluster.kube.compact()  # forget the watch history: resuming gets 410 Gone
    cluster.kube.close_watches()
    wait_until(
        lambda: all(w.lists == 2 for w in service.controller.watchers), "every kind re-listed"
    )
    clock.advance(30)  # out of the scale-up policy period of the first scale-up
    cluster.patch("metricsproducers", "plan", {"spec": {"schedule": {"defaultReplicas": 6}}})
    wait_until(
        lambda: cluster.get("scalablenodegroups", "workers")["spec"]["replicas"] == 6,
        "a change after the relist applied",
    )


def _quiet(emulator: KubeEmulator, seconds: float = 0.5) -> bool:
    """True when no write reached the emulator for ``seconds``."""
    before = emulator.resource_version
    time.sleep(seconds)
    return emulator.resource_version == before


def test_api_errors_back_off_and_the_service_recovers(cluster: Cluster, start: Start) -> None:
    cluster.create(node_group(), schedule(replicas=3), autoscaler())
    cluster.kube.fail_next(
        "GET", r"/apis/autoscaler\.dev/v1alpha1/horizontalautoscalers$", 503, times=4
    )
    service = start()
    wait_until(lambda: service.ready, "readiness after the errors", timeout=20)
    lists = [
        r
        for r in cluster.kube.requests
        if r.path == "/apis/autoscaler.dev/v1alpha1/horizontalautoscalers"
        and r.query.get("watch") != "true"
    ]
    assert len(lists) == 5  # four failures, then the list that worked
    wait_until(
        lambda: cluster.get("scalablenodegroups", "workers")["spec"]["replicas"] == 3,
        "the autoscaler running",
    )
    # Status writes failing with 500 are retried on the next rounds.
    cluster.kube.fail_next("*", r"/scalablenodegroups/workers(/status)?$", 500, times=3)
    cluster.patch("metricsproducers", "plan", {"spec": {"schedule": {"defaultReplicas": 5}}})
    wait_until(
        lambda: cluster.get("scalablenodegroups", "workers")["spec"]["replicas"] == 5,
        "spec.replicas written after the errors",
    )
    assert writes(service, "scalablenodegroups", "replicas", "error") >= 1


def test_only_the_configured_namespaces_are_watched(cluster: Cluster, start: Start) -> None:
    for namespace in ("team-a", "team-b"):
        cluster.create(node_group(), schedule(replicas=2), autoscaler(), namespace=namespace)
    service = start(namespaces=["team-a"])
    wait_until(
        lambda: cluster.get("scalablenodegroups", "workers", "team-a")["spec"]["replicas"] == 2,
        "team-a scaled",
    )
    assert set(service.loop.node_groups) == {"team-a/workers"}
    assert "status" not in cluster.get("scalablenodegroups", "workers", "team-b")


# --------------------------------------------------------------------------- restarts


def test_algorithm_history_is_restored_from_status_after_a_restart(
    cluster: Cluster, start: Start
) -> None:
    """The scale-down stabilization window (300 s by default) holds across a restart: 6 was
    recommended until t0+30 s, so no scale-down before t0+330 s, even with a restart at +90 s."""
    clock = FakeClock()
    t0 = clock()
    loop = LoopSettings(resync_seconds=15, node_group_sync_seconds=10)
    cluster.create(node_group(replicas=2), schedule(replicas=6, interval=15), autoscaler())
    first = start(clock=clock, loop=loop)
    wait_until(lambda: replicas(cluster) == 6, "scaled to 6")
    clock.advance(30)
    cluster.patch("metricsproducers", "plan", {"spec": {"schedule": {"defaultReplicas": 2}}})
    wait_until(
        lambda: (
            cluster.status("horizontalautoscalers", "workers")["recommendations"][-1]["replicas"]
            == 2
        ),
        "the lower recommendation recorded in status",
    )
    assert replicas(cluster) == 6  # the window holds
    first.stop()

    clock.set(t0 + 90)
    second = start(clock=clock, loop=loop)
    wait_until(lambda: second.loop.passes > 0 and second.ready, "the restarted service")
    while clock() < t0 + 320:  # time runs on (5 s per step): the window still holds
        clock.advance(5)
        time.sleep(0.05)
        assert replicas(cluster) == 6, f"scaled down at t0+{clock() - t0:.0f}s"
    held = [
        d for d in second.loop.decisions.query() if d.to_replicas == 6 and d.recommendation == 2
    ]
    assert held and "stabilization window 300s holds 6" in " ".join(held[0].reasons)

    def later() -> bool:
        clock.advance(5)
        return replicas(cluster) == 2

    wait_until(later, "scaled down once the window passed")
    assert clock() > t0 + 330


def replicas(cluster: Cluster) -> int | None:
    value = cluster.get("scalablenodegroups", "workers")["spec"].get("replicas")
    return value if isinstance(value, int) else None


# --------------------------------------------------------------------------- leader election


def test_only_the_leader_acts_and_a_standby_takes_over_after_a_graceful_release(
    cluster: Cluster, start: Start
) -> None:
    timings = {
        "leader_election": True,
        "lease_name": "autoscaler",
        "lease_duration_seconds": 3,
        "renew_deadline_seconds": 2,
        "renew_seconds": 0.5,
        "retry_seconds": 0.2,
    }
    cluster.create(node_group(replicas=1), schedule(replicas=3), autoscaler())
    a = start(identity="a", **timings)
    wait_until(lambda: a.acting, "a leads")
    b = start(identity="b", **timings)
    wait_until(lambda: b.ready, "b ready as a standby")
    wait_until(
        lambda: cluster.get("scalablenodegroups", "workers")["spec"]["replicas"] == 3, "scaled"
    )
    lease = cluster.kube.get_object("leases", "autoscaler")
    assert lease is not None and lease["spec"]["holderIdentity"] == "a"
    assert not b.acting and b.loop.node_groups == {}
    assert (
        sum(
            writes(b, p, w, "ok")
            for p in ("scalablenodegroups", "horizontalautoscalers", "metricsproducers")
            for w in ("status", "replicas")
        )
        == 0
    )
    assert b.metrics.registry.get_sample_value("autoscaler_leader") == 0
    assert a.metrics.registry.get_sample_value("autoscaler_leader") == 1

    a.stop()
    released = time.monotonic()
    wait_until(lambda: b.acting, "b takes over")
    assert time.monotonic() - released < 2.0  # no waiting for the lease to expire
    lease = cluster.kube.get_object("leases", "autoscaler")
    assert lease is not None and lease["spec"]["holderIdentity"] == "b"
    assert lease["spec"]["leaseTransitions"] == 1
    cluster.patch("metricsproducers", "plan", {"spec": {"schedule": {"defaultReplicas": 5}}})
    wait_until(
        lambda: cluster.get("scalablenodegroups", "workers")["spec"]["replicas"] == 5,
        "the new leader keeps scaling",
    )


class Partition:
    """A Lease store that can be cut off from the API."""

    def __init__(self, store: KubeLeaseStore) -> None:
        self.store = store
        self.cut = False

    def _check(self) -> None:
        if self.cut:
            raise RetryableError("partitioned", code="ConnectionError")

    def get(self) -> LeaseRecord | None:
        self._check()
        return self.store.get()

    def create(self, record: LeaseRecord) -> LeaseRecord:
        self._check()
        return self.store.create(record)

    def update(self, record: LeaseRecord) -> LeaseRecord:
        self._check()
        return self.store.update(record)


def test_a_leader_that_cannot_renew_stops_acting_before_the_standby_takes_over(
    kube: KubeEmulator, cluster: Cluster, tmp_path: Path
) -> None:
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
    settings = {
        "kubeconfig": str(kubeconfig),
        "lease_name": "autoscaler",
        "lease_duration_seconds": 3,
        "renew_deadline_seconds": 2,
        "renew_seconds": 0.5,
        "retry_seconds": 0.2,
    }
    cluster.create(node_group(replicas=1), schedule(replicas=3), autoscaler())
    services: list[ClusterService] = []
    partitions: list[Partition] = []
    for name in ("a", "b"):
        config = Settings(
            kubernetes=KubernetesSettings(identity=name, **settings),
            loop=LoopSettings(resync_seconds=1, node_group_sync_seconds=1),
        )
        clients = KubeClients(str(kubeconfig))
        partition = Partition(KubeLeaseStore(clients, "autoscaler", "default"))
        service = ClusterService(config, clients=clients, lease_store=partition, tick_seconds=0.1)
        service.start()
        services.append(service)
        partitions.append(partition)
        if name == "a":
            wait_until(lambda: services[0].acting, "a leads")
    a, b = services
    try:
        wait_until(
            lambda: cluster.get("scalablenodegroups", "workers")["spec"]["replicas"] == 3,
            "scaled by a",
        )
        partitions[0].cut = True
        cut = time.monotonic()
        wait_until(lambda: not a.acting, "a stops acting")
        stopped = time.monotonic()
        wait_until(lambda: b.acting, "b takes over")
        took_over = time.monotonic()
        assert stopped - cut < 3.0  # within the renew deadline (2 s) plus a reconcile
        assert took_over >= stopped  # never two acting at once
        guarded = LeaderOnlyProvider(FakeProvider(), a.is_leader)
        with pytest.raises(RetryableError, match="not the leader"):
            guarded.set_replicas(9)
        ok_before = writes(a, "horizontalautoscalers", "status", "ok")
        cluster.patch("metricsproducers", "plan", {"spec": {"schedule": {"defaultReplicas": 4}}})
        wait_until(
            lambda: cluster.get("scalablenodegroups", "workers")["spec"]["replicas"] == 4,
            "b scales",
        )
        assert writes(a, "horizontalautoscalers", "status", "ok") == ok_before
    finally:
        for service in services:
            service.stop(timeout=2)


def test_a_deposed_leaders_late_write_is_rejected_by_its_resource_version(
    cluster: Cluster, kube: KubeEmulator
) -> None:
    cluster.create(node_group(replicas=1))
    with kube.api_client() as api_client:
        clients = KubeClients()
        clients._api_client = api_client  # the emulator's client
        results: list[tuple[str, str]] = []
        old = StatusWriter(
            KubeObjectApi(clients),
            time.time,
            is_leader=lambda: True,  # it has not noticed yet
            on_result=lambda plural, what, result: results.append((what, result)),
        )
        new = StatusWriter(KubeObjectApi(clients), time.time, is_leader=lambda: True)

        def target(replicas: int) -> Target:
            obj = cluster.get("scalablenodegroups", "workers")
            return Target(
                "scalablenodegroups",
                API_VERSION,
                "ScalableNodeGroup",
                "default",
                "workers",
                obj["metadata"]["resourceVersion"],
                obj.get("status") or {},
                obj["spec"].get("replicas"),
                {"replicas": replicas},
                replicas,
            )

        late = target(9)  # computed by the old leader before it lost the Lease
        new.write([target(5)])
        old.write([late])
    obj = cluster.get("scalablenodegroups", "workers")
    assert obj["spec"]["replicas"] == 5 and obj["status"] == {"replicas": 5}
    assert results == [("replicas", "conflict")]
