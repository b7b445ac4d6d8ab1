"""The status writer against an in-memory API with resourceVersion preconditions."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from autoscaler.clock import FakeClock
from autoscaler.errors import NotFoundError, RetryableError
from autoscaler.kube.status import StatusWriter, Target, significant

PLURAL = "scalablenodegroups"


class FakeObjects:
    """Objects by (plural, namespace, name); writes need the current resourceVersion."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.version = 0
        self.calls: list[tuple[str, str]] = []
        self.errors: list[RetryableError] = []

    def put(self, name: str, replicas: int | None = 1, status: dict[str, Any] | None = None) -> str:
        self.version += 1
        spec: dict[str, Any] = {"type": "Simulated", "id": name}
        if replicas is not None:
            spec["replicas"] = replicas
        self.objects[(PLURAL, "default", name)] = {
            "apiVersion": "autoscaler.dev/v1alpha1",
            "kind": "ScalableNodeGroup",
            "metadata": {
                "name": name,
                "namespace": "default",
                "resourceVersion": str(self.version),
            },
            "spec": spec,
            "status": status or {},
        }
        return str(self.version)

    def _write(
        self, plural: str, namespace: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        if self.errors:
            raise self.errors.pop(0)
        obj = self.objects.get((plural, namespace, name))
        if obj is None:
            raise NotFoundError("gone", code="NotFound")
        if body["metadata"].get("resourceVersion") != obj["metadata"]["resourceVersion"]:
            raise RetryableError("changed", code="Conflict")
        new = copy.deepcopy(obj)
        if "spec" in body:
            new["spec"].update(body["spec"])
        if "status" in body:
            new["status"] = body["status"]
        self.version += 1
        new["metadata"]["resourceVersion"] = str(self.version)
        self.objects[(plural, namespace, name)] = new
        return copy.deepcopy(new)

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        self.calls.append(("GET", name))
        obj = self.objects.get((plural, namespace, name))
        if obj is None:
            raise NotFoundError("gone", code="NotFound")
        return copy.deepcopy(obj)

    def patch(self, plural: str, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("PATCH", name))
        return self._write(plural, namespace, name, body)

    def replace_status(
        self, plural: str, namespace: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        self.calls.append(("PUT status", name))
        return self._write(plural, namespace, name, body)

    def obj(self, name: str) -> dict[str, Any]:
        return self.objects[(PLURAL, "default", name)]


def target(
    api: FakeObjects, name: str, status: dict[str, Any], replicas: int | None = None
) -> Target:
    """A target computed from what the API has now (as the cache would have it)."""
    obj = api.obj(name)
    return Target(
        plural=PLURAL,
        api_version=obj["apiVersion"],
        kind=obj["kind"],
        namespace="default",
        name=name,
        resource_version=obj["metadata"]["resourceVersion"],
        current_status=obj["status"],
        current_replicas=obj["spec"].get("replicas"),
        status=status,
        replicas=replicas,
    )


class Harness:
    def __init__(self) -> None:
        self.api = FakeObjects()
        self.clock = FakeClock()
        self.leading = True
        self.written: list[dict[str, Any]] = []
        self.conflicts: list[dict[str, Any] | None] = []
        self.results: list[tuple[str, str]] = []
        self.writer = StatusWriter(
            self.api,
            self.clock,
            is_leader=lambda: self.leading,
            interval_seconds=10,
            on_written=lambda plural, obj: self.written.append(obj),
            on_conflict=lambda plural, ns, name, obj: self.conflicts.append(obj),
            on_result=lambda plural, what, result: self.results.append((what, result)),
        )


@pytest.fixture
def h() -> Harness:
    return Harness()


STATUS = {"observedGeneration": 1, "replicas": 2, "conditions": [{"type": "Active"}]}


def test_the_status_is_written_through_the_status_subresource_with_the_version_read(
    h: Harness,
) -> None:
    h.api.put("g")
    t = target(h.api, "g", STATUS)
    assert h.writer.write([t]) == 1
    assert h.api.calls == [("PUT status", "g")]
    assert h.api.obj("g")["status"] == STATUS
    assert h.results == [("status", "ok")]
    assert (
        h.written[0]["metadata"]["resourceVersion"] == h.api.obj("g")["metadata"]["resourceVersion"]
    )


def test_an_unchanged_status_is_not_written_again(h: Harness) -> None:
    h.api.put("g", status=STATUS)
    assert h.writer.write([target(h.api, "g", STATUS)]) == 0
    assert h.api.calls == []


def test_spec_replicas_is_patched_then_the_status_written_on_the_new_version(h: Harness) -> None:
    h.api.put("g", replicas=1)
    assert h.writer.write([target(h.api, "g", STATUS, replicas=4)]) == 2
    assert h.api.calls == [("PATCH", "g"), ("PUT status", "g")]
    assert h.api.obj("g")["spec"]["replicas"] == 4
    assert h.results == [("replicas", "ok"), ("status", "ok")]


def test_the_writer_follows_its_own_writes_while_the_cache_lags(h: Harness) -> None:
    h.api.put("g", replicas=1)
    stale = target(h.api, "g", STATUS, replicas=4)
    h.writer.write([stale])
    # The cache has not seen the writes yet: the next round is computed from the old version.
    newer = {**STATUS, "replicas": 3}
    h.writer.write([Target(**{**stale.__dict__, "status": newer, "replicas": 5})])
    assert h.api.obj("g")["spec"]["replicas"] == 5
    assert h.api.obj("g")["status"]["replicas"] == 3
    assert "conflict" not in [r for _, r in h.results]


def test_an_echo_of_our_own_write_causes_no_rewrite(h: Harness) -> None:
    h.api.put("g", replicas=1)
    h.writer.write([target(h.api, "g", STATUS, replicas=4)])
    # The API server pruned a field we wrote; the cache now shows our own version.
    h.api.obj("g")["status"] = {"replicas": 2}
    calls = len(h.api.calls)
    h.writer.write([target(h.api, "g", STATUS, replicas=4)])
    assert len(h.api.calls) == calls


def test_a_conflict_re_reads_the_object_and_retries_from_the_newer_version(h: Harness) -> None:
    h.api.put("g", replicas=1)
    t = target(h.api, "g", STATUS, replicas=4)
    h.api.put("g", replicas=1)  # someone else wrote meanwhile (say, a label)
    assert h.writer.write([t]) == 0
    assert h.results == [("replicas", "conflict")]
    assert h.conflicts and h.conflicts[0] is not None  # the fresh object goes to the cache
    # the same stale version again: nothing is attempted
    assert h.writer.write([t]) == 0
    assert h.api.calls.count(("PATCH", "g")) == 1
    # the next round works from the re-read version
    assert h.writer.write([target(h.api, "g", STATUS, replicas=4)]) == 2
    assert h.api.obj("g")["spec"]["replicas"] == 4


def test_an_external_spec_replicas_change_is_not_overwritten_blindly(h: Harness) -> None:
    h.api.put("g", replicas=3)
    t = target(h.api, "g", STATUS, replicas=4)
    h.api.put("g", replicas=7)  # kubectl scale, before our write
    h.writer.write([t])
    assert h.api.obj("g")["spec"]["replicas"] == 7


def test_a_status_that_only_moves_timestamps_is_written_at_most_every_interval(
    h: Harness,
) -> None:
    h.api.put("g")
    h.writer.write([target(h.api, "g", {**STATUS, "lastUpdated": "t1"})])
    h.clock.advance(5)
    h.writer.write([target(h.api, "g", {**STATUS, "lastUpdated": "t2"})])
    assert h.api.obj("g")["status"]["lastUpdated"] == "t1"
    h.clock.advance(5)
    h.writer.write([target(h.api, "g", {**STATUS, "lastUpdated": "t3"})])
    assert h.api.obj("g")["status"]["lastUpdated"] == "t3"


def test_a_significant_change_is_written_at_once(h: Harness) -> None:
    h.api.put("g")
    h.writer.write([target(h.api, "g", STATUS)])
    h.clock.advance(1)
    h.writer.write([target(h.api, "g", {**STATUS, "replicas": 5})])
    assert h.api.obj("g")["status"]["replicas"] == 5


def test_a_standby_writes_nothing(h: Harness) -> None:
    h.api.put("g")
    h.leading = False
    assert h.writer.write([target(h.api, "g", STATUS, replicas=4)]) == 0
    assert h.api.calls == []


def test_leadership_lost_between_two_writes_stops_the_second(h: Harness) -> None:
    h.api.put("g", replicas=1)
    original = h.api.patch

    def patch_then_lose(plural: str, ns: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        result = original(plural, ns, name, body)
        h.leading = False
        return result

    h.api.patch = patch_then_lose  # type: ignore[method-assign]
    h.writer.write([target(h.api, "g", STATUS, replicas=4)])
    assert h.api.calls == [("PATCH", "g")]


def test_a_deposed_leaders_late_write_is_rejected_by_its_old_resource_version(
    h: Harness,
) -> None:
    h.api.put("g", replicas=1)
    old_leader = h.writer
    old_leader.write([target(h.api, "g", STATUS, replicas=4)])
    computed_before_losing = target(h.api, "g", {**STATUS, "replicas": 9}, replicas=9)
    new_leader = Harness()
    new_leader.api = h.api
    new_leader.writer.api = h.api
    new_leader.writer.write([target(h.api, "g", {**STATUS, "replicas": 6}, replicas=6)])
    old_leader.write([computed_before_losing])  # it still believes it leads
    assert h.api.obj("g")["spec"]["replicas"] == 6
    assert ("replicas", "conflict") in h.results


def test_a_transient_error_is_retried_next_round(h: Harness) -> None:
    h.api.put("g")
    h.api.errors = [RetryableError("503", code="ServiceUnavailable")]
    t = target(h.api, "g", STATUS)
    assert h.writer.write([t]) == 0
    assert h.results == [("status", "error")]
    assert h.writer.write([t]) == 1


def test_objects_no_longer_targeted_are_forgotten(h: Harness) -> None:
    h.api.put("g")
    h.writer.write([target(h.api, "g", STATUS)])
    h.writer.write([])
    h.api.calls.clear()
    # known state was dropped: the status is compared with what the API has again
    h.writer.write([target(h.api, "g", STATUS)])
    assert h.api.calls == []


def test_significant_leaves_out_timestamps_and_signal_values() -> None:
    status = {"replicas": 1, "lastUpdated": "t", "signals": [1], "currentMetrics": [2]}
    assert significant(status) == {"replicas": 1}
