"""Benchmark: pending-capacity packing quality and unschedulable-pod → scale-request latency.

1. **Packing quality.** For 20 node groups × 500 pending pods of random sizes (seeded), the nodes
   the first-fit-decreasing packing of ``autoscaler.scheduling.pack`` asks for, against the lower
   bound ``max over resources of ceil(total requests / node capacity)`` (no packing can do better).
   Goal: ≤ 1.05× the lower bound.
2. **Latency.** A real ``autoscaler serve --kubernetes`` process against the Kubernetes API
   emulator (real HTTP, in this process) with a Cluster API MachineDeployment group, a
   ``pendingCapacity`` producer (interval 120 s, so only the watch can wake it) and an autoscaler.
   Each trial creates one pending pod that needs a new node and times the moment the
   MachineDeployment's ``spec.replicas`` (written through ``/scale``) grows. Goal: p99 ≤ 1 s.
   Baseline, same run: the producer's polling interval alone (what a poll-only design would wait,
   on average half the interval).

    .venv/bin/python bench/pending_scale_up.py [--trials 50]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autoscaler.scheduling import pack  # noqa: E402

MI = 2**20 * 1000  # memory in milli-units (bytes × 1000)
SHAPE = {"cpu": 4000, "memory": 16 * 1024 * MI, "pods": 110_000}
CPUS = [250, 500, 1000, 1500, 2000, 3000]
MEMS = [256, 512, 1024, 2048, 4096, 8192]


def packing_quality(groups: int = 20, pods_per_group: int = 500, seed: int = 7) -> dict[str, float]:
    rng = random.Random(seed)
    ratios = []
    total_packed = total_bound = 0
    started = time.perf_counter()
    for _ in range(groups):
        counts: dict[tuple[int, int], int] = {}
        for _ in range(pods_per_group):
            key = (rng.choice(CPUS), rng.choice(MEMS))
            counts[key] = counts.get(key, 0) + 1
        items = [
            ({"cpu": cpu, "memory": mem * MI, "pods": 1000}, n) for (cpu, mem), n in counts.items()
        ]
        nodes = pack(items, SHAPE).new_nodes
        bound = max(math.ceil(sum(r[res] * n for r, n in items) / SHAPE[res]) for res in SHAPE)
        ratios.append(nodes / bound)
        total_packed += nodes
        total_bound += bound
    return {
        "groups": groups,
        "pods": groups * pods_per_group,
        "nodes_requested": total_packed,
        "lower_bound": total_bound,
        "ratio_total": round(total_packed / total_bound, 4),
        "ratio_worst_group": round(max(ratios), 4),
        "pack_seconds_all_groups": round(time.perf_counter() - started, 4),
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def latency(trials: int) -> dict[str, float]:
    from kubernetes import client

    from tests.cluster_objects import node, pod
    from tests.k8s_emulator import KubeEmulator, Resource, ScaleSubresource

    group, version = "autoscaler.dev", "v1alpha1"
    emulator = KubeEmulator().start()
    for plural, kind, scale in [
        ("scalablenodegroups", "ScalableNodeGroup", ScaleSubresource()),
        ("metricsproducers", "MetricsProducer", None),
        ("horizontalautoscalers", "HorizontalAutoscaler", None),
    ]:
        emulator.register(Resource(group, version, plural, kind, status=True, scale=scale))
    bounds = "cluster.x-k8s.io/cluster-api-autoscaler-node-group-"
    emulator.put_object(
        {
            "apiVersion": "cluster.x-k8s.io/v1beta1",
            "kind": "MachineDeployment",
            "metadata": {
                "name": "md",
                "namespace": "default",
                "annotations": {f"{bounds}min-size": "1", f"{bounds}max-size": "500"},
            },
            "spec": {"clusterName": "c", "replicas": 1, "selector": {"matchLabels": {}}},
            "status": {"replicas": 1, "readyReplicas": 1},
        }
    )
    emulator.put_object(node("n-1", cpu="4", labels={"pool": "p"}))
    emulator.put_object(pod("busy", cpu="3", node_name="n-1"))
    objects = [
        (
            "scalablenodegroups",
            "ScalableNodeGroup",
            "g",
            {"type": "ClusterAPIMachineDeployment", "id": "default/md"},
        ),
        (
            "metricsproducers",
            "MetricsProducer",
            "pending",
            {
                "intervalSeconds": 120,
                "pendingCapacity": {"nodeGroup": "g", "nodeSelector": {"pool": "p"}},
            },
        ),
        (
            "horizontalautoscalers",
            "HorizontalAutoscaler",
            "a",
            {
                "scaleTargetRef": {"name": "g"},
                "minReplicas": 1,
                "maxReplicas": 500,
                "metrics": [
                    {
                        "producer": {"name": "pending"},
                        "target": {"type": "AverageValue", "averageValue": 1},
                    }
                ],
                "behavior": {
                    # Nodes needed is an exact count: no tolerance band around it.
                    "scaleUp": {
                        "tolerance": 0,
                        "policies": [{"type": "Pods", "value": 100, "periodSeconds": 1}],
                    }
                },
            },
        ),
    ]
    with emulator.api_client() as api_client:
        api = client.CustomObjectsApi(api_client)
        for plural, kind, name, spec in objects:
            api.create_namespaced_custom_object(
                group,
                version,
                "default",
                plural,
                {
                    "apiVersion": f"{group}/{version}",
                    "kind": kind,
                    "metadata": {"name": name},
                    "spec": spec,
                },
            )
    folder = Path(tempfile.mkdtemp())
    port = _free_port()
    service = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "autoscaler.cli",
            "serve",
            "--kubernetes",
            "--kubeconfig",
            str(emulator.write_kubeconfig(folder / "kubeconfig")),
            "--port",
            str(port),
            "--log-level",
            "WARNING",
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "POD_NAME": "bench",
            "POD_NAMESPACE": "default",
            # One replica: leader election adds nothing to this measurement.
            "AUTOSCALER_KUBERNETES__LEADER_ELECTION": "false",
        },
    )

    def replicas() -> int:
        found = emulator.get_object("machinedeployments.cluster.x-k8s.io", "md")
        return int(found["spec"]["replicas"]) if found else -1

    def wait(check: object, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():  # type: ignore[operator]
                return time.monotonic()
            time.sleep(0.01)
        return None

    samples: list[float] = []
    try:
        import httpx

        if wait(lambda: _ready(httpx, port), 60) is None:
            raise SystemExit("the service did not become ready")
        time.sleep(2)
        for trial in range(trials):
            before = replicas()
            time.sleep(0.05 + random.random() * 0.2)
            created = time.monotonic()
            emulator.put_object(
                pod(f"job-{trial}", cpu="3", pending=True, node_selector={"pool": "p"})
            )
            seen = wait(lambda b=before: replicas() > b, 10)
            if seen is None:
                raise SystemExit(f"trial {trial}: no scale request within 10 s")
            samples.append(seen - created)
    finally:
        service.send_signal(signal.SIGTERM)
        try:
            service.wait(20)
        except subprocess.TimeoutExpired:
            service.kill()
        emulator.stop()
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        "trials": len(samples),
        "p50_ms": round(statistics.median(ordered) * 1e3, 1),
        "p99_ms": round(p99 * 1e3, 1),
        "max_ms": round(ordered[-1] * 1e3, 1),
        "baseline_polling_only_mean_ms": 120_000 / 2,
    }


def _ready(httpx: object, port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200  # type: ignore[attr-defined]
    except Exception:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    args = parser.parse_args()
    print(
        json.dumps(
            {
                "machine": f"{platform.platform()}, {os.cpu_count()} cores",
                "python": platform.python_version(),
                "packing": packing_quality(),
                "latency": latency(args.trials),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
