"""Benchmark: pendingCapacity over a watch-fed cache, against a full list + recompute every tick.

A Kubernetes API emulator (``tests/k8s_emulator.py``, real HTTP) runs in a child process so its
memory and CPU stay out of the measurements. It holds N nodes in G node groups (labels
``pool=gNN``; every fourth group is a tainted GPU group), two bound pods per node (a DaemonSet
pod and a workload pod) and P pending-unschedulable pods from a few hundred "deployments" (pods
of one deployment are identical), each deployment aimed at one group by nodeSelector (some also
with required node affinity, GPU ones with a toleration).

One *evaluation* = the G pendingCapacity producers (one per group, learned node shape) observe
once. Measured in the same run:

* **cached** — the service's way: one shared :class:`~autoscaler.kube.cache.ClusterCache`
  (list once, then watch). ``steady``: nothing changed since the last evaluation. ``churn``:
  C pending pods created and C deleted through the API first (arriving through the watch; the
  time to wait for them is not counted).
* **naive** — list every pod and node from the API (same page size, raw JSON: the cheapest
  possible list) into a fresh cache, then the same G producers, every tick. Reported whole and
  split into its list and recompute parts, since the list part depends on the API server (the
  emulator pages slower than a real one).

Memory: ``tracemalloc`` (Python allocations) in separate passes — what the cache keeps after
its sync, the peak of one cached evaluation, and the peak of one naive tick — and the process's
peak RSS. Also: the time from a pod turning unschedulable at the API server to the producer's
trigger firing (median).

    .venv/bin/python bench/pending_capacity.py [--pending 10000] [--nodes 5000] [--groups 20]
        [--repeats 7] [--churn 100] [--json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import resource
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from autoscaler.api import BackendContext, MetricsProducer
from autoscaler.clock import system_clock
from autoscaler.kube import KubeClients
from autoscaler.kube.cache import ClusterCache
from producers.pending_capacity import PendingCapacityProducer, create
from tests.cluster_objects import affinity_in, node, pod

Obj = dict[str, Any]
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


# --------------------------------------------------------------------------- the cluster


def group_name(index: int) -> str:
    return f"g{index:02d}"


def is_gpu(index: int) -> bool:
    return index % 4 == 3


def cluster_nodes(nodes: int, groups: int) -> list[Obj]:
    out = []
    for i in range(nodes):
        g = i % groups
        size = (4, 8, 16, 32)[g % 4]
        out.append(
            node(
                f"{group_name(g)}-n{i:05d}",
                cpu=str(size),
                memory=f"{size * 4}Gi",
                pods="110",
                gpu=4 if is_gpu(g) else None,
                labels={"pool": group_name(g), "zone": "abc"[i % 3]},
                taints=[GPU_TAINT] if is_gpu(g) else None,
            )
        )
    return out


def bound_pods(nodes: list[Obj]) -> list[Obj]:
    out = []
    for n in nodes:
        name = n["metadata"]["name"]
        out.append(
            pod(
                f"ds-{name}",
                namespace="kube-system",
                cpu="100m",
                memory="128Mi",
                node_name=name,
                owner_kind="DaemonSet",
            )
        )
        out.append(
            pod(f"app-{name}", cpu="1", memory="2Gi", node_name=name, owner_kind="ReplicaSet")
        )
    return out


def pending_pod(serial: int, deployment: int, groups: int) -> Obj:
    """Pod ``serial`` of deployment ``deployment`` (identical within a deployment)."""
    g = deployment % groups
    cpu = ("250m", "500m", "1", "2", "3")[deployment % 5]
    memory = ("512Mi", "1Gi", "2Gi", "4Gi", "8Gi")[(deployment // 5) % 5]
    kwargs: dict[str, Any] = {"node_selector": {"pool": group_name(g)}}
    if deployment % 3 == 0:
        kwargs["affinity"] = affinity_in("zone", "a", "b", "c")
    if is_gpu(g):
        kwargs["gpu"] = 1
        kwargs["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists"}]
    return pod(
        f"d{deployment:03d}-{serial:06d}",
        namespace=f"team-{deployment % 7}",
        cpu=cpu,
        memory=memory,
        pending=True,
        owner_kind="ReplicaSet",
        **kwargs,
    )


def pending_pods(count: int, deployments: int, groups: int, start: int = 0) -> list[Obj]:
    return [pending_pod(start + i, (start + i) % deployments, groups) for i in range(count)]


def serve(conn: Connection, nodes: int, groups: int, pending: int, deployments: int) -> None:
    """Child process: seed the emulator, then obey commands from the parent."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.k8s_emulator import KubeEmulator

    emulator = KubeEmulator(history_size=100_000).start()
    node_objs = cluster_nodes(nodes, groups)
    for obj in [*node_objs, *bound_pods(node_objs), *pending_pods(pending, deployments, groups)]:
        emulator.put_object(obj)
    directory = tempfile.mkdtemp()
    conn.send(str(emulator.write_kubeconfig(Path(directory) / "kubeconfig")))
    serial = pending
    alive = deque(
        (o["metadata"]["name"], o["metadata"]["namespace"])
        for o in pending_pods(pending, deployments, groups)
    )
    while True:
        command, argument = conn.recv()
        if command == "churn":  # create ``argument`` pending pods, delete the oldest as many
            for obj in pending_pods(argument, deployments, groups, start=serial):
                emulator.put_object(obj)
                alive.append((obj["metadata"]["name"], obj["metadata"]["namespace"]))
            for _ in range(argument):
                name, namespace = alive.popleft()
                emulator.delete_object("pods", name, namespace)
            serial += argument
            conn.send(emulator.resource_version)
        elif command == "pend":  # one new pending pod, timed by the parent
            conn.send(time.time())
            emulator.put_object(pending_pod(serial, 0, groups))
            serial += 1
        elif command == "stop":
            emulator.stop()
            conn.send("stopped")
            return


# --------------------------------------------------------------------------- evaluations


class FakeKube:
    """Hands a given cache to the producers (the naive baseline's fresh cache)."""

    def __init__(self, cache: ClusterCache) -> None:
        self.cache = cache

    def cluster_cache(self) -> ClusterCache:
        return self.cache


def producers_for(groups: int, context: BackendContext) -> list[PendingCapacityProducer]:
    out = []
    for g in range(groups):
        resource = MetricsProducer.model_validate(
            {
                "metadata": {"name": group_name(g)},
                "spec": {
                    "pendingCapacity": {
                        "nodeGroup": group_name(g),
                        "nodeSelector": {"pool": group_name(g)},
                    }
                },
            }
        )
        out.append(create(resource, context))
    return out


def evaluate(producers: list[PendingCapacityProducer]) -> dict[str, float]:
    """One evaluation: every producer observes; returns nodes_needed by group."""
    now = time.time()
    out = {}
    for producer in producers:
        observation = producer.observe(now)
        out[producer.node_group] = next(
            s.value for s in observation.signals if s.name == "nodes_needed"
        )
    return out


def list_all(clients: KubeClients, kind: str, page: int = 500) -> list[Obj]:
    """The naive list: every object of ``kind`` (pods, nodes) as raw JSON, in pages."""
    api = clients.api_client
    items: list[Obj] = []
    token: str | None = None
    while True:
        query: list[tuple[str, Any]] = [("limit", page)]
        if token:
            query.append(("continue", token))
        method, url, headers, body, post = api.param_serialize(
            method="GET",
            resource_path=f"/api/v1/{kind}",
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        response = api.call_api(method, url, headers, body, post, _request_timeout=(10, 120))
        data = json.loads(response.response.data)
        items.extend(data.get("items") or ())
        token = (data.get("metadata") or {}).get("continue")
        if not token:
            return items


def naive_tick(
    clients: KubeClients, groups: int, split: list[tuple[float, float]] | None = None
) -> dict[str, float]:
    """Full list + recompute: a fresh cache from two full lists, fresh producers. Appends
    (seconds listing, seconds recomputing) to ``split`` when given."""
    started = time.perf_counter()
    nodes, pods = list_all(clients, "nodes"), list_all(clients, "pods")
    listed = time.perf_counter()
    cache = ClusterCache()
    cache.replace("nodes", nodes)
    cache.replace("pods", pods)
    cache.mark_synced()
    context = BackendContext(clock=system_clock, kube=FakeKube(cache), aws=None)
    result = evaluate(producers_for(groups, context))
    if split is not None:
        split.append((listed - started, time.perf_counter() - listed))
    return result


def timed(work: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def peak_bytes(work: Callable[[], Any]) -> int:
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    work()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak - base


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pending", type=int, default=10_000)
    parser.add_argument("--nodes", type=int, default=5_000)
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--deployments", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--naive-repeats", type=int, default=5)
    parser.add_argument("--churn", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    parent, child = multiprocessing.Pipe()
    server = multiprocessing.get_context("fork").Process(
        target=serve,
        args=(child, args.nodes, args.groups, args.pending, args.deployments),
        daemon=True,
    )
    seeded = time.perf_counter()
    server.start()
    kubeconfig = parent.recv()
    seed_seconds = time.perf_counter() - seeded

    # Cached: one shared cache, synced once.
    clients = KubeClients(kubeconfig=kubeconfig)
    triggered = threading.Event()
    context = BackendContext(
        clock=system_clock, kube=clients, aws=None, extras={"trigger": lambda key: triggered.set()}
    )
    started = time.perf_counter()
    cache = clients.cluster_cache()
    cache.wait_until_synced(600)
    sync_seconds = time.perf_counter() - started
    # What such a cache keeps, and its peak while listing: a second one, under tracemalloc.
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    measured = ClusterCache(lambda: clients.api_client)
    measured.start()
    measured.wait_until_synced(600)
    cache_bytes = tracemalloc.get_traced_memory()[0] - before
    sync_peak = tracemalloc.get_traced_memory()[1] - before
    tracemalloc.stop()
    measured.stop()
    del measured
    producers = producers_for(args.groups, context)
    first_seconds, cached_result = timed(lambda: evaluate(producers))

    steady = [timed(lambda: evaluate(producers))[0] for _ in range(args.repeats)]
    churn = []
    for _ in range(args.repeats):
        parent.send(("churn", args.churn))
        version = parent.recv()
        while cache.stats()["pods"]["resourceVersion"] != version:
            time.sleep(0.005)
        churn.append(timed(lambda: evaluate(producers))[0])
    cached_result = evaluate(producers)

    naive = []
    split: list[tuple[float, float]] = []
    naive_result: dict[str, float] = {}
    for _ in range(args.naive_repeats):
        seconds, naive_result = timed(lambda: naive_tick(clients, args.groups, split))
        naive.append(seconds)
    agree = naive_result == cached_result

    # Memory peaks of one evaluation each way (tracemalloc slows both down: separate passes).
    parent.send(("churn", args.churn))
    version = parent.recv()
    while cache.stats()["pods"]["resourceVersion"] != version:
        time.sleep(0.005)
    cached_peak = peak_bytes(lambda: evaluate(producers))
    naive_peak = peak_bytes(lambda: naive_tick(clients, args.groups))

    # Reaction: a pod turning unschedulable at the API server → the producer's trigger.
    latencies = []
    for _ in range(20):
        triggered.clear()
        parent.send(("pend", None))
        sent = parent.recv()
        triggered.wait(10)
        latencies.append(time.time() - sent)

    counts = cache.counts()
    clients.close()
    parent.send(("stop", None))
    parent.recv()

    cached_steady = statistics.median(steady)
    cached_churn = statistics.median(churn)
    naive_median = statistics.median(naive)
    naive_recompute = statistics.median(b for _, b in split)
    results = {
        "machine": f"{platform.system()} {platform.machine()}, Python {platform.python_version()}",
        "pending": args.pending,
        "nodes": args.nodes,
        "groups": args.groups,
        "bound_pods": 2 * args.nodes,
        "distinct_demands": counts["demands"],
        "seed_seconds": round(seed_seconds, 1),
        "sync_seconds": round(sync_seconds, 2),
        "first_evaluation_ms": round(first_seconds * 1000, 2),
        "cached_steady_ms": round(cached_steady * 1000, 2),
        "cached_churn_ms": round(cached_churn * 1000, 2),
        "naive_ms": round(naive_median * 1000, 1),
        "naive_list_ms": round(statistics.median(a for a, _ in split) * 1000, 1),
        "naive_recompute_ms": round(naive_recompute * 1000, 1),
        "naive_over_cached_steady": round(naive_median / cached_steady, 1),
        "naive_over_cached_churn": round(naive_median / cached_churn, 1),
        "naive_recompute_over_cached_churn": round(naive_recompute / cached_churn, 1),
        "cache_retained_mib": round(cache_bytes / 2**20, 1),
        "cache_sync_peak_mib": round(sync_peak / 2**20, 1),
        "cached_evaluation_peak_mib": round(cached_peak / 2**20, 2),
        "naive_tick_peak_mib": round(naive_peak / 2**20, 1),
        "naive_peak_over_cached_peak": round(naive_peak / max(cached_peak, 1), 1),
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "trigger_latency_ms_median": round(statistics.median(latencies) * 1000, 1),
        "results_agree": agree,
        "nodes_needed": cached_result,
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for key, value in results.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
