"""The watch cycle, the object cache, cluster objects as specs, and replica overrides."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from autoscaler.errors import RetryableError
from autoscaler.kube.controller import (
    AUTOSCALERS,
    NODE_GROUPS,
    ClusterController,
    ObjectCache,
    ReplicaTracker,
    Watcher,
    WatchExpired,
    build_specs,
    describe_issues,
)

API = "autoscaler.dev/v1alpha1"


def obj(kind: str, name: str, spec: dict[str, Any], rv: str = "1", **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": kind,
        "metadata": {"name": name, "namespace": "default", "resourceVersion": rv, **meta},
        "spec": spec,
    }


def group(name: str = "g", rv: str = "1", replicas: int | None = 2, **meta: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": "Simulated", "id": name}
    if replicas is not None:
        spec["replicas"] = replicas
    return obj("ScalableNodeGroup", name, spec, rv, **meta)


def producer(name: str = "p", rv: str = "1") -> dict[str, Any]:
    return obj("MetricsProducer", name, {"schedule": {"defaultReplicas": 3}}, rv)


def autoscaler(name: str = "a", target: str = "g", rv: str = "1") -> dict[str, Any]:
    spec = {
        "scaleTargetRef": {"name": target},
        "maxReplicas": 10,
        "metrics": [
            {"producer": {"name": "p"}, "target": {"type": "AverageValue", "averageValue": 1}}
        ],
    }
    return obj("HorizontalAutoscaler", name, spec, rv)


# --------------------------------------------------------------------------- the cache


def test_watch_events_add_modify_and_delete_objects() -> None:
    cache = ObjectCache()
    changes: list[int] = []
    cache.subscribe(lambda: changes.append(cache.version))
    cache.apply("scalablenodegroups", "ADDED", group(rv="1"))
    cache.apply("scalablenodegroups", "MODIFIED", group(rv="2", replicas=3))
    cache.apply("scalablenodegroups", "MODIFIED", group(rv="2", replicas=3))  # a repeat
    assert cache.get("scalablenodegroups", "default/g")["spec"]["replicas"] == 3  # type: ignore[index]
    cache.apply("scalablenodegroups", "DELETED", group(rv="3"))
    assert cache.get("scalablenodegroups", "default/g") is None
    assert changes == [1, 2, 3]


def test_a_list_replaces_its_kind_and_scope_only() -> None:
    cache = ObjectCache()
    cache.apply("scalablenodegroups", "ADDED", group("a"))
    other_ns = group("b")
    other_ns["metadata"]["namespace"] = "team"
    cache.apply("scalablenodegroups", "ADDED", other_ns)
    cache.apply("metricsproducers", "ADDED", producer())
    cache.replace("scalablenodegroups", "default", [group("c")])
    _, objects = cache.snapshot()
    assert set(objects) == {
        ("scalablenodegroups", "default/c"),
        ("scalablenodegroups", "team/b"),
        ("metricsproducers", "default/p"),
    }


def test_a_re_read_object_ignores_older_watch_events_until_the_watch_catches_up() -> None:
    cache = ObjectCache()
    cache.apply("scalablenodegroups", "ADDED", group(rv="1", replicas=1))
    cache.refresh("scalablenodegroups", "default/g", group(rv="5", replicas=5))
    cache.apply("scalablenodegroups", "MODIFIED", group(rv="3", replicas=3))  # older
    assert cache.get("scalablenodegroups", "default/g")["spec"]["replicas"] == 5  # type: ignore[index]
    cache.apply("scalablenodegroups", "MODIFIED", group(rv="5", replicas=5))  # caught up
    cache.apply("scalablenodegroups", "MODIFIED", group(rv="6", replicas=6))
    assert cache.get("scalablenodegroups", "default/g")["spec"]["replicas"] == 6  # type: ignore[index]


def test_a_re_read_that_found_nothing_removes_the_object() -> None:
    cache = ObjectCache()
    cache.apply("scalablenodegroups", "ADDED", group())
    cache.refresh("scalablenodegroups", "default/g", None)
    assert cache.get("scalablenodegroups", "default/g") is None


# --------------------------------------------------------------------------- the watch cycle


class FakeListWatch:
    """Scripted lists and watches: each entry of ``watches`` is a list of events or an error."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.version = "10"
        self.list_errors: list[Exception] = []
        self.watches: list[list[tuple[str, dict[str, Any]]] | Exception] = []
        self.calls: list[tuple[str, str | None]] = []

    def list(self, plural: str, namespace: str | None) -> tuple[list[dict[str, Any]], str]:
        self.calls.append(("list", None))
        if self.list_errors:
            raise self.list_errors.pop(0)
        return list(self.items), self.version

    def watch(
        self, plural: str, namespace: str | None, resource_version: str, timeout_seconds: int
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        self.calls.append(("watch", resource_version))
        script = self.watches.pop(0) if self.watches else []
        if isinstance(script, Exception):
            raise script
        yield from script

    def stop(self) -> None:
        return None


def watcher(api: FakeListWatch, cache: ObjectCache | None = None) -> Watcher:
    return Watcher(
        api,
        cache or ObjectCache(),
        NODE_GROUPS,
        None,
        stop=threading.Event(),
        backoff_initial_seconds=1,
        backoff_max_seconds=8,
        rng=random.Random(1),
    )


def test_the_watcher_lists_then_watches_from_the_list_version() -> None:
    api = FakeListWatch()
    api.items = [group(rv="9")]
    api.watches = [[("MODIFIED", group(rv="11", replicas=5))]]
    w = watcher(api)
    assert w.run_once() == 0
    assert w.synced
    assert api.calls == [("list", None), ("watch", "10")]
    assert w.cache.get("scalablenodegroups", "default/g")["spec"]["replicas"] == 5  # type: ignore[index]
    assert w.resource_version == "11"


def test_an_ended_watch_resumes_from_the_last_version_without_listing() -> None:
    api = FakeListWatch()
    api.watches = [[("ADDED", group(rv="12"))], []]
    w = watcher(api)
    w.run_once()
    w.run_once()
    assert api.calls == [("list", None), ("watch", "10"), ("watch", "12")]


def test_bookmarks_move_the_version_without_changing_the_cache() -> None:
    api = FakeListWatch()
    bookmark = {"kind": "ScalableNodeGroup", "metadata": {"resourceVersion": "40"}}
    api.watches = [[("BOOKMARK", bookmark)]]
    w = watcher(api)
    w.run_once()
    assert w.resource_version == "40"
    assert w.cache.snapshot()[1] == {}


def test_a_watch_that_expired_lists_again_at_once() -> None:
    api = FakeListWatch()
    api.watches = [WatchExpired("too old")]
    w = watcher(api)
    assert w.run_once() == 0
    api.items = [group(rv="20")]
    api.version = "20"
    w.run_once()
    assert [c[0] for c in api.calls] == ["list", "watch", "list", "watch"]
    assert w.lists == 2
    assert w.cache.get("scalablenodegroups", "default/g") is not None


def test_failures_back_off_exponentially_and_the_backoff_resets_on_success() -> None:
    api = FakeListWatch()
    api.list_errors = [RetryableError("503", code="ServiceUnavailable")] * 4
    w = watcher(api)
    delays = [w.run_once() for _ in range(4)]
    assert not w.synced
    for attempt, delay in enumerate(delays, start=1):
        ceiling = min(8.0, 2.0 ** (attempt - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert w.run_once() == 0
    assert w.synced and w.failures == 0


def test_a_failed_watch_resumes_from_its_version_after_the_backoff() -> None:
    api = FakeListWatch()
    api.watches = [RetryableError("connection reset", code="ConnectionError")]
    w = watcher(api)
    assert w.run_once() > 0
    w.run_once()
    assert api.calls == [("list", None), ("watch", "10"), ("watch", "10")]


def test_the_controller_watches_each_kind_in_each_namespace() -> None:
    controller = ClusterController(FakeListWatch(), namespaces=["a", "b", "a"])
    scopes = {(w.kind.plural, w.namespace) for w in controller.watchers}
    assert len(controller.watchers) == 6
    assert ("horizontalautoscalers", "b") in scopes
    every = ClusterController(FakeListWatch())
    assert {w.namespace for w in every.watchers} == {None}


# --------------------------------------------------------------------------- specs


def snapshot(*objects: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    plural = {
        "ScalableNodeGroup": "scalablenodegroups",
        "MetricsProducer": "metricsproducers",
        "HorizontalAutoscaler": "horizontalautoscalers",
    }
    return {
        (plural[o["kind"]], f"{o['metadata']['namespace']}/{o['metadata']['name']}"): o
        for o in objects
    }


def test_cluster_objects_become_specs_with_server_fields_left_out_of_validation() -> None:
    g = group(uid="u1", generation=3, managedFields=[{}], selfLink="/x")
    g["metadata"]["deletionGracePeriodSeconds"] = 0
    g["status"] = {"anything": "the server or we wrote", "observedGeneration": 2}
    specs = build_specs(1, snapshot(g, producer(), autoscaler()))
    assert specs.issues == []
    assert set(specs.result.specs.node_groups) == {"default/g"}
    assert specs.result.specs.node_groups["default/g"].metadata.generation == 3
    assert set(specs.result.specs.autoscalers) == {"default/a"}


def test_an_invalid_object_is_reported_with_its_field_path_and_the_others_still_run() -> None:
    bad = autoscaler("bad", target="missing")
    specs = build_specs(1, snapshot(group(), producer(), autoscaler(), bad))
    assert set(specs.result.specs.autoscalers) == {"default/a"}
    issues = specs.invalid[(AUTOSCALERS.plural, "default/bad")]
    assert issues[0].file == "HorizontalAutoscaler default/bad"
    assert describe_issues(issues) == (
        "spec.scaleTargetRef.name: no valid ScalableNodeGroup named 'missing' in namespace "
        "'default'"
    )


def test_a_schema_error_names_the_field() -> None:
    g = group()
    g["spec"]["replicas"] = -1
    specs = build_specs(1, snapshot(g))
    assert describe_issues(specs.invalid[(NODE_GROUPS.plural, "default/g")]).startswith(
        "spec.replicas: "
    )


def test_an_autoscalers_history_comes_from_its_status() -> None:
    a = autoscaler()
    a["status"] = {
        "observedGeneration": 1,
        "desiredReplicas": 6,
        "somethingNew": True,
        "recommendations": [{"time": "2026-01-01T00:00:00Z", "replicas": 6}],
        "scaleEvents": [{"time": "2026-01-01T00:00:00Z", "change": 4}],
    }
    specs = build_specs(1, snapshot(group(), producer(), a))
    status = specs.result.specs.autoscalers["default/a"].status
    assert status is not None
    assert [r.replicas for r in status.recommendations] == [6]
    assert [e.change for e in status.scale_events] == [4]


def test_a_broken_history_in_status_is_ignored_and_the_autoscaler_still_runs() -> None:
    a = autoscaler()
    a["status"] = {"recommendations": [{"time": "not a time", "replicas": "x"}]}
    specs = build_specs(1, snapshot(group(), producer(), a))
    assert specs.result.specs.autoscalers["default/a"].status is None


def test_an_object_being_deleted_is_left_out() -> None:
    g = group(deletionTimestamp="2026-01-01T00:00:00Z")
    specs = build_specs(1, snapshot(g))
    assert specs.result.specs.node_groups == {} and specs.issues == []


# --------------------------------------------------------------------------- replicas


def test_the_first_version_seen_is_never_an_override() -> None:
    assert ReplicaTracker().observe("g", "1", 5) is None


def test_a_change_by_someone_else_is_an_override() -> None:
    tracker = ReplicaTracker()
    tracker.observe("g", "1", 5)
    assert tracker.observe("g", "2", 5) is None  # another field changed
    assert tracker.observe("g", "3", 7) == 7
    assert tracker.observe("g", "3", 7) is None  # the same version again


def test_our_own_writes_are_no_override_even_when_seen_late() -> None:
    tracker = ReplicaTracker()
    tracker.observe("g", "1", 2)
    tracker.own("g", "2", 4)
    tracker.own("g", "3", 4)  # a status write
    tracker.own("g", "4", 6)
    assert tracker.observe("g", "2", 4) is None
    assert tracker.observe("g", "4", 6) is None


def test_an_override_after_our_write_is_recognised_even_when_versions_were_skipped() -> None:
    tracker = ReplicaTracker()
    tracker.observe("g", "1", 2)
    tracker.own("g", "2", 5)
    # a relist shows only a later version, set back to 2 by an operator
    assert tracker.observe("g", "9", 2) == 2


def test_removing_spec_replicas_is_no_override() -> None:
    tracker = ReplicaTracker()
    tracker.observe("g", "1", 2)
    assert tracker.observe("g", "2", None) is None


@pytest.mark.parametrize("keep", [set(), {"g"}], ids=["forgotten", "kept"])
def test_forgotten_groups_start_over(keep: set[str]) -> None:
    tracker = ReplicaTracker()
    tracker.observe("g", "1", 2)
    tracker.forget_except(keep)
    assert tracker.observe("g", "2", 3) == (3 if keep else None)
