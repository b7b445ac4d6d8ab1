"""The Kubernetes API emulator, driven through the official ``kubernetes`` client over HTTP.

These tests pin down what the in-cluster tests rely on: CRUD, selectors, conflicts, patches,
``/status`` and ``/scale``, CRDs, watches, Leases, Events, fault injection and speed.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client, config, dynamic, watch
from kubernetes.client import ApiClient, ApiException
from kubernetes.leaderelection.leaderelectionrecord import LeaderElectionRecord
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

from tests.k8s_emulator import CAPI_GROUP, KubeEmulator, Resource, ScaleSubresource, kube

__all__ = ["kube"]  # the fixture, imported for pytest

pytestmark = pytest.mark.integration

Obj = dict[str, Any]
MD = (CAPI_GROUP, "v1beta1", "default", "machinedeployments")  # CustomObjectsApi arguments
GROUP, VERSION = "autoscaler.dev", "v1alpha1"
STRATEGIC, MERGE, JSON_PATCH = (
    "application/strategic-merge-patch+json",
    "application/merge-patch+json",
    "application/json-patch+json",
)


@pytest.fixture
def api(kube: KubeEmulator) -> Iterator[ApiClient]:
    with kube.api_client() as api_client:
        yield api_client


def pod(name: str, *, labels: dict[str, str] | None = None, node: str | None = None) -> Obj:
    spec: Obj = {"containers": [{"name": "app", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": spec}


def seed_pod(
    kube: KubeEmulator, name: str, namespace: str = "default", phase: str = "Pending", **kw: Any
) -> Obj:
    """Store a pod with a status, as the scheduler and kubelet would have left it."""
    body = {"apiVersion": "v1", "kind": "Pod", **pod(name, **kw), "status": {"phase": phase}}
    body["metadata"]["namespace"] = namespace
    return kube.put_object(body)


def machine_deployment(name: str, replicas: int = 3) -> Obj:
    return {
        "apiVersion": f"{CAPI_GROUP}/v1beta1",
        "kind": "MachineDeployment",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"pool": name}}},
    }


def api_error(call: Callable[[], object]) -> ApiException:
    with pytest.raises(ApiException) as info:
        call()
    return info.value


def reason(error: ApiException) -> str:
    return str(json.loads(error.body)["reason"])


def watched(func: Callable[..., Any], *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
    """(type, name) of every event a ``Watch().stream`` yields until it ends."""
    events = watch.Watch().stream(func, *args, **kwargs)
    return [(e["type"], e["raw_object"]["metadata"]["name"]) for e in events]


def watched_during(
    kube: KubeEmulator,
    func: Callable[..., Any],
    *args: Any,
    action: Callable[[], object],
    **kw: Any,
) -> list[tuple[str, str]]:
    """Like ``watched``, with ``action`` done once the watch is open on the server."""
    seen: list[tuple[str, str]] = []
    open_before = kube.open_watches
    thread = threading.Thread(target=lambda: seen.extend(watched(func, *args, **kw)))
    thread.start()
    kube.wait_for_watches(open_before + 1)
    action()
    thread.join(10)
    assert not thread.is_alive()
    return seen


# --------------------------------------------------------------------------------------------
# Configuration and discovery


@pytest.mark.parametrize(
    "token", [pytest.param(None, id="no-auth"), pytest.param("s3cret", id="bearer-token")]
)
def test_a_written_kubeconfig_connects_the_client_with_or_without_a_token(
    tmp_path: Path, token: str | None
) -> None:
    with KubeEmulator(token=token) as emulator:
        path = emulator.write_kubeconfig(tmp_path / "kubeconfig")
        configuration = client.Configuration()
        config.load_kube_config(config_file=str(path), client_configuration=configuration)
        with ApiClient(configuration) as api_client:
            namespaces = client.CoreV1Api(api_client).list_namespace().items
        assert "default" in [n.metadata.name for n in namespaces]
        if token:
            with emulator.api_client(token="wrong") as intruder:
                error = api_error(client.CoreV1Api(intruder).list_namespace)
            assert (error.status, reason(error)) == (401, "Unauthorized")


def test_load_kube_config_sets_the_global_default_client(
    tmp_path: Path, kube: KubeEmulator
) -> None:
    saved = client.Configuration.get_default_copy()
    try:
        config.load_kube_config(config_file=str(kube.write_kubeconfig(tmp_path / "config")))
        assert client.CoreV1Api().read_namespace("kube-system").status.phase == "Active"
    finally:
        client.Configuration.set_default(saved)


def test_discovery_lists_registered_resources_with_their_subresources(api: ApiClient) -> None:
    assert client.CoreApi(api).get_api_versions().versions == ["v1"]
    groups = {g.name for g in client.ApisApi(api).get_api_versions().groups}
    assert {CAPI_GROUP, "coordination.k8s.io", "events.k8s.io", "apiextensions.k8s.io"} <= groups
    core = {r.name: r for r in client.CoreV1Api(api).get_api_resources().resources}
    assert core["pods"].namespaced and not core["nodes"].namespaced
    assert "pods/status" in core and "watch" in core["pods"].verbs


def test_the_dynamic_client_discovers_machine_deployments_and_their_scale(
    api: ApiClient, tmp_path: Path
) -> None:
    dyn = dynamic.DynamicClient(api, cache_file=str(tmp_path / "discovery.json"))
    deployments = dyn.resources.get(api_version=f"{CAPI_GROUP}/v1beta1", kind="MachineDeployment")
    deployments.create(body=machine_deployment("pool-a", 2), namespace="default")
    scale = deployments.subresources["scale"].get(name="pool-a", namespace="default")
    assert (scale.kind, scale.spec.replicas, scale.status.selector) == ("Scale", 2, "pool=pool-a")


# --------------------------------------------------------------------------------------------
# CRUD


def test_pods_are_created_read_updated_and_deleted(api: ApiClient, kube: KubeEmulator) -> None:
    v1 = client.CoreV1Api(api)
    created, status, _ = v1.create_namespaced_pod_with_http_info("default", pod("web-1"))
    assert status == 201
    meta = created.metadata
    assert meta.uid and meta.resource_version and meta.creation_timestamp
    assert (meta.generation, meta.namespace, created.status.phase) == (1, "default", "Pending")

    duplicate = api_error(lambda: v1.create_namespaced_pod("default", pod("web-1")))
    assert (duplicate.status, reason(duplicate)) == (409, "AlreadyExists")

    read = v1.read_namespaced_pod("web-1", "default")
    read.metadata.labels = {"tier": "web"}
    updated = v1.replace_namespaced_pod("web-1", "default", read)
    assert updated.metadata.labels == {"tier": "web"}
    assert int(updated.metadata.resource_version) > int(meta.resource_version)
    assert updated.metadata.generation == 1  # metadata changes do not move generation

    deleted = v1.delete_namespaced_pod("web-1", "default")
    assert deleted.metadata.name == "web-1"  # pods answer DELETE with the object
    missing = api_error(lambda: v1.read_namespaced_pod("web-1", "default"))
    assert (missing.status, reason(missing)) == (404, "NotFound")
    assert kube.get_object("pods", "web-1") is None


@pytest.mark.parametrize(
    ("metadata", "status"),
    [
        pytest.param({"generateName": "worker-"}, 201, id="generate-name"),
        pytest.param({}, 422, id="missing-name"),
        pytest.param({"name": "Not_A_DNS_Name"}, 422, id="invalid-name"),
    ],
)
def test_create_generates_names_or_rejects_missing_and_invalid_ones(
    api: ApiClient, metadata: Obj, status: int
) -> None:
    body = {**pod("unused"), "metadata": metadata}
    v1 = client.CoreV1Api(api)
    if status == 201:
        name = v1.create_namespaced_pod("default", body).metadata.name
        assert name.startswith("worker-") and len(name) == len("worker-") + 5
    else:
        error = api_error(lambda: v1.create_namespaced_pod("default", body))
        assert (error.status, reason(error)) == (422, "Invalid")


def test_custom_objects_are_created_read_updated_and_deleted(api: ApiClient) -> None:
    objects = client.CustomObjectsApi(api)
    created = objects.create_namespaced_custom_object(*MD, machine_deployment("pool-a"))
    assert created["metadata"]["generation"] == 1
    created["spec"]["replicas"] = 5
    created["metadata"]["labels"] = {"team": "infra"}
    updated = objects.replace_namespaced_custom_object(*MD, "pool-a", created)
    assert (updated["spec"]["replicas"], updated["metadata"]["generation"]) == (5, 2)

    listed = objects.list_namespaced_custom_object(*MD)
    assert [i["metadata"]["name"] for i in listed["items"]] == ["pool-a"]
    assert listed["kind"] == "MachineDeploymentList" and listed["metadata"]["resourceVersion"]

    status = objects.delete_namespaced_custom_object(*MD, "pool-a")
    assert (status["kind"], status["status"]) == ("Status", "Success")
    assert api_error(lambda: objects.get_namespaced_custom_object(*MD, "pool-a")).status == 404


def test_a_write_that_changes_nothing_keeps_the_resource_version(api: ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    created = v1.create_namespaced_pod("default", pod("same"))
    again = v1.patch_namespaced_pod("same", "default", {"metadata": {"labels": {}}})
    assert again.metadata.resource_version == created.metadata.resource_version


def test_finalizers_hold_a_deleted_object_until_they_are_removed(api: ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    body = {"metadata": {"name": "held", "finalizers": ["example.com/cleanup"]}}
    v1.create_namespaced_config_map("default", body)
    v1.delete_namespaced_config_map("held", "default")
    assert v1.read_namespaced_config_map("held", "default").metadata.deletion_timestamp
    v1.patch_namespaced_config_map("held", "default", {"metadata": {"finalizers": None}})
    assert api_error(lambda: v1.read_namespaced_config_map("held", "default")).status == 404


def test_delete_collection_and_namespace_deletion_remove_the_selected_objects(
    api: ApiClient, kube: KubeEmulator
) -> None:
    for name, app in [("a", "web"), ("b", "db"), ("c", "web")]:
        seed_pod(kube, name, labels={"app": app})
    v1 = client.CoreV1Api(api)
    v1.create_namespace({"metadata": {"name": "doomed"}})
    seed_pod(kube, "d", namespace="doomed")
    v1.delete_collection_namespaced_pod("default", label_selector="app=web")
    assert [p["metadata"]["name"] for p in kube.list_objects("pods")] == ["b", "d"]
    v1.delete_namespace("doomed")
    assert [p["metadata"]["name"] for p in kube.list_objects("pods")] == ["b"]


def test_list_pages_with_limit_and_continue(api: ApiClient, kube: KubeEmulator) -> None:
    for i in range(5):
        seed_pod(kube, f"p{i}")
    v1 = client.CoreV1Api(api)
    first = v1.list_namespaced_pod("default", limit=2)
    rest = v1.list_namespaced_pod("default", limit=10, _continue=first.metadata._continue)
    assert [p.metadata.name for p in first.items + rest.items] == [f"p{i}" for i in range(5)]
    assert first.metadata.remaining_item_count == 3 and rest.metadata._continue is None


# --------------------------------------------------------------------------------------------
# Selectors


@pytest.fixture
def labelled_pods(kube: KubeEmulator) -> None:
    seed_pod(kube, "web-1", labels={"app": "web", "tier": "front"}, node="n1", phase="Running")
    seed_pod(kube, "web-2", labels={"app": "web"}, phase="Pending")
    seed_pod(kube, "db-1", labels={"app": "db", "tier": "back"}, node="n2", phase="Running")
    seed_pod(kube, "job-1", labels={"batch": "true"}, node="n1", phase="Succeeded")
    seed_pod(kube, "other", namespace="team-b", labels={"app": "web"}, node="n3")


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        pytest.param("app=web", ["web-1", "web-2"], id="equals"),
        pytest.param("app==web", ["web-1", "web-2"], id="double-equals"),
        pytest.param("app!=web", ["db-1", "job-1"], id="not-equals"),
        pytest.param("app in (web,db)", ["db-1", "web-1", "web-2"], id="in"),
        pytest.param("app notin (web)", ["db-1", "job-1"], id="notin"),
        pytest.param("tier", ["db-1", "web-1"], id="exists"),
        pytest.param("!tier", ["job-1", "web-2"], id="not-exists"),
        pytest.param("app=web,tier", ["web-1"], id="and"),
        pytest.param("app in (web, db),!tier", ["web-2"], id="set-and-not-exists"),
        pytest.param("", ["db-1", "job-1", "web-1", "web-2"], id="empty"),
    ],
)
def test_label_selectors_filter_lists(
    api: ApiClient, labelled_pods: None, selector: str, expected: list[str]
) -> None:
    pods = client.CoreV1Api(api).list_namespaced_pod("default", label_selector=selector)
    assert sorted(p.metadata.name for p in pods.items) == expected


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        pytest.param("metadata.name=web-2", ["web-2"], id="name"),
        pytest.param("spec.nodeName=n1", ["job-1", "web-1"], id="node"),
        pytest.param("spec.nodeName=", ["web-2"], id="unscheduled"),
        pytest.param("spec.nodeName!=n1", ["db-1", "other", "web-2"], id="not-node"),
        pytest.param("status.phase==Running", ["db-1", "web-1"], id="phase"),
        pytest.param(
            "status.phase!=Succeeded,status.phase!=Pending", ["db-1", "web-1"], id="two-negations"
        ),
        pytest.param("metadata.namespace=team-b", ["other"], id="namespace"),
    ],
)
def test_field_selectors_filter_lists_across_namespaces(
    api: ApiClient, labelled_pods: None, selector: str, expected: list[str]
) -> None:
    pods = client.CoreV1Api(api).list_pod_for_all_namespaces(field_selector=selector)
    assert sorted(p.metadata.name for p in pods.items) == expected


def test_a_malformed_label_selector_is_a_bad_request(api: ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    error = api_error(lambda: v1.list_namespaced_pod("default", label_selector="app in web"))
    assert (error.status, reason(error)) == (400, "BadRequest")


def test_cluster_scoped_nodes_are_listed_by_label(api: ApiClient, kube: KubeEmulator) -> None:
    for name, pool in [("n1", "a"), ("n2", "b"), ("n3", "a")]:
        meta = {"name": name, "labels": {"pool": pool}}
        kube.put_object({"apiVersion": "v1", "kind": "Node", "metadata": meta})
    nodes = client.CoreV1Api(api).list_node(label_selector="pool=a")
    assert [n.metadata.name for n in nodes.items] == ["n1", "n3"]
    assert nodes.items[0].metadata.namespace is None


# --------------------------------------------------------------------------------------------
# Conflicts and patches


def test_a_put_with_a_stale_resource_version_is_a_conflict(api: ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    stale = v1.create_namespaced_pod("default", pod("web"))
    fresh = v1.read_namespaced_pod("web", "default")
    fresh.metadata.labels = {"writer": "first"}
    v1.replace_namespaced_pod("web", "default", fresh)

    stale.metadata.labels = {"writer": "second"}
    error = api_error(lambda: v1.replace_namespaced_pod("web", "default", stale))
    assert (error.status, reason(error)) == (409, "Conflict")
    assert json.loads(error.body)["details"] == {"name": "web", "group": "", "kind": "pods"}

    stale.metadata.resource_version = None  # an unconditional update wins
    assert v1.replace_namespaced_pod("web", "default", stale).metadata.labels["writer"] == "second"


@pytest.mark.parametrize(
    ("patch", "content_type", "labels", "sent_as"),
    [
        pytest.param(
            {"metadata": {"labels": {"b": "2"}}},
            None,
            {"a": "1", "b": "2"},
            STRATEGIC,
            id="dict-is-strategic-merge",
        ),
        pytest.param(
            {"metadata": {"labels": {"a": None}}},
            None,
            {},
            STRATEGIC,
            id="strategic-merge-null-deletes",
        ),
        pytest.param(
            [{"op": "add", "path": "/metadata/labels/b", "value": "2"}],
            None,
            {"a": "1", "b": "2"},
            JSON_PATCH,
            id="list-is-json-patch",
        ),
        pytest.param(
            [{"op": "replace", "path": "/metadata/labels", "value": {"c": "3"}}],
            None,
            {"c": "3"},
            JSON_PATCH,
            id="json-patch-replace",
        ),
        pytest.param(
            [
                {"op": "test", "path": "/metadata/labels/a", "value": "1"},
                {"op": "remove", "path": "/metadata/labels/a"},
            ],
            None,
            {},
            JSON_PATCH,
            id="json-patch-test-and-remove",
        ),
        pytest.param(
            {"metadata": {"labels": {"b": "2"}}},
            MERGE,
            {"a": "1", "b": "2"},
            MERGE,
            id="explicit-merge-patch",
        ),
    ],
)
def test_core_patches_follow_the_content_type_the_client_picks(
    api: ApiClient,
    kube: KubeEmulator,
    patch: Any,
    content_type: str | None,
    labels: dict[str, str],
    sent_as: str,
) -> None:
    v1 = client.CoreV1Api(api)
    v1.create_namespaced_pod("default", pod("p", labels={"a": "1"}))
    options = {"_content_type": content_type} if content_type else {}
    patched = v1.patch_namespaced_pod("p", "default", patch, **options)
    assert (patched.metadata.labels or {}) == labels
    assert kube.request_bodies[-1].content_type == sent_as


@pytest.mark.parametrize(
    ("patch", "content_type", "replicas"),
    [
        pytest.param({"spec": {"replicas": 7}}, None, 7, id="merge-patch-by-default"),
        pytest.param(
            [{"op": "replace", "path": "/spec/replicas", "value": 8}],
            JSON_PATCH,
            8,
            id="json-patch-only-when-asked",
        ),
    ],
)
def test_custom_object_patches_are_merge_patches_unless_asked_otherwise(
    api: ApiClient, patch: Any, content_type: str | None, replicas: int
) -> None:
    objects = client.CustomObjectsApi(api)
    objects.create_namespaced_custom_object(*MD, machine_deployment("md"))
    options = {"_content_type": content_type} if content_type else {}
    patched = objects.patch_namespaced_custom_object(*MD, "md", patch, **options)
    assert patched["spec"]["replicas"] == replicas
    assert patched["spec"]["selector"] == {"matchLabels": {"pool": "md"}}


@pytest.mark.parametrize(
    ("patch", "content_type", "status"),
    [
        pytest.param(
            [{"op": "test", "path": "/metadata/name", "value": "x"}],
            JSON_PATCH,
            422,
            id="failed-test-operation",
        ),
        pytest.param(
            [{"op": "remove", "path": "/spec/missing"}], JSON_PATCH, 422, id="remove-missing-path"
        ),
        pytest.param({"metadata": {"resourceVersion": "1"}}, MERGE, 409, id="stale-version"),
        pytest.param({"spec": {}}, "application/apply-patch+yaml", 415, id="server-side-apply"),
    ],
)
def test_bad_patches_are_rejected(
    api: ApiClient, patch: Any, content_type: str, status: int
) -> None:
    objects = client.CustomObjectsApi(api)
    objects.create_namespaced_custom_object(*MD, machine_deployment("md"))
    error = api_error(
        lambda: objects.patch_namespaced_custom_object(*MD, "md", patch, _content_type=content_type)
    )
    assert error.status == status


# --------------------------------------------------------------------------------------------
# Status and scale subresources


def test_pod_status_changes_only_through_the_status_subresource(api: ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    created = v1.create_namespaced_pod("default", {**pod("p"), "status": {"phase": "Running"}})
    assert created.status.phase == "Pending"  # create resets a pod's status

    ignored = v1.patch_namespaced_pod("p", "default", {"status": {"phase": "Failed"}})
    assert ignored.status.phase == "Pending"
    assert ignored.metadata.resource_version == created.metadata.resource_version

    condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}
    status = {"phase": "Pending", "conditions": [condition]}
    patch = {"metadata": {"labels": {"ignored": "yes"}}, "status": status}
    patched = v1.patch_namespaced_pod_status("p", "default", patch)
    assert patched.status.conditions[0].reason == "Unschedulable"
    assert not patched.metadata.labels and patched.metadata.generation == 1

    patched.status.phase = "Running"
    assert v1.replace_namespaced_pod_status("p", "default", patched).status.phase == "Running"
    assert v1.read_namespaced_pod_status("p", "default").status.phase == "Running"


def test_custom_resources_with_a_status_subresource_isolate_status(api: ApiClient) -> None:
    objects = client.CustomObjectsApi(api)
    body = {**machine_deployment("md"), "status": {"replicas": 9}}
    assert "status" not in objects.create_namespaced_custom_object(*MD, body)
    patch = {"status": {"replicas": 2}, "spec": {"replicas": 0}}
    written = objects.patch_namespaced_custom_object_status(*MD, "md", patch)
    assert (written["status"], written["spec"]["replicas"]) == ({"replicas": 2}, 3)
    assert written["metadata"]["generation"] == 1


def test_machine_deployment_scale_round_trips_an_autoscaling_v1_scale(
    api: ApiClient, kube: KubeEmulator
) -> None:
    objects = client.CustomObjectsApi(api)
    objects.create_namespaced_custom_object(*MD, machine_deployment("pool-a"))
    kube.put_object({**machine_deployment("pool-a"), "status": {"replicas": 2}})

    raw = objects.get_namespaced_custom_object_scale(*MD, "pool-a")
    assert (raw["apiVersion"], raw["kind"]) == ("autoscaling/v1", "Scale")
    scale = client.V1Scale.from_dict(raw)
    assert (scale.spec.replicas, scale.status.replicas) == (3, 2)
    assert scale.status.selector == "pool=pool-a"

    patched = objects.patch_namespaced_custom_object_scale(*MD, "pool-a", {"spec": {"replicas": 5}})
    assert (patched["spec"]["replicas"], patched["status"]["replicas"]) == (5, 2)
    stored = kube.get_object("machinedeployments", "pool-a") or {}
    assert (stored["spec"]["replicas"], stored["metadata"]["generation"]) == (5, 2)

    raw["spec"]["replicas"] = 1  # raw still carries the old resourceVersion
    error = api_error(lambda: objects.replace_namespaced_custom_object_scale(*MD, "pool-a", raw))
    assert (error.status, reason(error)) == (409, "Conflict")
    patched["spec"]["replicas"] = 1
    replaced = objects.replace_namespaced_custom_object_scale(*MD, "pool-a", patched)
    assert replaced["spec"]["replicas"] == 1
    assert kube.requests[-1].path.endswith("/machinedeployments/pool-a/scale")


@pytest.mark.parametrize(
    "replicas", [pytest.param(-1, id="negative"), pytest.param("three", id="not-a-number")]
)
def test_scale_rejects_invalid_replicas(api: ApiClient, replicas: object) -> None:
    objects = client.CustomObjectsApi(api)
    machine_set = {**machine_deployment("ms"), "kind": "MachineSet"}
    sets = (*MD[:3], "machinesets")
    objects.create_namespaced_custom_object(*sets, machine_set)
    patch = {"spec": {"replicas": replicas}}
    error = api_error(lambda: objects.patch_namespaced_custom_object_scale(*sets, "ms", patch))
    assert (error.status, reason(error)) == (422, "Invalid")


# --------------------------------------------------------------------------------------------
# CustomResourceDefinitions


def crd(scope: str, spec_path: str, status_path: str) -> Obj:
    scale = {
        "specReplicasPath": spec_path,
        "statusReplicasPath": status_path,
        "labelSelectorPath": ".status.selector",
    }
    schema = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    version = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "schema": schema,
        "subresources": {"status": {}, "scale": scale},
    }
    names = {
        "plural": "scalablenodegroups",
        "singular": "scalablenodegroup",
        "kind": "ScalableNodeGroup",
        "listKind": "ScalableNodeGroupList",
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"scalablenodegroups.{GROUP}"},
        "spec": {"group": GROUP, "scope": scope, "names": names, "versions": [version]},
    }


@pytest.mark.parametrize(
    ("scope", "spec_path", "status_path"),
    [
        pytest.param("Namespaced", ".spec.replicas", ".status.replicas", id="namespaced"),
        pytest.param("Cluster", ".spec.size", ".status.ready", id="cluster-scoped-custom-paths"),
    ],
)
def test_an_applied_crd_serves_its_kind_with_status_and_scale(
    api: ApiClient, scope: str, spec_path: str, status_path: str
) -> None:
    extensions = client.ApiextensionsV1Api(api)
    definition = extensions.create_custom_resource_definition(crd(scope, spec_path, status_path))
    assert {c.type: c.status for c in definition.status.conditions}["Established"] == "True"
    assert GROUP in {g.name for g in client.ApisApi(api).get_api_versions().groups}
    objects = client.CustomObjectsApi(api)
    namespace = ("default",) if scope == "Namespaced" else ()
    spec_key, status_key = spec_path.split(".")[-1], status_path.split(".")[-1]

    def call(verb: str, *args: Any) -> Any:
        method = getattr(objects, verb.format("namespaced" if namespace else "cluster"))
        return method(GROUP, VERSION, *namespace, "scalablenodegroups", *args)

    kind = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ScalableNodeGroup"}
    body = {**kind, "metadata": {"name": "g"}, "spec": {spec_key: 2}}
    created = call("create_{}_custom_object", body)
    assert created["metadata"].get("namespace") == (namespace or (None,))[0]
    call("patch_{}_custom_object_status", "g", {"status": {status_key: 1, "selector": "pool=g"}})
    scale = call("get_{}_custom_object_scale", "g")
    assert (scale["spec"], scale["status"]) == (
        {"replicas": 2},
        {"replicas": 1, "selector": "pool=g"},
    )
    call("patch_{}_custom_object_scale", "g", {"spec": {"replicas": 4}})
    assert call("get_{}_custom_object", "g")["spec"][spec_key] == 4
    assert [i["metadata"]["name"] for i in call("list_{}_custom_object")["items"]] == ["g"]

    extensions.delete_custom_resource_definition(f"scalablenodegroups.{GROUP}")
    assert api_error(lambda: call("list_{}_custom_object")).status == 404


def test_a_crd_whose_name_does_not_match_its_names_is_invalid(api: ApiClient) -> None:
    body = crd("Namespaced", ".spec.replicas", ".status.replicas")
    body["metadata"]["name"] = "wrong.example.com"
    extensions = client.ApiextensionsV1Api(api)
    error = api_error(lambda: extensions.create_custom_resource_definition(body))
    assert (error.status, reason(error)) == (422, "Invalid")


def test_a_programmatically_registered_resource_is_served(
    api: ApiClient, kube: KubeEmulator
) -> None:
    scale = ScaleSubresource(".spec.count", ".status.count")
    kube.register(Resource("example.com", "v1", "widgets", "Widget", False, True, scale))
    objects = client.CustomObjectsApi(api)
    body = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    objects.create_cluster_custom_object(
        "example.com", "v1", "widgets", {**body, "spec": {"count": 1}}
    )
    served = objects.get_cluster_custom_object_scale("example.com", "v1", "widgets", "w")
    assert served["spec"]["replicas"] == 1 and "selector" not in served["status"]


# --------------------------------------------------------------------------------------------
# Watch


def test_a_watch_from_a_resource_version_replays_later_events_in_order(api: ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    v1.create_namespaced_pod("default", pod("before"))
    start = v1.list_namespaced_pod("default").metadata.resource_version
    v1.create_namespaced_pod("default", pod("p"))
    v1.patch_namespaced_pod("p", "default", {"metadata": {"labels": {"x": "1"}}})
    v1.delete_namespaced_pod("p", "default")
    v1.create_namespaced_pod("team-b", pod("elsewhere"))

    events = watched(v1.list_namespaced_pod, "default", resource_version=start, timeout_seconds=1)
    assert events == [("ADDED", "p"), ("MODIFIED", "p"), ("DELETED", "p")]


def test_a_watch_without_a_resource_version_starts_with_current_objects(
    api: ApiClient, kube: KubeEmulator
) -> None:
    seed_pod(kube, "existing")
    v1 = client.CoreV1Api(api)
    action = lambda: seed_pod(kube, "live")  # noqa: E731
    events = watched_during(
        kube, v1.list_namespaced_pod, "default", action=action, timeout_seconds=1
    )
    assert events == [("ADDED", "existing"), ("ADDED", "live")]


def test_a_watch_ends_after_timeout_seconds(api: ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    rv = v1.list_namespaced_pod("default").metadata.resource_version
    started = time.monotonic()
    assert watched(v1.list_namespaced_pod, "default", resource_version=rv, timeout_seconds=1) == []
    assert 0.9 <= time.monotonic() - started < 3


def test_close_watches_ends_open_streams(api: ApiClient, kube: KubeEmulator) -> None:
    v1 = client.CoreV1Api(api)
    rv = v1.list_namespaced_pod("default").metadata.resource_version
    started = time.monotonic()
    events = watched_during(
        kube,
        v1.list_namespaced_pod,
        "default",
        action=kube.close_watches,
        resource_version=rv,
        timeout_seconds=30,
    )
    assert events == [] and time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("selectors", "expected"),
    [
        pytest.param(
            {"label_selector": "app=web"},
            [("ADDED", "web-1"), ("DELETED", "web-1"), ("ADDED", "db-1")],
            id="label-entries-and-exits",
        ),
        pytest.param(
            {"field_selector": "spec.nodeName=n1"},
            [("ADDED", "web-1"), ("MODIFIED", "web-1")],
            id="field-node",
        ),
        pytest.param(
            {"field_selector": "metadata.name=db-1"},
            [("ADDED", "db-1"), ("MODIFIED", "db-1")],
            id="field-name",
        ),
    ],
)
def test_watch_selectors_turn_modifications_into_entries_and_exits(
    api: ApiClient, selectors: dict[str, str], expected: list[tuple[str, str]]
) -> None:
    v1 = client.CoreV1Api(api)
    rv = v1.list_namespaced_pod("default").metadata.resource_version
    v1.create_namespaced_pod("default", pod("web-1", labels={"app": "web"}, node="n1"))
    v1.patch_namespaced_pod("web-1", "default", {"metadata": {"labels": {"app": "api"}}})
    v1.create_namespaced_pod("default", pod("db-1", labels={"app": "db"}, node="n2"))
    v1.patch_namespaced_pod("db-1", "default", {"metadata": {"labels": {"app": "web"}}})
    options = {"resource_version": rv, "timeout_seconds": 1, **selectors}
    assert watched(v1.list_namespaced_pod, "default", **options) == expected


def test_a_watch_of_custom_objects_sees_scale_writes(api: ApiClient, kube: KubeEmulator) -> None:
    objects = client.CustomObjectsApi(api)

    def scale_up() -> None:
        objects.create_namespaced_custom_object(*MD, machine_deployment("md"))
        objects.patch_namespaced_custom_object_scale(*MD, "md", {"spec": {"replicas": 4}})

    events = watched_during(
        kube, objects.list_namespaced_custom_object, *MD, action=scale_up, timeout_seconds=1
    )
    assert events == [("ADDED", "md"), ("MODIFIED", "md")]


@pytest.mark.parametrize(
    "forget",
    [pytest.param("overflow", id="history-overflow"), pytest.param("compact", id="compacted")],
)
def test_a_watch_from_a_forgotten_resource_version_gets_410_gone(forget: str) -> None:
    with KubeEmulator(history_size=5) as emulator, emulator.api_client() as api_client:
        v1 = client.CoreV1Api(api_client)
        old = emulator.resource_version
        for i in range(6 if forget == "overflow" else 1):
            seed_pod(emulator, f"p{i}")
        if forget == "compact":
            emulator.compact()
        options = {"resource_version": old, "timeout_seconds": 1}
        error = api_error(lambda: watched(v1.list_namespaced_pod, "default", **options))
        assert error.status == 410
        options["resource_version"] = emulator.resource_version
        assert watched(v1.list_namespaced_pod, "default", **options) == []


def test_the_watch_stream_is_chunked_newline_delimited_json(kube: KubeEmulator) -> None:
    seed_pod(kube, "p")
    url = f"{kube.url}/api/v1/namespaces/default/pods?watch=1&timeoutSeconds=0.2"
    with httpx.stream("GET", url) as response:
        lines = [json.loads(line) for line in response.iter_lines() if line]
        assert response.headers["transfer-encoding"] == "chunked"
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in lines] == [("ADDED", "p")]


# --------------------------------------------------------------------------------------------
# Leases and Events


def lease(holder: str, renewed: datetime) -> client.V1Lease:
    spec = client.V1LeaseSpec(
        holder_identity=holder, lease_duration_seconds=15, acquire_time=renewed, renew_time=renewed
    )
    meta = client.V1ObjectMeta(name="autoscaler", namespace="default")
    return client.V1Lease(metadata=meta, spec=spec)


def test_lease_leader_election_sees_conflicts(api: ApiClient) -> None:
    leases = client.CoordinationV1Api(api)
    now = datetime.now(UTC)
    held, status, _ = leases.create_namespaced_lease_with_http_info("default", lease("a", now))
    assert status == 201
    lost = api_error(lambda: leases.create_namespaced_lease("default", lease("b", now)))
    assert (lost.status, reason(lost)) == (409, "AlreadyExists")

    observed = leases.read_namespaced_lease("autoscaler", "default")  # candidate b's view
    held.spec.renew_time = now + timedelta(seconds=5)
    renewed = leases.replace_namespaced_lease("autoscaler", "default", held)  # a renews
    assert renewed.spec.renew_time == now + timedelta(seconds=5)

    observed.spec.holder_identity = "b"
    stale = api_error(lambda: leases.replace_namespaced_lease("autoscaler", "default", observed))
    assert (stale.status, reason(stale)) == (409, "Conflict")

    current = leases.read_namespaced_lease("autoscaler", "default")
    current.spec.holder_identity, current.spec.lease_transitions = "b", 1
    taken = leases.replace_namespaced_lease("autoscaler", "default", current)
    assert (taken.spec.holder_identity, taken.spec.lease_transitions) == ("b", 1)


def test_the_clients_own_lease_lock_acquires_renews_and_loses_on_conflict(
    api: ApiClient,
) -> None:
    locks = [LeaseLock("autoscaler", "default", identity) for identity in ("a", "b")]
    for lock in locks:
        lock.api_instance = client.CoordinationV1Api(api)  # it defaults to the global client
    now = datetime.now()  # the election record holds naive local times
    record = LeaderElectionRecord("a", "15", str(now), str(now))
    assert locks[0].create("autoscaler", "default", record)
    assert not locks[1].create("autoscaler", "default", record)
    found, current = locks[1].get("autoscaler", "default")
    assert found and current.holder_identity == "a"

    record.renew_time = str(now + timedelta(seconds=5))
    assert locks[0].update("autoscaler", "default", record)  # renewed
    record.holder_identity = "b"
    assert not locks[1].update("autoscaler", "default", record)  # b's copy is stale
    assert locks[1].get("autoscaler", "default")[1].holder_identity == "a"


def test_core_and_events_api_events_are_created_and_listed(api: ApiClient) -> None:
    regarding = client.V1ObjectReference(kind="ScalableNodeGroup", name="g", namespace="default")
    core = client.CoreV1Api(api)
    core.create_namespaced_event(
        "default",
        client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name="g."),
            involved_object=regarding,
            reason="ScaledUp",
            message="3 -> 5",
            type="Normal",
        ),
    )
    events = client.EventsV1Api(api)
    created = events.create_namespaced_event(
        "default",
        client.EventsV1Event(
            metadata=client.V1ObjectMeta(name="g.2"),
            event_time=datetime.now(UTC),
            regarding=regarding,
            reason="ScaledUp",
            note="3 -> 5",
            action="Scale",
            type="Normal",
            reporting_controller="autoscaler.dev/autoscaler",
            reporting_instance="pod-1",
        ),
    )
    assert created.regarding.name == "g"
    listed = core.list_namespaced_event("default", field_selector="involvedObject.name=g")
    assert [e.reason for e in listed.items] == ["ScaledUp"]
    assert [e.note for e in events.list_namespaced_event("default").items] == ["3 -> 5"]


# --------------------------------------------------------------------------------------------
# Errors, fault injection, request log


PODS = "/api/v1/namespaces/default/pods"


@pytest.mark.parametrize(
    ("method", "path", "status", "status_reason"),
    [
        pytest.param("GET", "/api/v1/namespaces/default/widgets", 404, "NotFound", id="no-kind"),
        pytest.param("GET", "/apis/example.com/v1", 404, "NotFound", id="unknown-group"),
        pytest.param("POST", f"{PODS}/p", 405, "MethodNotAllowed", id="post-to-object"),
        pytest.param("POST", "/api/v1/pods", 405, "MethodNotAllowed", id="post-all-namespaces"),
        pytest.param("GET", f"{PODS}/p/scale", 404, "NotFound", id="no-scale-subresource"),
        pytest.param("PUT", f"{PODS}/p", 400, "BadRequest", id="name-mismatch"),
    ],
)
def test_errors_are_kubernetes_status_objects(
    kube: KubeEmulator, method: str, path: str, status: int, status_reason: str
) -> None:
    seed_pod(kube, "p")
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "q"}}
    response = httpx.request(method, kube.url + path, json=body)
    assert response.status_code == status
    failure = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
    assert response.json() == {
        **failure,
        "message": response.json()["message"],
        "reason": status_reason,
        "code": status,
    }


@pytest.mark.parametrize(
    ("status", "retry_after"),
    [
        pytest.param(500, None, id="internal-error"),
        pytest.param(429, 2, id="too-many-requests"),
        pytest.param(409, None, id="conflict"),
        pytest.param(503, None, id="unavailable"),
    ],
)
def test_fault_injection_fails_the_next_matching_request(
    api: ApiClient, kube: KubeEmulator, status: int, retry_after: int | None
) -> None:
    objects = client.CustomObjectsApi(api)
    objects.create_namespaced_custom_object(*MD, machine_deployment("md"))
    fault = kube.fail_next(
        "PATCH", r"/machinedeployments/md/scale$", status, retry_after=retry_after
    )

    def scale() -> Any:
        return objects.patch_namespaced_custom_object_scale(*MD, "md", {"spec": {"replicas": 4}})

    objects.get_namespaced_custom_object_scale(*MD, "md")  # another method: not failed
    error = api_error(scale)
    assert (error.status, json.loads(error.body)["code"]) == (status, status)
    if retry_after is not None:
        assert error.headers["Retry-After"] == str(retry_after)
    assert (fault.hits, fault.exhausted) == (1, True)
    assert scale()["spec"]["replicas"] == 4  # the fault is used up


def test_faults_can_repeat_match_any_method_and_be_cleared(
    api: ApiClient, kube: KubeEmulator
) -> None:
    v1 = client.CoreV1Api(api)
    fault = kube.fail_next("*", r"/pods$", 500, times=None, message="etcd is down")
    for _ in range(3):
        error = api_error(lambda: v1.list_namespaced_pod("default"))
        assert json.loads(error.body)["message"] == "etcd is down"
    assert fault.hits == 3 and not fault.exhausted
    kube.clear_faults()
    assert v1.list_namespaced_pod("default").items == []


def test_delay_next_slows_a_request_without_failing_it(api: ApiClient, kube: KubeEmulator) -> None:
    kube.delay_next("GET", r"/namespaces$", 0.3)
    started = time.monotonic()
    client.CoreV1Api(api).list_namespace()
    assert time.monotonic() - started >= 0.3


def test_the_request_log_records_requests_and_is_bounded() -> None:
    with KubeEmulator(max_logged_requests=3) as emulator, emulator.api_client() as api_client:
        v1 = client.CoreV1Api(api_client)
        started = time.monotonic()
        for _ in range(4):
            v1.list_namespaced_pod("default", label_selector="app=web")
        v1.create_namespaced_pod("default", pod("p"))
        assert len(emulator.requests) == 3
        method, path, query, token, at = emulator.requests[-2]
        assert (method, path) == ("GET", "/api/v1/namespaces/default/pods")
        assert query == {"labelSelector": "app=web"}
        assert token is None  # no credentials
        assert started <= at <= emulator.requests[-1].at <= time.monotonic()
        assert emulator.request_bodies[-1].body["metadata"]["name"] == "p"


def test_the_request_log_tells_clients_apart_by_their_bearer_token() -> None:
    with KubeEmulator() as emulator:
        for token in ("replica-a", "replica-b"):
            with emulator.api_client(token) as api_client:
                client.CoreV1Api(api_client).list_namespaced_pod("default")
        assert [r.token for r in emulator.requests] == ["replica-a", "replica-b"]


# --------------------------------------------------------------------------------------------
# Speed


def test_thousands_of_pods_list_quickly_and_idle_watches_do_not_spin(
    api: ApiClient, kube: KubeEmulator
) -> None:
    started = time.monotonic()
    for i in range(3000):
        node = f"n{i % 100}"
        seed_pod(kube, f"p{i}", namespace=f"ns{i % 10}", labels={"node": node}, node=node)
    for i in range(300):
        kube.put_object({"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"n{i}"}})
    v1 = client.CoreV1Api(api)
    assert len(v1.list_namespaced_pod("ns3", field_selector="spec.nodeName=n3").items) == 30
    assert len(v1.list_pod_for_all_namespaces(label_selector="node in (n1,n2)").items) == 60
    assert len(v1.list_node().items) == 300
    assert time.monotonic() - started < 10

    rv = kube.resource_version
    idle = [
        threading.Thread(
            target=watched,
            args=(v1.list_node,),
            kwargs={"resource_version": rv, "timeout_seconds": 1},
        )
        for _ in range(10)
    ]
    cpu = time.process_time()
    for thread in idle:
        thread.start()
    for thread in idle:
        thread.join(10)
    assert time.process_time() - cpu < 0.5
