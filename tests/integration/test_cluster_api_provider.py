"""The Cluster API provider against the Kubernetes API emulator over HTTP, through the official
client: reads, writes through ``/scale``, pause markers, conflicts, and the control loop."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from autoscaler.api import BackendContext, ScalableNodeGroup
from autoscaler.clock import FakeClock
from autoscaler.config import SpecSet
from autoscaler.errors import NotFoundError, PermanentError, RetryableError
from autoscaler.kube import KubeClients
from autoscaler.loop import ControlLoop
from providers.cluster_api import (
    GROUP,
    MAX_SIZE_ANNOTATION,
    MIN_SIZE_ANNOTATION,
    PAUSED_ANNOTATION,
    VERSION,
    ClusterAPIGroup,
    create,
)
from tests.k8s_emulator import KubeEmulator, kube

__all__ = ["kube"]  # the fixture, imported for pytest

pytestmark = pytest.mark.integration

BASE = f"/apis/{GROUP}/{VERSION}/namespaces/default"


def seed(
    kube: KubeEmulator,
    name: str = "md-0",
    *,
    kind: str = "MachineDeployment",
    replicas: int = 3,
    ready: int | None = None,
    min_size: int | None = 1,
    max_size: int | None = 5,
    annotations: dict[str, str] | None = None,
    spec: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Store a MachineDeployment (or MachineSet) as its controller would have left it."""
    found = dict(annotations or {})
    if min_size is not None:
        found[MIN_SIZE_ANNOTATION] = str(min_size)
    if max_size is not None:
        found[MAX_SIZE_ANNOTATION] = str(max_size)
    ready = replicas if ready is None else ready
    status: dict[str, Any] = {"replicas": replicas, "readyReplicas": ready}
    if kind == "MachineDeployment":
        status |= {"updatedReplicas": replicas, "unavailableReplicas": replicas - ready}
    return kube.put_object(
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": kind,
            "metadata": {"name": name, "namespace": "default", "annotations": found}
            | (metadata or {}),
            "spec": {
                "clusterName": "prod",
                "replicas": replicas,
                "selector": {"matchLabels": {"pool": name}},
            }
            | (spec or {}),
            "status": status,
        }
    )


@pytest.fixture
def clients(kube: KubeEmulator, tmp_path: Path) -> Iterator[KubeClients]:
    """The service's shared clients, configured from a kubeconfig that points at the emulator."""
    shared = KubeClients(kubeconfig=str(kube.write_kubeconfig(tmp_path / "kubeconfig")))
    yield shared
    shared.close()


def provider(clients: KubeClients, object_id: str = "default/md-0") -> ClusterAPIGroup:
    resource = ScalableNodeGroup.model_validate(
        {
            "metadata": {"name": "workers"},
            "spec": {"type": "ClusterAPIMachineDeployment", "id": object_id},
        }
    )
    return create(resource, BackendContext(clock=FakeClock(), kube=clients))


def replicas_of(
    kube: KubeEmulator, name: str = "md-0", resource: str = "machinedeployments"
) -> Any:
    stored = kube.get_object(resource, name)
    assert stored is not None
    return stored["spec"]["replicas"]


def test_a_machine_deployment_reports_its_scale_ready_machines_and_annotation_bounds(
    kube: KubeEmulator, clients: KubeClients
) -> None:
    seed(kube, replicas=4, ready=2, min_size=1, max_size=6)

    state = provider(clients).get_replicas()

    assert (state.desired, state.ready, state.min_size, state.max_size) == (4, 2, 1, 6)
    assert (state.stable, state.message) == (False, "2 of 4 machines ready, 4 exist, 2 unavailable")
    assert [(r.method, r.path) for r in kube.requests] == [
        ("GET", f"{BASE}/machinedeployments/md-0/scale"),
        ("GET", f"{BASE}/machinedeployments/md-0"),
    ]


def test_a_machine_deployment_without_bounds_annotations_has_no_bounds(
    kube: KubeEmulator, clients: KubeClients
) -> None:
    seed(kube, replicas=2, min_size=None, max_size=None)

    state = provider(clients).get_replicas()

    assert (state.desired, state.ready, state.min_size, state.max_size) == (2, 2, None, None)
    assert (state.stable, state.message) == (True, "2 of 2 machines ready")


def test_an_invalid_bounds_annotation_is_reported_by_name(
    kube: KubeEmulator, clients: KubeClients
) -> None:
    seed(kube, annotations={MAX_SIZE_ANNOTATION: "lots"}, max_size=None)

    with pytest.raises(PermanentError, match=MAX_SIZE_ANNOTATION) as caught:
        provider(clients).get_replicas()

    assert caught.value.code == "InvalidAnnotation"


def test_set_replicas_patches_the_scale_subresource_with_a_resource_version_precondition(
    kube: KubeEmulator, clients: KubeClients
) -> None:
    seed(kube, replicas=2, min_size=1, max_size=5)
    group = provider(clients)
    group.get_replicas()
    version = kube.resource_version
    kube.clear_requests()

    group.set_replicas(4)

    assert replicas_of(kube) == 4
    assert [(r.method, r.path) for r in kube.requests] == [
        ("PATCH", f"{BASE}/machinedeployments/md-0/scale")
    ]
    (sent,) = kube.request_bodies
    assert sent.content_type == "application/merge-patch+json"
    assert sent.body == {"metadata": {"resourceVersion": version}, "spec": {"replicas": 4}}
    state = group.get_replicas()  # the controller has not created the machines yet
    assert (state.desired, state.ready, state.stable) == (4, 2, False)


def test_the_object_becomes_stable_once_its_controller_catches_up(
    kube: KubeEmulator, clients: KubeClients
) -> None:
    seed(kube, replicas=2)
    group = provider(clients)
    group.get_replicas()
    group.set_replicas(3)

    seed(kube, replicas=3, ready=3)  # what the MachineDeployment controller does next

    state = group.get_replicas()
    assert (state.desired, state.ready, state.stable) == (3, 3, True)
    assert state.message == "3 of 3 machines ready"


def test_setting_the_same_count_twice_changes_nothing(
    kube: KubeEmulator, clients: KubeClients
) -> None:
    seed(kube, replicas=2)
    group = provider(clients)
    group.get_replicas()

    group.set_replicas(3)
    version = kube.resource_version
    group.set_replicas(3)

    assert (replicas_of(kube), kube.resource_version) == (3, version)


@pytest.mark.parametrize(
    "target", [pytest.param(0, id="below the minimum"), pytest.param(6, id="above the maximum")]
)
def test_a_count_outside_the_annotation_bounds_never_reaches_the_api(
    kube: KubeEmulator, clients: KubeClients, target: int
) -> None:
    seed(kube, replicas=3, min_size=1, max_size=5)
    group = provider(clients)
    group.get_replicas()

    with pytest.raises(PermanentError) as caught:
        group.set_replicas(target)

    assert caught.value.code == "OutOfBounds"
    assert replicas_of(kube) == 3
    assert all(r.method == "GET" for r in kube.requests)


@pytest.mark.parametrize(
    ("marker", "why"),
    [
        pytest.param(
            {"annotations": {PAUSED_ANNOTATION: ""}},
            f"annotation {PAUSED_ANNOTATION}",
            id="by the annotation",
        ),
        pytest.param({"spec": {"paused": True}}, "spec.paused is true", id="by spec.paused"),
    ],
)
def test_a_paused_machine_deployment_is_reported_and_left_alone(
    kube: KubeEmulator, clients: KubeClients, marker: dict[str, Any], why: str
) -> None:
    seed(kube, replicas=3, **marker)
    group = provider(clients)

    with pytest.raises(PermanentError, match=f"is paused \\({why}\\)") as read:
        group.get_replicas()
    with pytest.raises(PermanentError) as write:
        group.set_replicas(4)

    assert (read.value.code, write.value.code) == ("Paused", "Paused")
    assert replicas_of(kube) == 3
    assert all(r.method == "GET" for r in kube.requests)


def test_a_change_since_the_last_read_is_a_conflict_and_the_next_write_reads_again(
    kube: KubeEmulator, clients: KubeClients
) -> None:
    seed(kube, replicas=2)
    group = provider(clients)
    group.get_replicas()
    seed(kube, replicas=2, ready=1)  # the controller updated the status in between

    with pytest.raises(RetryableError, match="PATCH machinedeployments/default/md-0/scale: 409"):
        group.set_replicas(4)
    assert replicas_of(kube) == 2

    group.set_replicas(4)
    assert replicas_of(kube) == 4


def test_a_pause_that_arrives_after_the_read_is_never_overridden(
    kube: KubeEmulator, clients: KubeClients
) -> None:
    seed(kube, replicas=2)
    group = provider(clients)
    group.get_replicas()
    seed(kube, replicas=2, annotations={PAUSED_ANNOTATION: "true"})  # paused in between

    with pytest.raises(RetryableError) as conflict:
        group.set_replicas(4)
    with pytest.raises(PermanentError) as paused:
        group.set_replicas(4)

    assert (conflict.value.code, paused.value.code) == ("Conflict", "Paused")
    assert replicas_of(kube) == 2


def test_a_conflict_answered_by_the_server_is_retryable(
    kube: KubeEmulator, clients: KubeClients
) -> None:
    seed(kube, replicas=2)
    group = provider(clients)
    group.get_replicas()
    kube.fail_next("PATCH", r"/machinedeployments/md-0/scale$", 409)

    with pytest.raises(RetryableError) as caught:
        group.set_replicas(4)

    assert caught.value.code == "Conflict"
    group.set_replicas(4)
    assert replicas_of(kube) == 4


@pytest.mark.parametrize(
    ("call", "action"),
    [
        pytest.param(
            lambda group: group.get_replicas(),
            "GET machinedeployments/default/missing/scale: 404",
            id="reading",
        ),
        pytest.param(
            lambda group: group.set_replicas(2),
            "GET machinedeployments/default/missing/scale: 404",
            id="resizing",
        ),
    ],
)
def test_a_missing_machine_deployment_is_not_found(
    kube: KubeEmulator, clients: KubeClients, call: Any, action: str
) -> None:
    with pytest.raises(NotFoundError, match=action) as caught:
        call(provider(clients, "default/missing"))
    assert caught.value.code == "NotFound"


def test_a_server_error_is_retryable(kube: KubeEmulator, clients: KubeClients) -> None:
    seed(kube)
    kube.fail_next("GET", r"/machinedeployments/md-0$", 503)

    with pytest.raises(RetryableError, match="GET machinedeployments/default/md-0: 503"):
        provider(clients).get_replicas()


def test_an_unreachable_api_server_is_retryable(tmp_path: Path) -> None:
    with KubeEmulator() as gone:
        path = gone.write_kubeconfig(tmp_path / "kubeconfig")
    clients = KubeClients(kubeconfig=str(path))
    try:
        with pytest.raises(RetryableError) as caught:
            provider(clients).get_replicas()
    finally:
        clients.close()
    assert caught.value.code == "ConnectionError"


def test_a_machine_set_is_read_and_scaled_through_its_own_scale(
    kube: KubeEmulator, clients: KubeClients
) -> None:
    seed(kube, "ms-0", kind="MachineSet", replicas=2, min_size=0, max_size=4)
    group = provider(clients, "machinesets/default/ms-0")

    state = group.get_replicas()
    group.set_replicas(4)

    assert (state.desired, state.ready, state.min_size, state.max_size) == (2, 2, 0, 4)
    assert state.stable
    assert replicas_of(kube, "ms-0", "machinesets") == 4
    assert kube.requests[-1][:2] == ("PATCH", f"{BASE}/machinesets/ms-0/scale")


def test_a_machine_set_owned_by_a_machine_deployment_is_refused(
    kube: KubeEmulator, clients: KubeClients
) -> None:
    owner: dict[str, Any] = {"kind": "MachineDeployment", "name": "md-0", "controller": True}
    owner |= {"apiVersion": f"{GROUP}/{VERSION}", "uid": "0b9f"}
    seed(kube, "ms-0", kind="MachineSet", metadata={"ownerReferences": [owner]})

    with pytest.raises(PermanentError) as caught:
        provider(clients, "machinesets/default/ms-0").set_replicas(4)

    assert caught.value.code == "OwnedByMachineDeployment"
    assert replicas_of(kube, "ms-0", "machinesets") == 3


# --------------------------------------------------------------------------- through the loop


def loop_with(clients: KubeClients, replicas: int) -> tuple[ControlLoop, str]:
    clock = FakeClock()
    resource = ScalableNodeGroup.model_validate(
        {
            "metadata": {"name": "workers", "namespace": "default"},
            "spec": {
                "type": "ClusterAPIMachineDeployment",
                "id": "default/md-0",
                "replicas": replicas,
            },
        }
    )
    loop = ControlLoop(clock, context=BackendContext(clock=clock, kube=clients))
    loop.apply(SpecSet(node_groups={"default/workers": resource}))
    return loop, "default/workers"


def test_the_loop_clamps_to_the_max_size_annotation_and_says_so(
    kube: KubeEmulator, clients: KubeClients
) -> None:
    seed(kube, replicas=2, min_size=1, max_size=5)
    loop, key = loop_with(clients, 9)

    loop.run_once()

    assert replicas_of(kube) == 5
    status = loop.node_group_view(loop.node_groups[key])["status"]
    assert (status["desiredReplicas"], status["minSize"], status["maxSize"]) == (5, 1, 5)
    able = next(c for c in status["conditions"] if c["type"] == "AbleToScale")
    assert (able["status"], able["reason"]) == ("True", "LimitedByGroupBounds")
    assert "asked for 9; the group's bounds [1, 5] allow 5" in able["message"]
    assert any(r.method == "PATCH" and r.path.endswith("/md-0/scale") for r in kube.requests)


def test_the_loop_shows_a_paused_machine_deployment_and_keeps_its_desired_count(
    kube: KubeEmulator, clients: KubeClients
) -> None:
    seed(kube, replicas=2, annotations={PAUSED_ANNOTATION: ""})
    loop, key = loop_with(clients, 4)

    loop.run_once()

    assert replicas_of(kube) == 2
    view = loop.node_group_view(loop.node_groups[key])
    assert view["spec"]["replicas"] == 4
    conditions = {c["type"]: c for c in view["status"]["conditions"]}
    assert (conditions["Active"]["status"], conditions["Active"]["reason"]) == ("False", "Paused")
    assert "MachineDeployment default/md-0 is paused" in conditions["Active"]["message"]
    assert all(r.method == "GET" for r in kube.requests)
