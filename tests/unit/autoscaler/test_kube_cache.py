"""The cluster cache's indexes, fed by hand as the watch threads would feed them."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from autoscaler.errors import RetryableError
from autoscaler.kube.cache import (
    ClusterCache,
    PodInfo,
    is_pending_unschedulable,
    node_info,
    pod_kind,
)
from tests.cluster_objects import node, pod

GI = 2**30 * 1000


def fed(*objects: dict[str, Any]) -> ClusterCache:
    cache = ClusterCache()
    for obj in objects:
        cache.apply(obj)
    cache.mark_synced()
    return cache


@pytest.mark.parametrize(
    ("obj", "pending"),
    [
        (pod("p", pending=True), True),
        (pod("p"), False),
        (pod("p", node_name="n1"), False),
        (pod("p", pending=True, phase="Failed"), False),
        ({**pod("p", pending=True), "spec": {**pod("p")["spec"], "nodeName": "n1"}}, False),
        (
            {
                **pod("p", pending=True),
                "metadata": {"name": "p", "deletionTimestamp": "2026-01-01T00:00:00Z"},
            },
            False,
        ),
        (
            {
                **pod("p", pending=True),
                "status": {**pod("p", pending=True)["status"], "nominatedNodeName": "n1"},
            },
            False,
        ),
        (
            {
                **pod("p"),
                "status": {
                    "phase": "Pending",
                    "conditions": [
                        {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}
                    ],
                },
            },
            False,
        ),
    ],
    ids=[
        "unschedulable",
        "not tried yet",
        "bound",
        "terminal",
        "has a node name",
        "being deleted",
        "nominated for preemption",
        "scheduling gated",
    ],
)
def test_a_pod_is_pending_unschedulable_only_in_the_state_the_design_names(
    obj: dict[str, Any], pending: bool
) -> None:
    assert is_pending_unschedulable(obj) is pending


@pytest.mark.parametrize(
    ("owner", "annotations", "kind"),
    [
        (None, {}, "workload"),
        ("ReplicaSet", {}, "workload"),
        ("DaemonSet", {}, "daemonset"),
        ("Node", {}, "mirror"),
        (None, {"kubernetes.io/config.mirror": "x"}, "mirror"),
    ],
    ids=["bare pod", "replicaset", "daemonset", "owned by a node", "mirror annotation"],
)
def test_daemonset_and_static_pods_are_told_apart_from_workload(
    owner: str | None, annotations: dict[str, str], kind: str
) -> None:
    meta = pod("p", owner_kind=owner)["metadata"]
    meta["annotations"] = annotations
    assert pod_kind(meta) == kind


def test_a_node_is_reduced_to_labels_allocatable_taints_and_readiness() -> None:
    obj = node(
        "n1",
        cpu="8",
        gpu=2,
        labels={"pool": "gpu"},
        taints=[{"key": "gpu", "effect": "NoSchedule"}],
        created="2026-01-01T00:00:00Z",
    )

    info = node_info(obj)

    assert info.allocatable == {
        "cpu": 8000,
        "memory": 16 * GI,
        "pods": 110_000,
        "nvidia.com/gpu": 2000,
    }
    assert info.labels["pool"] == "gpu"
    assert [t.key for t in info.taints] == ["gpu"]
    assert info.schedulable and info.created == 1767225600.0
    assert not node_info(node("n2", ready=False)).schedulable
    assert not node_info(node("n3", unschedulable=True)).schedulable
    assert not node_info(node("n4", deleting=True)).schedulable


def test_requests_are_summed_per_node_and_follow_updates_and_deletes() -> None:
    cache = fed(
        node("n1"),
        pod("a", cpu="1", memory="1Gi", node_name="n1"),
        pod("b", cpu="500m", node_name="n1", owner_kind="DaemonSet"),
    )

    usage = cache.usage("n1")
    assert usage.requests == {"cpu": 1500, "memory": GI, "pods": 2000}
    assert (usage.pods, usage.workload_pods) == (2, 1)
    assert usage.daemonset_requests == {"cpu": 500, "pods": 1000}

    cache.apply(pod("a", cpu="1", memory="1Gi", node_name="n1", phase="Succeeded"))
    assert cache.usage("n1").requests == {"cpu": 500, "pods": 1000}

    cache.delete(pod("b"))
    assert cache.usage("n1").pods == 0 and cache.usage("n1").requests == {}


def test_an_update_that_changes_nothing_indexed_moves_no_version() -> None:
    cache = fed(node("n1"), pod("a", cpu="1", node_name="n1"))
    versions = (cache.nodes_version, cache.usage_version, cache.pending_version)
    again = pod("a", cpu="1", node_name="n1")
    again["status"]["podIP"] = "10.0.0.1"
    heartbeat = node("n1")
    heartbeat["status"]["conditions"][0]["lastHeartbeatTime"] = "2026-01-01T00:00:10Z"

    cache.apply(again)
    cache.apply(heartbeat)

    assert (cache.nodes_version, cache.usage_version, cache.pending_version) == versions


def test_identical_pending_pods_are_counted_under_one_demand() -> None:
    cache = fed(
        *(pod(f"web-{i}", cpu="1", pending=True) for i in range(5)),
        pod("big", cpu="8", pending=True),
        pod("bound", cpu="1", node_name="n1"),
    )

    counts = sorted(count for _, count in cache.pending())
    assert counts == [1, 5]
    assert [p.name for p in cache.pending_pods()][:2] == ["big", "web-0"]


def test_listeners_hear_pods_enter_and_leave_the_pending_state() -> None:
    cache = fed()
    heard: list[tuple[str, bool]] = []
    remove = cache.add_pending_listener(lambda p, pending: heard.append((p.name, pending)))

    cache.apply(pod("a", cpu="1"))  # not tried yet: nothing
    cache.apply(pod("a", cpu="1", pending=True))  # enters
    cache.apply(pod("a", cpu="1", pending=True))  # no change
    cache.apply(pod("a", cpu="2", pending=True))  # new demand while pending
    cache.apply(pod("a", cpu="2", node_name="n1"))  # scheduled: leaves
    cache.apply(pod("b", pending=True))
    cache.delete(pod("b"))  # deleted while pending: leaves
    remove()
    cache.apply(pod("c", pending=True))

    assert heard == [("a", True), ("a", True), ("a", False), ("b", True), ("b", False)]


def test_a_weak_listener_goes_away_with_its_object() -> None:
    cache = fed()
    heard: list[str] = []

    class Owner:
        def hear(self, pod: PodInfo, pending: bool) -> None:
            heard.append(pod.name)

    owner = Owner()
    cache.add_pending_listener(owner.hear, weak=True)
    cache.apply(pod("a", pending=True))
    del owner
    gc.collect()
    cache.apply(pod("b", pending=True))

    assert heard == ["a"]
    assert cache._listeners == []


def test_a_relist_replaces_everything_and_tells_listeners_what_left() -> None:
    cache = fed(node("n1"), node("n2"), pod("a", pending=True), pod("b", pending=True))
    heard: list[tuple[str, bool]] = []
    cache.add_pending_listener(lambda p, pending: heard.append((p.name, pending)))

    cache.replace("pods", [pod("b", pending=True), pod("c", pending=True)])
    cache.replace("nodes", [node("n2")])

    assert heard == [("c", True), ("a", False)]
    assert [p.name for p in cache.pending_pods()] == ["b", "c"]
    assert [n.name for n, _ in cache.nodes()] == ["n2"]


def test_node_selection_is_memoized_until_labels_change() -> None:
    cache = fed(node("a", labels={"pool": "x"}), node("b", labels={"pool": "y"}))

    assert [n.name for n, _ in cache.nodes({"pool": "x"})] == ["a"]
    cache.apply(node("b", labels={"pool": "x"}))
    assert [n.name for n, _ in cache.nodes({"pool": "x"})] == ["a", "b"]
    cache.delete(node("a"))
    assert [n.name for n, _ in cache.nodes({"pool": "x"})] == ["b"]


def test_reading_before_the_first_sync_is_a_retryable_error() -> None:
    cache = ClusterCache()

    with pytest.raises(RetryableError, match="cache not synced yet") as caught:
        cache.check_ready()
    assert caught.value.code == "CacheNotSynced"
    cache.mark_synced()
    cache.check_ready()


def test_a_cache_without_a_client_cannot_start() -> None:
    with pytest.raises(RuntimeError, match="feed it by hand"):
        ClusterCache().start()


def test_objects_of_another_kind_are_refused() -> None:
    with pytest.raises(ValueError, match="Pod or a Node"):
        ClusterCache().apply({"kind": "Service", "metadata": {"name": "x"}})
