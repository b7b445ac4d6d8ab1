"""In-cluster end to end: custom resources for a Cluster API MachineDeployment group, a
pendingCapacity producer and an autoscaler in the API emulator; unschedulable pods appear; a real
``autoscaler serve --kubernetes`` process raises the MachineDeployment's ``/scale`` replicas to the
bin-packed count, and writes status and Events."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kubernetes import client

from tests.cluster_objects import node, pod
from tests.e2e.test_leader_election import (
    API_VERSION,
    GROUP,
    VERSION,
    _free_port,
    wait_until,
)
from tests.k8s_emulator import KubeEmulator, Resource, ScaleSubresource, kube

__all__ = ["kube"]  # the fixture, imported for pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
MIN_SIZE = "cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size"
MAX_SIZE = "cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size"


def _register_crds(kube: KubeEmulator) -> None:
    kube.register(
        Resource(
            GROUP,
            VERSION,
            "scalablenodegroups",
            "ScalableNodeGroup",
            status=True,
            scale=ScaleSubresource(),
        )
    )
    kube.register(Resource(GROUP, VERSION, "metricsproducers", "MetricsProducer", status=True))
    kube.register(
        Resource(GROUP, VERSION, "horizontalautoscalers", "HorizontalAutoscaler", status=True)
    )


def _machine_deployment() -> dict[str, object]:
    return {
        "apiVersion": "cluster.x-k8s.io/v1beta1",
        "kind": "MachineDeployment",
        "metadata": {
            "name": "workers-md",
            "namespace": "default",
            "annotations": {MIN_SIZE: "1", MAX_SIZE: "10"},
        },
        "spec": {
            "clusterName": "prod",
            "replicas": 1,
            "selector": {"matchLabels": {"pool": "workers"}},
            "template": {"spec": {"clusterName": "prod"}},
        },
        "status": {"replicas": 1, "readyReplicas": 1, "updatedReplicas": 1},
    }


@pytest.fixture
def service(kube: KubeEmulator, tmp_path: Path) -> Iterator[str]:
    _register_crds(kube)
    kube.put_object(_machine_deployment())
    kube.put_object(node("workers-1", cpu="4", memory="16Gi", labels={"pool": "workers"}))
    kube.put_object(pod("busy", cpu="3", memory="1Gi", node_name="workers-1"))
    with kube.api_client() as api_client:
        api = client.CustomObjectsApi(api_client)
        for plural, body in [
            (
                "scalablenodegroups",
                {
                    "kind": "ScalableNodeGroup",
                    "metadata": {"name": "workers"},
                    "spec": {"type": "ClusterAPIMachineDeployment", "id": "default/workers-md"},
                },
            ),
            (
                "metricsproducers",
                {
                    "kind": "MetricsProducer",
                    "metadata": {"name": "workers-pending"},
                    # A long interval: the pods turning unschedulable must wake it.
                    "spec": {
                        "intervalSeconds": 120,
                        "pendingCapacity": {
                            "nodeGroup": "workers",
                            "nodeSelector": {"pool": "workers"},
                        },
                    },
                },
            ),
            (
                "horizontalautoscalers",
                {
                    "kind": "HorizontalAutoscaler",
                    "metadata": {"name": "workers"},
                    "spec": {
                        "scaleTargetRef": {"name": "workers"},
                        "minReplicas": 1,
                        "maxReplicas": 20,
                        "metrics": [
                            {
                                "producer": {"name": "workers-pending"},
                                "target": {"type": "AverageValue", "averageValue": 1},
                            }
                        ],
                        "behavior": {
                            "scaleUp": {
                                "policies": [{"type": "Pods", "value": 20, "periodSeconds": 15}]
                            }
                        },
                    },
                },
            ),
        ]:
            api.create_namespaced_custom_object(
                GROUP, VERSION, "default", plural, {"apiVersion": API_VERSION, **body}
            )
    port = _free_port()
    log = tmp_path / "service.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "autoscaler.cli",
            "serve",
            "--kubernetes",
            "--kubeconfig",
            str(kube.write_kubeconfig(tmp_path / "kubeconfig")),
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "POD_NAME": "autoscaler-0",
            "POD_NAMESPACE": "default",
            "AUTOSCALER_KUBERNETES__LEASE_NAME": "node-autoscaler",
        },
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(url + "/readyz", timeout=5).status_code == 200, "ready", 30)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        print(log.read_text()[-4000:])


def test_unschedulable_pods_raise_the_machine_deployment_to_the_bin_packed_count(
    kube: KubeEmulator, service: str
) -> None:
    def md_replicas() -> int:
        found = kube.get_object("machinedeployments.cluster.x-k8s.io", "workers-md")
        assert found is not None
        return int(found["spec"]["replicas"])

    # Nothing pending: the group stays at its one busy node.
    time.sleep(2)
    assert md_replicas() == 1

    # Ten pods of 1.5 CPU each: two fit on a 4-CPU node, so 5 new nodes + the busy one = 6.
    appeared = time.monotonic()
    for i in range(10):
        kube.put_object(
            pod(
                f"job-{i}",
                cpu="1500m",
                memory="1Gi",
                pending=True,
                node_selector={"pool": "workers"},
            )
        )
    wait_until(lambda: md_replicas() == 6, "the MachineDeployment scaled to 6", 30)
    # Far sooner than the producer's 120 s interval: the pods woke it.
    assert time.monotonic() - appeared < 30
    assert any(
        r.method == "PATCH" and r.path.endswith("/machinedeployments/workers-md/scale")
        for r in kube.requests
    )

    def status(plural: str, name: str) -> dict[str, object]:
        found = kube.get_object(f"{plural}.{GROUP}", name)
        return dict(found.get("status") or {}) if found else {}

    ha = wait_until(
        lambda: (s := status("horizontalautoscalers", "workers")).get("desiredReplicas") == 6 and s,
        "autoscaler status",
    )
    assert ha["observedGeneration"] == 1
    assert any(c["type"] == "AbleToScale" for c in ha["conditions"])  # type: ignore[union-attr]
    producer = wait_until(
        lambda: status("metricsproducers", "workers-pending").get("signals"), "producer status"
    )
    assert {s["name"] for s in producer} >= {"nodes_needed", "pending_pods"}
    events = wait_until(
        lambda: [e for e in kube.list_objects("events") if e.get("reason") == "ScaledUp"],
        "a ScaledUp Event",
    )
    # The pods arrive one by one, so the count may rise in more than one step; it ends at 6.
    assert any("→ 6" in event["message"] for event in events), events
    group = kube.get_object(f"scalablenodegroups.{GROUP}", "workers")
    assert group is not None and group["spec"]["replicas"] == 6
