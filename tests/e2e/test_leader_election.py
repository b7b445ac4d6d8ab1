"""Two real ``autoscaler serve --kubernetes`` processes against one Kubernetes API emulator.

They are configured the way the Helm chart configures its pods (``POD_NAME``, ``POD_NAMESPACE``
and ``AUTOSCALER_KUBERNETES__*``), with the default election timings (15 s lease). Exactly one
acts; when it dies the other takes over within about 15–20 s and keeps scaling; a leader that
was frozen and wakes up after losing the Lease writes nothing.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
from kubernetes import client

from tests.k8s_emulator import KubeEmulator, Resource, ScaleSubresource, kube

__all__ = ["kube"]  # the fixture, imported for pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

GROUP, VERSION = "autoscaler.dev", "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
LEASE = "node-autoscaler"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (httpx.HTTPError, KeyError, TypeError):
            last = None
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Autoscaler:
    """One ``autoscaler serve --kubernetes`` process, as one pod of the Deployment."""

    def __init__(
        self, name: str, kubeconfig: Path, log: Path, env: Mapping[str, str] | None = None
    ) -> None:
        self.name = name
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "POD_NAME": name,
            "POD_NAMESPACE": "default",
            "AUTOSCALER_KUBERNETES__NAMESPACES": "",
            "AUTOSCALER_KUBERNETES__LEADER_ELECTION": "true",
            "AUTOSCALER_KUBERNETES__LEASE_NAME": LEASE,
            "AUTOSCALER_KUBERNETES__LEASE_NAMESPACE": "default",
            "AUTOSCALER_LOOP__RESYNC_SECONDS": "1",
            **(env or {}),
        }
        self.log = log
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "autoscaler.cli",
                "serve",
                "--kubernetes",
                "--kubeconfig",
                str(kubeconfig),
                "--port",
                str(self.port),
            ],
            cwd=ROOT,
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        wait_until(lambda: self.get("/readyz").status_code == 200, f"{name} ready")

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=5)

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of ``name`` whose labels include ``labels``."""
        total = 0.0
        for line in self.get("/metrics").text.splitlines():
            match = re.match(rf"^{name}(?:\{{(.*)\}})? (\S+)$", line)
            if not match:
                continue
            found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
            if all(found.get(k) == v for k, v in labels.items()):
                total += float(match.group(2))
        return total

    def writes(self, result: str = "ok") -> float:
        return self.metric("autoscaler_kube_writes_total", result=result)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        self.process.send_signal(sig)

    def output(self) -> str:
        return self.log.read_text()


@pytest.fixture
def custom_api(kube: KubeEmulator) -> Iterator[client.CustomObjectsApi]:
    """The three autoscaler.dev kinds served by the emulator, and a client of them."""
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
    with kube.api_client() as api_client:
        yield client.CustomObjectsApi(api_client)


def create_autoscaling(api: client.CustomObjectsApi, groups: Iterable[str]) -> None:
    """The producer ``plan`` (a schedule of 3 nodes) and, for each name, a Simulated node group
    at 1 node and an autoscaler of the same name that sizes it after ``plan``."""
    objects: list[tuple[str, dict[str, Any]]] = [
        (
            "metricsproducers",
            {
                "kind": "MetricsProducer",
                "metadata": {"name": "plan"},
                "spec": {"intervalSeconds": 0.5, "schedule": {"defaultReplicas": 3}},
            },
        )
    ]
    for name in groups:
        objects.append(
            (
                "scalablenodegroups",
                {
                    "kind": "ScalableNodeGroup",
                    "metadata": {"name": name},
                    "spec": {
                        "type": "Simulated",
                        "id": name,
                        "replicas": 1,
                        "simulated": {"provisioningDelaySeconds": 0},
                    },
                },
            )
        )
        objects.append(
            (
                "horizontalautoscalers",
                {
                    "kind": "HorizontalAutoscaler",
                    "metadata": {"name": name},
                    "spec": {
                        "scaleTargetRef": {"name": name},
                        "minReplicas": 1,
                        "maxReplicas": 10,
                        "metrics": [
                            {
                                "producer": {"name": "plan"},
                                "target": {"type": "AverageValue", "averageValue": 1},
                            }
                        ],
                    },
                },
            )
        )
    for plural, body in objects:
        api.create_namespaced_custom_object(
            GROUP, VERSION, "default", plural, {"apiVersion": API_VERSION, **body}
        )


@pytest.fixture
def cluster(custom_api: client.CustomObjectsApi) -> client.CustomObjectsApi:
    create_autoscaling(custom_api, ["workers"])
    return custom_api


class Start(Protocol):
    def __call__(self, name: str, env: Mapping[str, str] | None = None) -> Autoscaler: ...


@pytest.fixture
def autoscalers(kube: KubeEmulator, tmp_path: Path) -> Iterator[Start]:
    """Starts processes; each sends its name as its bearer token, which the emulator's request
    log records (the emulator checks no token)."""
    started: list[Autoscaler] = []

    def start(name: str, env: Mapping[str, str] | None = None) -> Autoscaler:
        kubeconfig = kube.write_kubeconfig(tmp_path / f"{name}.kubeconfig", token=name)
        process = Autoscaler(name, kubeconfig, tmp_path / f"{name}.log", env)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.process.poll() is None:
            process.process.send_signal(signal.SIGCONT)
            process.process.kill()
        process.process.wait(10)


def holder(kube: KubeEmulator, lease_name: str = LEASE) -> str | None:
    lease = kube.get_object("leases", lease_name)
    return None if lease is None else lease["spec"].get("holderIdentity")


def replicas(kube: KubeEmulator) -> int | None:
    obj = kube.get_object("scalablenodegroups", "workers")
    return None if obj is None else obj["spec"].get("replicas")


def set_plan(api: client.CustomObjectsApi, value: int) -> None:
    api.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        "default",
        "metricsproducers",
        "plan",
        {"spec": {"schedule": {"defaultReplicas": value}}},
    )


def test_exactly_one_acts_and_the_standby_takes_over_when_the_leader_is_killed(
    kube: KubeEmulator,
    cluster: client.CustomObjectsApi,
    autoscalers: Callable[[str], Autoscaler],
) -> None:
    a = autoscalers("autoscaler-a")
    wait_until(lambda: holder(kube) == "autoscaler-a", "a holds the Lease")
    b = autoscalers("autoscaler-b")
    wait_until(lambda: replicas(kube) == 3, "scaled to 3 by the leader")
    time.sleep(2)  # let both run a while

    assert holder(kube) == "autoscaler-a"
    assert (a.metric("autoscaler_leader"), b.metric("autoscaler_leader")) == (1, 0)
    assert a.writes() > 0 and b.writes() == 0 and b.writes("conflict") == 0
    events = kube.list_objects("events")
    assert events and {e["reportingInstance"] for e in events} == {"autoscaler-a"}
    assert b.get("/api/v1/scalablenodegroups").json()["items"] == []  # a standby holds nothing

    a.kill(signal.SIGKILL)
    killed = time.monotonic()
    wait_until(lambda: holder(kube) == "autoscaler-b", "b takes over", timeout=30)
    took = time.monotonic() - killed
    assert 10 < took <= 20, f"took over after {took:.1f}s"
    wait_until(lambda: b.metric("autoscaler_leader") == 1, "b acts")

    set_plan(cluster, 5)
    wait_until(lambda: replicas(kube) == 5, "b keeps scaling")
    status = kube.get_object("horizontalautoscalers", "workers")
    assert status is not None
    wait_until(
        lambda: (
            kube.get_object("horizontalautoscalers", "workers")["status"]["desiredReplicas"] == 5
        ),
        "b writes status",
    )
    assert b.writes() > 0
    lease = kube.get_object("leases", LEASE)
    assert lease is not None and lease["spec"]["leaseTransitions"] == 1


def test_a_frozen_leader_that_wakes_up_after_losing_the_lease_writes_nothing(
    kube: KubeEmulator,
    cluster: client.CustomObjectsApi,
    autoscalers: Callable[[str], Autoscaler],
) -> None:
    a = autoscalers("autoscaler-a")
    wait_until(lambda: holder(kube) == "autoscaler-a", "a holds the Lease")
    autoscalers("autoscaler-b")
    wait_until(lambda: replicas(kube) == 3, "scaled to 3 by a")
    time.sleep(1)
    ok_before = a.writes()

    a.kill(signal.SIGSTOP)  # a long GC pause, a frozen VM, a partition
    wait_until(lambda: holder(kube) == "autoscaler-b", "b takes over", timeout=30)
    set_plan(cluster, 6)
    wait_until(lambda: replicas(kube) == 6, "b scales")

    a.kill(signal.SIGCONT)
    wait_until(lambda: a.metric("autoscaler_leader") == 0, "a knows it stands by")
    time.sleep(3)  # whatever a had computed before it froze is due by now
    assert a.writes() == ok_before  # nothing written after it woke up
    assert replicas(kube) == 6 and holder(kube) == "autoscaler-b"
    assert "is no longer the leader" in a.output() or "stops acting" in a.output()
    events_by_a = [
        e for e in kube.list_objects("events") if e.get("reportingInstance") == "autoscaler-a"
    ]
    assert all("→ 6" not in e["message"] for e in events_by_a)
