"""Kubernetes API conflicts through the control loop: a MachineDeployment's ``/scale`` answered
with 409 Conflict (the Kubernetes API emulator over HTTP, the official client) is read again and
retried with backoff; the desired count is never lost and the group is not marked inactive."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoscaler.api import BackendContext, ScalableNodeGroup
from autoscaler.clock import FakeClock
from autoscaler.config import SpecSet
from autoscaler.kube import KubeClients
from autoscaler.loop import ControlLoop
from autoscaler.settings import LoopSettings
from providers.cluster_api import GROUP, MAX_SIZE_ANNOTATION, MIN_SIZE_ANNOTATION, VERSION
from tests.k8s_emulator import KubeEmulator, kube

__all__ = ["kube"]  # the fixture, imported for pytest

pytestmark = pytest.mark.integration


@pytest.fixture
def clients(kube: KubeEmulator, tmp_path: Path) -> Iterator[KubeClients]:
    yield KubeClients(kubeconfig=str(kube.write_kubeconfig(tmp_path / "kubeconfig")))


def _seed(kube: KubeEmulator, replicas: int) -> None:
    kube.put_object(
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "MachineDeployment",
            "metadata": {
                "name": "md-0",
                "namespace": "default",
                "annotations": {MIN_SIZE_ANNOTATION: "1", MAX_SIZE_ANNOTATION: "10"},
            },
            "spec": {
                "clusterName": "prod",
                "replicas": replicas,
                "selector": {"matchLabels": {"pool": "md-0"}},
            },
            "status": {"replicas": replicas, "readyReplicas": replicas},
        }
    )


def _replicas(kube: KubeEmulator) -> int:
    stored = kube.get_object("machinedeployments", "md-0")
    assert stored is not None
    return int(stored["spec"]["replicas"])


def test_conflicts_on_scale_are_read_again_and_retried_until_the_write_lands(
    kube: KubeEmulator, clients: KubeClients
) -> None:
    _seed(kube, replicas=2)
    clock = FakeClock()
    loop = ControlLoop(
        clock,
        LoopSettings(retry_initial_seconds=1, retry_max_seconds=8),
        context=BackendContext(clock=clock, kube=clients),
    )
    resource = ScalableNodeGroup.model_validate(
        {
            "metadata": {"name": "workers"},
            "spec": {"type": "ClusterAPIMachineDeployment", "id": "default/md-0", "replicas": 6},
        }
    )
    kube.fail_next("PATCH", r"/machinedeployments/md-0/scale$", 409, times=3)
    loop.apply(SpecSet(node_groups={"default/workers": resource}))
    group = loop.node_groups["default/workers"]

    attempts: list[float] = []
    for _ in range(200):  # 20 s of fake time in 0.1 s steps
        before = sum(1 for r in kube.requests if r.method == "PATCH")
        loop.run_once()
        if sum(1 for r in kube.requests if r.method == "PATCH") > before:
            attempts.append(clock())
        if _replicas(kube) == 6:
            break
        clock.advance(0.1)

    assert _replicas(kube) == 6
    assert len(attempts) == 4  # three conflicts, then the write that lands
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert all(0.5 <= gap <= 8.1 for gap in gaps), gaps  # backoff between attempts
    # Every retry reads the object again (a fresh resourceVersion) before it writes.
    methods = [r.method for r in kube.requests if r.path.endswith("/md-0/scale")]
    writes = [i for i, method in enumerate(methods) if method == "PATCH"]
    assert all("GET" in methods[previous + 1 : i] for previous, i in itertools.pairwise(writes))
    view = loop.node_group_view(group)
    conditions = {c["type"]: c for c in view["status"]["conditions"]}
    assert conditions["Active"]["status"] == "True"  # a conflict never marked it inactive
    assert conditions["AbleToScale"]["status"] == "True"
    assert view["spec"]["replicas"] == 6 and group.error is None


def test_a_conflict_shows_in_able_to_scale_while_it_lasts(
    kube: KubeEmulator, clients: KubeClients
) -> None:
    _seed(kube, replicas=2)
    clock = FakeClock()
    loop = ControlLoop(clock, context=BackendContext(clock=clock, kube=clients))
    resource = ScalableNodeGroup.model_validate(
        {
            "metadata": {"name": "workers"},
            "spec": {"type": "ClusterAPIMachineDeployment", "id": "default/md-0", "replicas": 4},
        }
    )
    kube.fail_next("PATCH", r"/machinedeployments/md-0/scale$", 409, times=None)
    loop.apply(SpecSet(node_groups={"default/workers": resource}))
    loop.run_until(clock() + 30, clock.set)

    view = loop.node_group_view(loop.node_groups["default/workers"])
    able = next(c for c in view["status"]["conditions"] if c["type"] == "AbleToScale")
    assert (able["status"], able["reason"]) == ("False", "Conflict")
    assert view["spec"]["replicas"] == 4  # kept for the next attempt
    assert _replicas(kube) == 2
    patches = sum(1 for r in kube.requests if r.method == "PATCH")
    assert 2 <= patches <= 8, patches  # backed off: 1, 2, 4, 8 … s apart, not every pass
